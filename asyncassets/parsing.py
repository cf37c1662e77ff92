"""YAML bytes -> card entries and problems. Pure: no I/O, no event loop.

A card file holds one or more YAML documents separated by ``---``. Each document must be a
mapping with a string ``name``; a document that is not is reported as a :class:`Problem`
and skipped, while the other documents of the file still count. A YAML syntax error rejects
the whole file (a file in the middle of an edit must not half-apply).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import yaml

from asyncassets.frozen import freeze
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
]

#: libyaml's C loader when PyYAML was built with it (about 10x faster), else pure Python.
YamlLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

CARD_SUFFIXES = (".yaml", ".yml")


def is_card_file(path: str) -> bool:
    return path.endswith(CARD_SUFFIXES)


def _documents(data: bytes | str) -> Iterator[tuple[yaml.Node, Any]]:
    loader = YamlLoader(data)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # an empty document
                continue
            yield node, loader.construct_document(node)
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
            line=node.start_mark.line + 1,
            index=index,
            field_lines=field_lines,
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
) -> CardEntry | Problem:
    """Check one document against the card rules; a :class:`CardEntry` or the
    :class:`Problem` that rejects it."""
    field_lines = field_lines or {}

    def problem(kind: str, message: str, at: int, **extra: Any) -> Problem:
        return Problem(kind, message, source, file, at, **extra)

    if not isinstance(document, Mapping):
        kind = type(document).__name__
        return problem("not-a-mapping", f"document {index + 1} is a {kind}, not a mapping", line)
    raw_name = document.get("name")
    name_line = field_lines.get("name", line)
    if raw_name is None:
        return problem("name", f"document {index + 1} has no 'name' field", line, field="name")
    if not isinstance(raw_name, str):
        return problem(
            "name",
            f"'name' must be a string, not {type(raw_name).__name__} ({raw_name!r})",
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
                f"card '{raw_name}': 'base' must be a string, not {type(base).__name__} ({base!r})",
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
        metadata=freeze(dict(document)),
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
