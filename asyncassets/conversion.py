"""Checking and converting card values to Python types: what ``field.as_(kind)`` does.
Pure: no I/O.

``kind`` is a class, a parameterised type (``list[str]``, ``dict[str, int]``, ``set[str]``,
``tuple[int, ...]``, ``tuple[int, str]``, ``int | None``, ``Literal["a"]``) or a tuple of
classes (any of them), as fairseq2 0.4 accepted. Containers are checked element by element
and rebuilt, so the result never shares anything with the store.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Literal, Union, get_args, get_origin

from asyncassets.values import copy_value

__all__ = ["ConversionError", "convert", "type_repr"]


class ConversionError(ValueError):
    """``value`` (at ``where`` below the converted value, e.g. ``[2]`` or ``.dim``) is not
    of type ``expected``."""

    def __init__(self, where: str, expected: Any, value: Any) -> None:
        super().__init__(f"{where or 'value'} must be {type_repr(expected)}")
        self.where = where
        self.expected = expected
        self.value = value


def type_repr(kind: Any) -> str:
    """``list[str]``, ``int | None``, ``int or str`` (a tuple of classes)."""
    if isinstance(kind, tuple):
        return " or ".join(type_repr(k) for k in kind)
    if kind is type(None):
        return "None"
    if isinstance(kind, type) and not get_args(kind):
        return kind.__name__
    return repr(kind).replace("typing.", "")


def convert(value: Any, kind: Any, where: str = "") -> Any:
    """``value`` checked against ``kind`` and converted; :class:`ConversionError` when it
    does not fit."""
    if isinstance(kind, tuple):
        for option in kind:
            try:
                return convert(value, option, where)
            except ConversionError:
                continue
        raise ConversionError(where, kind, value)
    if kind is Any or kind is object:
        return copy_value(value)
    origin = get_origin(kind)
    if origin is None:
        return _convert_class(value, kind, where)
    args = get_args(kind)
    if origin is Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is type(None):
                continue
            try:
                return convert(value, option, where)
            except ConversionError as exc:
                if exc.where != where:  # the value has the option's shape, an element not
                    raise
        raise ConversionError(where, kind, value)
    if origin is Literal:
        if any(value == arg and type(value) is type(arg) for arg in args):
            return value
        raise ConversionError(where, kind, value)
    if origin in (list, Sequence, set, frozenset, AbstractSet):
        items = _items(value, kind, where, allow_set=origin is not list and origin is not Sequence)
        element = args[0] if args else Any
        converted = [convert(item, element, f"{where}[{i}]") for i, item in enumerate(items)]
        if origin in (set, AbstractSet):
            return set(converted)
        if origin is frozenset:
            return frozenset(converted)
        return converted
    if origin is tuple:
        items = _items(value, kind, where, allow_set=False)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(item, args[0], f"{where}[{i}]") for i, item in enumerate(items))
        if args == ((),):  # tuple[()]
            args = ()
        if len(items) != len(args):
            raise ConversionError(where, kind, value)
        return tuple(
            convert(item, element, f"{where}[{i}]")
            for i, (item, element) in enumerate(zip(items, args, strict=True))
        )
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConversionError(where, kind, value)
        key_kind, value_kind = args if len(args) == 2 else (Any, Any)
        return {
            convert(k, key_kind, f"{where}[{k!r}]"): convert(v, value_kind, f"{where}.{k}")
            for k, v in value.items()
        }
    if isinstance(origin, type):
        return _convert_class(value, origin, where)
    raise ConversionError(where, kind, value)


def _items(value: Any, kind: Any, where: str, *, allow_set: bool) -> Sequence[Any]:
    if isinstance(value, list | tuple):
        return value
    if allow_set and isinstance(value, set | frozenset):
        return list(value)
    raise ConversionError(where, kind, value)


def _convert_class(value: Any, kind: Any, where: str) -> Any:
    if not isinstance(kind, type):
        raise ConversionError(where, kind, value)
    if kind is bool:
        if type(value) is bool:
            return value
        raise ConversionError(where, kind, value)
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConversionError(where, kind, value)
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConversionError(where, kind, value)
    if kind in (dict, list):
        if isinstance(value, kind):
            return copy_value(value)
        raise ConversionError(where, kind, value)
    if kind in (set, frozenset, tuple):
        return kind(_items(value, kind, where, allow_set=kind is not tuple))
    if isinstance(value, kind):
        return copy_value(value)
    raise ConversionError(where, kind, value)
