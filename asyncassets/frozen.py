"""Read-only views of YAML data, so that cards can be shared without copying.

``freeze`` turns mappings into :class:`types.MappingProxyType` and lists into tuples, once,
when a file is parsed; ``thaw`` makes a plain, mutable, JSON-ready copy on request.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["EMPTY", "freeze", "thaw", "type_name"]

EMPTY: Mapping[str, Any] = MappingProxyType({})


def freeze(value: Any) -> Any:
    """Deep read-only view of parsed YAML (dict -> MappingProxyType, list -> tuple)."""
    if isinstance(value, dict):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Deep mutable copy of a frozen value (Mapping -> dict, tuple -> list)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def type_name(value: Any) -> str:
    """The name of a (frozen) value's type as the YAML author wrote it: list, dict, str..."""
    if isinstance(value, tuple):
        return "list"
    if isinstance(value, Mapping):
        return "dict"
    return type(value).__name__
