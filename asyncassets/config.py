"""Config overrides down a card's base chain, with fairseq2 0.8.1's semantics. Pure: no I/O.

fairseq2 (``StandardAssetConfigLoader`` in ``fairseq2/assets/card.py``, ``StandardConfigMerger``
and ``ReplaceEnvDirective`` in ``fairseq2/utils/config.py``) builds a model's config like this:

* the ``key`` field of every card in the base chain that has a non-null value is an override;
  if there is none, the base config is the answer as it is;
* otherwise the base config is turned into plain data and the overrides are merged onto it
  one by one, the root card's first and the card's own last;
* merging a mapping onto a value: a value that is not a mapping counts as ``{}``; ``_del_``
  (a list of strings) drops those keys of what is below (a key that is not there is not an
  error); every other key whose override is a mapping is merged recursively, any other
  override replaces; ``_set_`` (a mapping) finally sets its keys without merging into them;
  ``_del_: null`` and ``_set_: null`` count as absent. An override that is not a mapping
  replaces the whole config;
* after each merge, every string of the result (inside dicts and lists) gets ``${env:VAR}``
  and ``${env:VAR:default}`` replaced by the variable, else the default, else ``""``;
* the result is turned back into the type of the base config (a dataclass is rebuilt from the
  mapping, nested dataclasses too; a key that is not a field is an error).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from asyncassets.errors import AssetCardError
from asyncassets.values import copy_value, type_name

__all__ = ["ConfigMergeError", "load_config", "merge_overrides", "substitute_env"]

_DEL = "_del_"
_SET = "_set_"

_ENV_PATTERN = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


class ConfigMergeError(ValueError):
    """An override cannot be merged; ``path`` is the dotted path of the bad directive."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


def merge_overrides(config: Any, overrides: Any) -> Any:
    """``overrides`` merged onto ``config``, as new plain data (neither argument changes)."""
    if not isinstance(overrides, Mapping):
        return copy_value(overrides)
    if not isinstance(config, Mapping):
        config = {}
    return _merge_map(config, overrides, ())


def _merge_map(
    target: Mapping[str, Any], source: Mapping[str, Any], path: tuple[str, ...]
) -> dict[str, Any]:
    deleted: set[str] = set()
    del_keys = source.get(_DEL)
    if del_keys is not None:
        where = ".".join((*path, _DEL))
        if not isinstance(del_keys, list):
            raise ConfigMergeError(
                f"{where} must be a list of keys, not {type_name(del_keys)}", path=where
            )
        for index, del_key in enumerate(del_keys):
            if not isinstance(del_key, str):
                raise ConfigMergeError(
                    f"{where}[{index}] must be a key (str), not {type_name(del_key)}",
                    path=where,
                )
            deleted.add(del_key)

    output: dict[str, Any] = {
        key: copy_value(value) for key, value in target.items() if key not in deleted
    }

    for key, value in source.items():
        if key in (_DEL, _SET):
            continue
        if not isinstance(value, Mapping):
            output[key] = copy_value(value)
            continue
        below = output.get(key)
        output[key] = _merge_map(below if isinstance(below, Mapping) else {}, value, (*path, key))

    set_values = source.get(_SET)
    if set_values is not None:
        where = ".".join((*path, _SET))
        if not isinstance(set_values, Mapping):
            raise ConfigMergeError(
                f"{where} must be a mapping, not {type_name(set_values)}", path=where
            )
        for set_key, value in set_values.items():
            if not isinstance(set_key, str):
                raise ConfigMergeError(
                    f"{where} keys must be str, not {type_name(set_key)}", path=where
                )
            output[set_key] = copy_value(value)

    return output


def substitute_env(value: Any, env: Mapping[str, str]) -> Any:
    """``value`` with ``${env:VAR}`` / ``${env:VAR:default}`` replaced in every string inside
    dicts and lists (a variable that is not set and has no default becomes ``""``)."""
    if isinstance(value, list):
        return [substitute_env(item, env) for item in value]
    if isinstance(value, dict):
        return {key: substitute_env(item, env) for key, item in value.items()}
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            found = env.get(match.group(1))
            if found is not None:
                return found
            default = match.group(2)
            return default if default is not None else ""

        return _ENV_PATTERN.sub(replace, value)
    return value


def load_config(
    card_name: str,
    key: str,
    overrides: Sequence[tuple[str, Any]],
    base: Any,
    env: Mapping[str, str],
) -> Any:
    """``base`` with ``overrides`` (``(holder card name, override)``, root card first)
    merged onto it, for the ``key`` field of card ``card_name``.

    ``base`` is ``None`` (an empty mapping), a mapping (the result is a new dict) or a
    dataclass instance (the result is a new instance of its class). Errors are
    :class:`AssetCardError` naming the card that holds the bad override and the field path.
    """
    if base is None:
        base = {}
    is_dataclass = dataclasses.is_dataclass(base) and not isinstance(base, type)
    if not is_dataclass and not isinstance(base, Mapping):
        raise TypeError(
            f"base must be None, a mapping or a dataclass instance, not {type_name(base)}"
        )
    layers = [(name, value) for name, value in overrides if value is not None]
    if not layers:
        return copy.deepcopy(base) if is_dataclass else _unstructure(base)

    config = _unstructure(base)
    for holder, override in layers:
        try:
            config = merge_overrides(config, override)
        except ConfigMergeError as exc:
            raise AssetCardError(
                f"{key} field of card {holder!r} cannot be merged: {exc}",
                name=holder,
                field=f"{key}.{exc.path}",
            ) from None
        config = substitute_env(config, env)

    if is_dataclass:
        return _structure(config, type(base), card_name, (key,))
    if not isinstance(config, dict):
        raise AssetCardError(
            f"{key} field of card {card_name!r} must merge to a mapping, not {type_name(config)}",
            name=card_name,
            field=key,
        )
    return config


def _unstructure(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _unstructure(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _unstructure(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_unstructure(v) for v in value]
    return copy.deepcopy(value)


def _structure(value: Any, kind: Any, card_name: str, path: tuple[str, ...]) -> Any:
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _structure_dataclass(value, kind, card_name, path)
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        if isinstance(value, Mapping):
            for arg in args:
                if isinstance(arg, type) and dataclasses.is_dataclass(arg):
                    return _structure_dataclass(value, arg, card_name, path)
        return value
    if origin in (tuple, set, frozenset) and isinstance(value, list):
        return origin(value)
    if kind in (tuple, set, frozenset) and isinstance(value, list):
        return kind(value)
    return value


def _structure_dataclass(value: Any, kind: type[Any], card_name: str, path: tuple[str, ...]) -> Any:
    where = ".".join(path)
    if not isinstance(value, Mapping):
        raise AssetCardError(
            f"{where} of card {card_name!r} must be a mapping to build {kind.__qualname__},"
            f" not {type_name(value)}",
            name=card_name,
            field=where,
        )
    try:
        hints = typing.get_type_hints(kind)
    except (NameError, TypeError):
        hints = {}
    remaining = dict(value)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(kind):
        present = field.name in remaining
        item = remaining.pop(field.name, None)
        if not field.init:
            continue
        if not present:
            if (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                raise AssetCardError(
                    f"{where}.{field.name} of card {card_name!r} is missing"
                    f" ({kind.__qualname__}.{field.name} has no default)",
                    name=card_name,
                    field=f"{where}.{field.name}",
                )
            continue
        kwargs[field.name] = _structure(
            item, hints.get(field.name, field.type), card_name, (*path, field.name)
        )
    if remaining:
        unknown = sorted(remaining)
        raise AssetCardError(
            f"{where} of card {card_name!r} has key(s) {', '.join(unknown)} that"
            f" {kind.__qualname__} has no field for",
            name=card_name,
            field=f"{where}.{unknown[0]}",
        )
    try:
        return kind(**kwargs)
    except (TypeError, ValueError) as exc:
        raise AssetCardError(
            f"{where} of card {card_name!r} cannot build {kind.__qualname__}: {exc}",
            name=card_name,
            field=where,
        ) from exc
