"""Listing and reading card files through fsspec (S3, GCS, memory, any URL)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import anyio
import fsspec
from fsspec.asyn import AsyncFileSystem

from asyncassets.errors import AssetMetadataError, AssetSourceNotFoundError
from asyncassets.parsing import is_card_file, parse_batch
from asyncassets.problems import Problem
from asyncassets.snapshot import FileRecord

__all__ = ["RemoteCardFolder"]

logger = logging.getLogger("asyncassets.providers.remote")

#: Files parsed per worker-thread hop.
PARSE_BATCH = 32


def object_version(info: Mapping[str, Any]) -> str | None:
    """What identifies an object's content cheaply: ETag, generation, or mtime + size."""
    for key in ("ETag", "etag", "generation", "md5Hash", "crc32c"):
        value = info.get(key)
        if value:
            return f"{key}:{value}"
    mtime = info.get("mtime") or info.get("LastModified") or info.get("updated")
    if mtime is not None or info.get("size") is not None:
        return f"{mtime}-{info.get('size')}"
    return None


class RemoteCardFolder:
    """A folder of cards behind an fsspec URL."""

    def __init__(self, url: str, storage_options: Mapping[str, Any], max_concurrency: int):
        protocol, _, _ = url.partition("://")
        self.protocol = protocol
        self.fs_class = fsspec.get_filesystem_class(protocol)
        self.root = self.fs_class._strip_protocol(url).rstrip("/")
        self.url = f"{protocol}://{self.root}"
        self.storage_options = dict(storage_options)
        self.max_concurrency = max_concurrency
        self._fs: Any = None

    def object_url(self, path: str) -> str:
        return f"{self.protocol}://{path.lstrip('/') if self.protocol != 'memory' else path}"

    async def filesystem(self) -> Any:
        if self._fs is None:
            if issubclass(self.fs_class, AsyncFileSystem):
                fs = self.fs_class(
                    asynchronous=True, skip_instance_cache=True, **self.storage_options
                )
                if hasattr(fs, "set_session"):
                    await fs.set_session()
            else:
                fs = self.fs_class(**self.storage_options)
            self._fs = fs
        return self._fs

    async def list(self) -> dict[str, str | None]:
        fs = await self.filesystem()
        try:
            if fs.async_impl:
                found = await fs._find(self.root, detail=True)
            else:
                found = await anyio.to_thread.run_sync(lambda: fs.find(self.root, detail=True))
        except FileNotFoundError:
            raise AssetSourceNotFoundError(
                f"card folder {self.url} does not exist", source=self.url
            ) from None
        except OSError as exc:
            raise AssetMetadataError(
                f"cannot list card folder {self.url}: {exc}", source=self.url
            ) from exc
        if not found and not await self._exists():
            raise AssetSourceNotFoundError(
                f"card folder {self.url} does not exist", source=self.url
            )
        return {
            path: object_version(info)
            for path, info in found.items()
            if info.get("type", "file") != "directory" and is_card_file(path)
        }

    async def _exists(self) -> bool:
        fs = await self.filesystem()
        if fs.async_impl:
            return bool(await fs._exists(self.root))
        return bool(await anyio.to_thread.run_sync(fs.exists, self.root))

    async def read_all(self, source: str) -> list[FileRecord]:
        listing = await self.list()
        return await self.read(list(listing.items()), source)

    async def read(self, items: list[tuple[str, str | None]], source: str) -> list[FileRecord]:
        fs = await self.filesystem()
        limiter = anyio.Semaphore(self.max_concurrency)
        fetched: list[tuple[str, bytes, str | None]] = []
        records: list[FileRecord] = []

        async def fetch(path: str, version: str | None) -> None:
            url = self.object_url(path)
            async with limiter:
                try:
                    if fs.async_impl:
                        data = await fs._cat_file(path)
                    else:
                        data = await anyio.to_thread.run_sync(fs.cat_file, path)
                except FileNotFoundError:
                    return
                except OSError as exc:
                    problem = Problem("read", f"cannot read card file: {exc}", source, url)
                    records.append(FileRecord(url, (), (problem,), version))
                    return
            fetched.append((url, data, version))

        async with anyio.create_task_group() as tg:
            for path, version in items:
                tg.start_soon(fetch, path, version)
        for start in range(0, len(fetched), PARSE_BATCH):
            batch = fetched[start : start + PARSE_BATCH]
            records.extend(
                await anyio.to_thread.run_sync(lambda b=batch: parse_batch(b, source=source))
            )
        return records

    async def read_paths(self, paths: list[str], source: str) -> dict[str, FileRecord | None]:
        listing = await self.list()
        wanted = {self.fs_class._strip_protocol(p) for p in paths}
        items = [(p, v) for p, v in listing.items() if p in wanted]
        changed: dict[str, FileRecord | None] = {
            self.object_url(p): None for p in wanted if p not in listing
        }
        for record in await self.read(items, source):
            changed[record.file] = record
        return changed

    async def aclose(self) -> None:
        fs, self._fs = self._fs, None
        if fs is None:
            return
        session = getattr(fs, "_session", None) or getattr(fs, "session", None)
        close = getattr(session, "close", None)
        if close is not None:
            result = close()
            if hasattr(result, "__await__"):
                await result
