"""YAML bytes -> card entries and problems. Pure: no I/O, no event loop.

A card file holds one or more YAML documents separated by ``---``. Each document must be a
mapping with a string ``name``; a document that is not is reported as a :class:`Problem`
and skipped, while the other documents of the file still count. A YAML syntax error rejects
the whole file (a file in the middle of an edit must not half-apply).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

import yaml

from asyncassets.frozen import freeze, type_name
from asyncassets.names import InvalidNameError, parse_card_name
from asyncassets.problems import Problem
from asyncassets.snapshot import CardEntry, FileRecord

__all__ = [
    "CARD_SUFFIXES",
    "YamlLoader",
    "is_card_file",
    "make_entry",
    "parse_batch",
    "parse_card_file",
    "paused_gc",
]

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
#: First characters for which a plain scalar may be something other than a string.
_MAYBE_TYPED = frozenset(k for k in yaml.SafeLoader.yaml_implicit_resolvers if k)
#: Every plain scalar starting with a letter that YAML 1.1 reads as a bool or null.
_WORDS = frozenset(
    f(word)
    for word in ("yes", "no", "true", "false", "on", "off", "null", "y", "n")
    for f in (str.lower, str.title, str.upper)
) | {"~"}
_WORD_STARTS = frozenset(w[0] for w in _WORDS)


class YamlLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """The safe loader (libyaml's C parser when PyYAML has it) with a fast path for the
    common case: a plain scalar whose first character cannot start a number, bool, null
    or date is a string without trying the implicit resolvers' regexes."""

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            if implicit[0]:
                if value and value[0] not in _MAYBE_TYPED:
                    return _STR_TAG
                # Letters that start a bool or null word start no number or date.
                if value and value[0] in _WORD_STARTS and value not in _WORDS:
                    return _STR_TAG
            elif implicit[1]:
                return _STR_TAG
        tag: str = super().resolve(kind, value, implicit)
        return tag


class _Unusual(Exception):
    """A node the fast builder leaves to PyYAML's constructor (merge keys, custom tags,
    aliases that make a cycle)."""


def _build_frozen(loader: yaml.SafeLoader, node: yaml.Node, depth: int = 0) -> Any:
    """Node -> read-only value in one pass (the work of ``construct`` + ``freeze``)."""
    if depth > 64:
        raise _Unusual
    tag = node.tag
    if tag == _STR_TAG:
        return node.value
    if tag == _MAP_TAG:
        result = {}
        for key_node, value_node in node.value:
            if key_node.tag != _STR_TAG:
                raise _Unusual  # merge keys (<<), non-string keys: PyYAML knows best
            result[key_node.value] = _build_frozen(loader, value_node, depth + 1)
        return MappingProxyType(result)
    if tag == _SEQ_TAG:
        return tuple(_build_frozen(loader, item, depth + 1) for item in node.value)
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_object(node)  # int, float, bool, null, timestamp
    raise _Unusual


CARD_SUFFIXES = (".yaml", ".yml")


def is_card_file(path: str) -> bool:
    return path.endswith(CARD_SUFFIXES)


def _documents(data: bytes | str) -> Iterator[tuple[yaml.Node, Any, bool]]:
    """(node, value, frozen?) per non-empty document."""
    loader = YamlLoader(data)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # an empty document
                continue
            try:
                yield node, _build_frozen(loader, node), True
            except _Unusual:
                yield node, loader.construct_document(node), False
    finally:
        loader.dispose()


def parse_card_file(
    data: bytes | str, *, file: str, source: str, version: str | None = None
) -> FileRecord:
    """Parse one card file into a :class:`FileRecord` (entries and problems).

    ``file`` is the file's URL (it goes into entries and problems); ``source`` the
    provider's source.
    """
    entries: list[CardEntry] = []
    problems: list[Problem] = []

    try:
        documents = list(_documents(data))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        problem = Problem("yaml", f"invalid YAML: {reason or exc}", source, file, line)
        return FileRecord(file, (), (problem,), version)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        problem = Problem("yaml", f"invalid YAML: {exc}", source, file, None)
        return FileRecord(file, (), (problem,), version)

    for index, (node, document, frozen) in enumerate(documents):
        if document is None:
            continue
        field_lines = (
            {
                key.value: key.start_mark.line + 1
                for key, _ in node.value
                if isinstance(key, yaml.ScalarNode)
            }
            if isinstance(node, yaml.MappingNode)
            else {}
        )
        made = make_entry(
            document,
            file=file,
            source=source,
            line=node.start_mark.line + 1,
            index=index,
            field_lines=field_lines,
            frozen=frozen,
        )
        if isinstance(made, Problem):
            problems.append(made)
        else:
            entries.append(made)
    return FileRecord(file, tuple(entries), tuple(problems), version)


def make_entry(
    document: Any,
    *,
    file: str,
    source: str,
    line: int,
    index: int,
    field_lines: Mapping[str, int] | None = None,
    frozen: bool = False,
) -> CardEntry | Problem:
    """Check one document against the card rules; a :class:`CardEntry` or the
    :class:`Problem` that rejects it."""
    field_lines = field_lines or {}

    def problem(kind: str, message: str, at: int, **extra: Any) -> Problem:
        return Problem(kind, message, source, file, at, **extra)

    if type(document) is not MappingProxyType and not isinstance(document, Mapping):
        kind = type_name(document)
        return problem("not-a-mapping", f"document {index + 1} is a {kind}, not a mapping", line)
    raw_name = document.get("name")
    name_line = field_lines.get("name", line)
    if raw_name is None:
        return problem("name", f"document {index + 1} has no 'name' field", line, field="name")
    if not isinstance(raw_name, str):
        return problem(
            "name",
            f"'name' must be a string, not {type_name(raw_name)} ({raw_name!r})",
            name_line,
            field="name",
        )
    try:
        canonical = parse_card_name(raw_name).canonical
    except InvalidNameError as exc:
        return problem("name", str(exc), name_line, card=raw_name, field="name")
    base = document.get("base")
    if base is not None:
        base_line = field_lines.get("base", line)
        if not isinstance(base, str):
            return problem(
                "base",
                f"card '{raw_name}': 'base' must be a string, not {type_name(base)} ({base!r})",
                base_line,
                card=canonical,
                field="base",
            )
        if "@" in base or not base:
            return problem(
                "base",
                f"card '{raw_name}': 'base' must be a plain card name without '@', not {base!r}",
                base_line,
                card=canonical,
                field="base",
            )
    return CardEntry(
        name=canonical,
        metadata=document if frozen else freeze(dict(document)),
        file=file,
        line=line,
        source=source,
        index=index,
        field_lines=field_lines,
    )


_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while parsing.

    Parsing allocates hundreds of thousands of short-lived nodes, which triggers full
    collections that walk every object alive in the process (a quarter of a cold load,
    measured). Parsing makes no reference cycles, so nothing is lost by collecting later.
    Nested and concurrent pauses (worker threads) share one pause; the collector's state
    is restored when the last one ends.
    """
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


def parse_batch(
    items: Iterable[tuple[str, bytes | str, str | None]], *, source: str
) -> list[FileRecord]:
    """Parse several files (``(file URL, data, version)``) in one call, for one thread hop."""
    with paused_gc():
        return [parse_card_file(data, file=f, source=source, version=v) for f, data, v in items]
