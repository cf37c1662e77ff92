"""Listing and reading card files through fsspec (S3, GCS, memory, any URL).

One listing of the prefix, then every card object fetched with bounded concurrency
(``max_concurrency``, default 64) and parsed off the event loop in batches. No per-object
``info``/``exists`` round trip: versions (ETag / generation / mtime) come from the listing.

On asyncio, fsspec's async filesystems (s3fs, gcsfs, HTTP) run on the caller's loop; on
other loops (trio), where their sessions cannot run, the same filesystems are used through
their synchronous API in worker threads (fsspec drives them from its own IO thread).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import anyio
import fsspec
from fsspec import AbstractFileSystem
from fsspec.asyn import AsyncFileSystem

from asyncassets.errors import AssetMetadataError, AssetSourceNotFoundError
from asyncassets.object_stores import object_identity
from asyncassets.parsing import MAX_FILE_BYTES, is_card_file, parse_batch, too_large_file
from asyncassets.problems import Problem
from asyncassets.providers.base import FileIdentity
from asyncassets.providers.filesystems import (
    acquire_filesystem,
    is_usable_here,
    release_filesystem,
    uses_async_api,
)
from asyncassets.retrying import RetryPolicy, call_with_retries
from asyncassets.snapshot import FileRecord
from asyncassets.transient import describe
from asyncassets.urls import public_uri

__all__ = ["RemoteCardFolder", "object_version"]

logger = logging.getLogger("asyncassets.providers.remote")

#: Files parsed per worker-thread hop.
PARSE_BATCH = 32
#: Retries of one listing or one read when the error looks transient (a card store answers
#: a load: fewer and shorter waits than a checkpoint download's).
RETRY = RetryPolicy(attempts=4, initial=0.1, maximum=2.0)


def object_version(info: Mapping[str, Any]) -> str | None:
    """What identifies an object's content cheaply: ETag, generation, or mtime + size
    (:func:`asyncassets.object_stores.object_identity`'s token)."""
    return object_identity(info).token


class RemoteCardFolder:
    """A folder of cards behind an fsspec URL."""

    def __init__(self, url: str, storage_options: Mapping[str, Any], max_concurrency: int):
        protocol, _, _ = url.partition("://")
        self.protocol = protocol
        shown = public_uri(url)  # no user:password@, no signed query: what errors show
        try:
            self.fs_class = fsspec.get_filesystem_class(protocol)
        except ImportError as exc:
            extra = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "http": "http"}
            hint = f" (pip install 'asyncassets[{extra[protocol]}]')" if protocol in extra else ""
            raise AssetMetadataError(
                f"cannot open card folder {shown}: {describe(exc)}{hint}", source=shown
            ) from None
        except ValueError:
            raise AssetMetadataError(
                f"cannot open card folder {shown}: unknown protocol '{protocol}://'",
                source=shown,
            ) from None
        self.root = self.fs_class._strip_protocol(url).rstrip("/")
        self.url = self.file_url(self.root)
        self.storage_options = dict(storage_options)
        self.max_concurrency = max_concurrency
        self._fs: Any = None
        self._fs_key: Any = None
        self._cat_kwargs: dict[str, Any] = {}
        #: Object sizes from the last listing: an object over MAX_FILE_BYTES is not read.
        self._sizes: dict[str, int] = {}
        #: The persistent index's identities from the listings, by file URL.
        self._identities: dict[str, str] = {}
        #: The MD5 of each object's content, where the listing states it (hex).
        self._digests: dict[str, str] = {}

    def file_url(self, path: str) -> str:
        """The URL a card file is known by (entries, problems, ``card.source``): the
        object's, without user info or a signed query. An HTTP filesystem's paths are
        whole URLs already."""
        return public_uri(path if "://" in path else f"{self.protocol}://{path}")

    async def filesystem(self) -> Any:
        """The filesystem for the running loop (a session made on another loop, closed or
        not, is never reused here)."""
        if self._fs is not None and not is_usable_here(self._fs_key):
            stale, self._fs = self._fs, None
            await release_filesystem(self._fs_key, stale)
        if self._fs is None:
            fs, self._fs_key = await acquire_filesystem(
                self.protocol, self.storage_options, self.max_concurrency
            )
            self._cat_kwargs = {}
            if uses_async_api(fs):
                # s3fs sends a HEAD before every GET when it may split the read; card
                # files are small, so ask for one plain GET.
                params = inspect.signature(fs._cat_file).parameters
                if "max_concurrency" in params:
                    self._cat_kwargs = {"max_concurrency": 1}
            self._fs = fs
        return self._fs

    async def list_files(self) -> dict[str, str | None]:
        """``{object path: version}`` of every card file under the root."""
        if self.protocol in ("http", "https") and "?" in self.root:
            # fsspec lists an HTTP folder from the links of its page and joins them after
            # the query (…/cards/?token=x/a.yaml): every file read would be the page again.
            raise AssetMetadataError(
                f"cannot list card folder {self.url}: an HTTP card folder is listed from its "
                "page's links, which do not carry the URL's query string (?token=...); give "
                "the credential as a header instead: --storage-option "
                "'headers={Authorization: Bearer TOKEN}' (storage_options={'headers': ...})",
                source=self.url,
            )
        fs = await self.filesystem()

        async def ls(folder: str) -> list[dict[str, Any]]:
            if uses_async_api(fs):
                listing: list[dict[str, Any]] = await fs._ls(folder, detail=True)
                return listing
            return list(
                await anyio.to_thread.run_sync(
                    lambda: fs.ls(folder, detail=True), abandon_on_cancel=True
                )
            )

        async def find() -> dict[str, Any]:
            if _walks_folders(fs):
                found = await _walk_tree(self.root, ls)
                if found:
                    return found
            # s3fs, gcsfs: one listing of the prefix; else a root that is a single file
            if uses_async_api(fs):
                return dict(await fs._find(self.root, detail=True))
            return dict(
                await anyio.to_thread.run_sync(
                    lambda: fs.find(self.root, detail=True), abandon_on_cancel=True
                )
            )

        try:
            found = await call_with_retries(RETRY, find)
        except FileNotFoundError:
            raise AssetSourceNotFoundError(
                f"card folder {self.url} does not exist (no such bucket or prefix)",
                source=self.url,
            ) from None
        except PermissionError as exc:
            raise AssetMetadataError(
                f"access denied listing card folder {self.url}: {describe(exc)}",
                source=self.url,
            ) from None
        except Exception as exc:
            raise AssetMetadataError(
                f"cannot list card folder {self.url}: {describe(exc)}", source=self.url
            ) from exc
        if not found and not await self._exists():
            raise AssetSourceNotFoundError(
                f"card folder {self.url} does not exist (no such bucket or prefix)",
                source=self.url,
            )
        cards = {
            path: info
            for path, info in found.items()
            if info.get("type", "file") != "directory"
            and is_card_file(path)
            and not _hidden(path[len(self.root) :])
        }
        self._sizes = {
            path: int(info["size"]) for path, info in cards.items() if info.get("size") is not None
        }
        versions: dict[str, str | None] = {}
        identities: dict[str, str] = {}
        digests: dict[str, str] = {}
        for path, info in cards.items():
            identity = object_identity(info)
            if identity.md5 is not None:
                digests[path] = identity.md5
            versions[path] = identity.token
            if (identity.etag or identity.version) and identity.size is not None:
                # A validator of the content (not an mtime) and the size: the index's key.
                identities[self.file_url(path)] = f"{identity.token}|{identity.size}"
        self._identities = identities
        self._digests = digests
        return versions

    def identity(self, file: str, version: str | None) -> FileIdentity | None:
        key = self._identities.get(file)
        if key is None or version is None or not key.startswith(version + "|"):
            return None
        return FileIdentity(key)

    async def _exists(self) -> bool:
        fs = await self.filesystem()
        try:
            if uses_async_api(fs):
                return bool(await fs._exists(self.root))
            return bool(
                await anyio.to_thread.run_sync(fs.exists, self.root, abandon_on_cancel=True)
            )
        except Exception:
            return False

    async def read(self, items: list[tuple[str, str | None]], source: str) -> list[FileRecord]:
        """Fetch ``items`` (``(path, version)``) concurrently and parse them in batches as
        they arrive (one worker thread), so parsing overlaps the network. An object that
        cannot be read becomes a problem; one that vanished since the listing is skipped."""
        fs = await self.filesystem()
        limiter = anyio.Semaphore(self.max_concurrency)
        records: list[FileRecord] = []
        send, receive = anyio.create_memory_object_stream[tuple[str, bytes, str | None]](math.inf)

        async def cat(path: str) -> bytes:
            if uses_async_api(fs):
                data: bytes = await fs._cat_file(path, **self._cat_kwargs)
                return data
            return bytes(await anyio.to_thread.run_sync(fs.cat_file, path, abandon_on_cancel=True))

        async def fetch(path: str, version: str | None, size: int | None) -> None:
            url = self.file_url(path)
            if size is not None and size > MAX_FILE_BYTES:
                records.append(FileRecord(url, (), (too_large_file(size, url, source),), version))
                return
            async with limiter:
                try:
                    data = await call_with_retries(RETRY, lambda: cat(path))
                except FileNotFoundError:
                    return
                except Exception as exc:
                    logger.warning("cannot read %s: %s", url, describe(exc))
                    problem = Problem(
                        "read", f"cannot read card file: {describe(exc)}", source, url
                    )
                    records.append(FileRecord(url, (), (problem,), version))
                    return
            expected = self._digests.get(path)
            if (
                expected is not None
                and hashlib.md5(data, usedforsecurity=False).hexdigest() != expected
            ):
                # Written again between the listing and this read: these bytes are not the
                # version the listing named. Kept, but with no version: the index does not
                # remember them and the next refresh reads the object again.
                logger.debug("%s changed between the listing and the read", url)
                version = None
            send.send_nowait((url, data, version))

        async def fetch_all() -> None:
            async with send, anyio.create_task_group() as fetchers:
                for path, version in items:
                    fetchers.start_soon(fetch, path, version, self._sizes.get(path))

        async def parse_arrivals() -> None:
            batch: list[tuple[str, bytes, str | None]] = []
            async with receive:
                async for item in receive:
                    batch.append(item)
                    # Take whatever else has arrived, up to a batch, before one thread hop.
                    while len(batch) < PARSE_BATCH:
                        try:
                            batch.append(receive.receive_nowait())
                        except (anyio.WouldBlock, anyio.EndOfStream):
                            break
                    records.extend(await anyio.to_thread.run_sync(_parse, batch, source))
                    batch = []

        async with anyio.create_task_group() as tg:
            tg.start_soon(fetch_all)
            tg.start_soon(parse_arrivals)
        return records

    async def read_paths(
        self, paths: list[str], source: str, known: Iterable[str] = ()
    ) -> dict[str, FileRecord | None]:
        """Re-read ``paths`` (URLs or object paths); None for those no longer listed."""
        listing = await self.list_files()
        wanted = {self.file_url(self.fs_class._strip_protocol(p)) for p in paths}
        items = [(p, v) for p, v in listing.items() if self.file_url(p) in wanted]
        listed = {self.file_url(p) for p in listing}
        changed: dict[str, FileRecord | None] = {url: None for url in wanted - listed}
        for record in await self.read(items, source):
            changed[record.file] = record
        return changed

    async def aclose(self) -> None:
        fs, self._fs = self._fs, None
        if fs is not None:
            await release_filesystem(self._fs_key, fs)


def _parse(batch: list[tuple[str, bytes, str | None]], source: str) -> list[FileRecord]:
    return parse_batch(batch, source=source)


def _walks_folders(fs: Any) -> bool:
    """``fs`` lists a tree with fsspec's generic walk, folder by folder (HTTP, memory; not
    s3fs or gcsfs, which list a prefix at once). That walk leaves out a folder below the
    root that it could not list (a timeout, a refused connection), whatever ``on_error``
    says: the listing would come back short, and a refresh would drop that folder's cards
    as deleted. Such trees are walked by :func:`_walk_tree` instead."""
    if getattr(fs, "async_impl", False):
        return type(fs)._find is AsyncFileSystem._find
    return type(fs).find is AbstractFileSystem.find


async def _walk_tree(
    root: str, ls: Callable[[str], Awaitable[list[dict[str, Any]]]]
) -> dict[str, Any]:
    """``{path: info}`` of every file under ``root``, listed folder by folder with ``ls``.
    A folder that vanished since its parent was listed is left out (a root that is gone
    lists nothing); any other failure fails the listing, to be retried when transient. A
    folder reached twice (links in a loop) is listed once."""
    found: dict[str, Any] = {}
    pending, seen = [root], {root}
    while pending:
        folder = pending.pop()
        try:
            listing = await ls(folder)
        except FileNotFoundError:
            if folder == root:
                return {}
            continue
        for info in listing:
            path = info["name"].rstrip("/")
            if info.get("type") == "directory":
                if path != folder and path not in seen:
                    seen.add(path)
                    pending.append(path)
            else:
                found[info["name"]] = info
    return dict(sorted(found.items()))


def _hidden(path: str) -> bool:
    """Hidden files and anything under a hidden folder (``.git/``), as locally."""
    return any(part.startswith(".") for part in path.split("/"))
