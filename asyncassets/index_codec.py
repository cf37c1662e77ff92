"""A parsed card file as one line of JSON, and back: the records of the persistent index
(:mod:`asyncassets.providers.index`). Pure: no I/O.

JSON because the standard library reads it in C (10,000 cards in tens of milliseconds) and
reading it runs no code: a hostile index can be wrong data at worst, and every line read
back is checked as strictly as a card file is. Values JSON has no form for keep their YAML
types through a tagged form, ``["tag", ...]``, used only for the cards that need it (a date,
a set, bytes, a tuple, a mapping key that is not a string): everything else is plain JSON,
read back by the C decoder alone. A file's key lines travel as the file's bytes (worked
out again only when a problem asks for a field's line, as after a parse) or as the lines.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asyncassets.fast_reader import FastKeyLines
from asyncassets.parsing import MAX_DEPTH, MAX_VALUES, make_entry, measure_tree, measure_value
from asyncassets.problems import Problem
from asyncassets.snapshot import CardEntry, FileFieldLines, FileRecord, KnownKeyLines
from asyncassets.yaml_values import LimitError

__all__ = ["IndexFormatError", "IndexedFile", "decode_file", "encode_file"]


class IndexFormatError(ValueError):
    """A line of an index that is not one this module writes."""


@dataclass(frozen=True, slots=True)
class IndexedFile:
    """One card file as the index holds it: ``identity`` is what the file was when it was
    read (:class:`asyncassets.providers.base.FileIdentity`'s ``key``), ``recorded_ns``
    when (before its listing), ``record`` what it gave and ``line`` the encoded line."""

    identity: str
    recorded_ns: int
    record: FileRecord
    line: str


def encode_file(record: FileRecord, identity: str, recorded_ns: int) -> IndexedFile | None:
    """The index's line for ``record`` (read at ``identity``), or None when a value has no
    form in the index (the file is then read again at each start, as without an index)."""
    entries = []
    shared: FileFieldLines | None = None
    for entry in record.entries:
        lines = entry.field_lines
        if isinstance(lines, FileFieldLines):
            if shared is None:
                shared = lines
            if lines is not shared:  # not one file's lines: each entry's own
                lines = dict(lines.of(entry.index))
        own = None if isinstance(lines, FileFieldLines) else _key_lines(lines)
        if own is None and not isinstance(lines, FileFieldLines):
            return None
        try:
            value, tagged = _encoded_value(entry.metadata)
        except TypeError:
            return None
        entries.append([entry.name, entry.line, entry.index, value, tagged, own])
    document = {
        "file": record.file,
        "identity": identity,
        "recorded_ns": recorded_ns,
        "version": record.version,
        "entries": entries,
        "problems": [_problem_data(p) for p in record.problems],
        "lines": _portable_lines(shared),
    }
    line = json.dumps(document, ensure_ascii=True, separators=(",", ":"))
    return IndexedFile(identity, recorded_ns, record, line)


def decode_file(line: str, source: str) -> tuple[str, IndexedFile]:
    """``(file URL, IndexedFile)`` of one line of an index of ``source``. Raises
    :class:`IndexFormatError` (or the ``ValueError``, ``TypeError`` or ``RecursionError`` of
    malformed data) for anything :func:`encode_file` would not have written."""
    document = json.loads(line)
    if type(document) is not dict:
        raise IndexFormatError("a file's record is not a JSON object")
    file = _field(document, "file", str)
    identity = _field(document, "identity", str)
    recorded_ns = _field(document, "recorded_ns", int)
    version = document.get("version")
    if version is not None and type(version) is not str:
        raise IndexFormatError(f"{file}: 'version' is not a string")
    lines = _decoded_lines(document.get("lines"))
    # Every value of the line takes a character of it at least (a container its bracket):
    # a line shorter than the limit on values, with fewer brackets than the limit on
    # depth, cannot hold a value past either, and its plain values need no measuring.
    within = len(line) <= MAX_VALUES and line.count("[") + line.count("{") <= MAX_DEPTH
    entries: list[CardEntry] = []
    for item in _field(document, "entries", list):
        entries.append(_decoded_entry(item, file, source, lines, within))
    problems = tuple(_decoded_problem(p, file, source) for p in _field(document, "problems", list))
    record = FileRecord(file, tuple(entries), problems, version)
    return file, IndexedFile(identity, recorded_ns, record, line)


# -- entries and problems ------------------------------------------------------------------


def _decoded_entry(
    item: Any, file: str, source: str, lines: FileFieldLines | None, within: bool
) -> CardEntry:
    if type(item) is not list or len(item) != 6:
        raise IndexFormatError(f"{file}: an entry is not a list of 6 items")
    name, line, index, value, tagged, own = item
    if type(line) is not int or line < 1 or type(index) is not int or index < 0:
        raise IndexFormatError(f"{file}: an entry's line or index is not a count")
    try:  # the limits of a card file (depth, size) hold here too
        if tagged is True:
            metadata = _decoded_value(value)
            measure_value(metadata)
        else:
            metadata = value
            if not within:
                measure_tree(metadata)
    except LimitError as exc:
        raise IndexFormatError(f"{file}: an entry is past a card's limits: {exc}") from None
    if own is not None:
        field_lines: Mapping[str, int] | FileFieldLines = _key_lines(own) or {}
    elif lines is not None:
        field_lines = lines
    else:
        raise IndexFormatError(f"{file}: an entry has no key lines")
    # The card rules once more, as for a card file: an index never serves what a card
    # file could not have defined (a bad name, a bad base, a document that is no mapping).
    entry = make_entry(
        metadata,
        file=file,
        source=source,
        line=line,
        index=index,
        field_lines=field_lines,
        plain=True,
    )
    if not isinstance(entry, CardEntry) or entry.name != name:
        raise IndexFormatError(f"{file}: an entry is not the card its document defines")
    return entry


def _problem_data(problem: Problem) -> dict[str, Any]:
    data = problem.to_dict()
    del data["where"]
    return data


def _decoded_problem(data: Any, file: str, source: str) -> Problem:
    try:
        problem = Problem.from_dict(data)
    except Exception as exc:
        raise IndexFormatError(f"{file}: a problem is malformed: {exc}") from None
    if problem.source != source or problem.file not in (None, file):
        raise IndexFormatError(f"{file}: a problem of another file or store")
    return problem


def _field(document: dict[str, Any], key: str, kind: type) -> Any:
    value = document.get(key)
    if type(value) is not kind:
        raise IndexFormatError(f"'{key}' is not a {kind.__name__}")
    return value


# -- key lines -------------------------------------------------------------------------------


def _key_lines(lines: Any) -> dict[str, int] | None:
    """``lines`` as ``{key: line}`` when it is one (else None)."""
    if not isinstance(lines, Mapping):
        return None
    if all(type(k) is str and type(v) is int and v >= 1 for k, v in lines.items()):
        return dict(lines)
    return None


def _portable_lines(lines: FileFieldLines | None) -> dict[str, Any] | None:
    if lines is None:
        return None
    portable = lines.portable()
    if isinstance(portable, bytes):
        try:
            return {"text": portable.decode("utf-8")}
        except UnicodeDecodeError:
            return {"bytes": base64.b64encode(portable).decode("ascii")}
    return {"documents": portable}


def _decoded_lines(data: Any) -> FileFieldLines | None:
    if data is None:
        return None
    if type(data) is not dict or len(data) != 1:
        raise IndexFormatError("a file's key lines are malformed")
    ((kind, value),) = data.items()
    if kind == "text" and type(value) is str:
        return FastKeyLines(value.encode("utf-8", "surrogatepass"))
    if kind == "bytes" and type(value) is str:
        return FastKeyLines(base64.b64decode(value, validate=True))
    if kind == "documents" and type(value) is list:
        documents = [_key_lines(d) for d in value]
        if all(d is not None for d in documents):
            return KnownKeyLines([d for d in documents if d is not None])
    raise IndexFormatError("a file's key lines are malformed")


# -- values ----------------------------------------------------------------------------------


def _encoded_value(value: Any) -> tuple[Any, bool]:
    """``(value as JSON data, tagged)``: the value itself when it is plain JSON data, else
    its tagged form. Raises TypeError for a value the index has no form for."""
    if _is_plain(value):
        return value, False
    return _tagged(value), True


def _is_plain(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        return all(type(k) is str and _is_plain(v) for k, v in value.items())
    if kind is list:
        return all(_is_plain(v) for v in value)
    return kind is str or kind is int or kind is float or kind is bool or value is None


def _tagged(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict:
        return ["map", [[_tagged(k), _tagged(v)] for k, v in value.items()]]
    if kind is list:
        return ["list", [_tagged(v) for v in value]]
    if kind is tuple:
        return ["tuple", [_tagged(v) for v in value]]
    if kind is set:
        return ["set", [_tagged(v) for v in value]]
    if kind is bytes:
        return ["bytes", base64.b64encode(value).decode("ascii")]
    if kind is datetime.datetime:
        offset = value.utcoffset()
        zone = None
        if value.tzinfo is not None and offset is not None:
            zone = [offset // datetime.timedelta(microseconds=1), value.tzinfo.tzname(value)]
        return ["datetime", value.replace(tzinfo=None).isoformat(), zone]
    if kind is datetime.date:
        return ["date", value.isoformat()]
    raise TypeError(f"no index form for {kind.__name__}")


def _decoded_value(data: Any) -> Any:
    kind = type(data)
    if kind is not list:
        if kind is str or kind is int or kind is float or kind is bool or data is None:
            return data
        raise IndexFormatError(f"a tagged value is a {kind.__name__}")
    if len(data) < 2 or type(data[0]) is not str:
        raise IndexFormatError("a tagged value has no tag")
    tag, body = data[0], data[1]
    if tag == "map" and type(body) is list:
        result = {}
        for pair in body:
            if type(pair) is not list or len(pair) != 2:
                raise IndexFormatError("a mapping's item is not a pair")
            result[_decoded_value(pair[0])] = _decoded_value(pair[1])
        return result
    if tag in ("list", "tuple", "set") and type(body) is list:
        items = [_decoded_value(v) for v in body]
        return items if tag == "list" else tuple(items) if tag == "tuple" else set(items)
    if tag == "bytes" and type(body) is str:
        return base64.b64decode(body, validate=True)
    if tag == "date" and type(body) is str:
        return datetime.date.fromisoformat(body)
    if tag == "datetime" and type(body) is str and len(data) == 3:
        moment = datetime.datetime.fromisoformat(body)
        zone = data[2]
        if zone is None:
            return moment
        if type(zone) is not list or len(zone) != 2 or type(zone[0]) is not int:
            raise IndexFormatError("a timestamp's zone is malformed")
        delta = datetime.timedelta(microseconds=zone[0])
        name = zone[1]
        tz = datetime.timezone(delta, name) if type(name) is str else datetime.timezone(delta)
        return moment.replace(tzinfo=tz)
    raise IndexFormatError(f"unknown tagged value {tag!r}")
