"""What one partial file holds while it downloads, and how it is written: a writer of
chunks at increasing offsets, the journal of what reached the disk (complete parts, and the
bytes of each part in flight), and a sha256 that follows the gap-free prefix of the file as
parts land. No network I/O."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.to_thread

from asyncassets.durable import fdatasync, read_json, write_json_atomic
from asyncassets.errors import TransientError

from .progress import ProgressReporter

__all__ = ["JOURNAL_INTERVAL", "Frontier", "Journal", "OffsetWriter", "PrefixHasher"]

JOURNAL_INTERVAL = 0.5
_WRITE_CHUNK = 2**20


class OffsetWriter:
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


_HASH_CHUNK = 8 * 2**20


class PrefixHasher:
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


class Frontier:
    """The end of the gap-free prefix the journal knows to be written. Parts only ever
    complete, so the first incomplete part is searched from where it was last found."""

    def __init__(self, journal: Journal, size: int, part_size: int) -> None:
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


class Journal:
    """What of one partial file is on disk, saved as JSON beside it: the complete parts,
    and for each part in flight the bytes written from its start (so a killed download
    resumes from every byte that reached the disk, not only from whole parts)."""

    def __init__(self, path: Path, fd: int, size: int, part_size: int) -> None:
        self.path = path
        self._fd = fd
        self.part_size = part_size
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
