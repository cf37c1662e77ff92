"""Listing, LRU eviction and removal of cache entries."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import filelock
import pytest
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)
from servers import StaticServer

from asyncassets.cache import CheckpointCache


@pytest.fixture
def cache_settings() -> dict[str, Any]:
    return {"part_size": 64 * 1024, "concurrency": 4}


@pytest.fixture
def three_files(http_static_server: StaticServer, tmp_path: Path) -> list[str]:
    base_url, folder = http_static_server
    sub = f"evict-{tmp_path.name}"
    (folder / sub).mkdir()
    urls = []
    for name in ("a.bin", "b.bin", "c.bin"):
        (folder / sub / name).write_bytes(os.urandom(100_000))
        urls.append(f"{base_url}/{sub}/{name}")
    return urls


def _age(cache: CheckpointCache, uri: str, seconds_ago: float) -> None:
    [entry] = [e for e in cache.entries() if e.uri == uri]
    when = entry.last_used - seconds_ago
    os.utime(cache.root / entry.key / "entry.json", (when, when))


async def test_entries_list_uri_size_and_completeness(
    cache: CheckpointCache, three_files: list[str]
) -> None:
    for url in three_files:
        await cache.fetch(url)
    entries = await cache.list_entries()
    assert entries == cache.entries()
    assert {e.uri for e in entries} == set(three_files)
    assert all(e.complete and e.size == 100_000 for e in entries)
    assert all(e.path is not None and e.path.exists() for e in entries)


async def test_prune_evicts_least_recently_used_first(
    cache: CheckpointCache, three_files: list[str]
) -> None:
    a, b, c = three_files
    for url in three_files:
        await cache.fetch(url)
    _age(cache, a, 300)
    _age(cache, b, 100)
    _age(cache, c, 200)
    removed = await cache.prune(150_000)
    assert [e.uri for e in removed] == [a, c]
    assert [e.uri for e in cache.entries()] == [b]


async def test_prune_skips_an_entry_locked_by_another_process(
    cache: CheckpointCache, three_files: list[str]
) -> None:
    a, b, c = three_files
    for url in three_files:
        await cache.fetch(url)
    _age(cache, a, 300)
    [entry_a] = [e for e in cache.entries() if e.uri == a]
    other = filelock.FileLock(str(cache.root / ".locks" / f"{entry_a.key}.lock"))
    with other.acquire(timeout=0):
        removed = await cache.prune(0)
    assert {e.uri for e in removed} == {b, c}
    assert [e.uri for e in cache.entries()] == [a]


async def test_max_bytes_evicts_after_each_fetch_but_keeps_the_new_entry(
    tmp_path: Path, three_files: list[str]
) -> None:
    cache = CheckpointCache(tmp_path / "small", max_bytes=150_000, part_size=64 * 1024)
    for url in three_files:
        path = await cache.fetch(url)
        assert path.exists()
    assert [e.uri for e in cache.entries()] == [three_files[-1]]


async def test_remove_deletes_the_entry(cache: CheckpointCache, three_files: list[str]) -> None:
    path = await cache.fetch(three_files[0])
    assert await cache.remove(three_files[0]) is True
    assert not path.exists()
    assert cache.entries() == []
    assert await cache.remove(three_files[0]) is False


async def test_cache_is_an_async_context_manager(tmp_path: Path, three_files: list[str]) -> None:
    async with CheckpointCache(tmp_path / "cm") as cache:
        assert (await cache.fetch(three_files[0])).exists()
