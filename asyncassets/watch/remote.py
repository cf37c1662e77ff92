"""Polling a remote card folder: list the prefix, re-read only objects whose ETag,
generation, size or mtime changed."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from asyncassets.providers.base import AssetMetadataProvider

__all__ = ["DEFAULT_POLL_INTERVAL", "MAX_BACKOFF", "poll_remote"]

logger = logging.getLogger("asyncassets.watch.remote")

#: Seconds between two listings of a remote folder.
DEFAULT_POLL_INTERVAL = 10.0
#: Longest wait between two listings while the remote store keeps failing.
MAX_BACKOFF = 300.0

ErrorHandler = Callable[[AssetMetadataProvider, BaseException], None]


async def poll_remote(
    provider: AssetMetadataProvider,
    *,
    interval: float = DEFAULT_POLL_INTERVAL,
    on_error: ErrorHandler | None = None,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Refresh ``provider`` every ``interval`` seconds (±10 % jitter, so that many hosts
    do not list in step) until cancelled. Failures back off exponentially up to
    :data:`MAX_BACKOFF` and are handed to ``on_error``; they never end the loop."""
    task_status.started()
    delay = interval
    while True:
        await anyio.sleep(delay * random.uniform(0.9, 1.1))
        try:
            await provider.refresh()
        except Exception as exc:
            delay = min(max(delay * 2, interval), MAX_BACKOFF)
            logger.warning("polling %s failed (next try in %.0fs): %s", provider.source, delay, exc)
            if on_error is not None:
                on_error(provider, exc)
        else:
            delay = interval
