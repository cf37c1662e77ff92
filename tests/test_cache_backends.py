"""The cache on both async backends, without blocking the event loop, with any file name."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import fsspec
import pytest
import sniffio
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.registry import _registry
from loop_lag import loop_gaps
from servers import StaticServer, gcs_storage_options, random_bytes, s3_storage_options

from asyncassets.cache import CheckpointCache


@pytest.fixture
def cache_settings() -> dict[str, Any]:
    return {"part_size": 4 * 2**20, "concurrency": 8}


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


async def test_s3_gcs_http_and_memory_side_by_side(
    cache: CheckpointCache, moto_server: str, gcs_emulator: str, http_static_server: StaticServer
) -> None:
    """Every kind of source at once on the current loop: on trio, fsspec's async
    filesystems run on fsspec's IO thread and HTTP in worker threads; then each is a hit."""
    payload = random_bytes(9 * 2**20 + 123)  # three parts of 4 MiB
    run = uuid.uuid4().hex[:12]
    s3_options = s3_storage_options(moto_server)
    s3 = fsspec.filesystem("s3", skip_instance_cache=True, **s3_options)
    s3.mkdir(f"both-{run}")
    s3.pipe(f"both-{run}/m.bin", payload)
    gcs_options = gcs_storage_options(gcs_emulator)
    gcs = fsspec.filesystem("gcs", skip_instance_cache=True, **gcs_options)
    gcs.mkdir(f"both-{run}")
    gcs.pipe(f"both-{run}/m.bin", payload)
    fsspec.filesystem("memory").pipe(f"/both-{run}/m.bin", payload)
    base_url, folder = http_static_server
    (folder / f"both-{run}.bin").write_bytes(payload)
    sources = {
        f"s3://both-{run}/m.bin": s3_options,
        f"gs://both-{run}/m.bin": gcs_options,
        f"memory://both-{run}/m.bin": None,
        f"{base_url}/both-{run}.bin": None,
    }

    async def fetch(uri: str, paths: dict[str, Path]) -> None:
        paths[uri] = await cache.fetch(uri, storage_options=sources[uri], progress=False)

    for _ in range(2):  # a download, then a hit that only revalidates
        paths: dict[str, Path] = {}
        async with anyio.create_task_group() as tg:
            for uri in sources:
                tg.start_soon(fetch, uri, paths)
        assert len(set(paths.values())) == len(sources)
        for path in paths.values():
            assert path.stat().st_size == len(payload) and path.read_bytes() == payload
    assert http_static_server.stats.bytes_for(f"/both-{run}.bin") == len(payload)


async def test_more_streams_than_worker_threads_never_deadlock(
    tmp_path: Path, http_static_server: StaticServer
) -> None:
    """Four fetches of 16 streams each: 64 ranged reads in flight, more than anyio's 40
    default worker threads. On trio each HTTP stream waits in a worker thread for the disk
    writes it feeds; on the shared thread pool the streams once took every thread while
    their writes waited for one, and the fetches hung."""
    cache = CheckpointCache(tmp_path / "cache", part_size=2**20, concurrency=16)
    base_url, folder = http_static_server
    payloads = {f"streams-{uuid.uuid4().hex[:8]}.bin": os.urandom(16 * 2**20) for _ in range(4)}
    for name, payload in payloads.items():
        (folder / name).write_bytes(payload)
    paths: dict[str, Path] = {}

    async def fetch(name: str) -> None:
        paths[name] = await cache.fetch(f"{base_url}/{name}", progress=False)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for name in payloads:
                tg.start_soon(fetch, name)
    for name, payload in payloads.items():
        assert paths[name].read_bytes() == payload


class SlowToOpenFileSystem(MemoryFileSystem):
    """fsspec's memory filesystem, half a second to open: gcsfs takes that long and more
    while it looks for credentials (14 s on a host without a GCE metadata server)."""

    protocol = ("slowopen",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        time.sleep(0.5)
        super().__init__(*args, **kwargs)

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return str(super()._strip_protocol(path.replace("slowopen://", "memory://", 1)))


@pytest.fixture
def slowopen_protocol() -> Iterator[str]:
    fsspec.register_implementation("slowopen", SlowToOpenFileSystem, clobber=True)
    yield "slowopen"
    _registry.pop("slowopen", None)


async def test_a_filesystem_that_is_slow_to_open_does_not_block_the_loop(
    cache: CheckpointCache, slowopen_protocol: str
) -> None:
    """Importing a filesystem's package and opening it (credentials, configuration files,
    a metadata server) are blocking calls: they happen in a worker thread."""
    run = uuid.uuid4().hex[:12]
    payload = os.urandom(2**20)
    fsspec.filesystem("memory").pipe(f"/slow-{run}/m.bin", payload)
    async with loop_gaps() as gaps:
        path = await cache.fetch(f"{slowopen_protocol}://slow-{run}/m.bin", progress=False)
    assert path.read_bytes() == payload
    library = sniffio.current_async_library()
    assert max(gaps) < 0.3, f"the {library} loop was blocked for {max(gaps):.3f} s"


@pytest.mark.parametrize("name", ["a#b%20c?.pt", "100%.pt", "sp ace#1.pt"])
async def test_a_local_file_with_url_characters_in_its_name_is_returned_as_it_is(
    cache: CheckpointCache, tmp_path: Path, name: str
) -> None:
    local = tmp_path / name
    local.write_bytes(b"weights")
    assert await cache.fetch(local) == local
    assert await cache.fetch(str(local)) == local
    assert await cache.fetch(f"file://{local}") == local
