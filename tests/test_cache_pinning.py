"""Every ranged read is pinned to the version described when the download started, and every
ranged answer's validator is compared: an object overwritten mid-download (same size, new
content) never yields an entry mixing two versions. Real servers on 127.0.0.1: HTTP servers
that honour or ignore ``If-Match`` / ``If-Unmodified-Since``, moto (S3) and the GCS emulator
behind a proxy that overwrites the object between two parts."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pytest
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)
from pinning_servers import *  # noqa: F403  (the fixtures swapping_server, hook_proxy)
from pinning_servers import HookProxy, SwappingServer
from servers import gcs_storage_options, random_bytes, s3_storage_options

from asyncassets.cache import CheckpointCache, RetryPolicy
from asyncassets.errors import AssetDownloadError

FAST_RETRY = RetryPolicy(attempts=3, initial=0.01, maximum=0.05)
PART = 64 * 1024
SIZE = 4 * PART + 123  # five parts

MakeSwapping = Callable[..., SwappingServer]
MakeProxy = Callable[..., HookProxy]


@pytest.fixture
def cache_settings() -> dict[str, Any]:
    # One part at a time: the overwrite lands between two parts of one download.
    return {"part_size": PART, "concurrency": 1, "retry": FAST_RETRY}


@pytest.fixture
def old() -> bytes:
    return random_bytes(SIZE)


@pytest.fixture
def new() -> bytes:
    return random_bytes(SIZE)


def ranged(server: SwappingServer) -> list[Any]:
    return [seen for seen in server.seen if seen.method == "GET" and seen.range]


# -- HTTP ------------------------------------------------------------------------------------


async def test_http_if_match_412_restarts_on_the_new_version(
    cache: CheckpointCache, swapping_server: MakeSwapping, old: bytes, new: bytes
) -> None:
    server = swapping_server()
    url = server.put("model.bin", [old, new])
    path = await cache.fetch(url, progress=False)
    assert path.read_bytes() == new
    gets = ranged(server)
    assert all(seen.if_match for seen in gets)
    assert 412 in [seen.status for seen in gets]


async def test_http_server_ignoring_if_match_is_caught_by_the_answer_etag(
    cache: CheckpointCache, swapping_server: MakeSwapping, old: bytes, new: bytes
) -> None:
    server = swapping_server(honour_preconditions=False)
    url = server.put("model.bin", [old, new])
    path = await cache.fetch(url, progress=False)
    assert path.read_bytes() == new
    assert 412 not in [seen.status for seen in server.seen]


async def test_http_without_etag_pins_last_modified_with_if_unmodified_since(
    cache: CheckpointCache, swapping_server: MakeSwapping, old: bytes, new: bytes
) -> None:
    server = swapping_server(send_etag=False)
    url = server.put("model.bin", [old, new])
    path = await cache.fetch(url, progress=False)
    assert path.read_bytes() == new
    gets = ranged(server)
    assert all(seen.if_unmodified_since and not seen.if_match for seen in gets)
    assert 412 in [seen.status for seen in gets]


async def test_http_without_etag_ignoring_preconditions_is_caught_by_last_modified(
    cache: CheckpointCache, swapping_server: MakeSwapping, old: bytes, new: bytes
) -> None:
    server = swapping_server(send_etag=False, honour_preconditions=False)
    url = server.put("model.bin", [old, new])
    path = await cache.fetch(url, progress=False)
    assert path.read_bytes() == new


@pytest.mark.parametrize("honour", [True, False])
async def test_http_object_that_keeps_changing_fails_clearly_and_publishes_nothing(
    cache: CheckpointCache,
    swapping_server: MakeSwapping,
    old: bytes,
    new: bytes,
    honour: bool,
) -> None:
    server = swapping_server(honour_preconditions=honour)
    url = server.put("model.bin", [old, new], swaps=1000)
    with pytest.raises(AssetDownloadError, match="changed during the download") as caught:
        await cache.fetch(url, progress=False)
    assert caught.value.uri == url
    assert url in str(caught.value)
    assert cache.entries() == []
    server.stop_swapping("model.bin")
    path = await cache.fetch(url, progress=False)
    assert path.read_bytes() in (old, new)


@pytest.mark.parametrize("honour", [True, False])
async def test_http_parallel_parts_never_mix_versions(
    tmp_path: Path,
    swapping_server: MakeSwapping,
    old: bytes,
    new: bytes,
    honour: bool,
) -> None:
    cache = CheckpointCache(tmp_path / "c", part_size=PART, concurrency=4, retry=FAST_RETRY)
    server = swapping_server(honour_preconditions=honour)
    url = server.put("model.bin", [old, new], swaps=2)
    path = await cache.fetch(url, progress=False)
    assert path.read_bytes() in (old, new)


# -- S3 (moto behind a proxy that overwrites the object between parts) ----------------------


@pytest.fixture
def s3(moto_server: str) -> tuple[Any, str]:
    fs = fsspec.filesystem("s3", skip_instance_cache=True, **s3_storage_options(moto_server))
    bucket = f"pin-{uuid.uuid4().hex[:20]}"
    fs.mkdir(bucket)
    return fs, bucket


def _overwrite_once(fs: Any, path: str, data: bytes) -> Callable[[int], None]:
    def hook(n: int) -> None:
        if n == 1:
            fs.pipe(path, data)

    return hook


@pytest.mark.parametrize("drop_if_match", [False, True], ids=["honoured", "ignored"])
async def test_s3_overwrite_between_parts_restarts_on_the_new_version(
    cache: CheckpointCache,
    s3: tuple[Any, str],
    moto_server: str,
    hook_proxy: MakeProxy,
    old: bytes,
    new: bytes,
    drop_if_match: bool,
) -> None:
    fs, bucket = s3
    fs.pipe(f"{bucket}/model.bin", old)
    proxy = hook_proxy(moto_server, _overwrite_once(fs, f"{bucket}/model.bin", new), drop_if_match)
    path = await cache.fetch(
        f"s3://{bucket}/model.bin",
        storage_options=s3_storage_options(proxy.url),
        progress=False,
    )
    assert path.read_bytes() == new
    assert proxy.if_match_seen > 0  # no VersionId in an unversioned bucket: IfMatch pins
    assert (412 in proxy.statuses) is not drop_if_match


async def test_s3_versioned_bucket_keeps_reading_the_version_described(
    cache: CheckpointCache,
    s3: tuple[Any, str],
    moto_server: str,
    hook_proxy: MakeProxy,
    old: bytes,
    new: bytes,
) -> None:
    fs, bucket = s3
    fs.make_bucket_versioned(bucket)
    fs.pipe(f"{bucket}/model.bin", old)
    proxy = hook_proxy(moto_server, _overwrite_once(fs, f"{bucket}/model.bin", new))
    path = await cache.fetch(
        f"s3://{bucket}/model.bin",
        storage_options=s3_storage_options(proxy.url),
        progress=False,
    )
    assert path.read_bytes() == old
    assert proxy.ranged_gets == 5  # one pass: every part read the pinned VersionId


@pytest.mark.parametrize("drop_if_match", [False, True], ids=["honoured", "ignored"])
async def test_s3_object_that_keeps_changing_fails_clearly(
    cache: CheckpointCache,
    s3: tuple[Any, str],
    moto_server: str,
    hook_proxy: MakeProxy,
    old: bytes,
    new: bytes,
    drop_if_match: bool,
) -> None:
    fs, bucket = s3
    fs.pipe(f"{bucket}/model.bin", old)

    def hook(n: int) -> None:
        fs.pipe(f"{bucket}/model.bin", new if n % 2 else old)

    proxy = hook_proxy(moto_server, hook, drop_if_match)
    uri = f"s3://{bucket}/model.bin"
    with pytest.raises(AssetDownloadError, match="changed during the download") as caught:
        await cache.fetch(uri, storage_options=s3_storage_options(proxy.url), progress=False)
    assert caught.value.uri == uri
    assert cache.entries() == []


# -- GCS (the emulator, which ignores generations, behind the same proxy) --------------------


@pytest.fixture
def gcs(gcs_emulator: str) -> tuple[Any, str]:
    fs = fsspec.filesystem("gcs", skip_instance_cache=True, **gcs_storage_options(gcs_emulator))
    bucket = f"pin-{uuid.uuid4().hex[:20]}"
    fs.mkdir(bucket)
    return fs, bucket


async def test_gcs_overwrite_between_parts_restarts_on_the_new_generation(
    cache: CheckpointCache,
    gcs: tuple[Any, str],
    gcs_emulator: str,
    hook_proxy: MakeProxy,
    old: bytes,
    new: bytes,
) -> None:
    fs, bucket = gcs
    fs.pipe(f"{bucket}/model.bin", old)
    proxy = hook_proxy(gcs_emulator, _overwrite_once(fs, f"{bucket}/model.bin", new))
    path = await cache.fetch(
        f"gs://{bucket}/model.bin",
        storage_options=gcs_storage_options(proxy.url),
        progress=False,
    )
    assert path.read_bytes() == new


async def test_gcs_object_that_keeps_changing_fails_clearly(
    cache: CheckpointCache,
    gcs: tuple[Any, str],
    gcs_emulator: str,
    hook_proxy: MakeProxy,
    old: bytes,
    new: bytes,
) -> None:
    fs, bucket = gcs
    fs.pipe(f"{bucket}/model.bin", old)

    def hook(n: int) -> None:
        fs.pipe(f"{bucket}/model.bin", new if n % 2 else old)

    proxy = hook_proxy(gcs_emulator, hook)
    uri = f"gs://{bucket}/model.bin"
    with pytest.raises(AssetDownloadError, match="changed during the download") as caught:
        await cache.fetch(uri, storage_options=gcs_storage_options(proxy.url), progress=False)
    assert caught.value.uri == uri
    assert cache.entries() == []
