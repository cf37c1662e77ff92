"""Listing and eviction of cache entries: what is in the cache, what may go, and removing
it without pulling a file from under a reader or a writer. No network I/O."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import anyio
import anyio.to_thread

from asyncassets.durable import read_json
from asyncassets.urls import public_uri

from .layout import STATE_FILE, CacheEntry, CacheLayout
from .locking import EntryLocks
from .uri import CheckpointURI

__all__ = ["Shelf"]

logger = logging.getLogger("asyncassets.cache")


class Shelf:
    """The entries under one cache root: listing, reclaiming, evicting, removing."""

    def __init__(self, layout: CacheLayout, locks: EntryLocks) -> None:
        self._layout = layout
        self._locks = locks

    def entries(self) -> list[CacheEntry]:
        """Every entry, complete or interrupted, most recently used first (blocking)."""
        layout = self._layout
        found = []
        for key in layout.entry_keys():
            record = layout.read_entry(key)
            if record is not None:
                found.append(
                    CacheEntry(
                        key=key,
                        uri=record.uri,
                        size=record.size,
                        last_used=layout.last_used(key),
                        complete=True,
                        path=layout.data_path(key, record),
                        include=record.include,
                        revision=record.revision,
                    )
                )
                continue
            for partial in layout.partials(key):
                state = read_json(partial / STATE_FILE)
                if state is None:
                    continue
                try:
                    mtime = (partial / STATE_FILE).stat().st_mtime
                except OSError:
                    continue
                found.append(
                    CacheEntry(
                        key=key,
                        uri=str(state.get("uri", "")),
                        size=layout.partial_bytes(key),
                        last_used=mtime,
                        complete=False,
                        path=None,
                        include=state.get("include"),
                    )
                )
                break
        found.sort(key=lambda e: e.last_used, reverse=True)
        return found

    async def prune(
        self, limit: int | None, *, grace: float, keep: str | None = None
    ) -> list[CacheEntry]:
        """Reclaim superseded versions and abandoned downloads older than ``grace``, then
        evict least recently used entries down to ``limit`` bytes (None: no eviction),
        never ``keep`` nor an entry in use. Returns the evicted entries."""
        freed = await anyio.to_thread.run_sync(self._reclaim_all, grace)
        if freed:
            logger.info("reclaimed %d bytes of superseded versions and abandoned downloads", freed)
        if limit is None:
            return []
        entries = await anyio.to_thread.run_sync(self.entries)
        total = sum(e.size for e in entries)
        removed: list[CacheEntry] = []
        for entry in sorted(entries, key=lambda e: e.last_used):
            if total <= limit:
                break
            if entry.key == keep:
                continue
            if not await anyio.to_thread.run_sync(self._evict, entry.key):
                logger.info("not evicting %s: in use, or could not be removed", entry.uri)
                continue
            total -= entry.size
            removed.append(entry)
            logger.info("evicted %s (%d bytes)", public_uri(entry.uri), entry.size)
        return removed

    def _evict(self, key: str) -> bool:
        """Remove the entry unless someone uses it (blocking); True only when it is gone."""
        with self._locks.try_hold(key) as held:
            return held and self._layout.remove(key)

    def _reclaim_all(self, grace: float) -> int:
        freed = 0
        for key in self._layout.entry_keys():
            with self._locks.try_hold(key) as held:
                if held:
                    freed += self._layout.reclaim(key, grace)
        return freed

    async def remove(self, uri: str | os.PathLike[str]) -> bool:
        """Delete the entries of ``uri`` (plain, extracted, and every choice of files of
        a folder), waiting for a download of it to finish first; True when one existed."""
        target = _parsed(uri)
        if target is None:
            return False
        removed = False
        keys = [self._layout.key(target, extract=extract) for extract in (False, True)]
        keys += await anyio.to_thread.run_sync(self._keys_of, target.public)
        for key in dict.fromkeys(keys):
            exists = self._layout.entry_dir(key).exists
            if not await anyio.to_thread.run_sync(exists):
                continue
            async with self._locks.hold(key):
                if await anyio.to_thread.run_sync(exists):
                    removed |= await anyio.to_thread.run_sync(self._layout.remove, key)
        return removed

    def _keys_of(self, uri: str) -> list[str]:
        """Keys of the complete entries recorded for ``uri`` (blocking)."""
        found = []
        for key in self._layout.entry_keys():
            record = self._layout.read_entry(key)
            if record is not None and record.uri == uri:
                found.append(key)
        return found

    def path_of(
        self,
        uri: str | os.PathLike[str],
        *,
        extract: bool = False,
        include: tuple[str, ...] | None = None,
    ) -> Path | None:
        """The cached path of ``uri`` without any network access, or None (blocking)."""
        target = _parsed(uri)
        if target is None:
            return None
        key = self._layout.key(target, extract=extract, include=include)
        record = self._layout.read_entry(key)
        if record is None:
            return None
        path = self._layout.data_path(key, record)
        return path if path.exists() else None


def _parsed(uri: str | os.PathLike[str]) -> CheckpointURI | None:
    """``uri`` parsed; None for a Hub URI that names no repo (``fetch`` never cached one)."""
    try:
        return CheckpointURI.parse(uri)
    except ValueError:
        return None
