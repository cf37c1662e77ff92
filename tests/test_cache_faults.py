"""How fetch behaves when the server misbehaves, the bytes are wrong or the network is off."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)
from servers import Script, ScriptedServer

from asyncassets.cache import CheckpointCache, RetryPolicy
from asyncassets.errors import AssetDownloadError, ChecksumMismatchError

PART = 256 * 1024
SIZE = 4 * PART + 999


@pytest.fixture
def cache_settings() -> dict[str, Any]:
    retry = RetryPolicy(attempts=5, initial=0.01, maximum=0.05)
    return {"part_size": PART, "concurrency": 4, "retry": retry}


@pytest.fixture
def payload() -> bytes:
    return os.urandom(SIZE)


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".locks" not in p.parts]


async def test_connection_resets_mid_part_are_retried_from_the_last_byte(
    cache: CheckpointCache, scripted_http_server: ScriptedServer, payload: bytes
) -> None:
    url = scripted_http_server.put("m.bin", payload, Script(reset_after=100_000, resets=3))
    path = await cache.fetch(url)
    assert path.read_bytes() == payload
    # The three reset parts resumed where they stopped: nothing was downloaded twice.
    assert scripted_http_server.stats.bytes_for("/m.bin") == SIZE


async def test_503_answers_are_retried(
    cache: CheckpointCache, scripted_http_server: ScriptedServer, payload: bytes
) -> None:
    url = scripted_http_server.put("m.bin", payload, Script(fail_first=3))
    path = await cache.fetch(url)
    assert path.read_bytes() == payload


async def test_truncated_bodies_are_completed(
    cache: CheckpointCache, scripted_http_server: ScriptedServer, payload: bytes
) -> None:
    url = scripted_http_server.put("m.bin", payload, Script(truncate_first=2))
    path = await cache.fetch(url)
    assert path.read_bytes() == payload


async def test_server_ignoring_range_still_gives_the_exact_file(
    cache: CheckpointCache, scripted_http_server: ScriptedServer, payload: bytes
) -> None:
    url = scripted_http_server.put("m.bin", payload, Script(ignore_range=True))
    path = await cache.fetch(url)
    assert path.stat().st_size == SIZE
    assert path.read_bytes() == payload


async def test_persistent_503_gives_up_with_download_error(
    cache: CheckpointCache, scripted_http_server: ScriptedServer, payload: bytes
) -> None:
    url = scripted_http_server.put("m.bin", payload, Script(status=503))
    with pytest.raises(AssetDownloadError, match=r"m.bin"):
        await cache.fetch(url)


async def test_not_found_fails_at_once_naming_the_uri(
    cache: CheckpointCache, scripted_http_server: ScriptedServer
) -> None:
    url = scripted_http_server.url("missing.bin")
    with pytest.raises(AssetDownloadError, match=r"missing.bin") as info:
        await cache.fetch(url)
    assert info.value.uri == url
    assert scripted_http_server.stats.count("/missing.bin") == 1


async def test_forbidden_fails_at_once_naming_the_uri(
    cache: CheckpointCache, scripted_http_server: ScriptedServer, payload: bytes
) -> None:
    url = scripted_http_server.put("secret.bin", payload, Script(status=403))
    with pytest.raises(AssetDownloadError, match=r"access denied.*secret.bin"):
        await cache.fetch(url)
    # A refused HEAD is asked again as a one-byte GET (presigned URLs refuse HEAD); no retries.
    assert scripted_http_server.stats.count("/secret.bin") == 2


async def test_server_refusing_head_is_described_with_a_one_byte_get(
    cache: CheckpointCache, scripted_http_server: ScriptedServer, payload: bytes
) -> None:
    url = scripted_http_server.put("nohead.bin", payload, Script(head_status=405))
    path = await cache.fetch(url)
    assert path.read_bytes() == payload
    assert scripted_http_server.stats.bytes_for("/nohead.bin") == SIZE + 1


async def test_error_message_never_shows_credentials(
    cache: CheckpointCache, scripted_http_server: ScriptedServer
) -> None:
    url = scripted_http_server.url("missing.bin").replace("http://", "http://user:hunter2@")
    with pytest.raises(AssetDownloadError) as info:
        await cache.fetch(url + "?token=hunter2")
    assert "hunter2" not in str(info.value)
    assert "missing.bin" in str(info.value)


async def test_checksum_mismatch_raises_and_keeps_nothing(
    cache: CheckpointCache, scripted_http_server: ScriptedServer, payload: bytes
) -> None:
    url = scripted_http_server.put("m.bin", payload)
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ChecksumMismatchError) as info:
        await cache.fetch(url, sha256=wrong)
    assert info.value.expected == wrong
    assert info.value.actual == hashlib.sha256(payload).hexdigest()
    assert _files_under(cache.root) == []
    assert cache.path_of(url) is None


async def test_matching_checksum_with_prefix_is_accepted(
    cache: CheckpointCache, scripted_http_server: ScriptedServer, payload: bytes
) -> None:
    url = scripted_http_server.put("m.bin", payload)
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    path = await cache.fetch(url, sha256=digest)
    assert path.read_bytes() == payload


async def test_offline_hit_makes_no_request(
    cache: CheckpointCache, scripted_http_server: ScriptedServer, payload: bytes
) -> None:
    url = scripted_http_server.put("m.bin", payload)
    online = await cache.fetch(url)
    scripted_http_server.stats.reset()
    assert await cache.fetch(url, local_only=True) == online
    assert scripted_http_server.stats.count() == 0


async def test_offline_environment_variable_acts_as_local_only(
    cache: CheckpointCache,
    scripted_http_server: ScriptedServer,
    payload: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = scripted_http_server.put("m.bin", payload)
    await cache.fetch(url)
    scripted_http_server.stats.reset()
    monkeypatch.setenv("ASYNCASSETS_OFFLINE", "1")
    await cache.fetch(url)
    assert scripted_http_server.stats.count() == 0


async def test_offline_without_entry_raises_clear_error(
    cache: CheckpointCache, scripted_http_server: ScriptedServer, payload: bytes
) -> None:
    url = scripted_http_server.put("m.bin", payload)
    with pytest.raises(AssetDownloadError, match=r"not in the cache.*offline"):
        await cache.fetch(url, local_only=True)
    assert scripted_http_server.stats.count() == 0


async def test_replaced_remote_object_is_fetched_again(
    cache: CheckpointCache, scripted_http_server: ScriptedServer, payload: bytes
) -> None:
    url = scripted_http_server.put("m.bin", payload)
    old = await cache.fetch(url)
    new_payload = os.urandom(SIZE + 10)
    scripted_http_server.put("m.bin", new_payload)
    new = await cache.fetch(url)
    assert new.read_bytes() == new_payload
    assert old.read_bytes() == payload  # a reader of the old path is never cut off
    await cache.prune(grace=3600)
    assert old.exists()  # superseded less than the grace period ago
    await cache.prune(grace=0)
    assert not old.exists() and new.read_bytes() == new_payload


async def test_force_downloads_again(
    cache: CheckpointCache, scripted_http_server: ScriptedServer, payload: bytes
) -> None:
    url = scripted_http_server.put("m.bin", payload)
    await cache.fetch(url)
    await cache.fetch(url, force=True)
    assert scripted_http_server.stats.bytes_for("/m.bin") == 2 * SIZE
