"""``CheckpointCache``: fetch a checkpoint (file or folder) once into a local cache.

The flow of ``fetch``: the request becomes a job (:mod:`.job`); a local path is returned as
it is; otherwise one metadata request (:mod:`.transports`) tells the remote version; a
complete entry of that version is returned at once (:mod:`.entries`); else the entry's lock
is taken (in-process and inter-process, :mod:`.locking`), an interrupted download of that
version is resumed or a new one started in a partial folder (:mod:`.layout`), the files are
downloaded (:mod:`.ranged`), size- and hash-checked, optionally unpacked, and published with
a rename (:mod:`.entries`).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.to_thread

from asyncassets.envs import env_flag
from asyncassets.errors import (
    AssetDownloadError,
    AssetError,
    RemoteChangedError,
)
from asyncassets.retrying import RetryPolicy, call_with_retries

from .entries import Entries
from .eviction import Shelf
from .failures import download_error
from .job import FetchJob
from .layout import (
    DEFAULT_GRACE_SECONDS,
    CacheEntry,
    CacheLayout,
    default_cache_root,
    remove_tree,
)
from .leases import lease_kept
from .locking import EntryLocks, SingleFlight, own_partial
from .progress import CacheStats, ProgressCallback, download_progress
from .ranged import TransferSettings, download_files
from .transports import RemoteFile, RemoteIdentity, RemoteListing, Source, open_source

__all__ = ["CacheStats", "CheckpointCache", "ProgressCallback"]

logger = logging.getLogger("asyncassets.cache")

#: Downloads started again when the remote changes under one, before giving up.
_RESTARTS_ON_CHANGE = 2


class CheckpointCache:
    """A local cache of remote checkpoints: atomic, shared between processes, resumable.

    ``root`` defaults to ``$ASYNCASSETS_CACHE_DIR``, else ``$XDG_CACHE_HOME/asyncassets``,
    else ``~/.cache/asyncassets``. ``max_bytes`` evicts least recently used entries after each
    fetch. ``part_size`` and ``concurrency`` (requests in flight per fetch) default by source,
    as measured with bench/prefetch.py: 16 MiB x 32 over HTTP (about 100 MiB of memory),
    8 MiB x 16 through fsspec (``_cat_file`` holds whole parts: about 130 MiB). ``retry``
    tunes retries of transient failures.

    Example::

        async with CheckpointCache() as cache:
            path = await cache.fetch("s3://models/llama/consolidated.pth", sha256="ab12...")
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int | None = None,
        part_size: int | None = None,
        concurrency: int | None = None,
        retry: RetryPolicy | None = None,
        locking: bool | None = None,
        grace: float = DEFAULT_GRACE_SECONDS,
    ) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_root()
        self.max_bytes = max_bytes
        self.grace = grace
        self.locking = not env_flag("ASYNCASSETS_NO_LOCKS") if locking is None else locking
        self.settings = TransferSettings(
            part_size=part_size,
            concurrency=max(1, concurrency) if concurrency is not None else None,
            retry=retry or RetryPolicy(),
        )
        self._layout = CacheLayout(self.root)
        self._locks = EntryLocks(self._layout.lock_path, enabled=self.locking)
        self._shelf = Shelf(self._layout, self._locks)
        self._entries = Entries(self._layout, self._locks)
        self._flights = SingleFlight()
        #: hits, misses and bytes downloaded since the cache was made (for metrics)
        self.stats = CacheStats()

    def __repr__(self) -> str:
        return f"CheckpointCache(root={str(self.root)!r}, max_bytes={self.max_bytes!r})"

    async def __aenter__(self) -> CheckpointCache:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release resources. Sessions live for one fetch, so there is nothing left to close;
        kept so that callers can treat the cache like any other async resource."""

    # -- fetch ------------------------------------------------------------------------------

    async def fetch(
        self,
        uri: str | os.PathLike[str],
        *,
        sha256: str | None = None,
        force: bool = False,
        local_only: bool = False,
        progress: bool | ProgressCallback = True,
        storage_options: dict[str, Any] | None = None,
        extract: bool = False,
        include: Sequence[str] | None = None,
    ) -> Path:
        """Return a local path holding the bytes of ``uri`` (a file or a folder).

        - A plain path or ``file://`` URL is returned as it is (it must exist).
        - ``progress``: a bar on a terminal (``True``), none (``False``), or a callable that
          receives (bytes done, bytes in all or ``None``) as the download advances.
        - A cached entry is revalidated with one metadata request and returned when the
          remote version (ETag / generation / size) is unchanged; ``force=True`` downloads
          again; ``local_only=True`` or ``$ASYNCASSETS_OFFLINE=1`` never touches the network
          (a missing entry is then an error).
        - ``sha256`` (hex, ``sha256:`` prefix allowed) is checked; a mismatch raises
          ``ChecksumMismatchError`` and keeps nothing.
        - ``extract=True`` unpacks a ``.tar``/``.tar.gz``/``.zip`` and returns its folder.
        - ``storage_options`` go to fsspec (``s3://``, ``gs://``...) or, for ``http(s)://``,
          may hold ``headers`` and ``client_kwargs`` for aiohttp; for a Hub URI,
          ``endpoint`` and ``token``.
        - ``include`` (glob patterns, matched against each file's path inside the folder
          and its name) chooses the files of a folder: ``include=["*.safetensors"]``. The
          entry holds only those; other patterns make another entry.
        - Hugging Face Hub repos: ``hg://ORG/REPO`` and
          ``hf://[models/|datasets/]ORG/REPO[@REVISION][/PATH]`` (a repo or a folder of one
          is a folder; ``$HF_HUB_OFFLINE=1`` works like ``local_only``), see
          :mod:`asyncassets.cache.hub`.

        Raises ``AssetDownloadError`` naming the URI when the object cannot be fetched.
        """
        job = FetchJob.plan(
            uri,
            self._layout,
            sha256=sha256,
            force=force,
            local_only=local_only,
            progress=progress,
            storage_options=storage_options,
            extract=extract,
            include=include,
        )
        local = job.uri.local
        if local is not None:
            if not await anyio.to_thread.run_sync(local.exists):
                raise AssetDownloadError(f"{job.uri.raw} does not exist", uri=job.uri.raw)
            if not extract:
                return local
        path = await self._flights.run(job.flight, functools.partial(self._run, job))
        if self.max_bytes is not None:
            await self.prune(self.max_bytes, keep=job.key)
        return path

    async def _run(self, job: FetchJob) -> Path:
        """The job, offline or online; nothing but an ``AssetError`` leaves it."""
        try:
            if job.offline:
                return await self._serve_offline(job)
            async with self._source(job) as source:
                for restart in range(_RESTARTS_ON_CHANGE + 1):
                    try:
                        return await self._fetch_online(job, source)
                    except RemoteChangedError as exc:
                        if restart == _RESTARTS_ON_CHANGE:
                            raise self._error(job, exc) from None
                        logger.warning(
                            "%s changed during the download; starting again", job.uri.public
                        )
            raise AssertionError("unreachable")  # pragma: no cover
        except AssetError:
            raise
        except Exception as exc:  # the network, or the cache's own disk
            raise self._error(job, exc) from exc

    def _error(self, job: FetchJob, exc: BaseException) -> AssetDownloadError:
        return download_error(job.uri, exc, root=self.root, attempts=self.settings.retry.attempts)

    @asynccontextmanager
    async def _source(self, job: FetchJob) -> AsyncIterator[Source | None]:
        """The transport of the job's remote (None for a local path), closed after it."""
        if job.uri.local is not None:
            yield None
            return
        try:
            source = open_source(
                job.uri, job.storage_options, concurrency=self.settings.concurrency
            )
        except Exception as exc:
            raise self._error(job, exc) from None
        try:
            yield source
        finally:
            with anyio.CancelScope(shield=True):
                await source.aclose()

    async def _serve_offline(self, job: FetchJob) -> Path:
        path = await self._hit(job, None)
        if path is None:
            raise AssetDownloadError(
                f"{job.uri.public} is not in the cache at {self.root} and offline mode is on "
                "(local_only=True, ASYNCASSETS_OFFLINE=1 or, for the Hub, HF_HUB_OFFLINE=1); "
                "fetch it once while online",
                uri=job.uri.public,
            )
        return path

    async def _hit(self, job: FetchJob, identity: RemoteIdentity | None) -> Path | None:
        """The job's complete entry (of version ``identity`` if given), counted as a hit."""
        path = await self._entries.serve(job, identity)
        if path is not None:
            self.stats.hits += 1
        return path

    async def _fetch_online(self, job: FetchJob, source: Source | None) -> Path:
        listing = await self._describe(job, source)
        if not job.force and (path := await self._hit(job, listing.identity)) is not None:
            logger.debug("cache hit for %s", job.uri.public)
            return path
        await anyio.to_thread.run_sync(self._layout.ensure, job.key)
        async with self._locks.hold(job.key):
            # Another process may have published this version while we waited for the lock.
            if not job.force and (path := await self._hit(job, listing.identity)) is not None:
                return path
            return await self._download(job, source, listing)

    async def _describe(self, job: FetchJob, source: Source | None) -> RemoteListing:
        """What the job fetches: one metadata request (with retries), cut down to the files
        ``include`` chooses; a local file's own size and mtime."""
        if source is None:
            assert job.uri.local is not None
            return await anyio.to_thread.run_sync(_local_listing, job.uri.local, job.uri.name)
        known = await anyio.to_thread.run_sync(self._layout.read_entry, job.key)
        hint = known.kind if known and not job.force else None
        listing = await call_with_retries(self.settings.retry, lambda: source.describe(hint))
        return job.chosen(listing)

    async def _download(self, job: FetchJob, source: Source | None, listing: RemoteListing) -> Path:
        """Download ``listing`` into a partial and publish it; when another writer was
        downloading the same version and published it meanwhile, its entry."""
        job.check(listing)
        self.stats.misses += 1
        part_size = self.settings.part_size or (
            source.default_part_size if source is not None else 8 * 2**20
        )
        state = job.partial_state(listing, part_size)
        partial, published = await own_partial(
            self._layout,
            job.key,
            state,
            wait=not job.force,
            published=functools.partial(self._hit, job, listing.identity),
        )
        if published is not None:
            return published
        assert partial is not None
        try:
            downloaded = job.uri.local
            digests: dict[str, str] = {}
            if source is not None:
                downloaded = partial / "data" / job.uri.name
                total = listing.identity.size
                with download_progress(job.uri.name, total, job.progress, self.stats) as bar:
                    async with lease_kept(partial):
                        digests = await download_files(
                            source,
                            listing,
                            downloaded,
                            settings=self.settings,
                            part_size=state.part_size,
                            progress=bar,
                            expected=job.expected,
                        )
            assert downloaded is not None
            return await self._entries.publish(job, listing, partial, downloaded, digests)
        except RemoteChangedError:
            await anyio.to_thread.run_sync(remove_tree, partial)
            raise

    # -- listing and eviction: asyncassets/cache/eviction.py ------------------------------

    async def list_entries(self) -> list[CacheEntry]:
        """:meth:`entries` for async code: the walk of the cache folder runs in a worker
        thread."""
        return await anyio.to_thread.run_sync(self.entries)

    def entries(self) -> list[CacheEntry]:
        """Every entry under the root, complete or interrupted, most recently used first.

        Blocking (it walks the cache folder): async code awaits :meth:`list_entries`."""
        return self._shelf.entries()

    async def prune(
        self,
        max_bytes: int | None = None,
        *,
        keep: str | None = None,
        grace: float | None = None,
    ) -> list[CacheEntry]:
        """Reclaim what nobody can use any more, then evict least recently used entries
        until the cache holds at most ``max_bytes`` (default: the cache's ``max_bytes``;
        ``None`` for both: reclaim only; ``0`` empties it).

        Reclaimed: versions superseded by a newer one and downloads abandoned more than
        ``grace`` seconds ago (default: the cache's ``grace``, an hour), so that a path
        ``fetch`` returned stays readable that long after a newer version replaced it.
        An entry in use (being downloaded or revalidated by any process) is never evicted;
        ``keep`` names an entry key never to evict (the one just fetched). Returns the
        evicted entries."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        wait = self.grace if grace is None else grace
        return await self._shelf.prune(limit, grace=wait, keep=keep)

    async def remove(self, uri: str | os.PathLike[str]) -> bool:
        """Delete the cached entries of ``uri`` (plain and extracted); True when one existed.

        Waits for a download of the same URI to finish first. Local paths are never touched.
        """
        return await self._shelf.remove(uri)

    def path_of(
        self,
        uri: str | os.PathLike[str],
        *,
        extract: bool = False,
        include: Sequence[str] | None = None,
    ) -> Path | None:
        """The cached path of ``uri`` (fetched with ``include``) without any network
        access, or None."""
        patterns = tuple(include) if include is not None else None
        return self._shelf.path_of(uri, extract=extract, include=patterns)


def _local_listing(path: Path, name: str) -> RemoteListing:
    """A local file described as a remote one (blocking): its size and mtime."""
    stat = path.stat()
    identity = RemoteIdentity(size=stat.st_size, mtime=str(stat.st_mtime_ns))
    return RemoteListing("file", identity, [RemoteFile(str(path), name, identity)])
