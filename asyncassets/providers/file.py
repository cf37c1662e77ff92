"""Cards in a folder: a local path, a ``file://`` URL or any fsspec URL."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from asyncassets.errors import AssetMetadataError, AssetSourceNotFoundError
from asyncassets.index_codec import IndexedFile
from asyncassets.problems import Problem
from asyncassets.providers.base import CardSource, SnapshotProvider
from asyncassets.providers.index import CardIndex, index_disabled
from asyncassets.providers.indexing import ProviderIndex
from asyncassets.providers.local import LocalCardFolder
from asyncassets.snapshot import FileRecord
from asyncassets.urls import is_local_url, local_path, public_uri

__all__ = ["DEFAULT_MAX_CONCURRENCY", "FileAssetMetadataProvider", "is_local_url"]

logger = logging.getLogger("asyncassets.providers.file")

#: Files read at once from a remote store (one connection each).
DEFAULT_MAX_CONCURRENCY = 64


class FileAssetMetadataProvider(SnapshotProvider):
    """Cards in the ``*.yaml``/``*.yml`` files under a folder, found recursively.

    ``url_or_path`` is a local path, a ``file://`` URL or any fsspec URL
    (``s3://bucket/cards``, ``gs://bucket/cards``, ``memory://cards``).
    ``storage_options`` go to the fsspec filesystem; ``poll_interval`` (seconds) is how
    often a remote folder is re-listed while watched; ``max_concurrency`` bounds the
    objects read at once from a remote store. ``missing_ok`` serves no cards (instead of
    raising :class:`AssetSourceNotFoundError`) while the folder does not exist, with a
    warning when ``warn_missing``; ``optional`` goes further: a folder that cannot be read
    at all (unknown protocol, unreachable endpoint, denied access) is a warning and a
    :class:`Problem`, and the provider serves no cards until a refresh can read it (the
    default store's folders, named by environment variables, are optional).

    ``index`` keeps what was parsed on disk (:mod:`asyncassets.providers.index`), so that
    the next load reads only the files that changed: on by default for remote folders,
    ``index=True`` for a local one (a network file system), off with ``index=False`` or
    ``$ASYNCASSETS_NO_INDEX=1``. ``index_dir`` is the folder of index files (default: the
    cache root's ``index/``, ``$ASYNCASSETS_CACHE_DIR/index``).

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
        optional: bool = False,
        index: bool | None = None,
        index_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.missing_ok = missing_ok or optional
        self.warn_missing = warn_missing
        self.optional = optional
        self.storage_options = dict(storage_options or {})
        self.poll_interval = poll_interval
        self.max_concurrency = max_concurrency
        self.is_local = is_local_url(url_or_path)
        self.path: Path | None = None
        self._open_error: AssetMetadataError | None = None
        self._folder: CardSource | None = None
        if self.is_local:
            self.path = local_path(url_or_path)
            assert self.path is not None
            self._folder = LocalCardFolder(self.path)
            source = self._folder.url
        else:
            from asyncassets.providers.remote import RemoteCardFolder

            try:
                self._folder = RemoteCardFolder(
                    os.fspath(url_or_path), self.storage_options, max_concurrency
                )
                source = self._folder.url
            except AssetMetadataError as exc:
                if not optional:
                    raise
                # Reported when the cards are first needed, never while constructing (the
                # default store is built at import time from environment variables).
                self._open_error = exc
                source = public_uri(os.fspath(url_or_path))
        self._warned = False
        super().__init__(source)
        wanted = (not self.is_local) if index is None else index
        self._index: ProviderIndex | None = None
        if wanted and self._folder is not None and not index_disabled():
            self._index = ProviderIndex(
                CardIndex.of(
                    os.fspath(url_or_path),
                    self.storage_options,
                    source,
                    Path(index_dir).expanduser() if index_dir is not None else None,
                )
            )

    def _card_source(self) -> CardSource:
        if self._folder is None:
            assert self._open_error is not None
            raise self._open_error
        return self._folder

    async def _list(self) -> dict[str, str | None]:
        """``{path: version}`` of every card file (object paths when remote)."""
        try:
            return await self._card_source().list_files()
        except AssetSourceNotFoundError as exc:
            if not self.missing_ok:
                raise
            if self.warn_missing and not self._warned:
                self._warned = True
                logger.warning("%s; no cards from there", exc)
            return {}

    def _unavailable(self, exc: AssetMetadataError) -> list[FileRecord]:
        """An optional folder that cannot be read: a warning (once) and a problem."""
        if not self._warned:
            self._warned = True
            logger.warning(
                "cannot read cards from %s: %s; serving none from there", self._source, exc
            )
        problem = Problem("source", f"cannot read cards: {exc}", self._source)
        return [FileRecord(self._source, (), (problem,), version=None)]

    async def _read_all(self) -> list[FileRecord]:
        try:
            started = time.time_ns()
            folder = self._card_source()
            if self._index is None:
                listing = await self._list()
                return await folder.read(list(listing.items()), self._source)
            listing, stored = await self._list_beside(self._index)
            known, unread = self._index.split(folder, listing, stored)
            records = await folder.read(unread, self._source)
            await self._index.update(folder, {r.file: r for r in records}, started, whole=True)
            return known + records
        except AssetMetadataError as exc:
            if not self.optional:
                raise
            return self._unavailable(exc)

    async def _list_beside(
        self, index: ProviderIndex
    ) -> tuple[dict[str, str | None], dict[str, IndexedFile] | None]:
        """The listing, and what ``index`` holds, read in a worker thread meanwhile (a warm
        start waits for the longer of the two, not for both)."""
        stored: dict[str, IndexedFile] | None = None
        listing: dict[str, str | None] = {}
        failure: Exception | None = None

        async def read_index() -> None:
            nonlocal stored
            stored = await index.read()

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_index)
            try:
                listing = await self._list()
            except Exception as exc:  # raised as itself below, not in an exception group
                failure = exc
        if failure is not None:
            raise failure
        return listing, stored

    async def _changed_files(self) -> dict[str, FileRecord | None]:
        """One listing; only files whose version differs from the snapshot are re-read."""
        try:
            started = time.time_ns()
            folder = self._card_source()
            listing = await self._list()
        except AssetMetadataError as exc:
            if not self.optional:
                raise
            return {self._source: self._unavailable(exc)[0]}
        known = self._snapshot.files
        urls = {folder.file_url(path): (path, version) for path, version in listing.items()}
        changed: dict[str, FileRecord | None] = {url: None for url in known if url not in urls}
        stale = [
            (path, version)
            for url, (path, version) in urls.items()
            if url not in known or version is None or known[url].version != version
        ]
        for record in await folder.read(stale, self._source):
            changed[record.file] = record
        if self._index is not None:
            await self._index.update(folder, changed, started)
        return changed

    async def _read_paths(self, paths: list[str]) -> dict[str, FileRecord | None]:
        started = time.time_ns()
        folder = self._card_source()
        changed = await folder.read_paths(paths, self._source, self._snapshot.files)
        if self._index is not None:
            await self._index.update(folder, changed, started)
        return changed

    async def aclose(self) -> None:
        if self._folder is not None:
            await self._folder.aclose()
