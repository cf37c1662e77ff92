"""Leases of partial downloads: who is writing a partial, whatever any lock says.

A writer names itself (host and pid) in its partial's ``lease`` file and renews it every few
seconds while it downloads (:func:`lease_kept`); another process adopts or deletes a partial
only when its writer is gone: its lease went stale, or it names a process of this host that
no longer runs. Locks only save bytes; leases keep two writers out of one partial.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread

__all__ = [
    "ACTIVE_PARTIALS",
    "LEASE_SECONDS",
    "STATE_FILE",
    "claim_lease",
    "lease_kept",
    "lease_time",
    "renew_lease",
    "writer_alive",
]

#: A partial download's record of what it downloads (its mtime: when it started).
STATE_FILE = "state.json"
LEASE_FILE = "lease"
#: A partial download whose writer has not renewed its lease for this long is abandoned
#: (the writer renews it every few seconds while it runs).
LEASE_SECONDS = 60.0


def renew_lease(partial: Path) -> None:
    """Say that the writer of ``partial`` is alive (the lease file's mtime)."""
    with contextlib.suppress(OSError):
        (partial / LEASE_FILE).touch()


#: Partial downloads this process is writing now (their lease names this process).
ACTIVE_PARTIALS: set[str] = set()
_HOST = socket.gethostname()


def claim_lease(partial: Path) -> None:
    """Make this process the writer of ``partial``: its lease names this host and pid."""
    with contextlib.suppress(OSError):
        (partial / LEASE_FILE).write_text(f"{_HOST}\n{os.getpid()}\n", encoding="utf-8")


def writer_alive(partial: Path, now: float | None = None) -> bool:
    """Someone is still writing ``partial``, whatever any lock says: its lease is fresh,
    and, when the lease names a process of this host, that process runs (and, when it is
    this one, it is writing ``partial`` now). A writer killed on this host is seen dead at
    once; one on another host when its lease goes stale."""
    now = time.time() if now is None else now
    if now - lease_time(partial) >= LEASE_SECONDS:
        return False
    try:
        host, pid_text = (partial / LEASE_FILE).read_text(encoding="utf-8").split("\n")[:2]
        pid = int(pid_text)
    except (OSError, ValueError):
        return True  # a lease without a writer's name (an older version's): its time rules
    if host != _HOST:
        return True
    if pid == os.getpid():
        return str(partial) in ACTIVE_PARTIALS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def lease_time(partial: Path) -> float:
    """When the writer of ``partial`` last said it was alive (0: never)."""
    for name in (LEASE_FILE, STATE_FILE):
        with contextlib.suppress(OSError):
            return (partial / name).stat().st_mtime
    return 0.0


@asynccontextmanager
async def lease_kept(partial: Path) -> AsyncIterator[None]:
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
