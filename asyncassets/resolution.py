"""Card resolution: snapshots + name + envs -> :class:`AssetCard`. Pure: no I/O.

The rules (fairseq2 v0.4's, plus clear errors):

1. ``name@env`` asks for exactly env ``env``; ``name@`` for no env; a bare ``name`` for the
   active envs, highest precedence first.
2. Take ``name@`` and lay each active env's ``name@env`` over it, lowest precedence first,
   so the highest wins. Layering is shallow: an override replaces whole top-level fields.
3. Resolve ``base`` the same way, with the same envs. A missing base names both cards; a
   cycle names the cycle.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from asyncassets.card import AssetCard
from asyncassets.errors import AssetCardError, AssetCardNotFoundError
from asyncassets.names import parse_card_name
from asyncassets.problems import display_path
from asyncassets.snapshot import CardEntry, Snapshot

__all__ = ["CardIndex", "requested_envs", "resolve_card"]


class CardIndex:
    """The cards of several snapshots, highest precedence first.

    A name that two snapshots define is *shadowed*: the first snapshot's entry wins.
    """

    __slots__ = ("_envs", "_merged", "snapshots")

    def __init__(self, snapshots: Sequence[Snapshot]) -> None:
        self.snapshots = tuple(snapshots)
        self._merged: dict[str, CardEntry] | None = None
        self._envs: frozenset[str] | None = None

    @property
    def envs(self) -> frozenset[str]:
        """Every env some card defines an override for (``foo@env``)."""
        if self._envs is None:
            self._envs = frozenset(name.partition("@")[2] for name in self._entries()) - {""}
        return self._envs

    def _entries(self) -> dict[str, CardEntry]:
        if self._merged is None:
            merged: dict[str, CardEntry] = {}
            for snapshot in reversed(self.snapshots):
                merged.update(snapshot.winners)
            self._merged = merged
        return self._merged

    def get(self, name: str) -> CardEntry | None:
        """Winning entry for canonical ``name``."""
        return self._entries().get(name)

    def definitions(self, name: str) -> list[CardEntry]:
        """Every snapshot's entry for ``name``, winner first."""
        return [e for s in self.snapshots if (e := s.get(name)) is not None]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._entries())

    def entries(self) -> Iterable[CardEntry]:
        return self._entries().values()

    def rejected_reason(self, name: str) -> str | None:
        for snapshot in self.snapshots:
            problem = snapshot.rejected(name)
            if problem is not None:
                return str(problem)
        return None


def requested_envs(name: str, active: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """Split a requested name into (plain name, envs to apply, highest first)."""
    parsed = parse_card_name(name)
    if "@" not in name:
        return parsed.name, tuple(active)
    return parsed.name, (parsed.env,) if parsed.env else ()


def resolve_card(
    index: CardIndex,
    name: str,
    envs: tuple[str, ...],
    cache: dict[tuple[str, tuple[str, ...]], AssetCard] | None = None,
) -> AssetCard:
    """Resolve plain card ``name`` with ``envs`` (highest precedence first).

    ``cache`` memoises resolved cards (and their bases) by (name, envs).
    """
    if cache is None:
        cache = {}
    return _resolve(index, name, envs, cache, ())


def _resolve(
    index: CardIndex,
    name: str,
    envs: tuple[str, ...],
    cache: dict[tuple[str, tuple[str, ...]], AssetCard],
    chain: tuple[str, ...],
) -> AssetCard:
    key = (name, envs)
    card = cache.get(key)
    if card is not None:
        return card
    entry = index.get(f"{name}@")
    if entry is None:
        raise _not_found(index, name, chain)
    metadata: Any = entry.metadata
    origins: dict[str, str] = {}
    overrides = [e for env in reversed(envs) if (e := index.get(f"{name}@{env}")) is not None]
    if overrides:
        layered = dict(metadata)
        for override in overrides:
            for field, value in override.metadata.items():
                if field == "name":
                    continue
                layered[field] = value
                if override.file != entry.file:
                    origins[field] = override.file
                else:
                    origins.pop(field, None)
        metadata = layered
    base_name = metadata.get("base")
    base: AssetCard | None = None
    if base_name is not None:
        chain = (*chain, name)
        if not isinstance(base_name, str) or not base_name or "@" in base_name:
            raise AssetCardError(
                f"card '{name}': 'base' must be a plain card name, not {base_name!r}",
                name=name,
                field="base",
            )
        if base_name in chain:
            cycle = " -> ".join((*chain[chain.index(base_name) :], base_name))
            raise AssetCardError(f"base cycle: {cycle}", name=name, field="base")
        base = _resolve(index, base_name, envs, cache, chain)
    card = AssetCard(name, metadata, base, source=entry.file, origins=origins)
    cache[key] = card
    return card


def _not_found(index: CardIndex, name: str, chain: tuple[str, ...]) -> AssetCardError:
    if chain:
        child = chain[-1]
        entry = index.get(f"{child}@")
        where = f" ({display_path(entry.file)}:{entry.field_line('base')})" if entry else ""
        reason = index.rejected_reason(f"{name}@")
        because = f"; it was rejected: {reason}" if reason else ""
        return AssetCardError(
            f"card '{child}'{where} names base '{name}', which no card defines{because}",
            name=child,
            field="base",
        )
    reason = index.rejected_reason(f"{name}@")
    if reason:
        return AssetCardNotFoundError(
            f"card '{name}' was rejected: {reason}", name=name, suggestions=()
        )
    overrides = sorted(n for n in index.names if n.startswith(f"{name}@") and n != f"{name}@")
    if overrides:
        return AssetCardNotFoundError(
            f"card '{name}' has env overrides ({', '.join(overrides)}) but no plain card "
            f"'name: {name}' for them to override",
            name=name,
        )
    plain = {n.partition("@")[0] for n in index.names}
    matches = tuple(difflib.get_close_matches(name, plain, n=3, cutoff=0.6))
    hint = f"; did you mean {' or '.join(matches)}?" if matches else ""
    return AssetCardNotFoundError(f"no card named '{name}'{hint}", name=name, suggestions=matches)
