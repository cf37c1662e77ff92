"""``asyncassets diff OLD NEW``: what a change to a card repository does to the cards people
resolve.

Each side is read into a store of its own (the global ``--storage-option`` and
``--cache-dir`` apply to both; ``--store`` does not). Every card of both sides is resolved
under the keys below, and :func:`asyncassets.card_diff.diff_cards` compares them.

- Without ``--env``: ``name`` is the plain card (no env at all, whatever
  ``$ASYNCASSETS_ENV`` or ``$SLURM_CLUSTER_NAME`` say), and ``name@env`` the card resolved
  under ``env``, for every env that changes what the card resolves to on either side: one
  the card or a card of its base chain defines an override for (an edit of ``base@env``
  shows under ``child@env`` too).
- With ``--env ENV``: one key per card, ``name@ENV``, the card as ``asyncassets show
  name@ENV`` resolves it (the plain card when no override applies), i.e. what a job running
  in ``ENV`` sees.

Fields are compared by value (:mod:`asyncassets.card_diff`), a relative path in
``checkpoint``, ``tokenizer`` or ``data`` as written from the top of the side's folder. A
card with env overrides but no plain card resolves to nothing and is left out, as in
``list``. The exit status is 0 when nothing differs, 1 when something does, 2 when a side
cannot be read or the command line is wrong (``diff``'s convention).
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import sys
from collections.abc import Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio

from asyncassets import AssetCard, AssetCardError, AssetError, AssetStore, FileAssetMetadataProvider
from asyncassets.card_diff import (
    ABSENT,
    CardDiff,
    FieldChange,
    ResolvedCard,
    Unresolvable,
    diff_cards,
)
from asyncassets.cli.output import OutputClosed, printable, say
from asyncassets.cli.reporting import UsageError
from asyncassets.cli.stores import parse_storage_options
from asyncassets.errors import AssetMetadataError
from asyncassets.locations import INDEX_FOLDER
from asyncassets.reachability import REACHABLE_FIELDS
from asyncassets.values import json_value

#: What the two sides are called in messages.
OLD, NEW = "OLD", "NEW"


@dataclass
class Survey:
    """One side's cards: the plain names, and for each the envs that change it."""

    names: set[str] = field(default_factory=set)
    envs: dict[str, set[str]] = field(default_factory=dict)


async def cmd_diff(args: argparse.Namespace) -> int:
    """Compare ``args.old`` with ``args.new`` and print the differences (see the module);
    returns 1 when there are any."""
    if args.store:
        raise UsageError(
            "diff reads the two sides it is given (OLD and NEW); --store does not apply"
        )
    if args.env is not None and (not args.env or "@" in args.env):
        raise UsageError(f"--env wants an env name (no '@'), not {args.env!r}")
    options = parse_storage_options(args.storage_option or [])
    index_dir = os.path.join(args.cache_dir, INDEX_FOLDER) if args.cache_dir else None
    async with AsyncExitStack() as stack:
        stores: dict[str, AssetStore] = {}
        for label, url in ((OLD, args.old), (NEW, args.new)):
            stores[label] = await stack.enter_async_context(
                _open_side(label, url, options, index_dir)
            )
        surveys: dict[str, Survey] = {}

        async def survey(label: str) -> None:
            surveys[label] = await _survey(label, stores[label])

        async with anyio.create_task_group() as group:  # both load at once: remote ones take long
            for label in stores:
                group.start_soon(survey, label)
        keys = _keys(surveys[OLD], surveys[NEW], args.env)
        sides = {
            label: await _resolve_side(stores[label], surveys[label], keys) for label in (OLD, NEW)
        }
    diff = diff_cards(sides[OLD], sides[NEW])
    if args.json:
        say(json.dumps(diff.to_dict(), indent=2, default=str))
    else:
        colour = _colour_wanted(sys.stdout)
        for line in render_text(diff, colour=colour):
            _write(line)
        for line in _summary(diff, surveys[OLD], surveys[NEW]):
            say(line, file=sys.stderr)
    return 1 if diff else 0


def _open_side(
    label: str, url: str, options: Mapping[str, Any], index_dir: str | None
) -> AssetStore:
    try:
        provider = FileAssetMetadataProvider(url, storage_options=options, index_dir=index_dir)
    except AssetError as exc:
        raise _unreadable(label, exc) from exc
    return AssetStore([provider])


def _unreadable(label: str, exc: AssetError) -> AssetMetadataError:
    return AssetMetadataError(f"cannot read {label}: {exc}")


async def _survey(label: str, store: AssetStore) -> Survey:
    """The plain cards of ``store`` and, for each, the envs that change what it resolves
    to: an env for which the card or a card of its base chain has an override, or under
    which it fails to resolve in its own way."""
    try:
        names = await store.asset_names()
    except AssetError as exc:
        raise _unreadable(label, exc) from exc
    overrides: dict[str, set[str]] = {}
    for canonical in names:
        plain, _, env = canonical.partition("@")
        if env:
            overrides.setdefault(plain, set()).add(env)
    every_env = set().union(*overrides.values())
    result = Survey(names={n.partition("@")[0] for n in names if n.endswith("@")})
    for name in result.names:
        _, plain_error = await _retrieve(store, f"{name}@")
        envs = result.envs[name] = set()
        for env in every_env:
            card, error = await _retrieve(store, f"{name}@{env}")
            if card is not None:
                if any(env in overrides.get(c.name, ()) for c in card.chain()):
                    envs.add(env)
            elif error != plain_error:
                envs.add(env)
    return result


async def _retrieve(store: AssetStore, name: str) -> tuple[AssetCard | None, str | None]:
    """(the card, None), or (None, why it does not resolve)."""
    try:
        return await store.retrieve_card(name), None
    except AssetCardError as exc:
        return None, str(exc)


def _keys(old: Survey, new: Survey, env: str | None) -> dict[str, list[str]]:
    """For every plain name of either side, the keys it is compared under."""
    keys: dict[str, list[str]] = {}
    for name in old.names | new.names:
        if env is not None:
            keys[name] = [f"{name}@{env}"]
        else:
            envs = old.envs.get(name, set()) | new.envs.get(name, set())
            keys[name] = [name, *(f"{name}@{e}" for e in sorted(envs))]
    return keys


async def _resolve_side(
    store: AssetStore, survey: Survey, keys: Mapping[str, list[str]]
) -> dict[str, ResolvedCard]:
    """Every key of the cards this side has, resolved: fields without ``name`` (the key
    says it), or why the card does not resolve."""
    side: dict[str, ResolvedCard] = {}
    (provider,) = store.providers_by_precedence()
    root = provider.source
    for name in survey.names:
        for key in keys[name]:
            card, error = await _retrieve(store, key if "@" in key else f"{key}@")
            if card is None:
                assert error is not None
                side[key] = Unresolvable(error)
            else:
                side[key] = _fields(card, root)
    return side


def _fields(card: AssetCard, root: str) -> dict[str, Any]:
    """``card.to_dict()`` without ``name``, a relative path in a ``checkpoint``,
    ``tokenizer`` or ``data`` field written as from the top of the card folder ``root``
    (``models/x.yaml``'s ``../ckpt/m.pt`` is ``ckpt/m.pt``): a card moved to another
    sub-folder is unchanged when its path still names the same file, changed when not."""
    fields = card.to_dict()
    del fields["name"]
    for name in REACHABLE_FIELDS:
        value = fields.get(name)
        if not isinstance(value, str) or not value or value.startswith(("/", "~")):
            continue
        if "://" in value:
            continue
        try:
            uri = card.field(name).as_uri()
        except AssetCardError:
            continue
        scheme, _, path = uri.rpartition("://")
        root_scheme, _, root_path = root.rpartition("://")
        if scheme == root_scheme:
            fields[name] = posixpath.relpath(path, root_path)
    return fields


# -- text output -----------------------------------------------------------------------------

_RESET = "\x1b[0m"
_STYLES = {"added": "32", "removed": "31", "changed": "33", "old": "31", "new": "32"}
_STYLES |= {"absent": "2", "error": "31;1", "key": "1"}


def _colour_wanted(stream: Any) -> bool:
    """Colour only on a terminal, unless ``NO_COLOR`` is set (https://no-color.org: to
    anything but the empty string) or the terminal is ``dumb``."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


class _Painter:
    """Text escaped (:func:`printable`: card values are untrusted), then coloured when
    colour is on."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, style: str, text: str) -> str:
        text = printable(text)
        return f"\x1b[{_STYLES[style]}m{text}{_RESET}" if self.colour else text


def render_text(diff: CardDiff, *, colour: bool = False) -> Iterator[str]:
    """The lines a reviewer reads: ``added KEY``, ``removed KEY``, then ``changed KEY``
    followed by one indented ``path: old -> new`` line per field. Every piece of card
    text is escaped; the lines hold escape sequences only for ``colour``."""
    paint = _Painter(colour)
    for key in diff.added:
        note = _error_note(diff.new_errors.get(key), paint)
        yield f"{paint('added', 'added')}    {paint('key', key)}{note}"
    for key in diff.removed:
        note = _error_note(diff.old_errors.get(key), paint)
        yield f"{paint('removed', 'removed')}  {paint('key', key)}{note}"
    for key, changes in diff.changed.items():
        yield f"{paint('changed', 'changed')}  {paint('key', key)}"
        for change in changes:
            yield f"  {_change_line(change, paint)}"


def _error_note(message: str | None, paint: _Painter) -> str:
    return f"  ({paint('error', 'does not resolve')}: {printable(message)})" if message else ""


def _change_line(change: FieldChange, paint: _Painter) -> str:
    if change.error:
        if change.new is ABSENT:
            return f"{paint('new', 'resolves now')} (in {OLD}: {printable(change.old)})"
        return f"{paint('error', f'does not resolve in {NEW}')}: {printable(change.new)}"
    old = _value_text(change.old, "old", paint)
    new = _value_text(change.new, "new", paint)
    return f"{printable(change.path)}: {old} -> {new}"


def _value_text(value: Any, style: str, paint: _Painter) -> str:
    """One line of JSON (strings quoted, so ``"1"`` and ``1`` differ), or ``(absent)``."""
    if value is ABSENT:
        return paint("absent", "(absent)")
    text = json.dumps(json_value(value), ensure_ascii=False, default=str)
    return paint(style, text)


def _summary(diff: CardDiff, old: Survey, new: Survey) -> Iterator[str]:
    """The lines for stderr: cards that resolve on neither side, then the counts."""
    for key in diff.broken:
        yield (
            f"note: {key} resolves neither in {OLD} nor in {NEW} (asyncassets check says "
            f"why): {diff.new_errors[key]}"
        )
    counts = [
        f"{len(keys)} {label}"
        for label, keys in (
            ("added", diff.added),
            ("removed", diff.removed),
            ("changed", diff.changed),
        )
        if keys
    ]
    what = ", ".join(counts) or "no differences"
    yield f"{what} ({len(old.names)} cards in {OLD}, {len(new.names)} in {NEW})"


def _write(line: str) -> None:
    """Print an already escaped line as it is (:func:`say` would escape its colours)."""
    try:
        print(line, file=sys.stdout)
    except BrokenPipeError as exc:
        raise OutputClosed(sys.stdout) from exc
