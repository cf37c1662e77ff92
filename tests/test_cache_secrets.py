"""Signed URLs: keyed without their signature, which is never written, logged or shown."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)
from servers import StaticServer

from asyncassets.cache import CheckpointCache
from asyncassets.cli import main
from asyncassets.errors import AssetDownloadError
from asyncassets.urls import public_uri, scrub

SIGNED = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20261128&X-Amz-Signature={sig}"
)


@pytest.fixture
def cache_settings() -> dict[str, Any]:
    return {"part_size": 2**20, "concurrency": 4}


def all_cache_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_public_uri_drops_signatures_user_info_and_credentials_but_keeps_the_object() -> None:
    uri = (
        "https://user:pw@bucket.s3.amazonaws.com/ckpt/m.pt?versionId=7&"
        + SIGNED.format(sig="deadbeef")
        + "&token=hunter2&sv=2024-01-01&sig=azure"
    )
    assert public_uri(uri) == "https://bucket.s3.amazonaws.com/ckpt/m.pt?versionId=7"


def test_scrub_hides_signature_values_inside_any_text() -> None:
    text = "GET https://h/x?X-Goog-Signature=abc123&a=1&sig=zzz failed"
    assert scrub(text) == "GET https://h/x?X-Goog-Signature=…&a=1&sig=… failed"


async def test_a_re_signed_url_is_a_cache_hit_and_no_signature_reaches_the_disk(
    cache: CheckpointCache,
    http_static_server: StaticServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    base_url, folder = http_static_server
    name = f"signed-{uuid.uuid4().hex[:8]}.bin"
    payload = os.urandom(3 * 2**20 + 5)
    (folder / name).write_bytes(payload)
    caplog.set_level(logging.DEBUG, logger="asyncassets")
    first = await cache.fetch(f"{base_url}/{name}?{SIGNED.format(sig='firstsignature')}")
    head_before = http_static_server.stats.count(f"/{name}", "GET")
    second = await cache.fetch(f"{base_url}/{name}?{SIGNED.format(sig='secondsignature')}")
    assert first == second and second.read_bytes() == payload
    assert http_static_server.stats.count(f"/{name}", "GET") == head_before  # no new GET
    stored = all_cache_bytes(cache.root)
    for secret in (b"firstsignature", b"secondsignature", b"AKIAEXAMPLE"):
        assert secret not in stored
    assert "signature" not in caplog.text.lower().replace("x-amz-signature=…", "")
    [entry] = cache.entries()
    assert entry.uri == f"{base_url}/{name}"


async def test_an_error_about_a_signed_url_never_shows_the_signature(
    cache: CheckpointCache, http_static_server: StaticServer
) -> None:
    base_url, _ = http_static_server
    with pytest.raises(AssetDownloadError) as info:
        await cache.fetch(
            f"{base_url}/missing-{uuid.uuid4().hex}.bin?{SIGNED.format(sig='s3cr3t')}"
        )
    assert "s3cr3t" not in str(info.value) and "AKIAEXAMPLE" not in str(info.value)
    assert info.value.uri is not None and "s3cr3t" not in info.value.uri


def test_cache_ls_never_prints_a_signature(
    http_static_server: StaticServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base_url, folder = http_static_server
    name = f"ls-{uuid.uuid4().hex[:8]}.bin"
    (folder / name).write_bytes(b"z" * 1000)
    cache_dir = str(tmp_path / "cache")
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "m.yaml").write_text(
        f"name: m\ncheckpoint: '{base_url}/{name}?{SIGNED.format(sig='cardsig')}'\n"
    )
    assert main(["--store", str(cards), "--cache-dir", cache_dir, "-v", "prefetch", "m"]) == 0
    assert main(["--cache-dir", cache_dir, "cache", "ls"]) == 0
    assert main(["--cache-dir", cache_dir, "cache", "ls", "--json"]) == 0
    captured = capsys.readouterr()
    assert "cardsig" not in captured.out + captured.err
    assert name in captured.out
