"""The only code that talks to remote storage: metadata, ranged reads, whole-object reads.

Two kinds of source:

- ``HTTPSource`` for ``http(s)://``: aiohttp directly, because a ranged read must be checked
  (``206`` with the matching ``Content-Range``) and fsspec's HTTP ``_cat_file(start, end)``
  accepts a ``200`` with the whole body as if it were the range.
- ``FsspecSource`` for every other protocol fsspec knows (``s3://``, ``gs://``,
  ``memory://`` ...), checked by length: S3 ranged reads are one ``GetObject`` pinned to the
  VersionId (else ``IfMatch`` the ETag), GCS ones a media GET of the generation described,
  each answer's validator compared; other protocols read through ``_cat_file(path, start,
  end)`` of the async filesystem (or the sync one in a thread).

Every ranged read is pinned to the version described when the download started, and an
answer of another version raises ``RemoteChangedError`` (the cache starts over on the new
version): an object overwritten mid-download never yields a mix of two versions.

A source is opened for one fetch and closed after it, so that no session outlives the event
loop that made it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.to_thread

from asyncassets.errors import (
    PermanentError,
    RangeNotHonouredError,
    RemoteChangedError,
    TransientError,
)
from asyncassets.loops import on_asyncio
from asyncassets.storage_options import CONNECT_TIMEOUT, READ_TIMEOUT, with_timeouts
from asyncassets.transient import describe, status_of

from .layout import RemoteFile, RemoteIdentity
from .uri import entry_name

__all__ = [
    "FsspecSource",
    "HTTPSource",
    "RemoteListing",
    "Source",
    "WriteChunk",
    "check_range_validators",
    "folder_identity",
    "open_source",
    "redact",
]

T = TypeVar("T")

WriteChunk = Callable[[bytes], Awaitable[None]]
"""Receives the bytes of a read in order; the caller knows where they go."""


def redact(uri: str) -> str:
    """``uri`` without user info or query string, for messages and logs."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = "…" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


#: Redirects followed for one request.
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


class RemoteListing:
    """What a metadata request said: a file or a folder, its version, the files to fetch."""

    def __init__(
        self,
        kind: str,
        identity: RemoteIdentity,
        files: list[RemoteFile],
        *,
        revision: str | None = None,
    ) -> None:
        self.kind = kind
        self.identity = identity
        self.files = files
        #: the commit a revision resolved to (Hub repos), recorded with the entry
        self.revision = revision


def folder_identity(files: list[RemoteFile]) -> RemoteIdentity:
    """The version of a folder: its total size and a digest of its listing (names, sizes,
    validators), so that any change to a file it holds is a new version."""
    summary = [
        [f.relpath, f.identity.size, f.identity.etag, f.identity.version, f.identity.mtime]
        + ([f.identity.digest] if f.identity.digest is not None else [])
        for f in files
    ]
    digest = hashlib.sha256(json.dumps(summary).encode()).hexdigest()
    total = sum(f.identity.size or 0 for f in files)
    return RemoteIdentity(size=total, digest=digest)


class Source(ABC):
    """Metadata and reads for one URI."""

    #: a good part size for this kind of source (bytes held in memory per request in flight)
    default_part_size: int = 16 * 2**20
    #: a good number of requests in flight for one fetch
    default_concurrency: int = 16

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.display = redact(uri)  # for messages and logs: no user info, no query string
        # Blocking network calls (urllib, fsspec's sync API on trio) wait in worker threads
        # of their own. On anyio's shared limiter (40 threads) 40 streams took every thread
        # while the disk writes they feed waited for one: a deadlock. Not bounded here: the
        # download's own limiter (``TransferSettings.concurrency``) bounds requests in flight.
        self._network_threads = anyio.CapacityLimiter(math.inf)

    async def _blocking(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)``, a blocking network call, in one of this source's worker threads.

        Cancelling the caller returns at once: the thread is left to finish its call in the
        background (a read blocked on a stalled server ends at its socket timeout), and a
        thread that hands bytes back checks :meth:`abandoned` first, so nothing it reads
        after that is written anywhere."""
        return await anyio.to_thread.run_sync(
            func, *args, limiter=self._network_threads, abandon_on_cancel=True
        )

    @abstractmethod
    async def describe(self, kind_hint: str | None = None) -> RemoteListing:
        """One metadata request (a listing for a folder). ``kind_hint`` skips the probe."""

    @abstractmethod
    async def read_range(self, file: RemoteFile, start: int, end: int, write: WriteChunk) -> None:
        """Pass bytes ``[start, end)`` of ``file`` to ``write``; raise
        ``RangeNotHonouredError`` when the source does not honour ranges."""

    @abstractmethod
    async def read_all(self, file: RemoteFile, write: WriteChunk) -> None:
        """Pass every byte of ``file`` to ``write``, in one stream."""

    async def local_copy(self, file: RemoteFile, target: Path) -> bool:
        """Put ``file`` at ``target`` from a local copy the source knows of (the Hugging
        Face cache), checked; True when it did, False to download it."""
        return False

    async def aclose(self) -> None:  # noqa: B027 - sources without sessions need nothing
        """Close sessions opened for this source."""


def range_headers(base: dict[str, str], file: RemoteFile, start: int, end: int) -> dict[str, str]:
    """Headers of a ranged GET of ``[start, end)``, pinned to the version described."""
    headers = {**base, "Range": f"bytes={start}-{end - 1}"}
    etag = file.identity.etag
    if etag and not etag.startswith("W/"):
        headers["If-Match"] = etag  # a 412 tells us the object changed between parts
    elif file.identity.mtime:
        # No strong validator: the modification time is the weaker pin (412 when newer).
        headers["If-Unmodified-Since"] = file.identity.mtime
    return headers


def check_range_validators(display: str, headers: Any, identity: RemoteIdentity) -> None:
    """Raise ``RemoteChangedError`` when a ranged answer names another version than the one
    described: servers that ignore ``If-Match`` still send the ETag of what they serve."""
    etag = headers.get("ETag")
    if identity.etag and etag:
        if _strong(etag) != _strong(identity.etag):
            raise RemoteChangedError(
                f"{display} changed during the download (ETag {etag}, expected {identity.etag})"
            )
        return
    modified = headers.get("Last-Modified")
    if identity.mtime and modified and modified != identity.mtime:
        raise RemoteChangedError(
            f"{display} changed during the download (Last-Modified {modified}, "
            f"expected {identity.mtime})"
        )


def _strong(etag: str) -> str:
    """An ETag without its weak marker: a proxy may weaken a tag it forwards unchanged."""
    etag = etag.strip()
    return etag[2:] if etag.startswith("W/") else etag


def check_range_answer(
    display: str,
    status: int,
    reason: str | None,
    headers: Any,
    file: RemoteFile,
    start: int,
    end: int,
) -> None:
    """Raise unless the answer to a ranged GET is ``206`` with the matching
    ``Content-Range`` of the version described: ``RangeNotHonouredError`` (read it in one
    stream instead), ``RemoteChangedError`` (412/416, another ETag or Last-Modified), or the
    error of the HTTP status."""
    if status == 200:
        raise RangeNotHonouredError(f"{display} answered 200 to a ranged read")
    if status in (412, 416):
        raise RemoteChangedError(f"{display} changed during the download")
    if status != 206:
        raise http_error(display, status, reason)
    match = _CONTENT_RANGE.match(headers.get("Content-Range", ""))
    total = str(file.identity.size) if file.identity.size is not None else None
    if (
        match is None
        or int(match.group(1)) != start
        or int(match.group(2)) != end - 1
        or (total is not None and match.group(3) not in (total, "*"))
    ):
        raise RangeNotHonouredError(
            f"{display} answered a ranged read with Content-Range "
            f"{headers.get('Content-Range')!r}, expected bytes {start}-{end - 1}"
        )
    check_range_validators(display, headers, file.identity)


def http_error(uri: str, status: int, reason: str | None) -> Exception:
    """The internal error of an HTTP status: transient (5xx, 408, 429) or permanent."""
    text = f"HTTP {status} {reason or ''}".strip() + f" for {uri}"
    if status >= 500 or status in (408, 429):
        return TransientError(text)
    if status in (404, 410):
        return PermanentError(f"not found ({text})", status=status)
    if status in (401, 403):
        return PermanentError(f"access denied ({text})", status=status)
    return PermanentError(text, status=status)


class HTTPSource(Source):
    """``http(s)://`` through aiohttp. ``storage_options`` may hold ``headers`` (dict) and
    ``client_kwargs`` (passed to ``aiohttp.ClientSession``).

    Parts are streamed to disk a megabyte at a time, so 32 requests in flight cost about
    100 MiB; through a 50 MB/s-per-connection proxy 32 gave 1.5x the throughput of 16.
    """

    default_concurrency = 32

    def __init__(
        self,
        uri: str,
        storage_options: dict[str, Any] | None = None,
        *,
        remember_redirects: bool = False,
    ) -> None:
        super().__init__(uri)
        import aiohttp

        self.remember_redirects = remember_redirects
        #: URL asked -> where its GET was last redirected to (in memory, this fetch only)
        self._redirects: dict[str, Any] = {}

        options = dict(storage_options or {})
        configured = dict(options.pop("headers", {}))
        #: Headers of the caller's (credentials): sent to the URI's own origin only.
        self._private = {name.lower() for name in configured} | {"authorization", "cookie"}
        self._headers = {"Accept-Encoding": "identity", **configured}
        client_kwargs = dict(options.pop("client_kwargs", {}))
        client_kwargs.setdefault(
            "timeout",
            aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT),
        )
        client_kwargs.setdefault("auto_decompress", False)
        # A 64 KiB read buffer (aiohttp's default) makes many tiny chunks at high rates.
        client_kwargs.setdefault("read_bufsize", 2**20)
        client_kwargs.setdefault("connector", aiohttp.TCPConnector(limit=0))
        self._session = aiohttp.ClientSession(**client_kwargs)

    @asynccontextmanager
    async def _request(self, method: str, url: str, headers: dict[str, str]) -> AsyncIterator[Any]:
        """The answer to ``method url``, following redirects ourselves: the caller's
        headers (tokens, cookies) go to the origin of ``url`` only, never to the host a
        redirect names (a CDN), and a redirect's signed URL is never kept beyond this
        source or shown.

        With ``remember_redirects``, a GET that was redirected goes straight to where it
        ended the next time (one round trip instead of two per part); an answer there of
        401, 403, 404 or 410 (an expired signature) forgets it and asks ``url`` again."""
        import yarl

        start = yarl.URL(url, encoded=True)
        remembered = self._redirects.get(url) if method == "GET" else None
        if remembered is not None:
            async with self._follow(method, start.origin(), remembered, headers, url) as resp:
                if resp.status not in (401, 403, 404, 410):
                    yield resp
                    return
            self._redirects.pop(url, None)
        async with self._follow(method, start.origin(), start, headers, url) as resp:
            yield resp

    @asynccontextmanager
    async def _follow(
        self, method: str, origin: Any, target: Any, headers: dict[str, str], url: str
    ) -> AsyncIterator[Any]:
        import yarl

        first = target
        for _ in range(MAX_REDIRECTS + 1):
            sent = (
                headers
                if target.origin() == origin
                else {k: v for k, v in headers.items() if k.lower() not in self._private}
            )
            async with self._session.request(
                method, target, headers=sent, allow_redirects=False
            ) as resp:
                location = resp.headers.get("Location")
                if resp.status in _REDIRECTS and location:
                    target = target.join(yarl.URL(location, encoded=True))
                    if target.scheme not in ("http", "https"):  # retrying will not help
                        raise PermanentError(
                            f"{self.display}: redirected to a {target.scheme or 'relative'}:// "
                            "URL, which is not HTTP"
                        )
                    continue
                if (
                    self.remember_redirects
                    and method == "GET"
                    and target != first
                    and resp.status < 400
                ):
                    self._redirects[url] = target
                yield resp
                return
        raise PermanentError(f"{self.display}: more than {MAX_REDIRECTS} redirects")

    async def describe(self, kind_hint: str | None = None) -> RemoteListing:
        async with self._request("HEAD", self.uri, self._headers) as resp:
            if resp.status in (403, 405, 501):
                # Some servers refuse HEAD (a presigned GET URL answers 403): ask for one byte.
                identity = await self._describe_with_get()
            elif resp.status >= 400:
                raise http_error(self.display, resp.status, resp.reason)
            else:
                identity = identity_of_response(resp.headers, resp.headers.get("Content-Length"))
        file = RemoteFile(path=self.uri, relpath=entry_name(self.uri), identity=identity)
        return RemoteListing("file", identity, [file])

    async def _describe_with_get(self) -> RemoteIdentity:
        headers = {**self._headers, "Range": "bytes=0-0"}
        async with self._request("GET", self.uri, headers) as resp:
            identity = identity_of_probe(self.display, resp.status, resp.reason, resp.headers)
            resp.close()  # do not read a body that may be the whole object
            return identity

    async def read_range(self, file: RemoteFile, start: int, end: int, write: WriteChunk) -> None:
        headers = range_headers(self._headers, file, start, end)
        async with self._request("GET", file.path, headers) as resp:
            check_range_answer(
                self.display, resp.status, resp.reason, resp.headers, file, start, end
            )
            received = 0
            async for chunk in resp.content.iter_chunked(2**20):
                received += len(chunk)
                await write(chunk)
            if received != end - start:
                raise TransientError(
                    f"{self.display}: ranged read ended after {received} of {end - start} bytes"
                )

    async def read_all(self, file: RemoteFile, write: WriteChunk) -> None:
        async with self._request("GET", file.path, self._headers) as resp:
            if resp.status != 200:
                raise http_error(self.display, resp.status, resp.reason)
            check_range_validators(self.display, resp.headers, file.identity)
            received = 0
            async for chunk in resp.content.iter_chunked(2**20):
                received += len(chunk)
                await write(chunk)
            expected = file.identity.size
            if expected is not None and received != expected:
                raise TransientError(f"{self.display}: got {received} of {expected} bytes")

    async def aclose(self) -> None:
        await self._session.close()


class FsspecSource(Source):
    """Any other fsspec protocol. Async filesystems are used natively, sync ones in a thread.

    Part size defaults to 8 MiB: ``_cat_file`` returns a whole part as one ``bytes``, so memory
    is part size x requests in flight.
    """

    default_part_size = 8 * 2**20

    def __init__(self, uri: str, protocol: str, storage_options: dict[str, Any] | None) -> None:
        super().__init__(uri)
        self._protocol = protocol
        self._options = dict(storage_options or {})
        self._fs: Any = None  # opened by the first describe
        self._async = False
        self._path = ""

    def _open_filesystem(self, use_async: bool, then_info: bool) -> dict[str, Any] | None:
        """Open the filesystem (blocking: call it from a worker thread). Importing its
        package and opening it block: gcsfs looks for credentials, up to a GCE metadata
        server probe (14 s on a host without one). fsspec's async filesystems run on asyncio
        only (``use_async``); elsewhere (trio) their blocking API, driven from fsspec's own
        IO thread, is called from worker threads. When the filesystem blocks and
        ``then_info``, the ``info`` of the URI is returned from the same thread: a cache hit
        then costs one thread hop."""
        if self._fs is None:
            import fsspec

            try:
                cls = fsspec.get_filesystem_class(self._protocol)
            except (ImportError, ValueError) as exc:
                raise PermanentError(f"cannot open {self.display}: {exc}") from exc
            is_async = bool(getattr(cls, "async_impl", False)) and use_async
            options = with_timeouts(self._protocol, self._options)
            if is_async:
                options["asynchronous"] = True
            fs = cls(skip_instance_cache=True, **options)
            self._fs, self._async, self._path = fs, is_async, fs._strip_protocol(self.uri)
        if then_info and not self._async:
            info: dict[str, Any] = self._fs.info(self._path)
            return info
        return None

    async def _open(self) -> None:
        if self._fs is None:
            await self._blocking(self._open_filesystem, on_asyncio(), False)

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._async:
            return await getattr(self._fs, f"_{name}")(*args, **kwargs)

        def call() -> Any:
            return getattr(self._fs, name)(*args, **kwargs)

        return await self._blocking(call)

    async def describe(self, kind_hint: str | None = None) -> RemoteListing:
        try:
            info = None
            if self._fs is None:
                then_info = kind_hint != "dir"
                info = await self._blocking(self._open_filesystem, on_asyncio(), then_info)
            if kind_hint == "dir":
                return await self._describe_dir()
            if info is None:
                info = await self._info(kind_hint)
        except FileNotFoundError as exc:
            raise PermanentError(f"not found: {self.uri}", status=404) from exc
        except PermissionError as exc:
            raise PermanentError(f"access denied: {self.uri}", status=403) from exc
        if info.get("type") == "directory":
            return await self._describe_dir()
        identity = _identity_of(info)
        file = RemoteFile(path=self._path, relpath=entry_name(self.uri), identity=identity)
        return RemoteListing("file", identity, [file])

    async def _info(self, kind_hint: str | None) -> dict[str, Any]:
        if kind_hint == "file" and self._async and hasattr(self._fs, "_get_object"):
            # gcsfs' _info races an object GET against a listing; a known file needs one.
            info: dict[str, Any] = await self._fs._get_object(self._path)
            return info
        info = await self._call("info", self._path)
        return info

    async def _describe_dir(self) -> RemoteListing:
        try:
            found: dict[str, dict[str, Any]] = await self._call("find", self._path, detail=True)
        except FileNotFoundError as exc:
            raise PermanentError(f"not found: {self.uri}", status=404) from exc
        except PermissionError as exc:
            raise PermanentError(f"access denied: {self.uri}", status=403) from exc
        prefix = self._path.rstrip("/") + "/"
        files = []
        for name in sorted(found):
            info = found[name]
            if info.get("type") == "directory" or not name.startswith(prefix):
                continue
            relpath = name[len(prefix) :]
            if not relpath or relpath.endswith("/"):
                continue
            files.append(RemoteFile(path=name, relpath=relpath, identity=_identity_of(info)))
        if not files:
            raise PermanentError(f"not found (no files under the folder): {self.uri}", status=404)
        return RemoteListing("dir", folder_identity(files), files)

    def _version_kwargs(self, file: RemoteFile) -> dict[str, Any]:
        version = file.identity.version
        if version is None or version == "null":
            return {}
        if self._protocol in ("s3", "s3a"):
            return {"version_id": version}
        return {}

    async def read_range(self, file: RemoteFile, start: int, end: int, write: WriteChunk) -> None:
        await self._open()
        if self._protocol in _S3_PROTOCOLS and hasattr(self._fs, "_call_s3"):
            data = await self._on_fs_loop(self._s3_range, file, start, end)
        elif self._protocol in _GCS_PROTOCOLS and hasattr(self._fs, "url"):
            data = await self._on_fs_loop(self._gcs_range, file, start, end)
        else:
            data = await self._call(
                "cat_file", file.path, start=start, end=end, **self._version_kwargs(file)
            )
        if len(data) > end - start:
            raise RangeNotHonouredError(
                f"{self.uri}: a ranged read returned {len(data)} bytes for {end - start}"
            )
        if len(data) < end - start:
            raise TransientError(f"{self.uri}: ranged read ended after {len(data)} bytes")
        await write(data)

    async def read_all(self, file: RemoteFile, write: WriteChunk) -> None:
        # Only reached when ranges are not honoured; read in one request.
        await self._open()
        data = await self._call("cat_file", file.path, **self._version_kwargs(file))
        await write(data)

    async def _on_fs_loop(self, func: Callable[..., Awaitable[bytes]], *args: Any) -> bytes:
        """Await ``func(*args)`` on the filesystem's own loop: here when it is async, else
        (trio) on fsspec's IO thread, waited for in a worker thread."""
        if self._async:
            return await func(*args)
        from fsspec.asyn import sync

        loop = self._fs.loop

        def call() -> bytes:
            result: bytes = sync(loop, func, *args)
            return result

        return await self._blocking(call)

    async def _s3_range(self, file: RemoteFile, start: int, end: int) -> bytes:
        """One ``GetObject`` of ``[start, end)`` pinned to the version described: its
        VersionId, else ``IfMatch`` its ETag (s3fs' ``_cat_file`` retries a cut range without
        any pin); the ETag and VersionId of the answer are compared too."""
        fs = self._fs
        bucket, key, _ = fs.split_path(file.path)
        identity = file.identity
        version = identity.version if identity.version not in (None, "null") else None
        pin: dict[str, str] = {}
        if version is not None:
            pin["VersionId"] = version
        elif identity.etag:
            pin["IfMatch"] = identity.etag
        try:
            resp = await fs._call_s3(
                "get_object", Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}", **pin
            )
        except Exception as exc:
            if _has_status(exc, 412) or (version is not None and _has_status(exc, 404)):
                raise RemoteChangedError(
                    f"{self.display} changed during the download ({describe(exc)})"
                ) from None
            if version is not None and isinstance(exc, FileNotFoundError):
                raise RemoteChangedError(
                    f"{self.display} changed during the download (version {version} is gone)"
                ) from None
            raise
        body = resp["Body"]
        try:
            data: bytes = await body.read()
        finally:
            body.close()
        etag = resp.get("ETag")
        if identity.etag and etag and etag.strip('"') != identity.etag.strip('"'):
            raise RemoteChangedError(
                f"{self.display} changed during the download (ETag {etag}, "
                f"expected {identity.etag})"
            )
        answered = resp.get("VersionId")
        if version is not None and answered and answered != version:
            raise RemoteChangedError(
                f"{self.display} changed during the download (version {answered}, "
                f"expected {version})"
            )
        return data

    async def _gcs_range(self, file: RemoteFile, start: int, end: int) -> bytes:
        """One media GET of ``[start, end)`` of the generation described (a generation that
        is gone is a change); the ``x-goog-generation`` of the answer is compared, and where
        a server does not send it (the emulator) the object's generation is asked after the
        read: an overwrite that the read saw has then a newer generation."""
        fs = self._fs
        generation = file.identity.version
        url = fs.url(file.path, generation=generation)
        try:
            headers, data = await fs._call(
                "GET", url, headers={"Range": f"bytes={start}-{end - 1}"}
            )
            if generation is None:
                return bytes(data)
            answered = headers.get("x-goog-generation")
            if answered is None:
                bucket, key, _ = fs.split_path(file.path)
                meta = await fs._call("GET", "b/{}/o/{}", bucket, key, json_out=True)
                answered = meta.get("generation")
        except (FileNotFoundError, FileExistsError) as exc:  # gcsfs: 404, 412
            if generation is None:
                raise
            raise RemoteChangedError(
                f"{self.display} changed during the download ({describe(exc)})"
            ) from None
        if answered is not None and str(answered) != generation:
            raise RemoteChangedError(
                f"{self.display} changed during the download (generation {answered}, "
                f"expected {generation})"
            )
        return bytes(data)

    async def aclose(self) -> None:
        if not self._async:
            return
        creator = getattr(self._fs, "_s3creator", None)  # s3fs
        if creator is not None and hasattr(creator, "__aexit__"):
            await creator.__aexit__(None, None, None)
            self._fs._s3 = None
            return
        session = getattr(self._fs, "_session", None)  # gcsfs, fsspec http
        if session is not None and hasattr(session, "close") and not session.closed:
            await session.close()


_S3_PROTOCOLS = ("s3", "s3a")
_GCS_PROTOCOLS = ("gs", "gcs")


def _has_status(exc: BaseException, status: int) -> bool:
    """Whether ``exc`` or its cause (s3fs translates botocore's errors) is an HTTP ``status``
    answer (``PreconditionFailed`` is 412, ``NoSuchVersion`` 404)."""
    codes = {412: ("PreconditionFailed",), 404: ("NoSuchVersion", "NoSuchKey")}[status]
    for error in (exc, exc.__cause__):
        if error is None:
            continue
        if status_of(error) == status:
            return True
        response = getattr(error, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code") in codes:
            return True
    return False


def identity_of_probe(
    display: str, status: int, reason: str | None, headers: Any
) -> RemoteIdentity:
    """The identity an answer to a ``Range: bytes=0-0`` GET gives (for servers that refuse
    HEAD): the total size from ``Content-Range`` when the range was honoured."""
    if status >= 400:
        raise http_error(display, status, reason)
    length = headers.get("Content-Length")
    if status == 206:
        match = _CONTENT_RANGE.match(headers.get("Content-Range", ""))
        length = match.group(3) if match and match.group(3) != "*" else None
    return identity_of_response(headers, length)


def identity_of_response(headers: Any, length: str | None) -> RemoteIdentity:
    encoded = headers.get("Content-Encoding", "identity") != "identity"
    return RemoteIdentity(
        size=int(length) if length is not None and not encoded else None,
        etag=headers.get("ETag"),
        mtime=headers.get("Last-Modified"),
    )


def _identity_of(info: dict[str, Any]) -> RemoteIdentity:
    etag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
    version = info.get("VersionId") or info.get("generation")
    mtime = (
        info.get("LastModified")
        or info.get("updated")
        or info.get("mtime")
        or info.get("last_modified")
        or info.get("created")
    )
    size = info.get("size")
    return RemoteIdentity(
        size=int(size) if size is not None else None,
        etag=str(etag) if etag is not None else None,
        version=str(version) if version is not None else None,
        mtime=str(mtime) if mtime is not None else None,
    )


def open_source(uri: str, storage_options: dict[str, Any] | None) -> Source:
    """The source for a remote URI (``CheckpointURI.local`` is ``None``)."""
    protocol = uri.split("://", 1)[0].lower()
    if protocol in ("hg", "hf"):
        from .hub import HubSource

        return HubSource(uri, storage_options)
    if protocol in ("http", "https") and not on_asyncio():
        from .http_threads import ThreadedHTTPSource

        return ThreadedHTTPSource(uri, storage_options)
    if protocol in ("http", "https"):
        try:
            return HTTPSource(uri, storage_options)
        except ImportError as exc:
            raise PermanentError(
                f"cannot fetch {uri}: aiohttp is missing (pip install 'asyncassets[http]')"
            ) from exc
    return FsspecSource(uri, protocol, storage_options)
