"""The fast reader: yaml-rs, for the card files it reads exactly as fairseq2 does. Pure: no
I/O, no event loop.

yaml-rs parses YAML 1.2 about ten times faster than libyaml, but a few forms differ from
ruamel's reading (fairseq2's) or are not built at all. :func:`fast_read` takes a file only
when a screen shows it holds none of them, and returns None otherwise:
:mod:`asyncassets.parsing` then hands the file to the exact reader
(:mod:`asyncassets.yaml12`). tests/test_yaml_fidelity.py checks both readers against the
fidelity table, and that the fast one takes a form only when it reads it as the exact one.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

from asyncassets import yaml12
from asyncassets.snapshot import FileFieldLines
from asyncassets.yaml_values import MAX_DEPTH, MAX_VALUES

__all__ = [
    "VALUE_STARTS",
    "FastKeyLines",
    "fast_documents",
    "fast_read",
    "lines_at",
    "with_lines",
]

yaml_rs: Any
try:
    import yaml_rs
except ImportError:  # a platform without its wheel: every file takes the exact reader
    yaml_rs = None

#: Every value but a file's first is introduced by one of these characters or a line break.
VALUE_STARTS = (",", ":", "-", "[", "{", "\n", "?", "*")

#: The screen must cost far less than the parse, so it works in two steps: one
#: ``bytes.translate`` pass keeps the bytes that are rare in card files, and only the rules
#: those bytes can start are run; the few rules that start at common bytes are regexes
#: anchored at those bytes.

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
    # an upper-case radix prefix: 0X1F is a string to ruamel, 31 to yaml-rs (each rule
    # starts at its letter, rarer than a "0")
    ord("X"): re.compile(rb"X(?<=0X)"),
    ord("O"): re.compile(rb"O(?<=0O)"),
    ord("B"): re.compile(rb"B(?<=0B)"),
    # a directive ("%YAML 1.1" switches ruamel to YAML 1.1 rules)
    ord("%"): re.compile(rb"%(?<![^\n]%)"),
}
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
        # then by the byte before it (the alternatives of each only): a digit (card names
        # are full of them: "llama3_8b")
        rb"(?:(?<=[0-9]_)(?:(?<=[eE][0-9]_)|(?<=[-+0-9][0-9]_)(?:(?<=[eE][-+0-9][0-9]_)"
        rb"|(?<=[eE][-+0-9][0-9][0-9]_)|(?<=[eE][-+0-9][0-9][0-9][0-9]_)"
        rb"|(?<=[0-9][0-9][0-9][0-9][0-9]_)))"  # a longer exponent, or any 5 digits
        rb"|(?<=[0-9.][eE]_)"
        rb"|(?<=[xob]_)(?:(?<="
        + _TOKEN_START
        + rb"0[xob]_)|(?<="
        + _TOKEN_START
        + rb"[-+]0[xob]_))"
        rb"|(?<=" + _TOKEN_START + rb"_)(?=[_.0-9])"
        rb"|(?<=[-+]_)(?:(?<=" + _TOKEN_START + rb"[-+]_)|(?<=[eE][-+]_)))"
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
_SHAPE_KEPT = "".join(VALUE_STARTS).encode()
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


def fast_documents(data: bytes) -> list[tuple[int, Any]] | None:
    """(line, value) of each document, read by yaml-rs; None when the file is for the exact
    reader (see :func:`_screened`) or yaml-rs refuses it (the exact reader then says why)."""
    read = fast_read(data)
    return None if read is None else list(with_lines(data, *read))


def fast_read(data: bytes) -> tuple[list[int], list[Any]] | None:
    """(where each document's content starts, its value), read by yaml-rs, or None (see
    :func:`fast_documents`).

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


def with_lines(data: bytes, starts: list[int], values: list[Any]) -> Iterator[tuple[int, Any]]:
    """(line, value) of each document, from where its content starts."""
    return zip(lines_at(data, starts), values, strict=True)


def lines_at(data: bytes, starts: list[int]) -> list[int]:
    """The line of each of ``starts`` (offsets, in order)."""
    count = data.count
    breaks = [count(b"\n", before, at) for before, at in itertools.pairwise([0, *starts])]
    return list(itertools.accumulate(breaks, initial=1))[1:]


class FastKeyLines(FileFieldLines):
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
                self._documents = [yaml12.key_lines(node) for node in yaml12.document_nodes(data)]
            except Exception:  # the fast reader took this file; the lines are only a help
                self._documents = []
            self._data = None
        return self._documents[index] if index < len(self._documents) else {}

    def portable(self) -> bytes | list[dict[str, int]]:
        return self._data if self._data is not None else self._documents
