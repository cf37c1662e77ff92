"""Every fsspec protocol but HTTP and the Hub (``s3://``, ``gs://``, ``memory://`` ...),
opened through :func:`asyncassets.object_stores.open_filesystem` with the default storage
options. Async filesystems are used natively on asyncio; elsewhere (trio) their blocking API,
driven from fsspec's own IO thread, is called from worker threads.

Reads are checked by length and pinned to the version described: S3 ranged reads are one
``GetObject`` pinned to the VersionId (else ``IfMatch`` the ETag), GCS ones a media GET of the
generation described, each answer's validator compared; other protocols read through
``_cat_file(path, start, end)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asyncassets.errors import (
    PermanentError,
    RangeNotHonouredError,
    RemoteChangedError,
    TransientError,
)
from asyncassets.loops import on_asyncio
from asyncassets.object_stores import close_filesystem, object_identity, open_filesystem
from asyncassets.transient import describe, status_of

from ..uri import CheckpointURI
from .base import RemoteFile, RemoteIdentity, RemoteListing, Source, WriteChunk, folder_identity

__all__ = ["FsspecSource"]


class FsspecSource(Source):
    """Any other fsspec protocol. Async filesystems are used natively, sync ones in a thread.

    Part size defaults to 8 MiB: ``_cat_file`` returns a whole part as one ``bytes``, so memory
    is part size x requests in flight.
    """

    default_part_size = 8 * 2**20

    def __init__(
        self,
        uri: CheckpointURI,
        storage_options: dict[str, Any] | None,
        *,
        concurrency: int | None = None,
    ) -> None:
        super().__init__(uri)
        self._protocol = uri.scheme
        self._options = dict(storage_options or {})
        #: requests in flight: the size of the connection pool the filesystem gets
        self._concurrency = concurrency or self.default_concurrency
        self._fs: Any = None  # opened by the first describe
        self._async = False
        self._path = ""

    def _open_filesystem(self, use_async: bool, then_info: bool) -> dict[str, Any] | None:
        """Open the filesystem (blocking: call it from a worker thread; see
        :func:`~asyncassets.object_stores.open_filesystem`). fsspec's async filesystems run
        on asyncio only (``use_async``). When the filesystem blocks and ``then_info``, the
        ``info`` of the URI is returned from the same thread: a cache hit then costs one
        thread hop."""
        if self._fs is None:
            try:
                fs = open_filesystem(
                    self._protocol,
                    self._options,
                    asynchronous=use_async,
                    max_concurrency=self._concurrency,
                )
            except (ImportError, ValueError) as exc:
                raise PermanentError(f"cannot open {self.display}: {exc}") from exc
            is_async = bool(getattr(fs, "async_impl", False)) and use_async
            self._fs, self._async, self._path = fs, is_async, fs._strip_protocol(self.uri.raw)
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
            raise PermanentError(f"not found: {self.display}", status=404) from exc
        except PermissionError as exc:
            raise PermanentError(f"access denied: {self.display}", status=403) from exc
        if info.get("type") == "directory":
            return await self._describe_dir()
        identity = _identity_of(info)
        file = RemoteFile(path=self._path, relpath=self.uri.name, identity=identity)
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
            raise PermanentError(f"not found: {self.display}", status=404) from exc
        except PermissionError as exc:
            raise PermanentError(f"access denied: {self.display}", status=403) from exc
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
            raise PermanentError(
                f"not found (no files under the folder): {self.display}", status=404
            )
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
                f"{self.display}: a ranged read returned {len(data)} bytes for {end - start}"
            )
        if len(data) < end - start:
            raise TransientError(f"{self.display}: ranged read ended after {len(data)} bytes")
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
        if self._async:
            await close_filesystem(self._fs)


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


def _identity_of(info: dict[str, Any]) -> RemoteIdentity:
    found = object_identity(info)
    return RemoteIdentity(
        size=found.size, etag=found.etag, version=found.version, mtime=found.mtime
    )
