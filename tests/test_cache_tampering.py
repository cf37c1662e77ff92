"""A tampered cache folder: nothing outside the cache root is ever served or deleted.

A cache root may be shared, restored from a backup, or written by another user: its
``entry.json`` files and folder layout are untrusted. A record naming a path outside its
entry is an absent entry (fetched again, never served); a symlink placed anywhere in the
root is never followed by a walk, a prune or a removal.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)
from conftest import put_gcs_objects, put_s3_objects
from servers import (
    OverlongProxy,
    Script,
    ScriptedServer,
    gcs_storage_options,
    s3_storage_options,
)

from asyncassets.cache import CheckpointCache
from asyncassets.errors import AssetDownloadError

PAYLOAD = os.urandom(64 * 1024)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the cache, holding what an attacker wants served or deleted."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "m.bin").write_bytes(b"not the checkpoint")
    for name in ("v-0123456789ab", "partial-0123456789ab", ".building-0123456789ab"):
        (folder / name).mkdir()
        (folder / name / "precious").write_text("keep me")
    return folder


def _entry_json(cache: CheckpointCache) -> Path:
    [entry] = [p for p in cache.root.iterdir() if p.is_dir() and p.name != ".locks"]
    return entry / "entry.json"


def _rewrite(entry_json: Path, **changes: object) -> None:
    data = json.loads(entry_json.read_text())
    data.update(changes)
    entry_json.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "version_dir",
    ["../../outside", "../../../outside", "/tmp", "v-0123456789ab/../../..", "v-../x", ".."],
)
async def test_an_entry_naming_a_path_outside_the_cache_is_absent(
    cache: CheckpointCache,
    scripted_http_server: ScriptedServer,
    outside: Path,
    version_dir: str,
) -> None:
    url = scripted_http_server.put("m.bin", PAYLOAD)
    await cache.fetch(url)
    _rewrite(_entry_json(cache), version_dir=version_dir)

    assert cache.path_of(url) is None
    with pytest.raises(AssetDownloadError, match="not in the cache"):
        await cache.fetch(url, local_only=True)
    path = await cache.fetch(url)  # online: fetched again, inside the cache
    assert path.read_bytes() == PAYLOAD
    assert path.resolve().is_relative_to(cache.root.resolve())
    assert (outside / "m.bin").read_bytes() == b"not the checkpoint"


@pytest.mark.parametrize("name", ["../../outside/m.bin", "..", "a/b", "x\x00y", ""])
async def test_an_entry_with_an_unsafe_file_name_is_absent(
    cache: CheckpointCache, scripted_http_server: ScriptedServer, name: str
) -> None:
    url = scripted_http_server.put("m.bin", PAYLOAD)
    await cache.fetch(url)
    _rewrite(_entry_json(cache), name=name)
    assert cache.path_of(url) is None
    assert (await cache.fetch(url)).read_bytes() == PAYLOAD


async def test_a_version_folder_that_is_a_symlink_out_of_the_cache_is_absent(
    cache: CheckpointCache, scripted_http_server: ScriptedServer, outside: Path
) -> None:
    url = scripted_http_server.put("m.bin", PAYLOAD)
    path = await cache.fetch(url)
    version = path.parent
    for child in version.iterdir():
        child.unlink()
    version.rmdir()
    version.symlink_to(outside, target_is_directory=True)

    assert cache.path_of(url) is None
    with pytest.raises(AssetDownloadError, match="not in the cache"):
        await cache.fetch(url, local_only=True)
    assert (await cache.fetch(url)).read_bytes() == PAYLOAD
    assert (outside / "m.bin").read_bytes() == b"not the checkpoint"


async def test_prune_never_follows_a_symlink_in_the_root(
    cache: CheckpointCache, scripted_http_server: ScriptedServer, outside: Path
) -> None:
    url = scripted_http_server.put("m.bin", PAYLOAD)
    await cache.fetch(url)
    entry = _entry_json(cache).parent
    (cache.root / "planted").symlink_to(outside, target_is_directory=True)
    (entry / "v-fedcba987654").symlink_to(outside / "v-0123456789ab", target_is_directory=True)
    (entry / "partial-fedcba987654").symlink_to(outside / "partial-0123456789ab")

    await cache.prune(max_bytes=0, grace=0)

    for name in ("v-0123456789ab", "partial-0123456789ab", ".building-0123456789ab"):
        assert (outside / name / "precious").read_text() == "keep me"
    assert not (entry / "v-fedcba987654").is_symlink()  # the planted links are gone ...
    assert not (entry / "partial-fedcba987654").is_symlink()
    assert [e.key for e in cache.entries()] == []  # ... and the real entry evicted


async def test_a_removal_reports_only_what_is_gone(
    cache: CheckpointCache, scripted_http_server: ScriptedServer, outside: Path
) -> None:
    url = scripted_http_server.put("m.bin", PAYLOAD)
    await cache.fetch(url)
    entry = _entry_json(cache).parent
    # The entry's folder replaced by a symlink to a folder outside: removing the entry
    # removes the link, and nothing it points at.
    os.rename(entry, cache.root.parent / "moved")
    entry.symlink_to(outside, target_is_directory=True)
    assert await cache.remove(url) is True
    assert not entry.is_symlink() and not entry.exists()
    assert (outside / "m.bin").read_bytes() == b"not the checkpoint"
    assert await cache.remove(url) is False


# -- a hostile server ---------------------------------------------------------------------------

SIZE = 3 * 256 * 1024 + 1000  # four parts, the last a short one


@pytest.fixture
def parted(make_cache: Callable[..., CheckpointCache]) -> CheckpointCache:
    from asyncassets.cache import RetryPolicy

    retry = RetryPolicy(attempts=4, initial=0.01, maximum=0.05)
    return make_cache("parted", part_size=256 * 1024, concurrency=4, retry=retry)


async def test_an_over_long_ranged_answer_is_never_written(
    parted: CheckpointCache, scripted_http_server: ScriptedServer
) -> None:
    payload = os.urandom(SIZE)
    script = Script(overlong_first=4)  # every part, the last one too
    url = scripted_http_server.put("m.bin", payload, script)
    path = await parted.fetch(url)
    assert script.overlong_first == 0  # the server did send its long answers
    assert path.stat().st_size == SIZE
    assert path.read_bytes() == payload  # no tail, no shifted part


async def test_a_server_that_always_answers_too_long_publishes_nothing(
    parted: CheckpointCache, scripted_http_server: ScriptedServer
) -> None:
    url = scripted_http_server.put("m.bin", os.urandom(SIZE), Script(overlong_first=10_000))
    with pytest.raises(AssetDownloadError, match="more bytes than asked for"):
        await parted.fetch(url)
    assert parted.path_of(url) is None
    assert [e for e in parted.entries() if e.complete] == []


@pytest.mark.parametrize("store", ["s3", "gs"])
async def test_an_object_store_answering_too_long_never_gets_its_tail_written(
    parted: CheckpointCache,
    request: pytest.FixtureRequest,
    overlong_proxy: Callable[..., OverlongProxy],
    store: str,
) -> None:
    """S3 and GCS reads go through fsspec, not the HTTP transport: the same guarantee, with
    a hostile object store (a proxy before moto or the GCS emulator) lengthening every
    ranged answer. The fetch falls back to whole reads and publishes the exact object."""
    payload = os.urandom(SIZE)
    bucket = f"overlong-{uuid.uuid4().hex[:12]}"
    if store == "s3":
        endpoint = request.getfixturevalue("moto_server")
        put_s3_objects(endpoint, bucket, {"m.bin": payload})
        proxy = overlong_proxy(endpoint, 10_000)
        options = s3_storage_options(proxy.url)
    else:
        endpoint = request.getfixturevalue("gcs_emulator")
        put_gcs_objects(endpoint, bucket, {"m.bin": payload})
        proxy = overlong_proxy(endpoint, 10_000)
        options = gcs_storage_options(proxy.url)
    uri = f"{store}://{bucket}/m.bin"
    path = await parted.fetch(uri, storage_options=options, progress=False)
    assert proxy.lengthened > 0, "the proxy did lengthen ranged answers"
    assert path.stat().st_size == SIZE
    assert path.read_bytes() == payload


@pytest.mark.parametrize("announced", [2**62, 2**50])
async def test_a_huge_announced_size_fails_at_once_and_clearly(
    parted: CheckpointCache, scripted_http_server: ScriptedServer, announced: int
) -> None:
    import resource

    url = scripted_http_server.put("m.bin", os.urandom(1000), Script(announce_size=announced))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(AssetDownloadError, match=r"announces .* bytes.*free"):
        await parted.fetch(url)
    # No list of 2**44 parts was built: the peak memory barely moved (KiB).
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024
    assert scripted_http_server.stats.bytes_for("/m.bin") == 0  # not one byte asked for
    assert [e for e in parted.entries() if e.complete] == []


# -- a disk that refuses the file ---------------------------------------------------------------

LIMITED_CHILD = """
import asyncio, resource, signal, sys
from asyncassets.cache import CheckpointCache, RetryPolicy
from asyncassets.durable import write_json_atomic
from asyncassets.errors import AssetDownloadError
from pathlib import Path
from typing import Any

# A file-size limit, as a full disk or a small quota refuses a write: EFBIG, not a signal.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
root, url = Path(sys.argv[1]), sys.argv[2]
try:
    write_json_atomic(root / "big.json", {"x": "y" * 200_000})
except OSError as exc:
    print("json:", exc.errno)
cache = CheckpointCache(root / "cache", retry=RetryPolicy(attempts=6, initial=0.01, maximum=0.02))
try:
    asyncio.run(cache.fetch(url, progress=False))
except AssetDownloadError as exc:
    print("fetch:", exc)
"""


def test_a_refused_write_leaves_no_temporary_file_and_is_not_retried(
    tmp_path: Path, scripted_http_server: ScriptedServer
) -> None:
    import errno
    import subprocess
    import sys

    from fetch_children import REPO

    url = scripted_http_server.put("big.bin", os.urandom(512 * 1024))
    out = subprocess.run(
        [sys.executable, "-c", LIMITED_CHILD, str(tmp_path), url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    ).stdout
    assert f"json: {errno.EFBIG}" in out
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []  # nothing half-written left
    fetch = next(line for line in out.splitlines() if line.startswith("fetch:"))
    assert "larger than this file system or process allows" in fetch
    assert "gave up after" not in fetch  # nothing was retried, so none is said
    gets = [r for r in scripted_http_server.stats.requests if r[0] == "GET"]
    assert len(gets) <= 4  # the parts in flight once, no retries


# -- redirects ----------------------------------------------------------------------------------


class RedirectingServer:
    """``/signed.bin`` redirects each GET to a presigned URL of a CDN that answers 503;
    ``/ftp.bin`` redirects to an ftp:// URL. HEAD answers the size."""

    SECRET = "SIGNATURE-VALUE-abc123"

    def __init__(self) -> None:
        from aiohttp import web
        from servers import ThreadedApp

        self.gets: dict[str, int] = {}
        cdn = web.Application()
        cdn.router.add_get("/blob", self._cdn)
        self.cdn = ThreadedApp(cdn)
        app = web.Application()
        app.router.add_get("/{name}", self._origin)
        self.origin = ThreadedApp(app)

    async def _cdn(self, request: Any) -> Any:
        from aiohttp import web

        self.gets["cdn"] = self.gets.get("cdn", 0) + 1
        return web.Response(status=503, text="busy")

    async def _origin(self, request: Any) -> Any:
        from aiohttp import web

        name = request.match_info["name"]
        if request.method == "HEAD":
            return web.Response(headers={"Content-Length": "4096", "ETag": '"v1"'})
        self.gets[name] = self.gets.get(name, 0) + 1
        if name == "ftp.bin":
            raise web.HTTPFound("ftp://127.0.0.1/blob")
        signed = f"{self.cdn.url}/blob?X-Amz-Signature={self.SECRET}&X-Amz-Expires=60"
        raise web.HTTPFound(signed)

    def __enter__(self) -> RedirectingServer:
        self.cdn.start()
        self.origin.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.origin.stop()
        self.cdn.stop()


async def test_retry_warnings_never_show_a_signed_redirect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from asyncassets.cache import RetryPolicy

    caplog.set_level(logging.DEBUG, logger="asyncassets")
    retry = RetryPolicy(attempts=3, initial=0.01, maximum=0.02)
    cache = CheckpointCache(tmp_path / "cache", retry=retry)
    with RedirectingServer() as server:
        with pytest.raises(AssetDownloadError) as info:
            await cache.fetch(f"{server.origin.url}/signed.bin", progress=False)
        assert server.gets["cdn"] >= 2  # it was retried, and said so
    assert "retrying" in caplog.text
    assert RedirectingServer.SECRET not in caplog.text
    assert RedirectingServer.SECRET not in str(info.value)


async def test_a_redirect_to_another_scheme_is_not_retried(tmp_path: Path) -> None:
    from asyncassets.cache import RetryPolicy

    retry = RetryPolicy(attempts=6, initial=0.01, maximum=0.02)
    cache = CheckpointCache(tmp_path / "cache", retry=retry)
    with RedirectingServer() as server:
        with pytest.raises(AssetDownloadError, match="not HTTP") as info:
            await cache.fetch(f"{server.origin.url}/ftp.bin", progress=False)
        assert server.gets["ftp.bin"] == 1
    assert "gave up after" not in str(info.value)


# -- stalled peers: a cancelled fetch returns at once ---------------------------------------


class Silent:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[Any] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


async def test_a_fetch_from_a_hub_that_never_answers_can_be_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    import anyio

    silent = Silent()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.port}")
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    cache = CheckpointCache(tmp_path / "cache")
    try:
        with anyio.fail_after(15):  # before: the API call waited for ever
            started = time.monotonic()
            with anyio.move_on_after(1) as scope:
                await cache.fetch("hg://org/model", progress=False)
            assert scope.cancelled_caught
            assert time.monotonic() - started < 5
    finally:
        silent.close()


async def test_a_fetch_stalled_mid_body_can_be_cancelled(
    tmp_path: Path, scripted_http_server: ScriptedServer
) -> None:
    import time

    import anyio

    # 100 bytes a second: every part stalls in the middle of its body.
    url = scripted_http_server.put("slow.bin", os.urandom(2**20), Script(rate=100))
    cache = CheckpointCache(tmp_path / "cache", part_size=256 * 1024)
    with anyio.fail_after(15):  # before, on trio: until the socket's 60 s timeout
        started = time.monotonic()
        with anyio.move_on_after(1) as scope:
            await cache.fetch(url, progress=False)
        assert scope.cancelled_caught
        assert time.monotonic() - started < 5
    assert cache.path_of(url) is None
