"""Cards in a folder: a local path, a ``file://`` URL or any fsspec URL."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from asyncassets.errors import AssetSourceNotFoundError
from asyncassets.parsing import is_card_file
from asyncassets.providers.base import SnapshotProvider
from asyncassets.providers.local import (
    file_url,
    is_hidden_below,
    list_local_cards,
    read_local_cards,
)
from asyncassets.snapshot import FileRecord

__all__ = ["DEFAULT_MAX_CONCURRENCY", "FileAssetMetadataProvider", "is_local_url"]

logger = logging.getLogger("asyncassets.providers.file")

#: Files read at once from a remote store (one connection each).
DEFAULT_MAX_CONCURRENCY = 64
#: Local files read and parsed per worker-thread hop.
LOCAL_BATCH = 64
#: Worker threads parsing local files at once.
LOCAL_THREADS = 4


def is_local_url(url: str | os.PathLike[str]) -> bool:
    text = os.fspath(url)
    return "://" not in text or text.startswith("file://")


def _local_path(url: str | os.PathLike[str]) -> Path:
    text = os.fspath(url)
    if text.startswith("file://"):
        text = text[len("file://") :]
    return Path(text).expanduser().absolute()


class FileAssetMetadataProvider(SnapshotProvider):
    """Cards in the ``*.yaml``/``*.yml`` files under a folder, found recursively.

    ``url_or_path`` is a local path, a ``file://`` URL or any fsspec URL
    (``s3://bucket/cards``, ``gs://bucket/cards``, ``memory://cards``).
    ``storage_options`` go to the fsspec filesystem; ``poll_interval`` (seconds) is how
    often a remote folder is re-listed while watched; ``max_concurrency`` bounds the
    objects read at once from a remote store.

    >>> asset_store.metadata_providers.append(FileAssetMetadataProvider("~/cards"))
    """

    def __init__(
        self,
        url_or_path: str | os.PathLike[str],
        *,
        storage_options: Mapping[str, Any] | None = None,
        poll_interval: float | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        missing_ok: bool = False,
        warn_missing: bool = False,
    ) -> None:
        self.missing_ok = missing_ok
        self.warn_missing = warn_missing
        self.storage_options = dict(storage_options or {})
        self.poll_interval = poll_interval
        self.max_concurrency = max_concurrency
        self.is_local = is_local_url(url_or_path)
        if self.is_local:
            self.path: Path | None = _local_path(url_or_path)
            source = file_url(self.path)
            self._remote = None
        else:
            from asyncassets.providers.remote import RemoteCardFolder

            self.path = None
            self._remote = RemoteCardFolder(
                os.fspath(url_or_path), self.storage_options, max_concurrency
            )
            source = self._remote.url
        super().__init__(source)

    async def _list(self) -> dict[str, str | None]:
        """``{path: version}`` of every card file (object paths when remote)."""
        try:
            if self._remote is not None:
                return await self._remote.list_objects()
            assert self.path is not None
            return dict(await anyio.to_thread.run_sync(list_local_cards, self.path))
        except AssetSourceNotFoundError as exc:
            if not self.missing_ok:
                raise
            if self.warn_missing and not self._loaded:
                logger.warning("%s; no cards from there", exc)
            return {}

    async def _read(self, items: list[tuple[str, str | None]]) -> list[FileRecord]:
        if self._remote is not None:
            return await self._remote.read(items, self._source)
        return await self._read_local(items)

    def _url(self, path: str) -> str:
        return self._remote.object_url(path) if self._remote is not None else file_url(path)

    async def _read_all(self) -> list[FileRecord]:
        return await self._read(list((await self._list()).items()))

    async def _changed_files(self) -> dict[str, FileRecord | None]:
        """One listing; only files whose version differs from the snapshot are re-read."""
        listing = await self._list()
        known = self._snapshot.files
        urls = {self._url(path): (path, version) for path, version in listing.items()}
        changed: dict[str, FileRecord | None] = {url: None for url in known if url not in urls}
        stale = [
            (path, version)
            for url, (path, version) in urls.items()
            if url not in known or version is None or known[url].version != version
        ]
        for record in await self._read(stale):
            changed[record.file] = record
        return changed

    async def _read_local(self, items: list[tuple[str, str | None]]) -> list[FileRecord]:
        limiter = anyio.CapacityLimiter(LOCAL_THREADS)
        results: list[list[FileRecord]] = []

        async def run(batch: list[tuple[str, str | None]]) -> None:
            records = await anyio.to_thread.run_sync(
                read_local_cards, batch, self._source, limiter=limiter
            )
            results.append(records)

        async with anyio.create_task_group() as tg:
            for start in range(0, len(items), LOCAL_BATCH):
                tg.start_soon(run, items[start : start + LOCAL_BATCH])
        return [record for batch in results for record in batch]

    async def _read_paths(self, paths: list[str]) -> dict[str, FileRecord | None]:
        if self._remote is not None:
            return await self._remote.read_paths(paths, self._source)
        known = list(self._snapshot.files)
        assert self.path is not None
        listing, gone = await anyio.to_thread.run_sync(_expand_local_paths, self.path, paths, known)
        changed: dict[str, FileRecord | None] = dict.fromkeys(gone)
        for record in await self._read_local(list(listing.items())):
            changed[record.file] = record
        return changed

    async def aclose(self) -> None:
        if self._remote is not None:
            await self._remote.aclose()


def _expand_local_paths(
    root: Path, paths: list[str], known: list[str]
) -> tuple[dict[str, str], list[str]]:
    """Card files under changed ``paths`` (``{path: version}``) and known file URLs that
    are gone (a deleted file, or any file under a deleted or renamed folder). Paths outside
    ``root`` or hidden below it are left out, as a full listing leaves them out."""
    present: dict[str, str] = {}
    gone: list[str] = []
    for path in paths:
        local = _local_path(path)
        url = file_url(local)
        if local != root and is_hidden_below(root, local):
            continue
        under = [f for f in known if f == url or f.startswith(url + "/")]
        if not local.exists():
            gone.extend(under)
            continue
        if local.is_file() and not is_card_file(local.name):
            continue
        listing = list_local_cards(local)
        present.update(listing)
        gone.extend(f for f in under if f[len("file://") :] not in listing)
    return present, gone
