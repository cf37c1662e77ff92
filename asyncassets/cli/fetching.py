"""Commands that fill and trim the checkpoint cache: ``prefetch``, ``cache ls|prune|rm``."""

from __future__ import annotations

import argparse
import json
import sys

import anyio
import anyio.to_thread

from asyncassets import AssetError, AssetStore
from asyncassets.cli.output import format_size, say
from asyncassets.cli.reporting import UsageError


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
        if args.json:
            say(
                json.dumps(
                    [
                        {
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
                    ],
                    indent=2,
                )
            )
            return 0
        from datetime import datetime

        for e in entries:
            used = datetime.fromtimestamp(e.last_used).strftime("%Y-%m-%d %H:%M")
            state = "" if e.complete else "  (partial)"
            chosen = f" [{', '.join(e.include)}]" if e.include else ""
            at = f" @{e.revision[:12]}" if e.revision else ""
            say(f"{e.key}  {format_size(e.size):>10}  {used}  {e.uri}{at}{chosen}{state}")
        total = sum(e.size for e in entries)
        say(f"{len(entries)} entries, {format_size(total)} in {cache.root}", file=sys.stderr)
        return 0
    if args.cache_command == "prune":
        limit = parse_size(args.max_size) if args.max_size is not None else cache.max_bytes
        grace = _parse_seconds(args.grace) if args.grace is not None else None
        removed = await cache.prune(limit, grace=grace)
        for e in removed:
            say(f"removed {e.uri} ({format_size(e.size)})")
        say(f"{len(removed)} entries removed", file=sys.stderr)
        return 0
    if not await cache.remove(args.uri):
        raise UsageError(f"{args.uri} is not in the cache")
    say(f"removed {args.uri}")
    return 0
