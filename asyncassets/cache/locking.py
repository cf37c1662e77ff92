"""One download per entry: shared in-flight fetches in a process, a file lock across processes.

``SingleFlight`` lets concurrent callers of the same fetch in one event loop await the one
that is running. ``EntryLocks`` serialises work on an entry: an anyio lock inside the process
and a ``filelock`` lock (``flock``; it dies with its process, so a killed download never leaves
a lock that blocks forever) across processes and hosts sharing the folder. Correctness never
rests on the lock alone: downloads write to uniquely named partial folders and publish with a
rename, and a writer keeps the lease of its partial (:mod:`.leases`) so that no other
process, whatever its locks say, takes it over.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import filelock

from asyncassets.loops import current_loop

from .layout import CacheLayout, PartialState, remove_tree

__all__ = ["EntryLocks", "SingleFlight", "own_partial"]

#: How long a new partial download waits before it looks for one started just before it.
SETTLE_SECONDS = 0.1

logger = logging.getLogger("asyncassets.cache.locking")

T = TypeVar("T")


class _Flight:
    """One run of ``func`` that followers wait for."""

    __slots__ = ("cancelled", "done", "error", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.cancelled = False


class SingleFlight:
    """Run one ``func()`` per key at a time in each event loop; concurrent callers share
    its result (or its exception).

    A follower whose leader was cancelled takes over instead of failing; a cancelled
    follower just stops waiting.
    """

    def __init__(self) -> None:
        self._flights: dict[tuple[Any, Hashable], _Flight] = {}

    async def run(self, key: Hashable, func: Callable[[], Awaitable[T]]) -> T:
        slot = (current_loop(), key)
        while (flight := self._flights.get(slot)) is not None:
            await flight.done.wait()
            if flight.cancelled:
                continue  # the leader went away: try again, possibly as the new leader
            if flight.error is not None:
                raise flight.error
            result: T = flight.result
            return result
        flight = _Flight()
        self._flights[slot] = flight
        try:
            value = await func()
        except anyio.get_cancelled_exc_class():
            flight.cancelled = True
            raise
        except BaseException as exc:
            flight.error = exc
            raise
        else:
            flight.result = value
            return value
        finally:
            if self._flights.get(slot) is flight:
                del self._flights[slot]
            flight.done.set()


@dataclass
class _Slot:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    users: int = 0


class EntryLocks:
    """Exclusive access to one cache entry, within the process and across processes.

    ``enabled=False`` keeps only the in-process lock: on file systems whose locks lie
    (Lustre, GPFS, some NFS mounts) the cache stays correct without them, at the price of
    processes downloading the same entry side by side.
    """

    def __init__(self, lock_path: Callable[[str], Path], *, enabled: bool = True) -> None:
        self._lock_path = lock_path
        self.enabled = enabled
        self._slots: dict[tuple[Any, str], _Slot] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Wait (polling, so cancellation works) until the entry is ours, then yield."""
        slot_key = (current_loop(), key)
        slot = self._slots.setdefault(slot_key, _Slot())
        slot.users += 1
        try:
            async with slot.lock:
                if not self.enabled:
                    yield
                    return
                # Opening and locking a file can be slow on network file systems: worker threads.
                lock = await anyio.to_thread.run_sync(self._file_lock, key)
                await _acquire(lock, key)
                try:
                    yield
                finally:
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(lock.release)
        finally:
            slot.users -= 1
            if slot.users == 0 and self._slots.get(slot_key) is slot:
                del self._slots[slot_key]

    @contextmanager
    def try_hold(self, key: str) -> Iterator[bool]:
        """Yield True with the entry held when nobody uses it; False at once otherwise.

        Blocking (it opens and locks a file): call it from a worker thread."""
        in_use = list(self._slots.items())  # one atomic copy: the loop's thread adds slots
        if any(k == key and s.users for (_, k), s in in_use):
            yield False
            return
        if not self.enabled:
            yield True
            return
        lock = self._file_lock(key)
        if not _try_acquire(lock):
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    def _file_lock(self, key: str) -> filelock.BaseFileLock:
        path = self._lock_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(str(path), thread_local=False)


def _try_acquire(lock: filelock.BaseFileLock) -> bool:
    """Take ``lock`` if it is free (blocking: opens and locks a file)."""
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return False
    return True


async def _acquire(lock: filelock.BaseFileLock, key: str) -> None:
    delay = 0.01
    waited = False
    while not await anyio.to_thread.run_sync(_try_acquire, lock):
        if not waited:
            logger.info("waiting for another process to finish with cache entry %s", key)
            waited = True
        await anyio.sleep(delay)
        delay = min(delay * 1.5, 0.25)


async def own_partial(
    layout: CacheLayout,
    key: str,
    state: PartialState,
    *,
    wait: bool,
    published: Callable[[], Awaitable[Path | None]],
) -> tuple[Path | None, Path | None]:
    """``(partial to download into, None)``, or ``(None, path)`` when another writer
    (beside us because a lock lied, or locks are off) was downloading the same version and
    ``published`` it while we waited: its bytes are not downloaded again. Of two writers that
    start together, the later steps back and waits for the other. Without ``wait`` (a forced
    fetch), the partial at once."""
    if not wait:
        return await anyio.to_thread.run_sync(layout.claim_partial, key, state), None
    delay = 0.05
    while True:
        while await anyio.to_thread.run_sync(layout.live_partial, key, state):
            await anyio.sleep(delay)
            delay = min(delay * 1.5, 1.0)
            if (path := await published()) is not None:
                return None, path
        if (path := await published()) is not None:
            return None, path
        partial = await anyio.to_thread.run_sync(layout.claim_partial, key, state)
        # A writer that started just before us may not be visible yet: once both are, the
        # later of the two sees the earlier (a tenth of a second against downloads of
        # gigabytes).
        await anyio.sleep(SETTLE_SECONDS)
        earlier = await anyio.to_thread.run_sync(
            functools.partial(layout.live_partial, key, state, before=partial)
        )
        if earlier is None:
            return partial, None
        await anyio.to_thread.run_sync(remove_tree, partial)
