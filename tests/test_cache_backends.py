"""The cache on both async backends, without blocking the event loop, with any file name."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import anyio
import pytest
import sniffio
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)
from loop_lag import loop_gaps
from servers import StaticServer

from asyncassets.cache import CheckpointCache


@pytest.fixture
def cache(tmp_path: Path) -> CheckpointCache:
    return CheckpointCache(tmp_path / "cache", part_size=4 * 2**20, concurrency=8)


async def test_a_big_fetch_with_its_checksum_and_a_prune_never_block_the_loop(
    cache: CheckpointCache, http_static_server: StaticServer
) -> None:
    """A ticker task sleeps 5 ms in a loop while 64 MiB are fetched, hashed and pruned: a
    gap far above that means the loop was blocked (a hash, an fsync, an rmtree or a stat
    walk on the loop's thread). The bound is generous; the point is to catch blocking
    calls, not to time the fetch."""
    base_url, folder = http_static_server
    payload = os.urandom(64 * 2**20)
    name = f"lag-{uuid.uuid4().hex[:8]}.bin"
    (folder / name).write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    async with loop_gaps() as gaps:
        path = await cache.fetch(f"{base_url}/{name}", sha256=digest, progress=False)
        removed = await cache.prune(0)
    assert not path.exists() and len(removed) == 1
    library = sniffio.current_async_library()
    assert max(gaps) < 0.3, f"the {library} loop was blocked for {max(gaps):.3f} s"


async def test_concurrent_fetches_share_one_download(
    cache: CheckpointCache, http_static_server: StaticServer
) -> None:
    base_url, folder = http_static_server
    payload = os.urandom(3 * 2**20)
    name = f"shared-{uuid.uuid4().hex[:8]}.bin"
    (folder / name).write_bytes(payload)
    paths: list[Path] = []

    async def fetch() -> None:
        paths.append(await cache.fetch(f"{base_url}/{name}", progress=False))

    async with anyio.create_task_group() as tg:
        for _ in range(16):
            tg.start_soon(fetch)
    assert len(set(paths)) == 1 and paths[0].read_bytes() == payload
    assert http_static_server.stats.bytes_for(f"/{name}") == len(payload)


@pytest.mark.parametrize("name", ["a#b%20c?.pt", "100%.pt", "sp ace#1.pt"])
async def test_a_local_file_with_url_characters_in_its_name_is_returned_as_it_is(
    cache: CheckpointCache, tmp_path: Path, name: str
) -> None:
    local = tmp_path / name
    local.write_bytes(b"weights")
    assert await cache.fetch(local) == local
    assert await cache.fetch(str(local)) == local
    assert await cache.fetch(f"file://{local}") == local
