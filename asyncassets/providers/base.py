"""The provider protocol and the snapshot-holding base class every provider builds on."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from asyncassets.errors import (
    AssetError,
    AssetMetadataError,
    AssetMetadataNotFoundError,
    first_error,
)
from asyncassets.loops import LoopLocalLock
from asyncassets.problems import Problem
from asyncassets.snapshot import WHOLE_FILE_PROBLEMS, FileRecord, Snapshot, SnapshotDiff
from asyncassets.values import copy_value

__all__ = [
    "RACY_NS",
    "AssetMetadataProvider",
    "CardSource",
    "FileIdentity",
    "SnapshotListener",
    "SnapshotProvider",
]

logger = logging.getLogger("asyncassets.providers")

T = TypeVar("T")

#: Called with (provider, new snapshot, diff) after every swap.
SnapshotListener = Callable[["SnapshotProvider", Snapshot, SnapshotDiff], None]


@runtime_checkable
class AssetMetadataProvider(Protocol):
    """A source of card metadata that the store can load, query and refresh."""

    @property
    def source(self) -> str:
        """Where the cards come from (``file:///etc/cards``, ``s3://bucket/cards``, ...)."""
        ...

    @property
    def loaded(self) -> bool: ...

    @property
    def snapshot(self) -> Snapshot:
        """The current immutable index of this provider's cards."""
        ...

    @property
    def asset_names(self) -> frozenset[str]:
        """Canonical names (``foo@``, ``foo@env``) after :meth:`load`."""
        ...

    async def load(self) -> None:
        """List, read and parse every card; safe to call again (loads once)."""
        ...

    async def refresh(self, paths: Iterable[str] | None = None) -> SnapshotDiff:
        """Re-read changed files (None: re-list everything) and swap the snapshot in."""
        ...

    async def get_metadata(self, name: str) -> dict[str, Any]:
        """A copy of the metadata of canonical ``name``."""
        ...

    def add_listener(self, listener: SnapshotListener) -> None: ...

    def remove_listener(self, listener: SnapshotListener) -> None: ...

    async def aclose(self) -> None:
        """Release sessions and connections."""
        ...


#: A file recorded less than this long after its mtime may change again within the same
#: mtime with the same size (git's "racy clean" rule): its record is not trusted.
RACY_NS = 2_000_000_000


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """What a listing says of a file's content, for the persistent index: ``key`` changes
    whenever the content may have (an ETag or a generation and the size remotely; size,
    mtime, ctime and inode locally); ``mtime_ns``, when set, is the file's mtime, for the
    racy rule (:data:`RACY_NS`)."""

    key: str
    mtime_ns: int | None = None

    def vouches_for(self, key: str, recorded_ns: int) -> bool:
        """True when a record made at ``recorded_ns`` of the file then at ``key`` is this
        file's content now."""
        if key != self.key:
            return False
        return self.mtime_ns is None or recorded_ns - self.mtime_ns >= RACY_NS


class CardSource(Protocol):
    """Where a :class:`FileAssetMetadataProvider` lists and reads card files: a local
    folder or an fsspec URL. The only code that touches the files."""

    @property
    def url(self) -> str:
        """The folder's URL (``file:///etc/cards``, ``s3://bucket/cards``)."""
        ...

    def file_url(self, path: str) -> str:
        """The URL of a listed file (what entries and problems carry)."""
        ...

    async def list_files(self) -> dict[str, str | None]:
        """``{path: version}`` of every card file under the folder."""
        ...

    def identity(self, file: str, version: str | None) -> FileIdentity | None:
        """What identifies the content of listed file ``file`` (its URL) at ``version``
        well enough for the persistent index to serve it unread; None: nothing does (a
        remote object known only by its mtime)."""
        ...

    async def read(self, items: list[tuple[str, str | None]], source: str) -> list[FileRecord]:
        """Read and parse ``(path, version)`` items; a file that fails is a problem."""
        ...

    async def read_paths(
        self, paths: list[str], source: str, known: Iterable[str]
    ) -> dict[str, FileRecord | None]:
        """Records of the card files under ``paths`` (file URLs or paths that changed);
        None for ``known`` file URLs that are gone."""
        ...

    async def aclose(self) -> None: ...


class SnapshotProvider(ABC):
    """Holds a snapshot and swaps it on refresh. Subclasses read files.

    Subclasses implement :meth:`_read_all` (every file) and may implement
    :meth:`_read_paths` (some files) for incremental refreshes.
    """

    def __init__(self, source: str) -> None:
        self._source = source
        self._snapshot = Snapshot.empty(source)
        self._loaded = False
        self._lock = LoopLocalLock()
        self._listeners: list[SnapshotListener] = []

    @property
    def source(self) -> str:
        return self._source

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def asset_names(self) -> frozenset[str]:
        return self._snapshot.names

    @property
    def problems(self) -> list[Problem]:
        return self._snapshot.problems

    def add_listener(self, listener: SnapshotListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: SnapshotListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def load(self) -> None:
        """List, read and parse every card (once; a cancelled or failed load is tried
        again by the next call). Failures are :class:`AssetMetadataError` naming the
        source."""
        if self._loaded:
            return
        async with self._lock.get():
            if self._loaded:
                return
            records = await self._guarded(self._read_all)
            snapshot = Snapshot.build(self._source, records)
            self._swap(snapshot, SnapshotDiff(added=snapshot.names))
            self._loaded = True
            logger.debug("loaded %d cards from %s", len(snapshot), self._source)

    async def refresh(self, paths: Iterable[str] | None = None) -> SnapshotDiff:
        """Re-read changed files (None: re-list everything) and swap the snapshot in.

        Before the first load this is a load: a provider never holds only the files a
        refresh named."""
        if not self._loaded:
            await self.load()
            return SnapshotDiff(added=self._snapshot.names)
        wanted = None if paths is None else list(paths)
        async with self._lock.get():
            if wanted is None:
                changed = await self._guarded(self._changed_files)
            else:
                changed = await self._guarded(lambda: self._read_paths(wanted))
            return self._apply(changed)

    async def _guarded(self, read: Callable[[], Awaitable[T]]) -> T:
        """``read()``, with any failure that is not an :class:`AssetError` reported as an
        :class:`AssetMetadataError` naming this provider's source."""
        try:
            return await read()
        except AssetError:
            raise
        except Exception as group:
            exc = first_error(group)
            if isinstance(exc, AssetError):
                raise exc from group
            logger.debug("reading %s failed", self._source, exc_info=True)
            raise AssetMetadataError(
                f"cannot read cards from {self._source}: {type(exc).__name__}: {exc}",
                source=self._source,
            ) from exc

    def _apply(self, changed: dict[str, FileRecord | None]) -> SnapshotDiff:
        """Swap in the old snapshot plus ``changed``; a file that fails to parse keeps its
        last good cards (marked stale, with the problem)."""
        old = self._snapshot
        for path, record in list(changed.items()):
            previous = old.files.get(path)
            if (
                record is not None
                and previous is not None
                and not record.entries
                and any(p.kind in WHOLE_FILE_PROBLEMS for p in record.problems)
            ):
                changed[path] = FileRecord(
                    path, previous.entries, record.problems, record.version, stale=True
                )
        snapshot, diff = old.with_files(changed)
        self._swap(snapshot, diff)
        self._loaded = True
        return diff

    def _swap(self, snapshot: Snapshot, diff: SnapshotDiff) -> None:
        self._snapshot = snapshot
        for listener in list(self._listeners):
            listener(self, snapshot, diff)

    async def get_metadata(self, name: str) -> dict[str, Any]:
        await self.load()
        entry = self._snapshot.get(name)
        if entry is None:
            raise AssetMetadataNotFoundError(
                f"{self._source} has no card named '{name}'", name=name, source=self._source
            )
        result: dict[str, Any] = copy_value(entry.metadata)
        return result

    @abstractmethod
    async def _read_all(self) -> list[FileRecord]:
        """Every file's record."""

    async def _read_paths(self, paths: list[str]) -> dict[str, FileRecord | None]:
        """Records of ``paths`` (file URLs); None for a file that is gone.

        The default re-lists everything; providers that can read single files override it.
        """
        return await self._changed_files()

    async def _changed_files(self) -> dict[str, FileRecord | None]:
        """Files that differ from the current snapshot (by version), re-read; gone: None."""
        records = {r.file: r for r in await self._read_all()}
        changed: dict[str, FileRecord | None] = {
            path: None for path in self._snapshot.files if path not in records
        }
        for path, record in records.items():
            old = self._snapshot.files.get(path)
            if old is None or old.version is None or old.version != record.version:
                changed[path] = record
        return changed

    async def aclose(self) -> None:
        """Release sessions; nothing to release by default."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._source!r})"
