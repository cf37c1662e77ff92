"""YAML bytes -> card entries and problems. Pure: no I/O, no event loop.

A card file holds one or more YAML documents separated by ``---``. Each document must be a
mapping with a string ``name``; a document that is not is reported as a :class:`Problem`
and skipped, while the other documents of the file still count. A YAML syntax error or a
duplicate key rejects the whole file (a file in the middle of an edit must not half-apply).

YAML is read as fairseq2 reads it (ruamel's safe loader, YAML 1.2): by yaml-rs when a
screen shows the file holds none of the forms where it and ruamel differ (the fast reader),
else by :mod:`asyncassets.yaml12` (the exact reader, which also says where a file fails).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml
import yaml.reader

from asyncassets import yaml12
from asyncassets.fast_reader import VALUE_STARTS, FastKeyLines, fast_read, lines_at, with_lines
from asyncassets.names import InvalidNameError, parse_card_name
from asyncassets.problems import Problem
from asyncassets.snapshot import CardEntry, FileFieldLines, FileRecord, KnownKeyLines, new_entry
from asyncassets.values import plain_value, short_repr, type_name
from asyncassets.yaml_values import (
    MAX_DEPTH,
    MAX_VALUES,
    RECURSIVE,
    TOO_DEEP,
    LimitError,
    YamlValueError,
    line_of,
    too_many,
)

#: The line of each top-level key of one document, or of every document of its file.
FieldLines = Mapping[str, int] | FileFieldLines


__all__ = [
    "CARD_SUFFIXES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_VALUES",
    "LimitError",
    "is_card_file",
    "make_entry",
    "measure_tree",
    "measure_value",
    "parse_batch",
    "parse_card_file",
    "read_documents",
    "too_large_file",
]

#: Largest card file read, in bytes. Card files are small documents; a bigger file is a
#: problem, not something to load.
MAX_FILE_BYTES = 8 * 2**20


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
                raise too_many(line(item))
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in active:
            raise LimitError(RECURSIVE, line(item))
        if depth >= MAX_DEPTH:
            raise LimitError(TOO_DEEP, line(item))
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


def measure_value(value: Any) -> int:
    """Expanded size of constructed data (every alias counted once per use), checking
    depth and cycles: raises :class:`LimitError` past a limit."""
    return _measure(value, _value_children, lambda _: None)


def measure_tree(value: Any) -> int:
    """:func:`measure_value` of JSON data (dicts with string keys, lists and scalars, as
    ``json.loads`` builds them: no part shared, no cycle), without the bookkeeping for
    aliases: the same size, the same limits, several times faster."""
    size = _tree_size(value, 0)
    if size > MAX_VALUES:
        raise too_many(None)
    return size


def _tree_size(item: Any, depth: int) -> int:
    kind = type(item)
    if kind is dict:
        children: Iterable[Any] = item.values()
        size = 1 + len(item)  # the keys are leaves
    elif kind is list:
        children = item
        size = 1
    else:
        return 1
    if depth >= MAX_DEPTH:
        raise LimitError(TOO_DEEP, None)
    for child in children:
        child_kind = type(child)
        size += _tree_size(child, depth + 1) if child_kind is dict or child_kind is list else 1
    if size > MAX_VALUES:  # stop early: the rest of a huge value is not walked
        raise too_many(None)
    return size


def _scan_values(data: bytes | str) -> None:
    """Count values event by event (libyaml's parser, no nodes built) and stop at the
    limit: a file with too many values costs a scan, not a composed node tree."""
    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(data)
    count = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.NodeEvent | yaml.DocumentStartEvent):
                count += 1
                if count > MAX_VALUES:
                    mark = event.start_mark
                    raise too_many(mark.line + 1 if mark is not None else None)
    finally:
        loader.dispose()


def _may_exceed(data: bytes | str) -> bool:
    """A cheap upper bound of the values in ``data`` goes past :data:`MAX_VALUES`: every
    value but the first is introduced by one of these characters or a line break."""
    if isinstance(data, bytes):
        total = sum(data.count(c.encode()) for c in VALUE_STARTS)
    else:
        total = sum(data.count(c) for c in VALUE_STARTS)
    return total + 1 > MAX_VALUES


CARD_SUFFIXES = (".yaml", ".yml")


def is_card_file(path: str) -> bool:
    return path.endswith(CARD_SUFFIXES)


# -- a whole file ------------------------------------------------------------------------------


def _exact_documents(data: bytes | str) -> tuple[list[tuple[int, Any]], FileFieldLines]:
    """(line, value) of each document, read by the exact reader, and the key lines
    (raises on a bad file)."""
    if _may_exceed(data):
        _scan_values(data)
    documents: list[tuple[int, Any]] = []
    key_lines: list[dict[str, int]] = []
    for node, value in yaml12.documents(data):
        documents.append((line_of(node) if node is not None else 1, value))
        key_lines.append(yaml12.key_lines(node))
    return documents, KnownKeyLines(key_lines)


def read_documents(
    data: bytes | str, *, fast: bool = True
) -> tuple[list[tuple[int, Any]], FileFieldLines]:
    """(line, value) of each document of a card file, as fairseq2 reads them, and the line
    of each document's top-level keys. yaml-rs reads the files it reads exactly as
    ruamel's loader does (``fast=False`` skips it); the exact reader the rest, and every
    file that fails, so that an error names its line. Raises on a bad file."""
    raw: bytes | None = data if isinstance(data, bytes) else None
    if isinstance(data, str):
        try:
            raw = data.encode()
        except UnicodeEncodeError:  # lone surrogates: the exact reader says what is wrong
            raw = None
    if fast and raw is not None:
        read = fast_read(raw)
        if read is not None:
            return list(with_lines(raw, *read)), FastKeyLines(raw)
    return _exact_documents(data)


def _documents(data: bytes | str) -> tuple[list[int], list[Any], FileFieldLines]:
    """:func:`read_documents` as two lists: each document's line, and its value."""
    if isinstance(data, bytes):
        read = fast_read(data)
        if read is not None:
            starts, values = read
            return lines_at(data, starts), values, FastKeyLines(data)
    documents, lines = read_documents(data)
    return [line for line, _ in documents], [value for _, value in documents], lines


def _problem_of(exc: BaseException, data: bytes | str, file: str, source: str) -> Problem:
    """The problem a failed parse is, with the line when the error knows it."""
    if isinstance(exc, LimitError):
        return Problem("too-large", f"card file {exc}", source, file, exc.line)
    if isinstance(exc, yaml12.DuplicateKeyError):
        field = exc.key if isinstance(exc.key, str) else None
        return Problem("yaml", f"invalid YAML: {exc}", source, file, exc.line, field=field)
    if isinstance(exc, YamlValueError):
        return Problem("yaml", f"invalid YAML value: {exc}", source, file, exc.line)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        return Problem("yaml", f"invalid YAML: {reason or exc}", source, file, line)
    if isinstance(exc, RecursionError | MemoryError):
        reason = "is nested too deeply" if isinstance(exc, RecursionError) else "is too large"
        return Problem("too-large", f"card file {reason} to parse", source, file, None)
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(data, bytes):
        # A byte YAML forbids (invalid UTF-8, a control character): its line, counted here.
        line = data.count(b"\n", 0, exc.position) + 1
        return Problem("yaml", f"invalid YAML: {exc}", source, file, line)
    if isinstance(exc, yaml.YAMLError | UnicodeDecodeError):
        return Problem("yaml", f"invalid YAML: {exc}", source, file, None)
    return Problem("yaml", f"cannot parse: {type(exc).__name__}: {exc}", source, file, None)


def parse_card_file(
    data: bytes | str, *, file: str, source: str, version: str | None = None
) -> FileRecord:
    """Parse one card file into a :class:`FileRecord` (entries and problems). Never raises:
    whatever is in ``data`` (syntax errors, duplicate keys, alias bombs, deep nesting, huge
    files), the failure becomes a :class:`Problem` naming ``file`` and, when known, the line.

    ``file`` is the file's URL (it goes into entries and problems); ``source`` the
    provider's source.
    """
    if len(data) > MAX_FILE_BYTES:
        problem = too_large_file(len(data), file, source)
        return FileRecord(file, (), (problem,), version)
    try:
        line_numbers, documents, lines = _documents(data)
    except Exception as exc:  # untrusted input: every failure is a problem of this file
        return FileRecord(file, (), (_problem_of(exc, data, file, source),), version)

    entries: list[CardEntry] = []
    problems: list[Problem] = []
    for index, document in enumerate(documents):
        if document is None:
            continue
        line = line_numbers[index]
        if type(document) is dict:  # the common case, checked in a few steps
            name = document.get("name")
            base = document.get("base")
            if (
                type(name) is str
                and name
                and name[0] != "@"
                and name.count("@") < 2
                and (base is None or (type(base) is str and base and "@" not in base))
            ):  # "foo" is canonically "foo@"; "foo@env" and "foo@" are canonical already
                canonical = name if "@" in name else name + "@"
                entries.append(new_entry(canonical, document, file, line, source, index, lines))
                continue
        made = make_entry(
            document,
            file=file,
            source=source,
            line=line,
            index=index,
            field_lines=lines,
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
    field_lines: FieldLines | None = None,
    plain: bool = False,
) -> CardEntry | Problem:
    """Check one document against the card rules; a :class:`CardEntry` or the
    :class:`Problem` that rejects it.

    ``plain=True`` says ``document`` is parsed YAML already within the limits; anything
    else (an in-memory card) is measured and converted to plain data first.
    """
    if field_lines is None:
        field_lines = {}

    def problem(kind: str, message: str, at: int, **extra: Any) -> Problem:
        return Problem(kind, message, source, file, at, **extra)

    def field_line(key: str) -> int:
        lines = field_lines.of(index) if isinstance(field_lines, FileFieldLines) else field_lines
        return lines.get(key, line)

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
    if raw_name is None:
        return problem("name", f"document {index + 1} has no 'name' field", line, field="name")
    if not isinstance(raw_name, str):
        return problem(
            "name",
            f"'name' must be a string, not {type_name(raw_name)} ({short_repr(raw_name)})",
            field_line("name"),
            field="name",
        )
    try:
        canonical = parse_card_name(raw_name).canonical
    except InvalidNameError as exc:
        return problem("name", str(exc), field_line("name"), card=raw_name, field="name")
    base = document.get("base")
    if base is not None:
        if not isinstance(base, str):
            return problem(
                "base",
                f"card '{raw_name}': 'base' must be a string, not {type_name(base)} "
                f"({short_repr(base)})",
                field_line("base"),
                card=canonical,
                field="base",
            )
        if "@" in base or not base:
            return problem(
                "base",
                f"card '{raw_name}': 'base' must be a plain card name without '@', "
                f"not {short_repr(base)}",
                field_line("base"),
                card=canonical,
                field="base",
            )
    return new_entry(canonical, document, file, line, source, index, field_lines)


def parse_batch(
    items: Iterable[tuple[str, bytes | str, str | None]], *, source: str
) -> list[FileRecord]:
    """Parse several files (``(file URL, data, version)``) in one call, for one thread hop."""
    return [parse_card_file(data, file=f, source=source, version=v) for f, data, v in items]
