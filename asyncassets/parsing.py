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

import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import yaml
import yaml.reader

from asyncassets import yaml12
from asyncassets.names import InvalidNameError, parse_card_name
from asyncassets.problems import Problem
from asyncassets.snapshot import CardEntry, FileFieldLines, FileRecord, new_entry
from asyncassets.values import plain_value, short_repr, type_name
from asyncassets.yaml12 import (
    MAX_DEPTH,
    MAX_VALUES,
    LimitError,
    YamlValueError,
    line_of,
    too_many,
)

#: The line of each top-level key of one document, or of every document of its file.
FieldLines = Mapping[str, int] | FileFieldLines

yaml_rs: Any
try:
    import yaml_rs
except ImportError:  # a platform without its wheel: every file takes the exact reader
    yaml_rs = None

__all__ = [
    "CARD_SUFFIXES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_VALUES",
    "LimitError",
    "is_card_file",
    "make_entry",
    "measure_value",
    "parse_batch",
    "parse_card_file",
    "read_documents",
    "too_large_file",
]

#: Largest card file read, in bytes. Card files are small documents; a bigger file is a
#: problem, not something to load.
MAX_FILE_BYTES = 8 * 2**20

_TOO_DEEP = f"nests values more than {MAX_DEPTH} levels deep"
_RECURSIVE = "has a recursive YAML alias (an alias inside the node it names)"
_SCAN_CHARS = (",", ":", "-", "[", "{", "\n", "?", "*")


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


def measure_value(value: Any) -> int:
    """Expanded size of constructed data (every alias counted once per use), checking
    depth and cycles: raises :class:`LimitError` past a limit."""
    return _measure(value, _value_children, lambda _: None)


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
        total = sum(data.count(c.encode()) for c in _SCAN_CHARS)
    else:
        total = sum(data.count(c) for c in _SCAN_CHARS)
    return total + 1 > MAX_VALUES


CARD_SUFFIXES = (".yaml", ".yml")


def is_card_file(path: str) -> bool:
    return path.endswith(CARD_SUFFIXES)


# -- the fast reader: yaml-rs, for the files it reads exactly as the exact reader does ---------
#
# yaml-rs parses YAML 1.2 about ten times faster than libyaml, but a few forms differ from
# ruamel's reading (fairseq2's) or are not built at all. A file holding one of them goes to
# the exact reader (:mod:`asyncassets.yaml12`); that costs time, never a value:
# tests/test_yaml_fidelity.py checks both readers against the fidelity table, and that the
# fast one takes a form only when it reads it as the exact one does. The screen must cost
# far less than the parse, so it works in two steps: one ``bytes.translate`` pass keeps the
# bytes that are rare in card files, and only the rules those bytes can start are run;
# the few rules that start at common bytes are regexes anchored at those bytes.

#: A token starts after one of these (or at the start of the file).
_TOKEN_START = rb"[\s\[{,]"
#: Bytes that send a file to the exact reader wherever they stand: tags, anchors and
#: aliases, merge keys (``<<``), tabs (ruamel refuses most of them), and the
#: control characters YAML forbids.
_ALWAYS_EXACT = frozenset(b"!&*<\t" + bytes(range(0, 9)) + b"\x0b\x0c" + bytes(range(14, 32)))


def _block_indicator(indicator: bytes) -> re.Pattern[bytes]:
    """``|`` or ``>`` starting a token but not a block scalar's header, or right after a
    flow indicator: yaml-rs reads it as text there; ruamel refuses it."""
    at = re.escape(indicator)
    return re.compile(
        at + rb"(?:(?<=" + _TOKEN_START + at + rb")(?![-+1-9]{0,2}[ \t]*(?:#[^\n]*)?\r?$)"
        rb"|(?<=[\[{,]" + at + rb")|(?<=[\[{,] " + at + rb"))",
        re.M,
    )


#: Rules that start at a rare byte, run only when that byte is in the file (each starts
#: with that byte, so that the regex engine skips to it).
_RARE_RULES: dict[int, re.Pattern[bytes]] = {
    # a line break other than \n and \r\n (YAML 1.1, which ruamel reads, has \r alone)
    ord("\r"): re.compile(rb"\r(?!\n)"),
    # NEL, LS and PS (line breaks to ruamel), a byte-order mark, non-characters
    0xC2: re.compile(rb"\xc2[\x80-\x9f]"),
    0xE2: re.compile(rb"\xe2\x80[\xa8\xa9]"),
    0xEF: re.compile(rb"\xef\xbb\xbf|\xef\xbf[\xbe\xbf]"),
    0x7F: re.compile(rb"\x7f"),
    # a lone "=" (ruamel's value tag: an error)
    ord("="): re.compile(rb"=(?<=" + _TOKEN_START + rb"=)(?![^\s,\]}])"),
    # "?" starting a token: a complex key, or a key indicator in a flow collection
    ord("?"): re.compile(rb"\?(?<=" + _TOKEN_START + rb"\?)"),
    ord("|"): _block_indicator(b"|"),
    ord(">"): _block_indicator(b">"),
    # a flow mapping used as a key ("{a: 1}: x"), a quoted key glued to its value
    ord("}"): re.compile(rb"}[ \t]*:(?!\S)"),
    ord('"'): re.compile(rb'":(?=\S)'),
    ord("'"): re.compile(rb"':(?=\S)"),
    # an upper-case radix prefix: 0X1F is a string to ruamel, 31 to yaml-rs
    ord("X"): re.compile(rb"0[XOB]"),
    # a directive ("%YAML 1.1" switches ruamel to YAML 1.1 rules)
    ord("%"): re.compile(rb"%(?<![^\n]%)"),
}
_RARE_RULES[ord("O")] = _RARE_RULES[ord("B")] = _RARE_RULES[ord("X")]
_RARE = _ALWAYS_EXACT | frozenset(_RARE_RULES)
#: ``bytes.translate`` deletes these, keeping the rare bytes.
_COMMON = bytes(b for b in range(256) if b not in _RARE)

#: Rules that start at a common byte:
_COMMON_RULES = (
    # an underscore where ruamel's number differs from yaml-rs': leading ("_1", "-_"; not
    # "_set_", a string to both), in
    # an exponent ("1e_1", "1E3_", "1e+10_", "1e30101_0"), or a radix prefix with no digit
    # ("0o_")
    re.compile(
        rb"_(?<=[\s\[{,+\-.0-9eExob]_)"  # most underscores stop here: after a letter
        rb"(?:(?<=" + _TOKEN_START + rb"_)(?=[_.0-9])|(?<=" + _TOKEN_START + rb"[-+]_)"
        rb"|(?<=[0-9.][eE]_)|(?<=[eE][-+]_)|(?<=[eE][0-9]_)|(?<=[eE][-+0-9][0-9]_)"
        rb"|(?<=[eE][-+0-9][0-9][0-9]_)|(?<=[eE][-+0-9][0-9][0-9][0-9]_)"
        rb"|(?<=" + _TOKEN_START + rb"0[xob]_)|(?<=" + _TOKEN_START + rb"[-+]0[xob]_)"
        rb"|(?<=[0-9][0-9][0-9][0-9][0-9]_))"  # a longer exponent, or any 5 digits
    ),
    # a number with a leading dot (".5e3" is a string to ruamel, "._" an error)
    re.compile(rb"\.(?:(?<=" + _TOKEN_START + rb"\.)|(?<=" + _TOKEN_START + rb"[-+]\.))[0-9_]"),
    # "- -" (a list nested on its parent's line, which the depth bound does not count;
    # a tab sends the file to the exact reader anyway)
    re.compile(rb"- +-(?!\S)"),
    # "..." ending a document (the document count below does not see it)
    re.compile(rb"\.\.\.(?<![^\n]\.\.\.)"),
    # a date (ruamel makes it a date; kept off the fast reader)
    re.compile(rb"-(?<=[0-9]{4}-)[0-9]"),
)
#: Rules for files with a flow collection (``[`` or ``{``): a ":" starting a token or
#: right before a flow indicator ("[:, x]", "[a:]"; in block context yaml-rs and ruamel
#: agree on those).
_FLOW_RULES = (re.compile(rb":(?:(?<=" + _TOKEN_START + rb":)|(?=[,\]}]))"),)
#: Every rule at once, for the first bytes of a file.
_ANY_RULE = re.compile(
    b"|".join(rule.pattern for rule in (*_RARE_RULES.values(), *_COMMON_RULES, *_FLOW_RULES)),
    re.M,
)
#: A file's shape, in one ``bytes.translate``: digits and ``_`` as ``0``, the bytes that
#: introduce a value (``, : - [ { ? *`` and line breaks) as they are, the rest dropped.
_SHAPE_KEPT = "".join(_SCAN_CHARS).encode()
_SHAPE = bytes(0x30 if 0x30 <= b <= 0x39 or b == 0x5F else b for b in range(256))
_NOT_SHAPE = bytes(
    b for b in range(256) if not (0x30 <= b <= 0x39 or b == 0x5F or b in _SHAPE_KEPT)
)
#: A number longer than a card's: ruamel refuses an int past Python's 4,300 digits.
_LONG_NUMBER = b"0" * 1000


def _screened(data: bytes) -> bool:
    """``data`` holds none of the forms for the exact reader, and it is within the
    limits (values, depth) without measuring it: the fast reader may take it."""
    # A token at the start of the file starts after a line break, as the rules' lookbehinds
    # ask: they run on the file and, all at once, on a line break and the file's first bytes.
    head = b"\n" + data[:64]
    rare = data.translate(None, _COMMON)
    if rare:
        present = set(rare)
        if not _ALWAYS_EXACT.isdisjoint(present):
            return False
        if any(rule.search(data) for rule in {_RARE_RULES[byte] for byte in present}):
            return False
    shape = data.translate(_SHAPE, _NOT_SHAPE)
    if not _shape_bounded(shape, data):
        return False
    rules = _COMMON_RULES + _FLOW_RULES if b"[" in shape or b"{" in shape else _COMMON_RULES
    return not any(rule.search(data) for rule in rules) and _ANY_RULE.search(head) is None


def _shape_bounded(shape: bytes, data: bytes) -> bool:
    """Nothing in ``data`` (of which ``shape`` is the shape) can go past the limits:
    :data:`MAX_VALUES`, :data:`MAX_DEPTH`, a number ruamel refuses for its length.

    Every value but the first is introduced by one of ``, : - [ { ? *`` or a line
    break. Each block level below a mapping or list takes a new line at least one column
    further in, or a list at its key's column (two levels for one column); each flow level
    takes a ``[`` or ``{``. A run of digits in the shape holds every digit of a number
    (and maybe more, from what was dropped between them)."""
    if len(shape) - shape.count(b"0") + 1 > MAX_VALUES or _LONG_NUMBER in shape:
        return False
    room = (MAX_DEPTH - 3 - shape.count(b"[") - shape.count(b"{")) // 2
    return room > 0 and b"\n" + b" " * room not in data and not data.startswith(b" " * room)


#: A ``---`` marker at the start of a line, then where its document's content starts: on
#: the marker's line, or past the blank and comment lines after it. (Literal first bytes:
#: the regex engine skips from one ``---`` to the next.)
_MARKER = re.compile(
    rb"---(?<![^\n]---)"
    rb"(?:(?=[ \t]+[^\s#])|[ \t]*+(?:#[^\n]*+)?(?:\n|\Z)(?:[ \t\r]*+(?:#[^\n]*+)?\n)*+)"
)
_WHITESPACE_TO_END = re.compile(rb"\s*\Z")
#: The blank and comment lines before a file's first document.
_PREAMBLE = re.compile(rb"(?:[ \t\r]*(?:#[^\n]*)?\n)*(?:[ \t\r]*#[^\n]*\Z)?")


def _fast_documents(data: bytes) -> list[tuple[int, Any]] | None:
    """(line, value) of each document, read by yaml-rs; None when the file is for the exact
    reader (see :func:`_screened`) or yaml-rs refuses it (the exact reader then says why)."""
    read = _fast_read(data)
    return None if read is None else list(_with_lines(data, *read))


def _fast_read(data: bytes) -> tuple[list[int], list[Any]] | None:
    """(where each document's content starts, its value), read by yaml-rs, or None (see
    :func:`_fast_documents`).

    yaml-rs gives a stream of several documents as a list of them, which a single
    document that is a list also looks like. The ``---`` markers tell them apart: they are
    document boundaries wherever they stand (YAML forbids them inside any scalar or
    collection), so the file has one document per marker, plus one before the first when
    something other than comments stands there.
    """
    if yaml_rs is None or not _screened(data):
        return None
    preamble = _PREAMBLE.match(data)
    head = preamble.end() if preamble is not None else 0
    starts = [match.end() for match in _MARKER.finditer(data, head)]
    if _MARKER.match(data, head) is None and _WHITESPACE_TO_END.match(data, head) is None:
        starts.insert(0, head)  # a document before the first marker
    # yaml-rs reads a block scalar that ends the stream with one line break too many; a
    # document-end marker ends it as ruamel does.
    if data.endswith(b"\n"):
        text = data + b"...\n"
    elif b"|" in data or b">" in data:
        return None
    else:
        text = data + b"\n...\n"
    try:
        parsed = yaml_rs.loads(text.decode(), parse_datetime=False)
    except (yaml_rs.YAMLDecodeError, UnicodeDecodeError, RecursionError):
        return None
    if len(starts) == 1:
        return starts, [parsed]
    if not starts:
        return (starts, []) if parsed is None else None
    if type(parsed) is list and len(parsed) == len(starts):
        return starts, parsed
    return None


def _with_lines(data: bytes, starts: list[int], values: list[Any]) -> Iterator[tuple[int, Any]]:
    """(line, value) of each document, from where its content starts."""
    return zip(_lines_at(data, starts), values, strict=True)


def _lines_at(data: bytes, starts: list[int]) -> list[int]:
    """The line of each of ``starts`` (offsets, in order)."""
    count = data.count
    breaks = [count(b"\n", before, at) for before, at in itertools.pairwise([0, *starts])]
    return list(itertools.accumulate(breaks, initial=1))[1:]


class _KeyLines(FileFieldLines):
    """The line of each top-level key of every document of one file, composed by the
    exact reader the first time something asks (a problem naming a field's line): the
    fast reader knows no lines but each document's first."""

    __slots__ = ("_data", "_documents")

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data
        self._documents: list[dict[str, int]] = []

    def of(self, index: int) -> dict[str, int]:
        data = self._data
        if data is not None:
            try:
                self._documents = [_key_lines(node) for node in yaml12.document_nodes(data)]
            except Exception:  # the fast reader took this file; the lines are only a help
                self._documents = []
            self._data = None
        return self._documents[index] if index < len(self._documents) else {}


def _key_lines(node: yaml.Node | None) -> dict[str, int]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {
        key.value: key.start_mark.line + 1
        for key, _ in node.value
        if isinstance(key, yaml.ScalarNode)
    }


# -- a whole file ------------------------------------------------------------------------------


class _ComposedKeyLines(FileFieldLines):
    """Key lines the exact reader found while it read the file."""

    __slots__ = ("_documents",)

    def __init__(self, documents: list[dict[str, int]]) -> None:
        self._documents = documents

    def of(self, index: int) -> dict[str, int]:
        return self._documents[index] if index < len(self._documents) else {}


def _exact_documents(data: bytes | str) -> tuple[list[tuple[int, Any]], FileFieldLines]:
    """(line, value) of each document, read by the exact reader, and the key lines
    (raises on a bad file)."""
    if _may_exceed(data):
        _scan_values(data)
    documents: list[tuple[int, Any]] = []
    key_lines: list[dict[str, int]] = []
    for node, value in yaml12.documents(data):
        documents.append((line_of(node) if node is not None else 1, value))
        key_lines.append(_key_lines(node))
    return documents, _ComposedKeyLines(key_lines)


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
        read = _fast_read(raw)
        if read is not None:
            return list(_with_lines(raw, *read)), _KeyLines(raw)
    return _exact_documents(data)


def _documents(data: bytes | str) -> tuple[list[int], list[Any], FileFieldLines]:
    """:func:`read_documents` as two lists: each document's line, and its value."""
    if isinstance(data, bytes):
        read = _fast_read(data)
        if read is not None:
            starts, values = read
            return _lines_at(data, starts), values, _KeyLines(data)
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
