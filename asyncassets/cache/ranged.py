"""Download one remote file into a partial file: parallel ranged reads, resumable.

The file is cut into parts. A fixed number of workers pull the next missing part from one
shared iterator (a sliding window: a worker that finishes takes the next part at once, there
is no barrier between batches) and write what they receive at its offset, a megabyte at a
time, so memory is bounded by the requests in flight whatever the size of the object.

Which parts are complete, and how far each part in flight got, is recorded in a journal
next to the partial file (after an ``fdatasync`` of the data, every ``JOURNAL_INTERVAL``
seconds and when the download stops), so a killed download resumes from every byte that
reached the disk. A part that fails
mid-way is retried from the byte where it stopped. A source that answers a ranged read with
the whole object (``200``) is read again in one stream.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread

from asyncassets.errors import (
    AssetDownloadError,
    RangeNotHonouredError,
    TransientError,
    first_error,
)
from asyncassets.retrying import RetryPolicy, call_with_retries
from asyncassets.urls import scrub

from .durable import fdatasync, read_json, write_json_atomic
from .progress import ProgressReporter
from .transports.base import RemoteFile, Source

__all__ = ["JOURNAL_INTERVAL", "Downloaded", "TransferSettings", "download_file"]

logger = logging.getLogger("asyncassets.cache.ranged")

JOURNAL_INTERVAL = 0.5
_WRITE_CHUNK = 2**20


@dataclass(frozen=True)
class TransferSettings:
    """How a download is cut and paced.

    ``part_size`` and ``concurrency`` (requests in flight for one fetch; all files of a
    folder share them) None pick the source's defaults.
    """

    part_size: int | None = None
    concurrency: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class _OffsetWriter:
    """Writes a stream of chunks at increasing offsets of a file descriptor.

    Chunks are gathered (not copied) until a megabyte is pending, then written with one
    ``pwritev`` in a worker thread.
    """

    def __init__(
        self,
        fd: int,
        offset: int,
        progress: ProgressReporter,
        on_flush: Callable[[int], None] | None = None,
        *,
        end: int | None = None,
    ) -> None:
        self._fd = fd
        self._flushed = offset
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._progress = progress
        self._on_flush = on_flush
        #: Nothing is written at or past this offset: a server that sends more than the
        #: range asked for (or than the object's size) is wrong, not generous.
        self._end = end

    @property
    def position(self) -> int:
        return self._flushed + self._pending_bytes

    async def write(self, chunk: bytes) -> None:
        if self._end is not None and self.position + len(chunk) > self._end:
            raise TransientError(
                f"the server sent more bytes than asked for (past byte {self._end:,}): "
                "an answer like that is never written"
            )
        self._progress.advance(len(chunk))
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        if self._pending_bytes >= _WRITE_CHUNK:
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        chunks, total = self._pending, self._pending_bytes
        self._pending, self._pending_bytes = [], 0
        fd, offset = self._fd, self._flushed

        def write_all() -> None:
            views = [memoryview(c) for c in chunks]
            position = offset
            while views:
                written = _pwritev(fd, views, position)
                position += written
                while views and written >= len(views[0]):
                    written -= len(views[0])
                    views.pop(0)
                if views and written:
                    views[0] = views[0][written:]

        await anyio.to_thread.run_sync(write_all)
        self._flushed += total
        if self._on_flush is not None:
            self._on_flush(self._flushed)


def _pwritev(fd: int, views: list[memoryview], offset: int) -> int:
    if hasattr(os, "pwritev"):
        return os.pwritev(fd, views[:1024], offset)
    return os.pwrite(fd, views[0], offset)


@dataclass(frozen=True)
class Downloaded:
    """A downloaded file: its size, and its sha256 when one was asked for."""

    size: int
    sha256: str | None = None


_HASH_CHUNK = 8 * 2**20


class _PrefixHasher:
    """The sha256 of a partial file, computed while it downloads.

    Parts finish out of order, so the hash follows the *frontier*: the end of the prefix
    of the file that is written without a gap. Each time a write moves it, the bytes up to
    it are read back while the page cache still holds them (no disk read) and hashed in a
    worker thread, so when the last part lands only the bytes behind the last frontier
    remain to hash, not the whole file.
    """

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size
        self._sha = hashlib.sha256()
        self.hashed = 0
        self._moved = anyio.Event()

    def poke(self) -> None:
        """The frontier may have moved."""
        self._moved.set()

    def _hash_to(self, end: int) -> None:
        while self.hashed < end:
            chunk = os.pread(self._fd, min(_HASH_CHUNK, end - self.hashed), self.hashed)
            if not chunk:
                raise OSError(f"the partial file ended at byte {self.hashed}, before {end}")
            self._sha.update(chunk)
            self.hashed += len(chunk)

    async def follow(self, frontier: Callable[[], int]) -> None:
        """Hash up to ``frontier()`` as it grows, until the whole file is hashed."""
        while self.hashed < self._size:
            self._moved = anyio.Event()
            end = min(self._size, frontier())
            if end > self.hashed:
                await anyio.to_thread.run_sync(self._hash_to, end)
            else:
                await self._moved.wait()

    def restart(self) -> None:
        """Forget what was hashed (the file is written again from its start)."""
        self._sha = hashlib.sha256()
        self.hashed = 0

    async def finish(self) -> str:
        await anyio.to_thread.run_sync(self._hash_to, self._size)
        return self._sha.hexdigest()


class _Frontier:
    """The end of the gap-free prefix the journal knows to be written. Parts only ever
    complete, so the first incomplete part is searched from where it was last found."""

    def __init__(self, journal: _Journal, size: int, part_size: int) -> None:
        self._journal = journal
        self._size = size
        self._part_size = part_size
        self._first_missing = 0

    def __call__(self) -> int:
        done = self._journal.done
        while self._first_missing in done:
            self._first_missing += 1
        index = self._first_missing
        return min(self._size, index * self._part_size + self._journal.written.get(index, 0))


class _Journal:
    """What of one partial file is on disk, saved as JSON beside it: the complete parts,
    and for each part in flight the bytes written from its start (so a killed download
    resumes from every byte that reached the disk, not only from whole parts)."""

    def __init__(self, path: Path, fd: int, size: int, part_size: int) -> None:
        self.path = path
        self._fd = fd
        self._header = {"size": size, "part_size": part_size}
        self.done: set[int] = set()
        #: part -> bytes written from the part's start (parts not done yet)
        self.written: dict[int, int] = {}
        self._saved_at = time.monotonic()
        self._dirty = False
        #: called when written bytes move (a hash following the download)
        self.on_change: Callable[[], None] | None = None

    def load(self) -> None:
        data = read_json(self.path)
        if data is None or not all(data.get(k) == v for k, v in self._header.items()):
            return
        self.done = {int(i) for i in data.get("done", [])}
        part_size = int(self._header["part_size"])
        written = data.get("written", {})
        if isinstance(written, dict):
            self.written = {
                int(k): int(v)
                for k, v in written.items()
                if int(k) not in self.done and 0 < int(v) < part_size
            }

    def note(self, part: int, written: int) -> None:
        """Bytes from the start of ``part`` that are written (not yet synced)."""
        self.written[part] = written
        self._dirty = True
        if self.on_change is not None:
            self.on_change()

    def mark(self, part: int) -> None:
        self.done.add(part)
        self.written.pop(part, None)
        self._dirty = True
        if self.on_change is not None:
            self.on_change()

    async def save(self, *, force: bool = False) -> None:
        if not self._dirty or (not force and time.monotonic() - self._saved_at < JOURNAL_INTERVAL):
            return
        self._dirty = False
        self._saved_at = time.monotonic()
        # Snapshot before syncing: whatever the writers flush meanwhile is not claimed.
        written = {str(k): v for k, v in self.written.items()}
        record = {**self._header, "done": sorted(self.done), "written": written}
        fd, path = self._fd, self.path

        def sync_and_write() -> None:
            fdatasync(fd)  # the journal must never claim bytes that are not on disk
            write_json_atomic(path, record, durable=False)

        await anyio.to_thread.run_sync(sync_and_write)


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
    :class:`_PrefixHasher`).
    """
    journal_path = part_path.with_name(part_path.name + ".parts.json")
    size = file.identity.size
    if size is not None:
        await anyio.to_thread.run_sync(_check_room, source.display, part_path, size)
    fd = await anyio.to_thread.run_sync(_open_part, part_path, size)
    try:
        if size is None:
            written = await _stream_whole(source, file, fd, settings, limiter, progress)
            hasher = _PrefixHasher(fd, written) if digest else None
            return Downloaded(written, await hasher.finish() if hasher else None)
        hasher = _PrefixHasher(fd, size) if digest else None
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
    hasher: _PrefixHasher | None,
) -> int:
    size = file.identity.size
    assert size is not None
    journal = _Journal(journal_path, fd, size, part_size)
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
                tg.start_soon(hasher.follow, _Frontier(journal, size, part_size))
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
    journal: _Journal,
    settings: TransferSettings,
    limiter: anyio.CapacityLimiter,
    progress: ProgressReporter,
) -> None:
    size = file.identity.size
    assert size is not None
    part_size = journal._header["part_size"]
    queue = missing

    async def fetch_part(index: int) -> None:
        start = index * part_size
        end = min(size, start + part_size)
        writer = _OffsetWriter(
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
        writer = _OffsetWriter(fd, 0, progress, end=file.identity.size)
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
