"""Complete entries of one cache: an entry served on a hit (of the version asked for, its
recorded sha256 checked), and an entry built from a finished download (its size and sha256
verified, an archive unpacked) and published."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from pathlib import Path

import anyio
import anyio.to_thread

from asyncassets.durable import write_json_atomic
from asyncassets.errors import ChecksumMismatchError, RemoteChangedError

from .archive import ArchiveError, extract_archive, extracted_name
from .job import FetchJob
from .layout import ENTRY_FILE, CacheLayout, EntryRecord, remove_tree
from .locking import EntryLocks
from .transports.base import RemoteIdentity, RemoteListing

__all__ = ["Entries"]

logger = logging.getLogger("asyncassets.cache")


class Entries:
    """The complete entries under one cache root: serving them and publishing them."""

    def __init__(self, layout: CacheLayout, locks: EntryLocks) -> None:
        self._layout = layout
        self._locks = locks

    # -- serving ----------------------------------------------------------------------------

    async def serve(self, job: FetchJob, identity: RemoteIdentity | None) -> Path | None:
        """The path of the job's complete entry (of version ``identity`` when given), used
        now; None when there is none. A recorded sha256 other than the one asked for is a
        ``ChecksumMismatchError``, and the entry is removed."""
        found = await anyio.to_thread.run_sync(self._usable, job.key, identity, job.expected)
        if found is None:
            return None
        record, path, touched = found
        if not touched:
            await self._check_recorded_sha256(job, record, path)
            await anyio.to_thread.run_sync(self._layout.touch, job.key)
        return path

    def _usable(
        self, key: str, identity: RemoteIdentity | None, expected: str | None
    ) -> tuple[EntryRecord, Path, bool] | None:
        """The complete entry (of version ``identity`` when given), touched at once when its
        recorded sha256 needs no check: a hit costs one worker-thread hop (blocking)."""
        record = self._layout.read_entry(key)
        if record is None:
            return None
        path = self._layout.data_path(key, record)
        if not path.exists() or (
            identity is not None and not record.identity.same_version(identity)
        ):
            return None
        touched = expected is None or record.sha256 == expected
        if touched:
            self._layout.touch(key)
        return record, path, touched

    async def _check_recorded_sha256(self, job: FetchJob, record: EntryRecord, path: Path) -> None:
        expected = job.expected
        if expected is None or record.sha256 == expected:
            return
        if record.sha256 is None and record.kind == "file" and not record.extracted:
            actual = await anyio.to_thread.run_sync(sha256_of, path)
            if actual == expected:
                record.sha256 = actual
                await anyio.to_thread.run_sync(
                    write_json_atomic,
                    self._layout.entry_dir(job.key) / ENTRY_FILE,
                    record.to_json(),
                )
                return
        else:
            actual = record.sha256 or "unknown"
        # The cached bytes are not what the card says: drop them, the next fetch downloads
        # again.
        async with self._locks.hold(job.key):
            await anyio.to_thread.run_sync(self._layout.remove, job.key)
        raise ChecksumMismatchError(
            f"cached {job.uri.public} has sha256 {actual}, expected {expected}; "
            "the cached copy was removed",
            uri=job.uri.public,
            expected=expected,
            actual=actual,
        )

    # -- publishing -------------------------------------------------------------------------

    async def publish(
        self,
        job: FetchJob,
        listing: RemoteListing,
        partial: Path,
        downloaded: Path,
        digests: dict[str, str],
    ) -> Path:
        """Verify what ``partial`` holds (``downloaded``: the file or folder fetched; the
        sha256 of files hashed as they downloaded in ``digests``), unpack it when asked, and
        make it the entry's current version; its path."""
        uri, name = job.uri, job.uri.name
        sha = None
        if listing.kind == "file":
            sha = await self._verify_file(job, listing, partial, downloaded, digests)
        if job.extract:
            name = extracted_name(name)
            try:
                await anyio.to_thread.run_sync(
                    extract_archive, downloaded, partial / "unpacked" / name
                )
            except ArchiveError:
                await anyio.to_thread.run_sync(remove_tree, partial)
                raise
            await anyio.to_thread.run_sync(_replace_tree, partial / "unpacked", partial / "data")
        size = await anyio.to_thread.run_sync(_tree_size, partial / "data" / name)
        record = EntryRecord(
            uri=uri.public,
            kind=listing.kind,  # of the remote: revalidation asks for the same kind
            name=name,
            version_dir=f"v-{uuid.uuid4().hex[:12]}",
            identity=listing.identity,
            size=size,
            sha256=sha,
            extracted=job.extract,
            revision=listing.revision,
            include=list(job.include) if job.include is not None else None,
        )
        await anyio.to_thread.run_sync(self._layout.publish, job.key, partial, record)
        logger.info(
            "cached %s (%d bytes) at %s", uri.public, record.size, self._layout.entry_dir(job.key)
        )
        return self._layout.data_path(job.key, record)

    async def _verify_file(
        self,
        job: FetchJob,
        listing: RemoteListing,
        partial: Path,
        downloaded: Path,
        digests: dict[str, str],
    ) -> str | None:
        """The sha256 of a downloaded file when one was asked for, after its size; raises
        (keeping nothing) when either is not what was announced or asked for."""
        actual_size = (await anyio.to_thread.run_sync(downloaded.stat)).st_size
        if listing.identity.size is not None and actual_size != listing.identity.size:
            raise RemoteChangedError(
                f"{job.uri}: got {actual_size} bytes, expected {listing.identity.size}"
            )
        if job.expected is None:
            return None
        sha = digests.get(listing.files[0].relpath)
        if sha is None:  # finished before an interruption: read it once
            sha = await anyio.to_thread.run_sync(sha256_of, downloaded)
        if sha != job.expected:
            await anyio.to_thread.run_sync(remove_tree, partial)
            raise ChecksumMismatchError(
                f"{job.uri.public} has sha256 {sha}, expected {job.expected}; nothing was kept",
                uri=job.uri.public,
                expected=job.expected,
                actual=sha,
            )
        return sha


def sha256_of(path: Path) -> str:
    """The sha256 of the file at ``path`` (blocking)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _replace_tree(source: Path, target: Path) -> None:
    shutil.rmtree(target)
    os.replace(source, target)
