"""YAML bytes -> card entries and problems. Pure: no I/O, no event loop.

A card file holds one or more YAML documents separated by ``---``. Each document must be a
mapping with a string ``name``; a document that is not is reported as a :class:`Problem`
and skipped, while the other documents of the file still count. A YAML syntax error rejects
the whole file (a file in the middle of an edit must not half-apply).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import yaml

from asyncassets.names import InvalidNameError, parse_card_name
from asyncassets.problems import Problem
from asyncassets.snapshot import CardEntry, FileRecord
from asyncassets.values import plain_value, short_repr, type_name

__all__ = [
    "CARD_SUFFIXES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_VALUES",
    "LimitError",
    "YamlLoader",
    "is_card_file",
    "make_entry",
    "measure_value",
    "parse_batch",
    "parse_card_file",
    "too_large_file",
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

    def __init__(self, stream: bytes | str) -> None:
        super().__init__(stream)
        # The composer calls these two hooks for every node; they only serve path
        # resolvers, which the safe loader has none of. C callables that ignore their
        # arguments skip two Python calls per node (5% of a cold load, measured).
        assert not self.yaml_path_resolvers
        self.descend_resolver: Any = {}.get
        self.ascend_resolver = tuple

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
    """A node the fast builder leaves to PyYAML's constructor (merge keys, non-string keys,
    sets, binary)."""


class LimitError(ValueError):
    """A document goes past one of the parser's limits (depth, values, a recursive alias)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


#: Largest card file read, in bytes. Card files are small documents; a bigger file is a
#: problem, not something to load.
MAX_FILE_BYTES = 8 * 2**20
#: Most values (scalars, mappings, sequences, mapping keys, documents) one file may hold,
#: counting every expansion of a YAML alias: what caps an alias bomb ("billion laughs")
#: and the time and memory one file can cost (under a second, measured in bench/hostile.py).
MAX_VALUES = 150_000
#: Deepest nesting of mappings and sequences.
MAX_DEPTH = 100

_TOO_DEEP = f"nests values more than {MAX_DEPTH} levels deep"
_RECURSIVE = "has a recursive YAML alias (an alias inside the node it names)"
_SCAN_CHARS = (",", ":", "-", "[", "{", "\n", "?", "*")


class BadScalarError(ValueError):
    """A scalar that looks like a number or a date but cannot be one."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


class _Builder:
    """Nodes -> plain values in one pass (the work of PyYAML's ``construct``), measuring as
    it goes: nesting depth, values after alias expansion, recursive aliases.

    A node reached twice (an alias) is built once and shared: the store never mutates
    values and copies them for callers, so sharing is invisible, while its expanded size
    still counts toward :data:`MAX_VALUES` every time it is used.
    """

    __slots__ = ("loader", "memo")

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        #: id(node) -> (value, expanded size); _BUILDING while the node is being built.
        self.memo: dict[int, tuple[Any, int]] = {}

    def build(self, node: yaml.Node, depth: int = 0) -> tuple[Any, int]:
        """(value, expanded size)."""
        tag = node.tag
        if tag == _STR_TAG:
            return node.value, 1
        if isinstance(node, yaml.ScalarNode):
            try:  # int, float, bool, null, date
                return self.loader.construct_object(node), 1
            except yaml.MarkedYAMLError:
                raise
            except Exception as exc:  # a 5,000-digit int, the 45th of a month
                raise BadScalarError(f"{node.value[:40]!r}: {exc}", _line(node)) from None
        memo = self.memo
        key = id(node)
        known = memo.get(key)
        if known is not None:
            if known is _BUILDING:
                raise LimitError(_RECURSIVE, _line(node))
            return known
        if depth >= MAX_DEPTH:
            raise LimitError(_TOO_DEEP, _line(node))
        memo[key] = _BUILDING
        result: Any
        size = 1
        if tag == _MAP_TAG:
            result = {}
            for key_node, value_node in node.value:
                if key_node.tag != _STR_TAG:
                    raise _Unusual  # merge keys (<<), non-string keys: PyYAML knows best
                if value_node.tag == _STR_TAG:  # most values: no call
                    result[key_node.value] = value_node.value
                    size += 2
                else:
                    value, count = self.build(value_node, depth + 1)
                    result[key_node.value] = value
                    size += count + 1
        elif tag == _SEQ_TAG:
            result = []
            for item in node.value:
                if item.tag == _STR_TAG:
                    result.append(item.value)
                    size += 1
                else:
                    value, count = self.build(item, depth + 1)
                    result.append(value)
                    size += count
        else:
            raise _Unusual
        if size > MAX_VALUES:
            raise _too_many(_line(node))
        memo[key] = (result, size)
        return result, size


_BUILDING: Any = (None, 0)


def _too_many(line: int | None) -> LimitError:
    return LimitError(
        f"holds more than {MAX_VALUES:,} values (every use of a YAML alias counts its whole value)",
        line,
    )


def _measure(
    root: Any, children: Callable[[Any], list[Any] | None], line: Callable[[Any], int | None]
) -> int:
    """Expanded size of a graph (every shared child counted once per use), checking depth
    and cycles: raises :class:`LimitError` past a limit. Iterative, so any nesting is
    measured without recursion. ``children`` is None for a leaf."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    # (item, its children, depth, expanded?): the second visit sums the children.
    first = children(root)
    if first is None:
        return 1
    stack: list[tuple[Any, list[Any], int, bool]] = [(root, first, 0, False)]
    while stack:
        item, inner, depth, expanded = stack.pop()
        key = id(item)
        if expanded:
            active.discard(key)
            size = 1 + sum(sizes.get(id(c), 1) for c in inner)
            if size > MAX_VALUES:
                raise _too_many(line(item))
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in active:
            raise LimitError(_RECURSIVE, line(item))
        if depth >= MAX_DEPTH:
            raise LimitError(_TOO_DEEP, line(item))
        active.add(key)
        stack.append((item, inner, depth, True))
        for child in inner:
            grandchildren = children(child)
            if grandchildren is not None:
                stack.append((child, grandchildren, depth + 1, False))
    return sizes[id(root)]


def _value_children(item: Any) -> list[Any] | None:
    if isinstance(item, dict):
        return [*item.keys(), *item.values()]
    if isinstance(item, list | tuple | set | frozenset):
        return list(item)
    return None


def _node_children(node: yaml.Node) -> list[yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return None


def measure_value(value: Any) -> int:
    """Expanded size of constructed data (every alias counted once per use), checking
    depth and cycles: raises :class:`LimitError` past a limit."""
    return _measure(value, _value_children, lambda _: None)


def _check_nodes(root: yaml.Node) -> None:
    """Depth, cycles and expanded size of a node graph, without building values (before
    handing it to PyYAML's recursive constructor)."""
    _measure(root, _node_children, _line)


def _scan_values(data: bytes | str) -> None:
    """Count values event by event (libyaml's parser, no nodes built) and stop at the
    limit: a file with too many values costs a scan, not a composed node tree."""
    loader = YamlLoader(data)
    count = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.NodeEvent | yaml.DocumentStartEvent):
                count += 1
                if count > MAX_VALUES:
                    mark = event.start_mark
                    raise _too_many(mark.line + 1 if mark is not None else None)
    finally:
        loader.dispose()


def _may_exceed(data: bytes | str) -> bool:
    """A cheap upper bound of the values in ``data`` goes past :data:`MAX_VALUES`: every
    value but the first is introduced by one of these characters or a line break."""
    if isinstance(data, bytes):
        total = sum(data.count(c.encode()) for c in _SCAN_CHARS)
    else:
        total = sum(data.count(c) for c in _SCAN_CHARS)
    return total + 1 > MAX_VALUES


CARD_SUFFIXES = (".yaml", ".yml")


def is_card_file(path: str) -> bool:
    return path.endswith(CARD_SUFFIXES)


def _documents(data: bytes | str) -> Iterator[tuple[yaml.Node, Any]]:
    """(node, plain value) per non-empty document, within the limits."""
    if _may_exceed(data):
        _scan_values(data)
    loader = YamlLoader(data)
    total = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            total += 1
            if node is None:  # an empty document
                continue
            try:
                value, size = _Builder(loader).build(node)
            except _Unusual:
                _check_nodes(node)
                value = loader.construct_document(node)
                size = measure_value(value)
            total += size
            if total > MAX_VALUES:
                raise _too_many(_line(node))
            yield node, value
    finally:
        loader.dispose()


def _problem_of(exc: BaseException, file: str, source: str) -> Problem:
    """The problem a failed parse is, with the line when the error knows it."""
    if isinstance(exc, LimitError):
        return Problem("too-large", f"card file {exc}", source, file, exc.line)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        return Problem("yaml", f"invalid YAML: {reason or exc}", source, file, line)
    if isinstance(exc, BadScalarError):
        return Problem("yaml", f"invalid YAML value: {exc}", source, file, exc.line)
    if isinstance(exc, RecursionError | MemoryError):
        reason = "is nested too deeply" if isinstance(exc, RecursionError) else "is too large"
        return Problem("too-large", f"card file {reason} to parse", source, file, None)
    if isinstance(exc, yaml.YAMLError | UnicodeDecodeError):
        return Problem("yaml", f"invalid YAML: {exc}", source, file, None)
    return Problem("yaml", f"cannot parse: {type(exc).__name__}: {exc}", source, file, None)


def parse_card_file(
    data: bytes | str, *, file: str, source: str, version: str | None = None
) -> FileRecord:
    """Parse one card file into a :class:`FileRecord` (entries and problems). Never raises:
    whatever is in ``data`` (syntax errors, alias bombs, deep nesting, huge files), the
    failure becomes a :class:`Problem` naming ``file`` and, when known, the line.

    ``file`` is the file's URL (it goes into entries and problems); ``source`` the
    provider's source.
    """
    if len(data) > MAX_FILE_BYTES:
        problem = too_large_file(len(data), file, source)
        return FileRecord(file, (), (problem,), version)
    try:
        documents = list(_documents(data))
    except Exception as exc:  # untrusted input: every failure is a problem of this file
        return FileRecord(file, (), (_problem_of(exc, file, source),), version)

    entries: list[CardEntry] = []
    problems: list[Problem] = []
    for index, (node, document) in enumerate(documents):
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
            line=_line(node),
            index=index,
            field_lines=field_lines,
            plain=True,
        )
        if isinstance(made, Problem):
            problems.append(made)
        else:
            entries.append(made)
    return FileRecord(file, tuple(entries), tuple(problems), version)


def too_large_file(size: int, file: str, source: str) -> Problem:
    """The problem of a card file over :data:`MAX_FILE_BYTES` (not read)."""
    return Problem(
        "too-large",
        f"card file is {size:,} bytes, more than the {MAX_FILE_BYTES:,} a card file may have",
        source,
        file,
        None,
    )


def make_entry(
    document: Any,
    *,
    file: str,
    source: str,
    line: int,
    index: int,
    field_lines: Mapping[str, int] | None = None,
    plain: bool = False,
) -> CardEntry | Problem:
    """Check one document against the card rules; a :class:`CardEntry` or the
    :class:`Problem` that rejects it.

    ``plain=True`` says ``document`` is parsed YAML already within the limits; anything
    else (an in-memory card) is measured and converted to plain data first.
    """
    field_lines = field_lines or {}

    def problem(kind: str, message: str, at: int, **extra: Any) -> Problem:
        return Problem(kind, message, source, file, at, **extra)

    if not isinstance(document, Mapping):
        kind = type_name(document)
        return problem("not-a-mapping", f"document {index + 1} is a {kind}, not a mapping", line)
    if not plain:
        try:
            measure_value(document)
        except LimitError as exc:
            return problem("too-large", f"card {exc}", line)
        document = plain_value(document)
    raw_name = document.get("name")
    name_line = field_lines.get("name", line)
    if raw_name is None:
        return problem("name", f"document {index + 1} has no 'name' field", line, field="name")
    if not isinstance(raw_name, str):
        return problem(
            "name",
            f"'name' must be a string, not {type_name(raw_name)} ({short_repr(raw_name)})",
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
                f"card '{raw_name}': 'base' must be a string, not {type_name(base)} "
                f"({short_repr(base)})",
                base_line,
                card=canonical,
                field="base",
            )
        if "@" in base or not base:
            return problem(
                "base",
                f"card '{raw_name}': 'base' must be a plain card name without '@', "
                f"not {short_repr(base)}",
                base_line,
                card=canonical,
                field="base",
            )
    return CardEntry(
        name=canonical,
        metadata=document,
        file=file,
        line=line,
        source=source,
        index=index,
        field_lines=field_lines,
    )


def parse_batch(
    items: Iterable[tuple[str, bytes | str, str | None]], *, source: str
) -> list[FileRecord]:
    """Parse several files (``(file URL, data, version)``) in one call, for one thread hop."""
    return [parse_card_file(data, file=f, source=source, version=v) for f, data, v in items]
