"""Whether what the cards point to exists: ``asyncassets check --reachable``.

Every ``checkpoint``, ``tokenizer`` and ``data`` field of every resolved card (the plain
card and the card under each env it defines) is planned as a prefetch would plan it (the
URI, fairseq2's files of a Hub repo, the storage options of the store it shares a bucket
with), and each distinct reference gets one metadata request (:func:`asyncassets.cache.
probing.probe`), concurrently and bounded. A missing object, repo, revision or file is a
problem at the file and line of the field that names it, in the card that defines it (an
inherited field: the base's file). A gated card is a note. A request that keeps failing
in a way a later one may not is reported as ``unknown``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from asyncassets.card import AssetCard
from asyncassets.errors import AssetCardError, AssetGatedError
from asyncassets.kinds import card_kind
from asyncassets.planning import plan_fetch
from asyncassets.problems import Problem
from asyncassets.resolution import CardIndex
from asyncassets.storage_options import options_key

if TYPE_CHECKING:
    from asyncassets.cache.probing import ProbeResult


class CardLookup(Protocol):
    """What this module asks of a store (an :class:`~asyncassets.AssetStore`)."""

    async def retrieve_card(self, name: str) -> AssetCard: ...

    def remote_stores(self) -> list[tuple[str, Mapping[str, Any]]]: ...


__all__ = ["REACHABLE_FIELDS", "Reachability", "check_reachable"]

#: The fields whose references are checked.
REACHABLE_FIELDS = ("checkpoint", "tokenizer", "data")
#: Metadata requests in flight at once.
DEFAULT_CONCURRENCY = 16
#: The field a gated card of a kind lacks.
_GATED_FIELD = {"model": "checkpoint", "tokenizer": "tokenizer"}


@dataclass
class Reachability:
    """What ``check --reachable`` found: ``problems`` (kinds ``unreachable`` and
    ``unknown``), ``notes`` (gated cards) and ``checked``, the distinct references asked."""

    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    checked: int = 0


@dataclass(frozen=True)
class _Use:
    """One field of one resolved card that names a reference."""

    key: str  # name, or name@env
    field: str
    where: Problem  # source, file and line of the field (message unused)


async def check_reachable(
    store: CardLookup, index: CardIndex, *, concurrency: int = DEFAULT_CONCURRENCY
) -> Reachability:
    """Ask whether every reference the cards of ``index`` name exists (see the module)."""
    from asyncassets.cache.probing import probe_choices

    report = Reachability()
    uses: dict[tuple[str, str, str], list[_Use]] = {}
    # One metadata request per reference and storage options:
    # {(uri, options key): (storage options, {choice key: include})}.
    groups: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}
    stores = store.remote_stores()
    for key, card in await _resolved_cards(store, index):
        kind = card_kind(card)
        for name in REACHABLE_FIELDS:
            if not card.has_field(name):
                if _GATED_FIELD.get(kind) == name:
                    _note_gated(report, index, key, card, name)
                continue
            try:
                plan = plan_fetch(card, name, stores=stores)
            except AssetCardError:
                continue  # not a reference (a mapping, a number): nothing to ask
            options = options_key(plan.storage_options)
            choice = json.dumps(plan.include)
            group = groups.setdefault((plan.uri, options), (plan.storage_options, {}))
            group[1][choice] = plan.include
            use = _Use(key, name, _where(index, key, card, name))
            uses.setdefault((plan.uri, options, choice), []).append(use)

    results: dict[tuple[str, str, str], ProbeResult] = {}
    limiter = anyio.CapacityLimiter(concurrency)

    async def ask(uri: str, options_id: str, storage_options: Any, choices: dict[str, Any]) -> None:
        includes = list(choices.values())
        async with limiter:
            answers = await probe_choices(uri, storage_options=storage_options, includes=includes)
        for choice, answer in zip(choices, answers, strict=True):
            results[(uri, options_id, choice)] = answer

    async with anyio.create_task_group() as tg:
        for (uri, options_id), (storage_options, choices) in groups.items():
            tg.start_soon(ask, uri, options_id, storage_options, choices)
    report.checked = len(groups)
    for target, result in results.items():
        if result.status != "ok":
            report.problems.extend(_problems(result, uses[target]))
    report.problems.sort(key=lambda p: (p.file or "", p.line or 0, p.card or "", p.field or ""))
    return report


async def _resolved_cards(store: CardLookup, index: CardIndex) -> list[tuple[str, AssetCard]]:
    """``(key, card)`` for each plain card and each env a card defines; cards that do not
    resolve are left out (``check`` reports why)."""
    keys = []
    for canonical in sorted(index.names):
        plain, _, env = canonical.partition("@")
        keys.append((plain, f"{plain}@") if not env else (canonical, canonical))
    cards = []
    for key, asked in keys:
        try:
            cards.append((key, await store.retrieve_card(asked)))
        except AssetCardError:
            continue
    return cards


def _where(index: CardIndex, key: str, card: AssetCard, name: str) -> Problem:
    """The source, file and line of field ``name`` of ``card``: the entry of the card that
    holds it, in the file that set it (an env override's own file when it set it)."""
    holder = card.field(name).holder
    file = holder.field_source(name)
    plain = holder.name
    # The key's own override first: it may sit in the plain card's file and set the field.
    env = key.partition("@")[2]
    own = [f"{plain}@{env}"] if env else []
    envs = sorted(n for n in index.names if n.startswith(f"{plain}@"))
    for candidate in dict.fromkeys([*own, f"{plain}@", *envs]):
        entry = index.get(candidate)
        if entry is not None and entry.file == file and name in entry.metadata:
            return Problem("", "", entry.source, entry.file, entry.field_line(name), key, name)
    return Problem("", "", file, file, None, key, name)


def _problems(result: ProbeResult, uses: list[_Use]) -> list[Problem]:
    """One problem per place that names the reference (the cards that inherit it listed)."""
    by_place: dict[tuple[str | None, int | None, str], list[_Use]] = {}
    for use in uses:
        by_place.setdefault((use.where.file, use.where.line, use.field), []).append(use)
    problems = []
    for (_, _, name), place in by_place.items():
        first = place[0]
        keys = sorted({u.key for u in place})
        owner = keys[0]
        others = f" (used by {', '.join(keys)})" if len(keys) > 1 else ""
        if result.status == "missing":
            message = f"card '{owner}': {name} {result.uri} is unreachable: {result.reason}"
            kind = "unreachable"
        else:
            message = (
                f"card '{owner}': cannot tell whether {name} {result.uri} exists: {result.reason}"
            )
            kind = "unknown"
        problems.append(
            Problem(
                kind,
                message + others,
                first.where.source,
                first.where.file,
                first.where.line,
                owner,
                name,
                result.uri,
            )
        )
    return problems


def _note_gated(
    report: Reachability, index: CardIndex, key: str, card: AssetCard, name: str
) -> None:
    try:
        plan_fetch(card, name)
    except AssetGatedError as exc:
        where = _where(index, key, card, "url") if card.has_field("url") else None
        report.notes.append(
            Problem(
                "gated",
                str(exc),
                where.source if where else card.source,
                where.file if where else card.source,
                where.line if where else None,
                key,
                name,
            )
        )
    except AssetCardError:
        return
