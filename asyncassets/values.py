"""Card values: plain YAML data (dicts, lists, scalars), shared inside the store and copied
on the way out. Pure: no I/O.

The store keeps each parsed value once and never mutates it; every value handed to a caller
(``card.metadata``, ``field.value``, ``to_dict()``, ``get_metadata``) is a fresh deep copy
made by :func:`copy_value`, so callers own what they get: ``json.dumps``, ``pickle`` and
``copy.deepcopy`` work on it, it compares equal to what fairseq2's loader returns, and
mutating it never changes the store. Scalars (str, int, float, bool, None, dates) are
immutable and shared as they are.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

__all__ = ["copy_value", "json_value", "plain_value", "short_repr", "type_name"]


def copy_value(value: Any) -> Any:
    """Deep copy of plain data (dicts, lists and sets copied; scalars shared)."""
    kind = type(value)
    if kind is dict:
        return {k: copy_value(v) for k, v in value.items()}
    if kind is list:
        return [copy_value(v) for v in value]
    if kind is set:
        return set(value)
    return value


def plain_value(value: Any) -> Any:
    """Plain data from any mapping/sequence a caller handed us (an in-memory card): mappings
    become dicts, lists and tuples become lists, so that stored values look like parsed
    YAML whatever the caller built them from. Shared sub-values stay shared."""
    memo: dict[int, Any] = {}

    def convert(item: Any) -> Any:
        if isinstance(item, str | int | float | bool | type(None)):
            return item
        key = id(item)
        if key in memo:
            return memo[key]
        if isinstance(item, Mapping):
            result: Any = {}
            memo[key] = result
            result.update((k, convert(v)) for k, v in item.items())
            return result
        if isinstance(item, list | tuple):
            result = []
            memo[key] = result
            result.extend(convert(v) for v in item)
            return result
        return item

    return convert(value)


def json_value(value: Any) -> Any:
    """Card data as data ``json.dumps`` takes, whatever YAML put in it: a mapping key JSON
    has no form for (a tuple from a list used as a key, a date) becomes its ``str()``, a
    set a sorted list, bytes (``!!binary``) base64 text; dates and anything else are left
    for ``json.dumps(default=str)``."""
    kind = type(value)
    if kind is dict:
        return {
            k if isinstance(k, str | int | float | bool | type(None)) else str(k): json_value(v)
            for k, v in value.items()
        }
    if kind is list or kind is tuple:
        return [json_value(v) for v in value]
    if kind is set or kind is frozenset:
        return sorted((json_value(v) for v in value), key=repr)
    if kind is bytes:
        return base64.b64encode(value).decode("ascii")
    return value


def type_name(value: Any) -> str:
    """The name of a value's type as the YAML author thinks of it: list, dict, str..."""
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "dict"
    if value is None:
        return "null"
    return type(value).__name__


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages about values that
    may be huge (a hostile file's megabyte-long name)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
