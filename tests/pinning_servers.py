"""Servers on 127.0.0.1 whose objects are overwritten in the middle of a download, for
``test_cache_pinning.py``.

- ``SwappingServer``: an aiohttp server of blobs that change (same size, new content, new
  ETag and Last-Modified) right after it answers a ranged GET, before the client can ask for
  the next part. It honours ``If-Match`` / ``If-Unmodified-Since`` or ignores them, and sends
  an ETag or only a Last-Modified, as told. Every request's pinning headers are recorded.
- ``HookProxy``: a reverse HTTP proxy in front of moto or the GCS emulator that runs a hook
  (overwrite the object in the store) after the upstream answered a ranged GET and before the
  client receives that answer; it can drop ``If-Match`` (a store that ignores it).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import pytest
from aiohttp import ClientSession, web
from servers import ThreadedApp

__all__ = [
    "HookProxy",
    "Seen",
    "SwappingServer",
    "hook_proxy",
    "swapping_server",
]

_BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    range: str | None
    if_match: str | None
    if_unmodified_since: str | None
    status: int


@dataclass
class _Blob:
    versions: list[bytes]
    swaps: int  # ranged GETs after which the content still changes
    generation: int = 0

    @property
    def data(self) -> bytes:
        return self.versions[self.generation % len(self.versions)]

    @property
    def etag(self) -> str:
        digest = hashlib.sha256(self.data).hexdigest()[:16]
        return f'"g{self.generation}-{digest}"'

    @property
    def modified(self) -> datetime:
        return _BASE_TIME + timedelta(seconds=10 * self.generation)


@dataclass
class SwappingServer:
    """Blobs that are overwritten right after a ranged GET (see the module docstring)."""

    honour_preconditions: bool = True
    send_etag: bool = True
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._blobs: dict[str, _Blob] = {}
        self._lock = threading.Lock()
        app = web.Application()
        app.router.add_route("*", "/{name:.+}", self._handle)
        self._app = ThreadedApp(app)

    def put(self, name: str, versions: list[bytes], *, swaps: int = 1) -> str:
        """Serve ``versions[0]`` at ``/name``; each of the first ``swaps`` ranged GETs is
        followed by the next version (cycling). Return the URL."""
        assert len({len(v) for v in versions}) == 1, "versions must have the same size"
        with self._lock:
            self._blobs["/" + name] = _Blob(list(versions), swaps)
        return f"{self._app.url}/{name}"

    def stop_swapping(self, name: str) -> None:
        with self._lock:
            self._blobs["/" + name].swaps = 0

    def _record(self, request: web.Request, status: int) -> None:
        headers = request.headers
        with self._lock:
            self.seen.append(
                Seen(
                    request.method,
                    headers.get("Range"),
                    headers.get("If-Match"),
                    headers.get("If-Unmodified-Since"),
                    status,
                )
            )

    def _validators(self, blob: _Blob) -> dict[str, str]:
        headers = {"Last-Modified": format_datetime(blob.modified, usegmt=True)}
        if self.send_etag:
            headers["ETag"] = blob.etag
        return headers

    def _precondition_failed(self, request: web.Request, blob: _Blob) -> bool:
        if not self.honour_preconditions:
            return False
        if_match = request.headers.get("If-Match")
        if if_match is not None:
            return not self.send_etag or if_match != blob.etag
        since = request.headers.get("If-Unmodified-Since")
        if since is not None:
            return blob.modified > parsedate_to_datetime(since)
        return False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            blob = self._blobs.get(request.path)
            if blob is None:
                status, body, headers = 404, b"", {}
            elif request.method == "HEAD":
                status, body = 200, b""
                headers = {"Content-Length": str(len(blob.data)), **self._validators(blob)}
            elif self._precondition_failed(request, blob):
                status, body, headers = 412, b"", {}
            else:
                headers = self._validators(blob)
                status, body = 200, blob.data
                range_header = request.headers.get("Range")
                if range_header:
                    first, _, last = range_header.split("=", 1)[1].partition("-")
                    start, end = int(first), min(len(blob.data), int(last) + 1)
                    status, body = 206, blob.data[start:end]
                    headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(blob.data)}"
                    if blob.swaps > 0:  # overwritten before the client can ask again
                        blob.swaps -= 1
                        blob.generation += 1
        self._record(request, status)
        if request.method == "HEAD":
            return web.Response(status=status, headers=headers)
        return web.Response(status=status, body=body, headers=headers)

    def start(self) -> SwappingServer:
        self._app.start()
        return self

    def stop(self) -> None:
        self._app.stop()


@pytest.fixture
def swapping_server() -> Iterator[Callable[..., SwappingServer]]:
    """``factory(honour_preconditions=True, send_etag=True) -> SwappingServer``."""
    started: list[SwappingServer] = []

    def make(**kwargs: Any) -> SwappingServer:
        server = SwappingServer(**kwargs).start()
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()


_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "host",
}


class HookProxy:
    """A reverse proxy to ``target`` that calls ``hook(n)`` (in a worker thread) after the
    upstream answered the n-th ranged GET (n from 1) and before that answer is passed on."""

    def __init__(self, target: str, hook: Callable[[int], None], *, drop_if_match: bool) -> None:
        self.target = target.rstrip("/")
        self.hook = hook
        self.drop_if_match = drop_if_match
        self.ranged_gets = 0
        self.if_match_seen = 0
        self.statuses: list[int] = []
        self._session: ClientSession | None = None
        app = web.Application(client_max_size=2**30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._app = ThreadedApp(app)

    @property
    def url(self) -> str:
        return self._app.url

    async def _handle(self, request: web.Request) -> web.Response:
        if self._session is None:
            self._session = ClientSession(auto_decompress=False)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        if "If-Match" in headers:
            self.if_match_seen += 1
            if self.drop_if_match:
                del headers["If-Match"]
        body = await request.read()
        async with self._session.request(
            request.method,
            self.target + request.rel_url.raw_path_qs,
            headers=headers,
            data=body if body else None,
            allow_redirects=False,
        ) as upstream:
            data = await upstream.read()
            status = upstream.status
            answer = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
        self.statuses.append(status)
        if request.method == "GET" and "Range" in request.headers and status == 206:
            self.ranged_gets += 1
            await asyncio.get_running_loop().run_in_executor(None, self.hook, self.ranged_gets)
        if request.method == "HEAD":
            if "Content-Length" in upstream.headers:
                answer["Content-Length"] = upstream.headers["Content-Length"]
            return web.Response(status=status, headers=answer)
        return web.Response(status=status, body=data, headers=answer)

    def start(self) -> HookProxy:
        self._app.start()
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._session is not None:
                await self._session.close()

        self._app.call(close)
        self._app.stop()


@pytest.fixture
def hook_proxy() -> Iterator[Callable[..., HookProxy]]:
    """``factory(target_url, hook, drop_if_match=False) -> HookProxy``."""
    started: list[HookProxy] = []

    def make(target: str, hook: Callable[[int], None], drop_if_match: bool = False) -> HookProxy:
        proxy = HookProxy(target, hook, drop_if_match=drop_if_match).start()
        started.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in started:
            proxy.stop()
