"""What changes between two sets of resolved cards: the core of ``asyncassets diff``. Pure:
no I/O.

A side is a mapping from a *key* (``name`` for the plain card, ``name@env`` for the card
resolved under ``env``) to the card's resolved fields (``card.to_dict()`` without ``name``),
or to :class:`Unresolvable` when the card does not resolve there (a missing base, a
cycle). Fields are compared by value, never by where they come from, so a card that only
moved to another file, or whose field moved from the card to its base, is unchanged;
a change to a base shows in every card that inherits it, since each side holds every
card already resolved.

Nested mappings are compared key by key and named by dotted paths (``model_config.dim``; a
mapping key that is not a string is written with ``str()``); lists and every other value
are compared whole, at their path. Values compare by type too: ``1``, ``1.0`` and ``true``
differ, as they do for ``field.as_(int)``.

>>> diff = diff_cards({"a": {"dim": 1}}, {"a": {"dim": 2}, "b": {}})
>>> diff.added, diff.to_dict()["changed"]
(['b'], {'a': {'dim': [1, 2]}})
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from asyncassets.values import json_value

__all__ = [
    "ABSENT",
    "ERROR_PATH",
    "CardDiff",
    "FieldChange",
    "Unresolvable",
    "compare_fields",
    "diff_cards",
    "dotted",
    "flatten_fields",
    "key_order",
    "same_value",
]


class _Absent:
    """The value of a field that one side does not set."""

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


#: The old or new value of a field that the other side sets and this one does not
#: (``null`` in :meth:`CardDiff.to_dict`).
ABSENT: Final = _Absent()

#: The field path under which a card that resolves on one side only shows its error.
ERROR_PATH: Final = "(error)"


@dataclass(frozen=True, slots=True)
class Unresolvable:
    """A card that does not resolve on one side; ``message`` says why (the
    :class:`AssetCardError`'s text)."""

    message: str


#: One side's view of a card: its resolved fields, or why it does not resolve.
ResolvedCard = Mapping[str, Any] | Unresolvable


@dataclass(frozen=True, slots=True)
class FieldChange:
    """Field ``path`` (dotted) of a card went from ``old`` to ``new``; either is
    :data:`ABSENT` when that side does not set the field.

    ``error`` marks the change of a card that resolves on one side only: ``path`` is
    :data:`ERROR_PATH` and the other value is the error's message.
    """

    path: str
    old: Any
    new: Any
    error: bool = False


@dataclass(frozen=True)
class CardDiff:
    """What changed from OLD to NEW, every list sorted by :func:`key_order`.

    ``added`` and ``removed`` are keys that resolve (or fail to) on one side only;
    ``changed`` maps each key whose card differs to its field changes, sorted by path.
    ``old_errors`` and ``new_errors`` hold the message of every key that does not resolve
    on that side; a key in both that is in neither list above is *broken* (it does not
    resolve on either side, so nothing a person resolves changed).
    """

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, list[FieldChange]] = field(default_factory=dict)
    old_errors: dict[str, str] = field(default_factory=dict)
    new_errors: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        """Whether anything differs."""
        return bool(self.added or self.removed or self.changed)

    @property
    def broken(self) -> list[str]:
        """Keys that resolve on neither side (counted as unchanged)."""
        return sorted(self.old_errors.keys() & self.new_errors.keys(), key=key_order)

    def to_dict(self) -> dict[str, Any]:
        """``{"added": [...], "removed": [...], "changed": {KEY: {PATH: [OLD, NEW]}}}``: JSON
        data, keys and paths in order, an absent value ``None``.

        Values go through :func:`asyncassets.values.json_value`; a date or another value
        JSON has no form for is left for ``json.dumps(default=str)``.
        """
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": {
                key: {
                    change.path: [_json_side(change.old), _json_side(change.new)]
                    for change in changes
                }
                for key, changes in self.changed.items()
            },
        }


def _json_side(value: Any) -> Any:
    return None if value is ABSENT else json_value(value)


def key_order(key: str) -> tuple[str, str]:
    """Sort key for card keys: by plain name, the plain card before its envs
    (``a``, ``a@x``, ``a_b``)."""
    plain, _, env = key.partition("@")
    return plain, env


def same_value(old: Any, new: Any) -> bool:
    """Whether two card values are the same value of the same type, all the way down
    (``1 == 1.0 == True`` in Python, not here; a NaN is the same as a NaN)."""
    if type(old) is not type(new):
        return False
    if isinstance(old, dict):
        return old.keys() == new.keys() and all(same_value(old[k], new[k]) for k in old)
    if isinstance(old, list | tuple):
        return len(old) == len(new) and all(map(same_value, old, new))
    if isinstance(old, float) and math.isnan(old):
        return math.isnan(new)
    try:
        return bool(old == new)
    except Exception:  # a value with a strange __eq__ is compared by identity
        return old is new


def flatten_fields(fields: Mapping[Any, Any]) -> dict[tuple[Any, ...], Any]:
    """``{path: value}`` for every leaf of ``fields``: nested mappings are walked, a path is
    the tuple of keys down to the value. An empty mapping, a list and a scalar are leaves.

    >>> flatten_fields({"model_config": {"dim": 4, "layers": [1, 2]}, "extra": {}})
    {('model_config', 'dim'): 4, ('model_config', 'layers'): [1, 2], ('extra',): {}}
    """
    flat: dict[tuple[Any, ...], Any] = {}
    for path, value in _leaves(fields, ()):
        flat[path] = value
    return flat


def _leaves(
    value: Mapping[Any, Any], prefix: tuple[Any, ...]
) -> Iterator[tuple[tuple[Any, ...], Any]]:
    for key, item in value.items():
        path = (*prefix, key)
        if isinstance(item, Mapping) and item:
            yield from _leaves(item, path)
        else:
            yield path, item


def dotted(path: tuple[Any, ...]) -> str:
    """``("model_config", "dim")`` -> ``model_config.dim`` (keys that are not strings
    written with ``str()``)."""
    return ".".join(key if isinstance(key, str) else str(key) for key in path)


def compare_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    """Every leaf that differs between two cards' fields, sorted by dotted path."""
    old_flat = flatten_fields(old)
    new_flat = flatten_fields(new)
    changes: list[FieldChange] = []
    for path in old_flat.keys() | new_flat.keys():
        before = old_flat.get(path, ABSENT)
        after = new_flat.get(path, ABSENT)
        if before is ABSENT or after is ABSENT or not same_value(before, after):
            changes.append(FieldChange(dotted(path), before, after))
    changes.sort(key=lambda change: change.path)
    return changes


def diff_cards(old: Mapping[str, ResolvedCard], new: Mapping[str, ResolvedCard]) -> CardDiff:
    """What changed from ``old`` to ``new``, two sides keyed alike (see the module).

    A key on one side only is added or removed, whether or not it resolves there. A key
    that resolves on one side and not the other is changed, with a single
    :data:`ERROR_PATH` change holding the error (its fields are not compared); a key that
    resolves on neither side is unchanged (see :attr:`CardDiff.broken`).
    """
    diff = CardDiff(
        added=sorted(new.keys() - old.keys(), key=key_order),
        removed=sorted(old.keys() - new.keys(), key=key_order),
        old_errors={k: v.message for k, v in old.items() if isinstance(v, Unresolvable)},
        new_errors={k: v.message for k, v in new.items() if isinstance(v, Unresolvable)},
    )
    for key in sorted(old.keys() & new.keys(), key=key_order):
        before, after = old[key], new[key]
        if isinstance(before, Unresolvable) or isinstance(after, Unresolvable):
            if isinstance(before, Unresolvable) and isinstance(after, Unresolvable):
                continue
            diff.changed[key] = [
                FieldChange(
                    ERROR_PATH,
                    before.message if isinstance(before, Unresolvable) else ABSENT,
                    after.message if isinstance(after, Unresolvable) else ABSENT,
                    error=True,
                )
            ]
            continue
        changes = compare_fields(before, after)
        if changes:
            diff.changed[key] = changes
    return diff
