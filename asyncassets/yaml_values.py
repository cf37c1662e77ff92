"""Nodes -> values, as ruamel's safe constructor builds them (YAML 1.2 core schema, or 1.1
after a ``%YAML 1.1`` directive): scalars by their resolved tags, merge keys, duplicate
keys, the standard tags, timestamps. Pure: no I/O.

:mod:`asyncassets.yaml12` composes the nodes and hands them here. Values are built in one
pass, measuring as they go: nesting depth, values after alias expansion and recursive
aliases are limits (:class:`LimitError`), not crashes.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from typing import Any

import yaml

__all__ = [
    "MAX_DEPTH",
    "MAX_VALUES",
    "RECURSIVE",
    "TOO_DEEP",
    "Builder",
    "DuplicateKeyError",
    "LimitError",
    "YamlValueError",
    "line_of",
    "too_many",
]

#: Most values (scalars, mappings, sequences, mapping keys, documents) one file may hold,
#: counting every expansion of a YAML alias: what caps an alias bomb ("billion laughs")
#: and the time and memory one file can cost (under a second, measured in bench/hostile.py).
MAX_VALUES = 150_000
#: Deepest nesting of mappings and sequences.
MAX_DEPTH = 100

_T = "tag:yaml.org,2002:"
STR, MAP, SEQ = _T + "str", _T + "map", _T + "seq"
NULL, BOOL, INT, FLOAT = _T + "null", _T + "bool", _T + "int", _T + "float"
TIMESTAMP, BINARY, MERGE, VALUE = _T + "timestamp", _T + "binary", _T + "merge", _T + "value"
SET, OMAP, PAIRS = _T + "set", _T + "omap", _T + "pairs"


class LimitError(ValueError):
    """A document goes past one of the reader's limits (depth, values, a recursive alias)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class YamlValueError(ValueError):
    """A node that ruamel's safe constructor refuses: a scalar that matches a number or a
    date but is not one, an unknown tag, a merge of something that is not a mapping."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class DuplicateKeyError(YamlValueError):
    """A mapping holds the same key twice (fairseq2 refuses the file)."""

    def __init__(self, key: Any, line: int, first_line: int) -> None:
        shown = key if isinstance(key, str) else repr(key)
        super().__init__(f"duplicate key {shown!r} (first at line {first_line})", line)
        self.key = key
        self.first_line = first_line


def too_many(line: int | None) -> LimitError:
    return LimitError(
        f"holds more than {MAX_VALUES:,} values (every use of a YAML alias counts its whole value)",
        line,
    )


TOO_DEEP = f"nests values more than {MAX_DEPTH} levels deep"
RECURSIVE = "has a recursive YAML alias (an alias inside the node it names)"


def line_of(node: yaml.Node) -> int:
    """The 1-based line where ``node`` starts."""
    return int(node.start_mark.line) + 1


# -- constructing values, as ruamel's SafeConstructor does ----------------------------------------

_BOOL_VALUES = {
    "yes": True,
    "no": False,
    "y": True,
    "n": False,
    "true": True,
    "false": False,
    "on": True,
    "off": False,
}
_TIMESTAMP_PARTS = re.compile(
    r"""^(?P<year>[0-9][0-9][0-9][0-9])
       -(?P<month>[0-9][0-9]?)
       -(?P<day>[0-9][0-9]?)
       (?:((?P<t>[Tt])|[ \t]+)
       (?P<hour>[0-9][0-9]?)
       :(?P<minute>[0-9][0-9])
       :(?P<second>[0-9][0-9])
       (?:\.(?P<fraction>[0-9]*))?
        (?:[ \t]*(?P<tz>Z|(?P<tz_sign>[-+])(?P<tz_hour>[0-9][0-9]?)
       (?::(?P<tz_minute>[0-9][0-9]))?))?)?$""",
    re.X,
)


def _int(text: str, version: tuple[int, int]) -> int:
    digits = text.replace("_", "")
    sign = -1 if digits[:1] == "-" else 1
    if digits[:1] in ("+", "-"):
        digits = digits[1:]
    if digits == "0":
        return 0
    if digits.startswith("0b"):
        return sign * int(digits[2:], 2)
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    if digits.startswith("0o"):
        return sign * int(digits[2:], 8)
    if version == (1, 1) and digits[:1] == "0":
        return sign * int(digits, 8)
    if version == (1, 1) and ":" in digits:
        return sign * int(_sexagesimal([int(part) for part in digits.split(":")]))
    return sign * int(digits)


def _sexagesimal(parts: list[int] | list[float]) -> Any:
    value: Any = 0
    for part in parts:
        value = value * 60 + part
    return value


def _float(text: str, version: tuple[int, int]) -> float:
    digits = text.replace("_", "").lower()
    sign = -1 if digits[:1] == "-" else 1
    if digits[:1] in ("+", "-"):
        digits = digits[1:]
    if digits == ".inf":
        return sign * float("inf")
    if digits == ".nan":
        return float("nan")
    if version != (1, 2) and ":" in digits:
        return sign * float(_sexagesimal([float(part) for part in digits.split(":")]))
    return sign * float(digits)


def _timestamp(text: str) -> datetime.date:
    match = _TIMESTAMP_PARTS.match(text)
    if match is None:
        raise ValueError(f"failed to construct timestamp from {text!r}")
    part = match.group
    year, month, day = int(part("year")), int(part("month")), int(part("day"))
    if part("hour") is None:
        return datetime.date(year, month, day)
    fraction_text = part("fraction")
    fraction = 0
    carry = False
    if fraction_text:
        fraction = int(fraction_text[:6].ljust(6, "0"))
        if len(fraction_text) > 6 and int(fraction_text[6]) > 4:
            fraction += 1
        if fraction > 999_999:
            fraction, carry = 0, True
    tzinfo: datetime.tzinfo | None = None
    tz = part("tz")
    if part("tz_sign"):
        minutes = int(part("tz_minute")) if part("tz_minute") else 0
        delta = datetime.timedelta(hours=int(part("tz_hour")), minutes=minutes)
        tzinfo = datetime.timezone(-delta if part("tz_sign") == "-" else delta, name=tz)
    elif tz == "Z":
        tzinfo = datetime.timezone(datetime.timedelta(0), name=tz)
    value = datetime.datetime(
        year,
        month,
        day,
        int(part("hour")),
        int(part("minute")),
        int(part("second")),
        fraction,
        tzinfo,
    )
    return value + datetime.timedelta(seconds=1) if carry else value


def _binary(text: str) -> bytes:
    try:
        return base64.decodebytes(text.encode("ascii"))
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError(f"failed to decode base64 data: {exc}") from None


class Builder:
    """Nodes -> plain values in one pass (the work of ruamel's ``construct``), measuring
    as it goes: nesting depth, values after alias expansion, recursive aliases.

    A node reached twice (an alias) is built once and shared: the store never mutates
    values and copies them for callers, so sharing is invisible, while its expanded size
    still counts toward :data:`MAX_VALUES` every time it is used.
    """

    __slots__ = ("memo", "merged", "version")

    def __init__(self, version: tuple[int, int]) -> None:
        self.version = version
        #: id(node) -> (value, expanded size); _BUILDING while the node is being built.
        self.memo: dict[int, tuple[Any, int]] = {}
        #: id(mapping node) -> its pairs after merge keys are flattened (None while busy).
        self.merged: dict[int, tuple[list[tuple[yaml.Node, yaml.Node]], bool] | None] = {}

    def build(self, node: yaml.Node, depth: int = 0) -> tuple[Any, int]:
        """(value, expanded size)."""
        tag = node.tag
        if tag == STR and type(node) is yaml.ScalarNode:
            return node.value, 1
        if type(node) is yaml.ScalarNode:
            return self.scalar(node), 1
        memo = self.memo
        key = id(node)
        known = memo.get(key)
        if known is not None:
            if known is _BUILDING:
                raise LimitError(RECURSIVE, line_of(node))
            return known
        if depth >= MAX_DEPTH:
            raise LimitError(TOO_DEEP, line_of(node))
        memo[key] = _BUILDING
        if type(node) is yaml.MappingNode:
            result, size = self.mapping(node, depth)
        else:
            result, size = self.sequence(node, depth)
        if size > MAX_VALUES:
            raise too_many(line_of(node))
        memo[key] = (result, size)
        return result, size

    def scalar(self, node: yaml.Node) -> Any:
        tag = node.tag
        text: str = node.value
        try:
            if tag == NULL:
                return None
            if tag == INT:
                return _int(text, self.version)
            if tag == FLOAT:
                return _float(text, self.version)
            if tag == BOOL:
                return _BOOL_VALUES[text.lower()]
            if tag == TIMESTAMP:
                return _timestamp(text)
            if tag == BINARY:
                return _binary(text)
        except (ValueError, KeyError, IndexError, OverflowError) as exc:
            reason = exc.args[0] if isinstance(exc, ValueError) and exc.args else exc
            message = f"{text[:40]!r} is not a valid {_short(tag)}: {reason}"
            raise YamlValueError(message, line_of(node)) from None
        if tag in (SEQ, MAP, SET, OMAP, PAIRS):
            raise YamlValueError(
                f"a {_short(tag)} cannot be a scalar ({text[:40]!r})", line_of(node)
            )
        raise YamlValueError(f"unknown tag {_short(tag)!r} on {text[:40]!r}", line_of(node))

    def key(self, node: yaml.Node, depth: int) -> tuple[Any, int]:
        if node.tag == VALUE and type(node) is yaml.ScalarNode:  # "=" as a key is a string
            return node.value, 1
        value, size = self.build(node, depth + 1)
        if type(value) is list:  # lists are not hashable, but tuples are (ruamel)
            value = tuple(value)
        try:
            hash(value)
        except TypeError:
            raise YamlValueError(
                f"a {_kind(value)} cannot be a mapping key", line_of(node)
            ) from None
        return value, size

    def pairs(self, node: yaml.Node) -> tuple[list[tuple[yaml.Node, yaml.Node]], bool]:
        """The mapping's pairs with its merge keys (``<<``) flattened in, ruamel's way, and
        whether it had any (a mapping with a merge is not checked for duplicates)."""
        key = id(node)
        if key in self.merged:
            done = self.merged[key]
            if done is None:
                raise LimitError(RECURSIVE, line_of(node))
            return done
        self.merged[key] = None
        merge: list[tuple[yaml.Node, yaml.Node]] = []
        own: list[tuple[yaml.Node, yaml.Node]] = []
        seen_merge = False
        for key_node, value_node in node.value:
            if key_node.tag != MERGE or type(key_node) is not yaml.ScalarNode:
                own.append((key_node, value_node))
                continue
            if seen_merge:
                raise YamlValueError("duplicate key '<<' (a second merge key)", line_of(key_node))
            seen_merge = True
            if type(value_node) is yaml.MappingNode:
                merge.extend(self.pairs(value_node)[0])
            elif type(value_node) is yaml.SequenceNode:
                sources = []
                for item in value_node.value:
                    if type(item) is not yaml.MappingNode:
                        raise YamlValueError(
                            "a merge key (<<) takes a mapping or a list of mappings, "
                            f"not a list holding a {_node_kind(item)}",
                            line_of(item),
                        )
                    sources.append(self.pairs(item)[0])
                for source in reversed(sources):
                    merge.extend(source)
            else:
                raise YamlValueError(
                    "a merge key (<<) takes a mapping or a list of mappings, "
                    f"not a {_node_kind(value_node)}",
                    line_of(value_node),
                )
            if len(merge) > MAX_VALUES:  # merges of merges grow the pairs geometrically
                raise too_many(line_of(node))
        done = (merge + own, True) if merge else (own, seen_merge)
        self.merged[key] = done
        return done

    def mapping(self, node: yaml.Node, depth: int) -> tuple[Any, int]:
        tag = node.tag
        if tag not in (MAP, SET):
            raise YamlValueError(f"a mapping cannot be a {_short(tag)}", line_of(node))
        pairs, merged = self.pairs(node)
        result: dict[Any, Any] = {}
        lines: dict[Any, int] = {}
        size = 1
        build = self.build
        for key_node, value_node in pairs:
            if key_node.tag == STR and type(key_node) is yaml.ScalarNode:
                key = key_node.value
                size += 1
            else:
                key, count = self.key(key_node, depth)
                size += count
            if value_node.tag == STR and type(value_node) is yaml.ScalarNode:
                value = value_node.value
                size += 1
            else:
                value, count = build(value_node, depth + 1)
                size += count
            if not merged:
                if key in result:
                    raise DuplicateKeyError(key, line_of(key_node), lines[key])
                lines[key] = line_of(key_node)
            result[key] = value
        if tag == SET:
            return set(result), size
        return result, size

    def sequence(self, node: yaml.Node, depth: int) -> tuple[Any, int]:
        tag = node.tag
        size = 1
        build = self.build
        if tag == SEQ:
            result: list[Any] = []
            for item in node.value:
                if item.tag == STR and type(item) is yaml.ScalarNode:
                    result.append(item.value)
                    size += 1
                else:
                    value, count = build(item, depth + 1)
                    result.append(value)
                    size += count
            return result, size
        if tag not in (OMAP, PAIRS):
            raise YamlValueError(f"a sequence cannot be a {_short(tag)}", line_of(node))
        ordered: dict[Any, Any] = {}
        pairs: list[tuple[Any, Any]] = []
        for item in node.value:
            if type(item) is not yaml.MappingNode or len(item.value) != 1:
                raise YamlValueError(
                    f"each item of an {_short(tag)} is a mapping of one key",
                    line_of(item),
                )
            key_node, value_node = item.value[0]
            key, key_size = self.key(key_node, depth)
            value, value_size = build(value_node, depth + 1)
            size += key_size + value_size + 1
            if tag == OMAP:
                if key in ordered:
                    raise DuplicateKeyError(key, line_of(key_node), line_of(key_node))
                ordered[key] = value
            else:
                pairs.append((key, value))
        return (ordered if tag == OMAP else pairs), size


_BUILDING: Any = (None, 0)


def _short(tag: str) -> str:
    return "!!" + tag[len(_T) :] if tag.startswith(_T) else tag


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    return "list" if isinstance(node, yaml.SequenceNode) else "scalar"


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "mapping"
    return "set" if isinstance(value, set) else type(value).__name__
