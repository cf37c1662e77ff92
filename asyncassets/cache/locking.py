"""One download per entry: shared in-flight fetches in a process, a file lock across processes.

``SingleFlight`` lets concurrent callers of the same fetch in one event loop await the one
that is running. ``EntryLocks`` serialises work on an entry: an asyncio lock inside the process
and a ``filelock`` lock (``flock``; it dies with its process, so a killed download never leaves
a lock that blocks forever) across processes and hosts sharing the folder. Correctness never
rests on the lock alone: downloads write to uniquely named partial folders and publish with a
rename.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import filelock

__all__ = ["EntryLocks", "SingleFlight"]

logger = logging.getLogger("asyncassets.cache.locking")

T = TypeVar("T")


class SingleFlight:
    """Run one ``func()`` per key at a time; concurrent callers share its result.

    A follower whose leader was cancelled takes over instead of failing.
    """

    def __init__(self) -> None:
        self._flights: dict[tuple[int, Hashable], asyncio.Future[Any]] = {}

    async def run(self, key: Hashable, func: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        slot = (id(loop), key)
        while (flight := self._flights.get(slot)) is not None:
            try:
                result: T = await asyncio.shield(flight)
                return result
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if (task is not None and task.cancelling()) or not flight.cancelled():
                    raise
                # The leader was cancelled, not us: try again, possibly as the new leader.
        future: asyncio.Future[Any] = loop.create_future()
        self._flights[slot] = future
        try:
            value = await func()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # followers may be none: mark the exception as retrieved
            raise
        else:
            future.set_result(value)
            return value
        finally:
            if self._flights.get(slot) is future:
                del self._flights[slot]


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class EntryLocks:
    """Exclusive access to one cache entry, within the process and across processes."""

    def __init__(self, lock_path: Callable[[str], Path]) -> None:
        self._lock_path = lock_path
        self._slots: dict[tuple[int, str], _Slot] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Wait (polling, so cancellation works) until the entry is ours, then yield."""
        slot_key = (id(asyncio.get_running_loop()), key)
        slot = self._slots.setdefault(slot_key, _Slot())
        slot.users += 1
        try:
            async with slot.lock:
                lock = self._file_lock(key)
                await _acquire(lock, key)
                try:
                    yield
                finally:
                    lock.release()
        finally:
            slot.users -= 1
            if slot.users == 0 and self._slots.get(slot_key) is slot:
                del self._slots[slot_key]

    @contextmanager
    def try_hold(self, key: str) -> Iterator[bool]:
        """Yield True with the entry held when nobody uses it; False at once otherwise."""
        if any(k == key and s.users for (_, k), s in self._slots.items()):
            yield False
            return
        lock = self._file_lock(key)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
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


async def _acquire(lock: filelock.BaseFileLock, key: str) -> None:
    delay = 0.01
    waited = False
    while True:
        try:
            lock.acquire(timeout=0)
            return
        except filelock.Timeout:
            if not waited:
                logger.info("waiting for another process to finish with cache entry %s", key)
                waited = True
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)
