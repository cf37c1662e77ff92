"""CheckpointCache.fetch against each kind of source: S3, GCS, HTTP, a folder, a local path."""

from __future__ import annotations

import io
import tarfile
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)
from servers import StaticServer, gcs_storage_options, random_bytes, s3_storage_options

from asyncassets.cache import CheckpointCache, RetryPolicy
from asyncassets.errors import AssetDownloadError

FAST_RETRY = RetryPolicy(attempts=4, initial=0.01, maximum=0.05)
PART = 256 * 1024


@pytest.fixture
def cache_settings() -> dict[str, Any]:
    return {"part_size": PART, "concurrency": 4, "retry": FAST_RETRY}


@pytest.fixture
def payload() -> bytes:
    return random_bytes(3 * PART + 4321)


@pytest.fixture
def s3(moto_server: str, request: pytest.FixtureRequest) -> tuple[Any, str, dict[str, Any]]:
    options = s3_storage_options(moto_server)
    fs = fsspec.filesystem("s3", skip_instance_cache=True, **options)
    bucket = f"b-{uuid.uuid4().hex[:20]}"
    fs.mkdir(bucket)
    return fs, bucket, options


async def test_s3_file_is_fetched_with_ranged_reads(
    cache: CheckpointCache, s3: tuple[Any, str, dict[str, Any]], payload: bytes
) -> None:
    fs, bucket, options = s3
    fs.pipe(f"{bucket}/ckpt/model.pt", payload)
    path = await cache.fetch(f"s3://{bucket}/ckpt/model.pt", storage_options=options)
    assert path.name == "model.pt"
    assert path.read_bytes() == payload


async def test_s3_folder_of_shards_is_fetched_whole(
    cache: CheckpointCache, s3: tuple[Any, str, dict[str, Any]], payload: bytes
) -> None:
    fs, bucket, options = s3
    shards = {f"ckpt/shard-{i}.bin": payload[i * 1000 :] for i in range(3)}
    shards["ckpt/tokenizer/vocab.txt"] = b"a b c"
    for name, data in shards.items():
        fs.pipe(f"{bucket}/{name}", data)
    path = await cache.fetch(f"s3://{bucket}/ckpt", storage_options=options)
    assert path.is_dir()
    got = {str(p.relative_to(path.parent)): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    assert got == shards


async def test_s3_cache_hit_returns_same_path(
    cache: CheckpointCache, s3: tuple[Any, str, dict[str, Any]], payload: bytes
) -> None:
    fs, bucket, options = s3
    fs.pipe(f"{bucket}/m.bin", payload)
    first = await cache.fetch(f"s3://{bucket}/m.bin", storage_options=options)
    second = await cache.fetch(f"s3://{bucket}/m.bin", storage_options=options)
    assert first == second


async def test_s3_missing_object_raises_download_error_naming_uri(
    cache: CheckpointCache, s3: tuple[Any, str, dict[str, Any]]
) -> None:
    _, bucket, options = s3
    uri = f"s3://{bucket}/nope/model.pt"
    with pytest.raises(AssetDownloadError, match=r"nope/model.pt") as info:
        await cache.fetch(uri, storage_options=options)
    assert info.value.uri == uri


async def test_gcs_file_is_fetched(
    cache: CheckpointCache, gcs_emulator: str, payload: bytes
) -> None:
    options = gcs_storage_options(gcs_emulator)
    fs = fsspec.filesystem("gcs", skip_instance_cache=True, **options)
    bucket = f"gcs-file-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    fs.pipe(f"{bucket}/ckpt/model.pt", payload)
    path = await cache.fetch(f"gs://{bucket}/ckpt/model.pt", storage_options=options)
    assert path.read_bytes() == payload


async def test_gcs_folder_is_fetched_whole(
    cache: CheckpointCache, gcs_emulator: str, payload: bytes
) -> None:
    options = gcs_storage_options(gcs_emulator)
    fs = fsspec.filesystem("gcs", skip_instance_cache=True, **options)
    bucket = f"gcs-dir-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    fs.pipe(f"{bucket}/ckpt/a.bin", payload)
    fs.pipe(f"{bucket}/ckpt/b.bin", payload[::-1])
    path = await cache.fetch(f"gs://{bucket}/ckpt", storage_options=options)
    assert (path / "a.bin").read_bytes() == payload
    assert (path / "b.bin").read_bytes() == payload[::-1]


async def test_http_file_is_fetched_in_ranged_parts(
    cache: CheckpointCache, http_static_server: StaticServer, payload: bytes
) -> None:
    base_url, folder = http_static_server
    name = f"ranged-{uuid.uuid4().hex[:8]}.bin"
    (folder / name).write_bytes(payload)
    path = await cache.fetch(f"{base_url}/{name}")
    assert path.read_bytes() == payload
    assert http_static_server.stats.count(f"/{name}", "GET") == 4  # 3 full parts + 1 tail
    assert http_static_server.stats.bytes_for(f"/{name}") == len(payload)


async def test_http_cache_hit_costs_one_head_request(
    cache: CheckpointCache, http_static_server: StaticServer, payload: bytes
) -> None:
    base_url, folder = http_static_server
    name = f"hit-{uuid.uuid4().hex[:8]}.bin"
    (folder / name).write_bytes(payload)
    await cache.fetch(f"{base_url}/{name}")
    before = http_static_server.stats.count(f"/{name}")
    await cache.fetch(f"{base_url}/{name}")
    assert http_static_server.stats.count(f"/{name}") - before == 1
    assert http_static_server.stats.requests[-1][0] == "HEAD"


async def test_memory_url_is_fetched(cache: CheckpointCache, payload: bytes) -> None:
    fs = fsspec.filesystem("memory")
    name = f"/cache-tests/{uuid.uuid4().hex[:8]}/model.bin"
    fs.pipe(name, payload)
    path = await cache.fetch(f"memory:/{name}")
    assert path.read_bytes() == payload


async def test_local_path_is_returned_as_is(cache: CheckpointCache, tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    assert await cache.fetch(model) == model
    assert not cache.root.exists()


async def test_file_url_is_returned_as_local_path(cache: CheckpointCache, tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    assert await cache.fetch(model.as_uri()) == model


async def test_missing_local_path_raises_download_error(
    cache: CheckpointCache, tmp_path: Path
) -> None:
    with pytest.raises(AssetDownloadError, match=r"missing.pt"):
        await cache.fetch(tmp_path / "missing.pt")


async def test_default_root_follows_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASYNCASSETS_CACHE_DIR", str(tmp_path / "env-cache"))
    assert CheckpointCache().root == tmp_path / "env-cache"
    monkeypatch.delenv("ASYNCASSETS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert CheckpointCache().root == tmp_path / "xdg" / "asyncassets"


async def test_s3_archive_is_extracted_and_then_served_from_the_cache(
    cache: CheckpointCache, s3: tuple[Any, str, dict[str, Any]]
) -> None:
    fs, bucket, options = s3
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        info = tarfile.TarInfo("vocab.txt")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"a b c"))
    fs.pipe(f"{bucket}/tok.tar.gz", buffer.getvalue())
    first = await cache.fetch(f"s3://{bucket}/tok.tar.gz", storage_options=options, extract=True)
    second = await cache.fetch(f"s3://{bucket}/tok.tar.gz", storage_options=options, extract=True)
    assert first == second
    assert (first / "vocab.txt").read_bytes() == b"a b c"
