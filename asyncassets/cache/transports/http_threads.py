"""``http(s)://`` on event loops other than asyncio (trio), where aiohttp cannot run: the
standard library's ``urllib`` in worker threads, with the same checks as the aiohttp
transport (:mod:`._http`): ``206`` and a matching ``Content-Range`` for every ranged read,
``If-Match`` / ``If-Unmodified-Since`` pinning and the validators of every answer compared.
Bytes travel to the event loop a megabyte at a time through ``anyio.from_thread``.
"""

from __future__ import annotations

import http.client
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import anyio
import anyio.from_thread

from asyncassets.errors import PermanentError, TransientError
from asyncassets.storage_options import READ_TIMEOUT

from ..uri import CheckpointURI
from ._http import (
    check_range_answer,
    check_received,
    check_whole_answer,
    http_error,
    identity_of_probe,
    identity_of_response,
    range_headers,
)
from .base import RemoteFile, RemoteIdentity, RemoteListing, Source, WriteChunk

__all__ = ["ThreadedHTTPSource"]

_CHUNK = 2**20


async def _deliver(write: WriteChunk, chunk: bytes, abandoned: threading.Event) -> None:
    # On the loop's thread, as the caller's cleanup: after a cancellation, no chunk of an
    # abandoned read reaches the file (whose descriptor may be closed, or reused, by now).
    if abandoned.is_set():
        raise anyio.get_cancelled_exc_class()()
    await write(chunk)


class _OriginBoundRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects, but the caller's headers (tokens, cookies) never leave the
    origin they were given for: urllib itself would send them to any host a redirect
    names."""

    def __init__(self, private: set[str]) -> None:
        super().__init__()
        self._private = private

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):  # urllib would follow ftp://: retrying will not help
            raise PermanentError(
                f"redirected to a {scheme or 'relative'}:// URL, which is not HTTP"
            )
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(new.full_url) != _origin(req.full_url):
            for name in list(new.headers):
                if name.lower() in self._private:
                    del new.headers[name]
            for name in list(new.unredirected_hdrs):
                if name.lower() in self._private:
                    del new.unredirected_hdrs[name]
        return new


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.netloc.rpartition("@")[2].lower()


class ThreadedHTTPSource(Source):
    """``http(s)://`` through urllib in worker threads. ``storage_options`` may hold
    ``headers`` (dict)."""

    default_concurrency = 16

    def __init__(self, uri: CheckpointURI, storage_options: dict[str, Any] | None = None) -> None:
        super().__init__(uri)
        options = dict(storage_options or {})
        configured = dict(options.pop("headers", {}))
        self._headers = {"Accept-Encoding": "identity", **configured}
        private = {name.lower() for name in configured} | {"authorization", "cookie"}
        self._opener = urllib.request.build_opener(_OriginBoundRedirects(private))

    def _open(self, url: str, headers: dict[str, str], method: str = "GET") -> Any:
        """The response (any status; the caller checks it)."""
        request = urllib.request.Request(url, headers=headers, method=method)
        try:
            return self._opener.open(request, timeout=READ_TIMEOUT)
        except urllib.error.HTTPError as exc:
            return exc  # an HTTPError is a response with a status and headers
        except (urllib.error.URLError, http.client.HTTPException) as exc:
            raise TransientError(f"{self.display}: {exc}") from None

    async def describe(self, kind_hint: str | None = None) -> RemoteListing:
        identity = await self._blocking(self._describe_blocking)
        file = RemoteFile(path=self.uri.raw, relpath=self.uri.name, identity=identity)
        return RemoteListing("file", identity, [file])

    def _describe_blocking(self) -> RemoteIdentity:
        with self._open(self.uri.raw, self._headers, "HEAD") as resp:
            status = resp.status
            if status not in (403, 405, 501):
                if status >= 400:
                    raise http_error(self.display, status, resp.reason)
                return identity_of_response(resp.headers, resp.headers.get("Content-Length"))
        # Some servers refuse HEAD (a presigned GET URL answers 403): ask for one byte.
        with self._open(self.uri.raw, {**self._headers, "Range": "bytes=0-0"}) as resp:
            return identity_of_probe(self.display, resp.status, resp.reason, resp.headers)

    async def read_range(self, file: RemoteFile, start: int, end: int, write: WriteChunk) -> None:
        headers = range_headers(self._headers, file, start, end)

        def check(resp: Any) -> None:
            check_range_answer(
                self.display, resp.status, resp.reason, resp.headers, file, start, end
            )

        received = await self._streaming(file.path, headers, check, write)
        check_received(self.display, received, end - start, ranged=True)

    async def read_all(self, file: RemoteFile, write: WriteChunk) -> None:
        def check(resp: Any) -> None:
            check_whole_answer(self.display, resp.status, resp.reason, resp.headers, file)

        received = await self._streaming(file.path, self._headers, check, write)
        check_received(self.display, received, file.identity.size, ranged=False)

    async def _streaming(
        self, url: str, headers: dict[str, str], check: Callable[[Any], None], write: WriteChunk
    ) -> int:
        """:meth:`_stream` in a worker thread; a cancellation returns at once (the thread
        stops at its next chunk, writing nothing more)."""
        abandoned = threading.Event()
        try:
            return await self._blocking(self._stream, url, headers, check, write, abandoned)
        finally:
            abandoned.set()

    def _stream(
        self,
        url: str,
        headers: dict[str, str],
        check: Callable[[Any], None],
        write: WriteChunk,
        abandoned: threading.Event,
    ) -> int:
        """GET ``url`` in this worker thread, hand each megabyte to ``write`` on the loop."""
        received = 0
        with self._open(url, headers) as resp:
            check(resp)
            while not abandoned.is_set() and (chunk := resp.read(_CHUNK)):
                received += len(chunk)
                anyio.from_thread.run(_deliver, write, chunk, abandoned)
        return received
