"""Nothing but AssetDownloadError leaves fetch, and each says what went wrong: the cache's
own disk is never reported as a failed download, a URL that can never work is not
retried."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import pytest
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)

from asyncassets.cache import CheckpointCache, RetryPolicy
from asyncassets.errors import AssetDownloadError

FAST = RetryPolicy(attempts=3, initial=0.01, maximum=0.02)


@pytest.fixture
def memory_uri() -> str:
    path = f"/errors-{uuid.uuid4().hex[:8]}/m.bin"
    fsspec.filesystem("memory").pipe(path, b"x" * 1000)
    return f"memory:/{path}"


async def test_a_cache_root_under_a_file_is_reported_as_such(
    tmp_path: Path, memory_uri: str
) -> None:
    (tmp_path / "afile").write_text("not a folder")
    cache = CheckpointCache(tmp_path / "afile" / "cache", retry=FAST)
    with pytest.raises(AssetDownloadError) as info:
        await cache.fetch(memory_uri, progress=False)
    message = str(info.value)
    assert "is a file, not a folder" in message and "--cache-dir" in message
    assert "attempts" not in message


@pytest.mark.parametrize(
    "uri", ["zip://x", "nosuch://bucket/m.pt", "http://[::1", "memory://no/such.bin"]
)
async def test_a_uri_that_cannot_work_is_one_asset_error_without_retries(
    tmp_path: Path, uri: str
) -> None:
    cache = CheckpointCache(tmp_path / "cache", retry=FAST)
    with pytest.raises(AssetDownloadError) as info:
        await cache.fetch(uri, progress=False)
    assert "attempts" not in str(info.value)
    assert uri.split("://")[0] in str(info.value)


async def test_a_bad_sha256_argument_is_an_asset_error(tmp_path: Path, memory_uri: str) -> None:
    cache = CheckpointCache(tmp_path / "cache")
    with pytest.raises(AssetDownloadError, match="sha256"):
        await cache.fetch(memory_uri, sha256="not-hex", progress=False)


async def test_a_cached_file_that_does_not_match_the_checksum_is_removed(
    tmp_path: Path, memory_uri: str
) -> None:
    cache = CheckpointCache(tmp_path / "cache")
    path = await cache.fetch(memory_uri, progress=False)
    with pytest.raises(AssetDownloadError, match="removed"):
        await cache.fetch(memory_uri, sha256="0" * 64, progress=False)
    assert not path.exists()
    assert cache.path_of(memory_uri) is None
