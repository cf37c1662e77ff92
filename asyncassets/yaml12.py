"""YAML read as fairseq2 reads it: ruamel's safe loader (YAML 1.2 core schema, or 1.1 after a
``%YAML 1.1`` directive), on libyaml's parser. Pure: no I/O, no event loop.

This is the *exact* reader: every scalar form, tag, merge key and duplicate key gives what
``ruamel.yaml.YAML(typ="safe", pure=True)`` gives (tests/data/yaml_fidelity.json is the
table, checked against ruamel), with the line of every node. :mod:`asyncassets.parsing`
hands it the files its fast reader cannot take, and every file that fails, so that a
problem always names its line.

This module composes the nodes (and resolves each plain scalar's tag); values are built from
them by :mod:`asyncassets.yaml_values`, in one pass that measures as it goes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import yaml
import yaml.composer
import yaml.parser
import yaml.reader
import yaml.scanner

from asyncassets.yaml_values import (
    BOOL,
    FLOAT,
    INT,
    MAP,
    MAX_DEPTH,
    MAX_VALUES,
    MERGE,
    NULL,
    SEQ,
    STR,
    TIMESTAMP,
    VALUE,
    Builder,
    DuplicateKeyError,
    LimitError,
    YamlValueError,
    line_of,
    too_many,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_VALUES",
    "READERS",
    "DuplicateKeyError",
    "LimitError",
    "YamlValueError",
    "document_nodes",
    "documents",
    "key_lines",
    "line_of",
    "too_many",
]

_CParser: Any = getattr(yaml, "CParser", None)
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# -- the implicit resolvers of ruamel.yaml's VersionedResolver, by version ----------------------
# (tag, regex, first characters), in ruamel's order: the first match wins.

_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_FLOAT_11 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_INT_12 = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0o?[0-7_]+
    |[-+]?[0-9_]+
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)
_INT_11 = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0?[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+
    |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$""",
    re.X,
)
_BOOL_12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_BOOL_11 = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$"
)
_MERGE = re.compile(r"^(?:<<)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_TIMESTAMP = re.compile(
    r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
    |[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?
    (?:[Tt]|[ \t]+)[0-9][0-9]?
    :[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?
    (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""",
    re.X,
)
_VALUE = re.compile(r"^(?:=)$")

Table = dict[str, tuple[tuple[str, re.Pattern[str]], ...]]


def _table(rules: list[tuple[str, re.Pattern[str], str]]) -> Table:
    table: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
    for tag, regex, firsts in rules:
        for first in [""] if firsts == "" else list(firsts):
            table.setdefault(first, []).append((tag, regex))
    return {first: tuple(rules) for first, rules in table.items()}


def _rules(
    bool_: re.Pattern[str], bool_firsts: str, float_: re.Pattern[str], int_: re.Pattern[str]
) -> Table:
    """ruamel's resolvers of one version: the number and bool rules differ, the rest not."""
    return _table(
        [
            (BOOL, bool_, bool_firsts),
            (FLOAT, float_, "-+0123456789."),
            (INT, int_, "-+0123456789"),
            (MERGE, _MERGE, "<"),
            (NULL, _NULL, "~nN"),
            (NULL, _NULL, ""),
            (TIMESTAMP, _TIMESTAMP, "0123456789"),
            (VALUE, _VALUE, "="),
        ]
    )


#: YAML 1.2 (ruamel's default and fairseq2's).
TABLE_12 = _rules(_BOOL_12, "tTfF", _FLOAT_12, _INT_12)
#: YAML 1.1, after a ``%YAML 1.1`` directive (ruamel keeps it for the rest of the stream).
TABLE_11 = _rules(_BOOL_11, "yYnNtTfFoO", _FLOAT_11, _INT_11)


def resolve_plain(value: str, table: Table = TABLE_12) -> str:
    """The tag of a plain scalar, as ruamel's resolver gives it."""
    for tag, regex in table.get(value[:1], ()):
        if regex.match(value):
            return tag
    return STR


class _Resolver:
    """ruamel's implicit resolver (:data:`TABLE_12` or :data:`TABLE_11`), for a composer."""

    table: Table = TABLE_12

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            if implicit[0]:
                for tag, regex in self.table.get(value[:1], ()):
                    if regex.match(value):
                        return tag
            return STR
        return MAP if kind is yaml.MappingNode else SEQ

    # The composer calls these two hooks for every node; they only serve path resolvers,
    # which this resolver has none of. C callables that ignore their arguments.
    descend_resolver: Any = staticmethod({}.get)
    ascend_resolver: Any = staticmethod(tuple)


class _Loader(_Resolver, _Base):  # type: ignore[valid-type,misc]
    """libyaml's parser and composer with ruamel's YAML 1.2 resolver."""


class _Versioned(yaml.composer.Composer):
    """Documents composed in Python from a parser's events, so that a ``%YAML 1.1``
    directive switches the resolver (for the rest of the stream, as in ruamel)."""

    table: Table
    version: tuple[int, int]
    get_event: Callable[[], Any]  # the parser's

    def compose_document(self) -> Any:
        start = self.get_event()
        version = start.version
        if version is not None:
            if version[0] != 1 or version[1] not in (1, 2):
                raise YamlValueError(
                    f"%YAML {version[0]}.{version[1]}: only YAML 1.1 and 1.2 are read",
                    start.start_mark.line + 1,
                )
            self.version = version
            self.table = TABLE_11 if version == (1, 1) else TABLE_12
        node = self.compose_node(None, None)  # type: ignore[arg-type]
        self.get_event()
        self.anchors = {}
        return node


class _VersionedLoader(_Versioned, _Loader):
    """libyaml's parser, documents composed in Python: for a stream with directives."""

    def __init__(self, stream: bytes | str) -> None:
        _Base.__init__(self, stream)
        yaml.composer.Composer.__init__(self)
        self.table = TABLE_12
        self.version = (1, 2)


class _PureLoader(
    _Versioned, _Resolver, yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser
):
    """PyYAML's pure-Python scanner and parser: for a card file holding a tab. ruamel's
    scanner (also pure Python, PyYAML's ancestor) refuses a tab wherever a token may start
    in block context (``key:<tab>value``, a tab before a comment); libyaml takes those."""

    def __init__(self, stream: bytes | str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        self.table = TABLE_12
        self.version = (1, 2)

    def dispose(self) -> None:
        self.states = []
        self.state = None


#: Largest card file with a tab read by the pure-Python scanner (see :class:`_PureLoader`):
#: a real card file is far smaller; a bigger one takes libyaml's, which is lenient on tabs,
#: so that no file costs more than a second.
PURE_MAX_BYTES = 256 * 2**10


#: The composers :func:`documents` picks from (``reader=``; tests run each on the table).
READERS = ("libyaml", "events", "pure")


def _loader(data: bytes | str, reader: str | None = None) -> Any:
    """libyaml's parser and composer; libyaml's events composed in Python when the stream
    has a directive; PyYAML's pure-Python scanner when it has a tab (and is a card file's
    size). ``reader`` forces one."""
    if reader is None:
        if isinstance(data, bytes):
            has_directive, has_tab = b"%" in data, b"\t" in data
        else:
            has_directive, has_tab = "%" in data, "\t" in data
        if has_tab and len(data) <= PURE_MAX_BYTES:
            reader = "pure"
        else:
            reader = "events" if has_directive else "libyaml"
    if reader == "pure":
        return _PureLoader(data)
    return _VersionedLoader(data) if reader == "events" else _Loader(data)


def document_nodes(data: bytes | str) -> list[yaml.Node | None]:
    """The node of each document (composed, not built; no limits checked): for lines."""
    loader = _loader(data)
    try:
        nodes = []
        while loader.check_node():
            nodes.append(loader.get_node())
        return nodes
    finally:
        loader.dispose()


def key_lines(node: yaml.Node | None) -> dict[str, int]:
    """The line of each top-level key of a document's node (none unless a mapping)."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {
        key.value: key.start_mark.line + 1
        for key, _ in node.value
        if isinstance(key, yaml.ScalarNode)
    }


def documents(
    data: bytes | str, reader: str | None = None
) -> Iterator[tuple[yaml.Node | None, Any]]:
    """(node, value) per document of ``data``, in order (``(None, None)`` for an empty one),
    within the limits. Raises :class:`LimitError`, :class:`YamlValueError` (duplicate keys
    among them), ``yaml.YAMLError`` or ``UnicodeDecodeError`` on a bad file. ``reader``
    forces one of :data:`READERS`."""
    loader = _loader(data, reader)
    total = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            total += 1
            if node is None:
                yield None, None
                continue
            version = getattr(loader, "version", (1, 2))
            value, size = Builder(version).build(node)
            total += size
            if total > MAX_VALUES:
                raise too_many(line_of(node))
            yield node, value
    finally:
        loader.dispose()
