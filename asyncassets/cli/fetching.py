"""Commands that fill and trim the cache: ``prefetch``, ``cache ls|prune|rm`` (checkpoints,
and the card stores' persistent indexes beside them)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from asyncassets import AssetError, AssetStore
from asyncassets.cli.output import format_size, say
from asyncassets.cli.reporting import UsageError
from asyncassets.providers.index import IndexFile, list_indexes, prune_indexes

if TYPE_CHECKING:
    from asyncassets.cache import CacheEntry


def _parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--grace takes a number of seconds, not {text!r}") from None
    if value < 0:
        raise UsageError(f"--grace takes a number of seconds, not {text!r}")
    return value


def parse_size(text: str) -> int:
    """``50G``, ``512M``, ``1.5T``, ``1000`` -> bytes (powers of 1024)."""
    units = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    raw = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = (raw[:-1], raw[-1]) if raw and raw[-1] in units else (raw, "")
    try:
        size = float(number) * units[unit]
    except ValueError:
        raise UsageError(f"not a size: {text!r} (try 50G, 512M)") from None
    if size < 0:
        raise UsageError(f"a size must not be negative: {text!r}")
    return int(size)


async def cmd_prefetch(store: AssetStore, args: argparse.Namespace) -> int:
    if args.distributed:
        return await _prefetch_distributed(store, args)
    limiter = anyio.Semaphore(max(1, args.jobs))
    failures: list[str] = []

    async def one(name: str) -> None:
        async with limiter:
            try:
                path = await store.prefetch(
                    name,
                    field=args.field,
                    force=args.force,
                    local_only=args.offline,
                    include=args.include,
                )
            except AssetError as exc:
                failures.append(f"{name}: {exc}")
                return
            say(f"{name}\t{path}", flush=True)

    async with anyio.create_task_group() as tg:
        for name in args.names:
            tg.start_soon(one, name)
    for failure in failures:
        say(f"asyncassets: error: {failure}", file=sys.stderr)
    return 1 if failures else 0


async def _prefetch_distributed(store: AssetStore, args: argparse.Namespace) -> int:
    """``prefetch --distributed``: every rank of a torchrun / SLURM job runs this; each
    item is fetched once per cache domain. Paths print on each node's first rank."""
    try:
        from asyncassets import distributed
    except ImportError as exc:
        say(
            f"asyncassets: error: --distributed needs torch ({exc}); "
            "pip install 'asyncassets[distributed]'",
            file=sys.stderr,
        )
        return 1
    try:
        await anyio.to_thread.run_sync(distributed.init_from_environment)
        paths = await distributed.prefetch_distributed(
            store, args.names, field=args.field, include=args.include
        )
    except AssetError as exc:
        say(f"asyncassets: error: {exc}", file=sys.stderr)
        return 1
    if distributed.local_rank() == 0:
        for name, path in zip(args.names, paths, strict=True):
            say(f"{name}\t{path}", flush=True)
    return 0


async def cmd_cache(store: AssetStore, args: argparse.Namespace) -> int:
    cache = store.cache
    if args.cache_command == "ls":
        entries = await cache.list_entries()
        indexes = await anyio.to_thread.run_sync(list_indexes, cache.root)
        if args.json:
            say(json.dumps(_entries_json(entries) + _indexes_json(indexes), indent=2))
            return 0
        for e in entries:
            state = "" if e.complete else "  (partial)"
            chosen = f" [{', '.join(e.include)}]" if e.include else ""
            at = f" @{e.revision[:12]}" if e.revision else ""
            size, used = format_size(e.size), _when(e.last_used)
            say(f"{e.key}  {size:>10}  {used}  {e.uri}{at}{chosen}{state}")
        for index in indexes:
            source = index.source or "(unreadable)"
            say(
                f"{index.path.name}  {format_size(index.size):>10}  {_when(index.last_used)}  "
                f"index of {source}"
            )
        total = sum(e.size for e in entries) + sum(i.size for i in indexes)
        counted = f"{len(entries)} entries"
        if indexes:
            counted += f" and {len(indexes)} card store indexes"
        say(f"{counted}, {format_size(total)} in {cache.root}", file=sys.stderr)
        return 0
    if args.cache_command == "prune":
        limit = parse_size(args.max_size) if args.max_size is not None else cache.max_bytes
        grace = _parse_seconds(args.grace) if args.grace is not None else None
        removed = await cache.prune(limit, grace=grace)
        for e in removed:
            say(f"removed {e.uri} ({format_size(e.size)})")
        wait = cache.grace if grace is None else grace
        stale = await anyio.to_thread.run_sync(prune_indexes, wait, cache.root)
        for index in stale:
            named = index.source or index.path.name
            say(f"removed the index of {named} ({format_size(index.size)})")
        summary = f"{len(removed)} entries removed"
        if stale:
            summary += f", {len(stale)} card store indexes unused for {wait:g} s removed"
        say(summary, file=sys.stderr)
        return 0
    if not await cache.remove(args.uri):
        raise UsageError(f"{args.uri} is not in the cache")
    say(f"removed {args.uri}")
    return 0


def _when(seconds: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M")


def _entries_json(entries: list[CacheEntry]) -> list[dict[str, Any]]:
    return [
        {
            "kind": "checkpoint",
            "key": e.key,
            "uri": e.uri,
            "size": e.size,
            "last_used": e.last_used,
            "complete": e.complete,
            "path": str(e.path) if e.path else None,
            "include": e.include,
            "revision": e.revision,
        }
        for e in entries
    ]


def _indexes_json(indexes: list[IndexFile]) -> list[dict[str, Any]]:
    return [
        {
            "kind": "index",
            "source": i.source,
            "size": i.size,
            "last_used": i.last_used,
            "path": str(i.path),
        }
        for i in indexes
    ]
