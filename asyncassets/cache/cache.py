"""``CheckpointCache``: fetch a checkpoint (file or folder) once into a local cache.

The flow of ``fetch``: local paths are returned as they are; otherwise one metadata request
tells the remote version; a complete entry of that version is returned at once; else the
entry's lock is taken (in-process and inter-process), an interrupted download of that version
is resumed or a new one started in a partial folder, the result is size- and hash-checked,
optionally unpacked, and published with a rename.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import hashlib
import logging
import os
import posixpath
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.to_thread

from asyncassets.envs import env_flag
from asyncassets.errors import (
    AssetDownloadError,
    AssetError,
    ChecksumMismatchError,
    PermanentError,
    RemoteChangedError,
    first_error,
)
from asyncassets.retrying import RetryPolicy, call_with_retries
from asyncassets.transient import is_transient
from asyncassets.urls import public_uri, scrub

from .archive import ArchiveError, archive_kind, extract_archive, extracted_name
from .durable import write_json_atomic
from .eviction import Shelf
from .layout import (
    ACTIVE_PARTIALS,
    DEFAULT_GRACE_SECONDS,
    LEASE_SECONDS,
    CacheEntry,
    CacheLayout,
    EntryRecord,
    default_cache_root,
    remove_tree,
    renew_lease,
)
from .locking import EntryLocks, SingleFlight
from .progress import ProgressReporter, open_progress, progress_enabled
from .ranged import TransferSettings, download_file
from .transports import RemoteFile, RemoteIdentity, RemoteListing, Source, open_source
from .transports.hub import hub_offline
from .uri import CheckpointURI

__all__ = ["CacheStats", "CheckpointCache", "ProgressCallback"]

#: How long a new partial download waits before it looks for one started just before it.
SETTLE_SECONDS = 0.1

#: Called with (bytes done, bytes in all or None) as a download advances.
ProgressCallback = Callable[[int, int | None], None]


@dataclass
class CacheStats:
    """What a cache did since it was made (for metrics): fetches answered from the cache,
    fetches that downloaded, and bytes written by downloads (a resumed download counts what
    it finds on disk)."""

    hits: int = 0
    misses: int = 0
    bytes_downloaded: int = 0


class _Counting:
    """A progress reporter that also counts bytes into the stats and tells a callback."""

    def __init__(
        self,
        stats: CacheStats,
        progress: bool | ProgressCallback,
        total: int | None,
        bar: ProgressReporter,
    ) -> None:
        self._stats = stats
        self._callback = progress if callable(progress) else None
        self._total = total
        self._bar = bar
        self._done = 0

    def advance(self, nbytes: int) -> None:
        self._done += nbytes
        self._stats.bytes_downloaded += nbytes
        self._bar.advance(nbytes)
        if self._callback is not None:
            self._callback(self._done, self._total)

    def __enter__(self) -> _Counting:
        self._bar.__enter__()
        if self._callback is not None:
            self._callback(0, self._total)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._bar.__exit__(*exc)


logger = logging.getLogger("asyncassets.cache")

_RESTARTS_ON_CHANGE = 2

#: Errors of the cache's own disk, reported as such (never as a failed download).
_DISK_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "a path of the cache folder is a file, not a folder",
    errno.EEXIST: "a path of the cache folder is a file, not a folder",
    errno.EFBIG: "the file is larger than this file system or process allows",
    errno.ELOOP: "a path of the cache folder loops through symlinks",
}
_DISK_ADVICE = {
    errno.ENOSPC: "free space or prune the cache (asyncassets cache prune --max-size SIZE)",
    errno.EDQUOT: "free space or prune the cache (asyncassets cache prune --max-size SIZE)",
    errno.EACCES: "choose a writable folder (--cache-dir or $ASYNCASSETS_CACHE_DIR)",
    errno.EPERM: "choose a writable folder (--cache-dir or $ASYNCASSETS_CACHE_DIR)",
    errno.EROFS: "choose a writable folder (--cache-dir or $ASYNCASSETS_CACHE_DIR)",
    errno.ENOTDIR: "point --cache-dir or $ASYNCASSETS_CACHE_DIR at a folder",
    errno.EEXIST: "point --cache-dir or $ASYNCASSETS_CACHE_DIR at a folder",
    errno.EFBIG: "use a cache folder on a file system that takes the file (ulimit -f too)",
    errno.ELOOP: "remove the symlink loop, or point --cache-dir at another folder",
}


def _normalize_sha256(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:") :]
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"not a sha256 hex digest: {value!r}")
    return text


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _safe_relpath(uri: CheckpointURI, relpath: str) -> str:
    clean = posixpath.normpath(relpath)
    if clean.startswith(("/", "../")) or clean in ("..", "."):
        raise AssetDownloadError(
            f"refusing to fetch {uri.public}: the listing has an unsafe name {relpath!r}",
            uri=uri.public,
        )
    return clean


@asynccontextmanager
async def _lease_kept(partial: Path) -> AsyncIterator[None]:
    """Renew the lease of ``partial`` while the block runs: other processes (with locks
    off, or locks that lie) then leave this download alone."""

    async def renew() -> None:
        while True:
            await anyio.to_thread.run_sync(renew_lease, partial)
            await anyio.sleep(LEASE_SECONDS / 6)

    body_error: BaseException | None = None
    ACTIVE_PARTIALS.add(str(partial))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(renew)
            try:
                yield
            except BaseException as exc:
                # Re-raised outside the task group, so that it is not wrapped in a group.
                body_error = exc
            finally:
                tg.cancel_scope.cancel()
    finally:
        ACTIVE_PARTIALS.discard(str(partial))
    if body_error is not None:
        raise body_error


def _has_size(path: Path, size: int | None) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def _move_into_place(part: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, final)
    part.with_name(part.name + ".parts.json").unlink(missing_ok=True)


def _discard_part(part: Path) -> None:
    part.unlink(missing_ok=True)
    part.with_name(part.name + ".parts.json").unlink(missing_ok=True)


def _selected(
    uri: CheckpointURI, listing: RemoteListing, include: tuple[str, ...]
) -> RemoteListing:
    """The listing of a folder cut down to the files ``include`` chooses."""
    chosen = listing.chosen(include)
    if not chosen.files:
        shown = ", ".join(f.relpath for f in listing.files[:12])
        more = f" and {len(listing.files) - 12} more" if len(listing.files) > 12 else ""
        raise PermanentError(
            f"no file of {uri.public} matches {', '.join(include)} (it holds {shown}{more})",
            status=404,
        )
    return chosen


def _replace_tree(source: Path, target: Path) -> None:
    shutil.rmtree(target)
    os.replace(source, target)


async def _remove_tree(path: Path) -> None:
    await anyio.to_thread.run_sync(remove_tree, path)


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
        try:
            target = CheckpointURI.parse(uri)
        except ValueError as exc:  # a Hub URI that names no repo
            raise AssetDownloadError(str(exc), uri=public_uri(os.fspath(uri))) from None
        try:
            expected = _normalize_sha256(sha256)
        except ValueError as exc:
            raise AssetDownloadError(f"{exc} (for {target.public})", uri=target.public) from None
        hub = target.kind == "hub"
        patterns = tuple(include) if include is not None else None
        if patterns is not None and (not patterns or not all(isinstance(p, str) for p in patterns)):
            raise AssetDownloadError(
                f"include= must be a non-empty list of glob patterns, not {include!r} "
                f"(for {target.public})",
                uri=target.public,
            )
        local = target.local
        if local is not None:
            if not await anyio.to_thread.run_sync(local.exists):
                raise AssetDownloadError(f"{target.raw} does not exist", uri=target.raw)
            if not extract:
                return local
        offline = local_only or env_flag("ASYNCASSETS_OFFLINE") or (hub and hub_offline())
        key = self._layout.key(target, extract=extract, include=patterns)

        async def run() -> Path:
            try:
                return await self._fetch(
                    target,
                    key,
                    expected=expected,
                    force=force,
                    offline=offline,
                    progress=progress,
                    storage_options=storage_options,
                    extract=extract,
                    local=local,
                    include=patterns,
                )
            except AssetError:
                raise
            except Exception as exc:  # the cache's own disk (offline reads, publishing)
                raise self._download_error(target, exc) from exc

        path = await self._flights.run((key, expected, force, offline, extract, patterns), run)
        if self.max_bytes is not None:
            await self.prune(self.max_bytes, keep=key)
        return path

    async def _fetch(
        self,
        uri: CheckpointURI,
        key: str,
        *,
        expected: str | None,
        force: bool,
        offline: bool,
        progress: bool | ProgressCallback,
        storage_options: dict[str, Any] | None,
        extract: bool,
        local: Path | None,
        include: tuple[str, ...] | None,
    ) -> Path:
        if offline:
            return await self._fetch_offline(uri, key, expected)
        try:
            source = (
                open_source(uri, storage_options, concurrency=self.settings.concurrency)
                if local is None
                else None
            )
        except Exception as exc:
            raise self._download_error(uri, exc) from None
        try:
            for restart in range(_RESTARTS_ON_CHANGE + 1):
                try:
                    return await self._fetch_online(
                        uri, key, source, local, expected, force, progress, extract, include
                    )
                except RemoteChangedError as exc:
                    if restart == _RESTARTS_ON_CHANGE:
                        raise self._download_error(uri, exc) from None
                    logger.warning("%s changed during the download; starting again", uri.public)
                except AssetError:
                    raise
                except Exception as exc:  # nothing but an AssetError leaves fetch
                    raise self._download_error(uri, exc) from exc
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            if source is not None:
                with anyio.CancelScope(shield=True):
                    await source.aclose()

    def _download_error(self, uri: CheckpointURI, exc: BaseException) -> AssetDownloadError:
        shown = uri.public
        text = scrub(str(exc).replace(uri.raw, shown)) or type(exc).__name__
        if isinstance(exc, ArchiveError):
            return AssetDownloadError(f"unsafe or broken archive {shown}: {text}", uri=shown)
        if isinstance(exc, PermanentError):
            return AssetDownloadError(f"cannot fetch {shown}: {text}", uri=shown)
        if isinstance(exc, OSError) and exc.errno in _DISK_ERRORS:
            where = exc.filename or self.root
            return AssetDownloadError(
                f"cannot fetch {shown} into the cache at {self.root}: {_DISK_ERRORS[exc.errno]} "
                f"({where}); {_DISK_ADVICE[exc.errno]}",
                uri=shown,
            )
        if not is_transient(exc):
            return AssetDownloadError(
                f"cannot fetch {shown}: {type(exc).__name__}: {text}", uri=shown
            )
        return AssetDownloadError(
            f"cannot fetch {shown} ({type(exc).__name__}: {text}); "
            f"gave up after {self.settings.retry.attempts} attempts",
            uri=shown,
        )

    def _complete_entry(self, key: str) -> tuple[EntryRecord, Path] | None:
        """The entry's record and data path when it is complete on disk (blocking)."""
        record = self._layout.read_entry(key)
        if record is None:
            return None
        path = self._layout.data_path(key, record)
        return (record, path) if path.exists() else None

    def _usable_entry(
        self, key: str, identity: RemoteIdentity | None, expected: str | None
    ) -> tuple[EntryRecord, Path, bool] | None:
        """The complete entry (of version ``identity`` when given), touched at once when its
        recorded sha256 needs no check: a hit costs one worker-thread hop (blocking)."""
        found = self._complete_entry(key)
        if found is None or (identity is not None and not found[0].identity.same_version(identity)):
            return None
        record, path = found
        touched = expected is None or record.sha256 == expected
        if touched:
            self._layout.touch(key)
        return record, path, touched

    async def _fetch_offline(self, uri: CheckpointURI, key: str, expected: str | None) -> Path:
        found = await anyio.to_thread.run_sync(self._usable_entry, key, None, expected)
        if found is None:
            raise AssetDownloadError(
                f"{uri.public} is not in the cache at {self.root} and offline mode is on "
                "(local_only=True, ASYNCASSETS_OFFLINE=1 or, for the Hub, HF_HUB_OFFLINE=1); "
                "fetch it once while online",
                uri=uri.public,
            )
        record, path, touched = found
        if not touched:
            await self._check_recorded_sha256(uri, key, record, path, expected)
            await anyio.to_thread.run_sync(self._layout.touch, key)
        self.stats.hits += 1
        return path

    async def _check_recorded_sha256(
        self, uri: CheckpointURI, key: str, record: EntryRecord, path: Path, expected: str | None
    ) -> None:
        if expected is None or record.sha256 == expected:
            return
        if record.sha256 is None and record.kind == "file" and not record.extracted:
            actual = await anyio.to_thread.run_sync(_sha256_of, path)
            if actual == expected:
                record.sha256 = actual
                await anyio.to_thread.run_sync(
                    write_json_atomic, self._layout.entry_dir(key) / "entry.json", record.to_json()
                )
                return
        else:
            actual = record.sha256 or "unknown"
        if record.sha256 is None or record.sha256 != expected:
            # The cached bytes are not what the card says: drop them, the next fetch
            # downloads again.
            async with self._locks.hold(key):
                await anyio.to_thread.run_sync(self._layout.remove, key)
        raise ChecksumMismatchError(
            f"cached {uri.public} has sha256 {actual}, expected {expected}; "
            "the cached copy was removed",
            uri=uri.public,
            expected=expected,
            actual=actual,
        )

    def _partial_for(self, key: str, state: dict[str, Any]) -> Path:
        adopted = self._layout.adopt_partial(key, state)
        return adopted or self._layout.new_partial(key, state)

    async def _own_partial(
        self,
        uri: CheckpointURI,
        key: str,
        listing: RemoteListing,
        expected: str | None,
        state: dict[str, Any],
    ) -> tuple[Path | None, Path | None]:
        """``(partial to download into, None)``, or ``(None, path)`` when another writer
        (beside us because a lock lied, or locks are off) was downloading the same version
        and published it while we waited: its bytes are not downloaded again. Of two
        writers that start together, the later steps back and waits for the other."""
        delay = 0.05
        while True:
            while await anyio.to_thread.run_sync(self._layout.live_partial, key, state):
                await anyio.sleep(delay)
                delay = min(delay * 1.5, 1.0)
                if (path := await self._hit(uri, key, listing, expected)) is not None:
                    return None, path
            if (path := await self._hit(uri, key, listing, expected)) is not None:
                return None, path
            partial = await anyio.to_thread.run_sync(self._partial_for, key, state)
            # A writer that started just before us may not be visible yet: once both are,
            # the later of the two sees the earlier (a tenth of a second against downloads
            # of gigabytes).
            await anyio.sleep(SETTLE_SECONDS)
            earlier = await anyio.to_thread.run_sync(
                functools.partial(self._layout.live_partial, key, state, before=partial)
            )
            if earlier is None:
                return partial, None
            await _remove_tree(partial)

    async def _describe(self, source: Source, kind_hint: str | None) -> RemoteListing:
        return await call_with_retries(self.settings.retry, lambda: source.describe(kind_hint))

    async def _hit(
        self, uri: CheckpointURI, key: str, listing: RemoteListing, expected: str | None
    ) -> Path | None:
        found = await anyio.to_thread.run_sync(self._usable_entry, key, listing.identity, expected)
        if found is None:
            return None
        record, path, touched = found
        if not touched:
            await self._check_recorded_sha256(uri, key, record, path, expected)
            await anyio.to_thread.run_sync(self._layout.touch, key)
        self.stats.hits += 1
        return path

    async def _fetch_online(
        self,
        uri: CheckpointURI,
        key: str,
        source: Source | None,
        local: Path | None,
        expected: str | None,
        force: bool,
        progress: bool | ProgressCallback,
        extract: bool,
        include: tuple[str, ...] | None = None,
    ) -> Path:
        if source is None:
            assert local is not None
            stat = await anyio.to_thread.run_sync(local.stat)
            identity = RemoteIdentity(size=stat.st_size, mtime=str(stat.st_mtime_ns))
            file = RemoteFile(path=str(local), relpath=local.name, identity=identity)
            listing = RemoteListing("file", identity, [file])
        else:
            known = await anyio.to_thread.run_sync(self._layout.read_entry, key)
            listing = await self._describe(source, known.kind if known and not force else None)
            if include is not None and listing.kind == "dir":
                listing = _selected(uri, listing, include)
        if not force and (path := await self._hit(uri, key, listing, expected)) is not None:
            logger.debug("cache hit for %s", uri.public)
            return path
        await anyio.to_thread.run_sync(self._layout.ensure, key)
        async with self._locks.hold(key):
            # Another process may have published this version while we waited for the lock.
            if not force and (path := await self._hit(uri, key, listing, expected)) is not None:
                return path
            return await self._download(
                uri, key, source, local, listing, expected, progress, extract, include, not force
            )

    async def _download(
        self,
        uri: CheckpointURI,
        key: str,
        source: Source | None,
        local: Path | None,
        listing: RemoteListing,
        expected: str | None,
        progress: bool | ProgressCallback,
        extract: bool,
        include: tuple[str, ...] | None = None,
        wait: bool = True,
    ) -> Path:
        """Download ``listing`` into a partial and publish it. ``wait``: when another
        writer is downloading the same version, wait for its entry instead."""
        if expected is not None and listing.kind != "file":
            raise AssetDownloadError(
                f"{uri.public} is a folder; a sha256 can only be checked for one file",
                uri=uri.public,
            )
        if extract and (listing.kind != "file" or archive_kind(uri.name) is None):
            raise AssetDownloadError(
                f"extract=True needs a .tar, .tar.gz or .zip file; {uri.public} is not one",
                uri=uri.public,
            )
        self.stats.misses += 1
        part_size = self.settings.part_size or (
            source.default_part_size if source is not None else 8 * 2**20
        )
        state = {
            "uri": uri.public,
            "kind": listing.kind,
            "identity": listing.identity.to_json(),
            "part_size": part_size,
            "extract": extract,
            "include": list(include) if include is not None else None,
            "created": time.time(),
        }
        if wait:
            owned, published = await self._own_partial(uri, key, listing, expected, state)
            if published is not None:
                return published
            assert owned is not None
            partial = owned
        else:
            partial = await anyio.to_thread.run_sync(self._partial_for, key, state)
        name = uri.name
        try:
            if source is not None:
                description = name if len(name) <= 30 else name[:29] + "…"
                with _Counting(
                    self.stats,
                    progress,
                    listing.identity.size,
                    open_progress(
                        description,
                        listing.identity.size,
                        enabled=not callable(progress) and progress_enabled(progress),
                    ),
                ) as bar:
                    async with _lease_kept(partial):
                        digests = await self._download_files(
                            uri, source, listing, partial, part_size, bar, expected
                        )
                downloaded = partial / "data" / name
            else:
                assert local is not None
                downloaded = local
                digests = {}
            sha = None
            if listing.kind == "file":
                actual_size = (await anyio.to_thread.run_sync(downloaded.stat)).st_size
                if listing.identity.size is not None and actual_size != listing.identity.size:
                    raise RemoteChangedError(
                        f"{uri}: got {actual_size} bytes, expected {listing.identity.size}"
                    )
                if expected is not None:
                    hashed = digests.get(listing.files[0].relpath)
                    if hashed is None:  # finished before an interruption: read it once
                        hashed = await anyio.to_thread.run_sync(_sha256_of, downloaded)
                    sha = hashed
                    if sha != expected:
                        await _remove_tree(partial)
                        raise ChecksumMismatchError(
                            f"{uri.public} has sha256 {sha}, expected {expected}; nothing was kept",
                            uri=uri.public,
                            expected=expected,
                            actual=hashed,
                        )
            if extract:
                name = extracted_name(name)
                target = partial / "unpacked" / name
                try:
                    await anyio.to_thread.run_sync(extract_archive, downloaded, target)
                except ArchiveError:
                    await _remove_tree(partial)
                    raise
                await anyio.to_thread.run_sync(
                    _replace_tree, partial / "unpacked", partial / "data"
                )
            size = await anyio.to_thread.run_sync(_tree_size, partial / "data" / name)
            record = EntryRecord(
                uri=uri.public,
                kind=listing.kind,  # of the remote: revalidation asks for the same kind
                name=name,
                version_dir=f"v-{uuid.uuid4().hex[:12]}",
                identity=listing.identity,
                size=size,
                sha256=sha,
                extracted=extract,
                revision=listing.revision,
                include=list(include) if include is not None else None,
            )
            await anyio.to_thread.run_sync(self._layout.publish, key, partial, record)
        except RemoteChangedError:
            await _remove_tree(partial)
            raise
        logger.info("cached %s (%d bytes) at %s", uri.public, record.size, self.root / key)
        return self._layout.data_path(key, record)

    async def _download_files(
        self,
        uri: CheckpointURI,
        source: Source,
        listing: RemoteListing,
        partial: Path,
        part_size: int,
        bar: Any,
        expected: str | None = None,
    ) -> dict[str, str]:
        """Download every file of ``listing`` into the partial entry; return the sha256 of
        those that were hashed as they downloaded (files the source publishes a sha256 of,
        and a single file with an ``expected`` one)."""
        name = uri.name
        settings = dataclasses.replace(
            self.settings, concurrency=self.settings.concurrency or source.default_concurrency
        )
        assert settings.concurrency is not None
        limiter = anyio.CapacityLimiter(settings.concurrency)
        files_in_flight = anyio.CapacityLimiter(settings.concurrency)
        digests: dict[str, str] = {}
        mismatches: list[ChecksumMismatchError] = []

        async def one(file: RemoteFile) -> None:
            if listing.kind == "file":
                final = partial / "data" / name
            else:
                final = partial / "data" / name / _safe_relpath(uri, file.relpath)
            if await anyio.to_thread.run_sync(_has_size, final, file.identity.size):
                bar.advance(file.identity.size or 0)  # finished before an interruption
                return
            token = hashlib.sha256(file.relpath.encode()).hexdigest()[:16]
            part = partial / "files" / f"{token}.part"
            if await source.local_copy(file, part):
                bar.advance(file.identity.size or 0)
                await anyio.to_thread.run_sync(_move_into_place, part, final)
                return
            digest = file.sha256 is not None or (listing.kind == "file" and expected is not None)
            async with files_in_flight:
                done = await download_file(
                    source,
                    file,
                    part,
                    part_size=part_size,
                    settings=settings,
                    limiter=limiter,
                    progress=bar,
                    digest=digest,
                )
            if done.sha256 is not None:
                if file.sha256 is not None and done.sha256 != file.sha256:
                    await anyio.to_thread.run_sync(_discard_part, part)
                    # Raised once the other files are done: they are good, and kept.
                    mismatches.append(
                        ChecksumMismatchError(
                            f"{uri.public}: {file.relpath} downloaded with sha256 {done.sha256}, "
                            f"but its source publishes {file.sha256}; the file was discarded "
                            "(fetch again to download it anew)",
                            uri=uri.public,
                            expected=file.sha256,
                            actual=done.sha256,
                        )
                    )
                    return
                digests[file.relpath] = done.sha256
            await anyio.to_thread.run_sync(_move_into_place, part, final)

        try:
            async with anyio.create_task_group() as tg:
                for file in listing.files:
                    tg.start_soon(one, file)
        except BaseExceptionGroup as group:
            raise first_error(group) from None
        if mismatches:
            raise mismatches[0]
        return digests

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
        try:
            target = CheckpointURI.parse(uri)
        except ValueError:  # a Hub URI that names no repo: fetch never cached one
            return False
        return await self._shelf.remove(target)

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
        try:
            target = CheckpointURI.parse(uri)
        except ValueError:  # a Hub URI that names no repo: fetch never cached one
            return None
        return self._shelf.path_of(target, extract=extract, include=patterns)
