"""Download the files of a listing into a partial entry: parallel ranged reads, resumable.

Every file of a folder downloads at once, all of them sharing one limit of requests in
flight; a file already complete on disk, or found in the source's own local cache, is not
downloaded again. Each file is cut into parts. A fixed number of workers pull the next
missing part from one shared iterator (a sliding window: a worker that finishes takes the
next part at once, there is no barrier between batches) and write what they receive at its
offset, a megabyte at a time, so memory is bounded by the requests in flight whatever the
size of the object.

Which parts are complete, and how far each part in flight got, is recorded in a journal
(:mod:`.parts`) next to the partial file (after an ``fdatasync`` of the data, every
``JOURNAL_INTERVAL`` seconds and when the download stops), so a killed download resumes from
every byte that reached the disk. A part that fails mid-way is retried from the byte where
it stopped. A source that answers a ranged read with the whole object (``200``) is read
again in one stream.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import posixpath
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread

from asyncassets.errors import (
    AssetDownloadError,
    ChecksumMismatchError,
    RangeNotHonouredError,
    TransientError,
    first_error,
)
from asyncassets.retrying import RetryPolicy, call_with_retries
from asyncassets.urls import scrub

from .parts import JOURNAL_INTERVAL, Frontier, Journal, OffsetWriter, PrefixHasher
from .progress import ProgressReporter
from .transports.base import RemoteFile, RemoteListing, Source

__all__ = ["Downloaded", "TransferSettings", "download_file", "download_files"]

logger = logging.getLogger("asyncassets.cache.ranged")


@dataclass(frozen=True)
class TransferSettings:
    """How a download is cut and paced.

    ``part_size`` and ``concurrency`` (requests in flight for one fetch; all files of a
    folder share them) None pick the source's defaults.
    """

    part_size: int | None = None
    concurrency: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class Downloaded:
    """A downloaded file: its size, and its sha256 when one was asked for."""

    size: int
    sha256: str | None = None


async def download_files(
    source: Source,
    listing: RemoteListing,
    data: Path,
    *,
    settings: TransferSettings,
    part_size: int,
    progress: ProgressReporter,
    expected: str | None = None,
) -> dict[str, str]:
    """Download every file of ``listing`` to ``data`` (the file itself, or the folder its
    files go into), through part files in ``data.parent.parent / "files"``; return the
    sha256 of those hashed as they downloaded (files the source publishes a sha256 of, and a
    single file with an ``expected`` one). A file whose bytes are not the sha256 its source
    publishes is discarded and raised once the others are done: they are good, and kept."""
    files_dir = data.parent.parent / "files"
    concurrency = settings.concurrency or source.default_concurrency
    settings = dataclasses.replace(settings, concurrency=concurrency)
    limiter = anyio.CapacityLimiter(concurrency)
    files_in_flight = anyio.CapacityLimiter(concurrency)
    digests: dict[str, str] = {}
    mismatches: list[ChecksumMismatchError] = []

    async def one(file: RemoteFile) -> None:
        final = data if listing.kind == "file" else data / _safe_relpath(source, file.relpath)
        if await anyio.to_thread.run_sync(_has_size, final, file.identity.size):
            progress.advance(file.identity.size or 0)  # finished before an interruption
            return
        token = hashlib.sha256(file.relpath.encode()).hexdigest()[:16]
        part = files_dir / f"{token}.part"
        if await source.local_copy(file, part):
            progress.advance(file.identity.size or 0)
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
                progress=progress,
                digest=digest,
            )
        if done.sha256 is not None and file.sha256 is not None and done.sha256 != file.sha256:
            await anyio.to_thread.run_sync(_discard_part, part)
            mismatches.append(
                ChecksumMismatchError(
                    f"{source.display}: {file.relpath} downloaded with sha256 {done.sha256}, "
                    f"but its source publishes {file.sha256}; the file was discarded "
                    "(fetch again to download it anew)",
                    uri=source.display,
                    expected=file.sha256,
                    actual=done.sha256,
                )
            )
            return
        if done.sha256 is not None:
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


def _safe_relpath(source: Source, relpath: str) -> str:
    clean = posixpath.normpath(relpath)
    if clean.startswith(("/", "../")) or clean in ("..", "."):
        raise AssetDownloadError(
            f"refusing to fetch {source.display}: the listing has an unsafe name {relpath!r}",
            uri=source.display,
        )
    return clean


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


async def download_file(
    source: Source,
    file: RemoteFile,
    part_path: Path,
    *,
    part_size: int,
    settings: TransferSettings,
    limiter: anyio.CapacityLimiter,
    progress: ProgressReporter,
    digest: bool = False,
) -> Downloaded:
    """Fill ``part_path`` with the bytes of ``file``.

    Resumes from ``part_path`` and its journal (``<part_path>.parts.json``) when they exist.
    ``digest=True`` also computes the file's sha256, as it downloads (see
    :class:`PrefixHasher`).
    """
    journal_path = part_path.with_name(part_path.name + ".parts.json")
    size = file.identity.size
    if size is not None:
        await anyio.to_thread.run_sync(_check_room, source.display, part_path, size)
    fd = await anyio.to_thread.run_sync(_open_part, part_path, size)
    try:
        if size is None:
            written = await _stream_whole(source, file, fd, settings, limiter, progress)
            hasher = PrefixHasher(fd, written) if digest else None
            return Downloaded(written, await hasher.finish() if hasher else None)
        hasher = PrefixHasher(fd, size) if digest else None
        size = await _download_parts(
            source, file, fd, journal_path, part_size, settings, limiter, progress, hasher
        )
        # Exactly the announced size, before anything is hashed or published: bytes past it
        # would be read by whoever opens the file (a zip-based torch.load, say) unverified.
        on_disk = (await anyio.to_thread.run_sync(os.fstat, fd)).st_size
        if on_disk != size:
            raise AssetDownloadError(
                f"{source.display}: the downloaded file has {on_disk:,} bytes, not the "
                f"{size:,} announced; nothing is kept"
            )
        return Downloaded(size, await hasher.finish() if hasher else None)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(os.close, fd)


async def _download_parts(
    source: Source,
    file: RemoteFile,
    fd: int,
    journal_path: Path,
    part_size: int,
    settings: TransferSettings,
    limiter: anyio.CapacityLimiter,
    progress: ProgressReporter,
    hasher: PrefixHasher | None,
) -> int:
    size = file.identity.size
    assert size is not None
    journal = Journal(journal_path, fd, size, part_size)
    await anyio.to_thread.run_sync(journal.load)
    nparts = max(1, -(-size // part_size))
    done = {i for i in journal.done if i < nparts}
    # The parts left, made as they are needed: time and memory before the first byte do
    # not grow with the file's size.
    missing = (i for i in range(nparts) if i not in done)
    resumed = sum(_part_len(i, size, part_size) for i in done)
    resumed += sum(n for i, n in journal.written.items() if i < nparts and i not in done)
    if resumed:
        logger.info("resuming %s: %d of %d bytes on disk", source.display, resumed, size)
        progress.advance(resumed)
    left = nparts - len(done)
    if size == 0 or not left:
        return size
    try:
        async with anyio.create_task_group() as tg:
            if hasher is not None:
                journal.on_change = hasher.poke
                tg.start_soon(hasher.follow, Frontier(journal, size, part_size))
            await _fetch_parts(
                source, file, fd, missing, left, journal, settings, limiter, progress
            )
            tg.cancel_scope.cancel()  # the rest is hashed by ``finish``
    except BaseException as exc:
        error = first_error(exc)
        with anyio.CancelScope(shield=True):
            await journal.save(force=True)
        if isinstance(error, RangeNotHonouredError):
            logger.warning("%s; reading it in one stream instead", error)
            await anyio.to_thread.run_sync(lambda: journal_path.unlink(missing_ok=True))
            if hasher is not None:
                hasher.restart()
            return await _stream_whole(source, file, fd, settings, limiter, progress)
        if error is not exc:
            raise error from None
        raise
    return size


def _check_room(display: str, path: Path, size: int) -> None:
    """Fail at once, and clearly, when the announced ``size`` cannot fit where the file is
    written (a server may announce 2**62 bytes): before any memory or disk is spent on it."""
    on_disk = 0
    with contextlib.suppress(OSError):
        on_disk = path.stat().st_size  # what a resumed download holds already (sparse)
    free = shutil.disk_usage(path.parent).free
    if size < 0 or size - min(on_disk, size) > free:
        raise AssetDownloadError(
            f"{display}: the server announces {size:,} bytes, and the cache's file system "
            f"({path.parent}) has {free:,} bytes free: not downloading (free some space, or "
            "set another cache folder)"
        )


def _open_part(path: Path, size: int | None) -> int:
    """A descriptor of the partial file, sized ``size`` when known (blocking)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if size is not None and os.fstat(fd).st_size != size:
            os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _part_len(index: int, size: int, part_size: int) -> int:
    return min(size, (index + 1) * part_size) - index * part_size


async def _fetch_parts(
    source: Source,
    file: RemoteFile,
    fd: int,
    missing: Iterator[int],
    left: int,
    journal: Journal,
    settings: TransferSettings,
    limiter: anyio.CapacityLimiter,
    progress: ProgressReporter,
) -> None:
    size = file.identity.size
    assert size is not None
    part_size = journal.part_size
    queue = missing

    async def fetch_part(index: int) -> None:
        start = index * part_size
        end = min(size, start + part_size)
        writer = OffsetWriter(
            fd,
            start + journal.written.get(index, 0),  # bytes a killed run left on disk
            progress,
            on_flush=lambda flushed: journal.note(index, flushed - start),
            end=end,
        )

        async def attempt() -> None:
            if writer.position >= end:
                return
            try:
                async with limiter:
                    await source.read_range(file, writer.position, end, writer.write)
            finally:
                await writer.flush()
            if writer.position < end:  # an answer that ended early: the rest is asked again
                raise TransientError(
                    f"{source.display}: part {index} ended at byte {writer.position:,} of "
                    f"{start:,}-{end:,}"
                )

        def on_retry(exc: BaseException, attempt_number: int) -> None:
            logger.warning(
                "part %d of %s failed (attempt %d): %s; retrying from byte %d",
                index,
                source.display,
                attempt_number,
                scrub(str(exc)) or type(exc).__name__,  # a redirect's signed URL, say
                writer.position,
            )

        await call_with_retries(settings.retry, attempt, on_retry=on_retry)

    async def worker() -> None:
        for index in queue:
            await fetch_part(index)
            journal.mark(index)
            await journal.save()

    async def save_periodically() -> None:
        # Parts in flight make progress long before any of them completes.
        while True:
            await anyio.sleep(JOURNAL_INTERVAL)
            await journal.save()

    async with anyio.create_task_group() as outer:
        outer.start_soon(save_periodically)
        async with anyio.create_task_group() as tg:
            for _ in range(min(settings.concurrency or 1, left)):
                tg.start_soon(worker)
        outer.cancel_scope.cancel()


async def _stream_whole(
    source: Source,
    file: RemoteFile,
    fd: int,
    settings: TransferSettings,
    limiter: anyio.CapacityLimiter,
    progress: ProgressReporter,
) -> int:
    """One GET of the whole object, restarted from byte 0 on a transient failure."""
    written = 0

    async def attempt() -> None:
        nonlocal written
        writer = OffsetWriter(fd, 0, progress, end=file.identity.size)
        try:
            async with limiter:
                await source.read_all(file, writer.write)
        finally:
            await writer.flush()
            written = writer.position
        expected = file.identity.size
        if expected is not None and written != expected:
            raise TransientError(f"{source.display}: got {written} of {expected} bytes")

    await call_with_retries(settings.retry, attempt)
    await anyio.to_thread.run_sync(os.ftruncate, fd, written)
    return written
