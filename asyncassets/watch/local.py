"""Watching a local card folder with watchfiles, refreshing only what changed."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import anyio
from anyio.abc import TaskStatus
from watchfiles import Change, awatch

from asyncassets.parsing import is_card_file
from asyncassets.providers.file import FileAssetMetadataProvider
from asyncassets.providers.local import is_hidden_below
from asyncassets.urls import file_url

__all__ = ["DEFAULT_DEBOUNCE_MS", "watch_local"]

logger = logging.getLogger("asyncassets.watch.local")

#: Quiet time after the last file event before a refresh (editors write in bursts).
DEFAULT_DEBOUNCE_MS = 50
#: Seconds between catch-up listings when ``force_polling`` is on.
POLLING_CATCH_UP = 2.0

ErrorHandler = Callable[[FileAssetMetadataProvider, BaseException], None]


def _relevant(provider: FileAssetMetadataProvider, change: Change, path: str) -> bool:
    """A card file, a folder, or a deleted path that held known card files. Hidden files
    (editor swap and lock files, ``.git``) and backups (``foo.yaml~``) are not."""
    assert provider.path is not None
    if is_hidden_below(provider.path, Path(path)) and Path(path) != provider.path:
        return False
    if is_card_file(path) or os.path.isdir(path):
        return True
    if change == Change.deleted:
        prefix = file_url(path) + "/"
        return any(f.startswith(prefix) for f in provider.snapshot.files)
    return False


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


async def watch_local(
    provider: FileAssetMetadataProvider,
    *,
    debounce_ms: int = DEFAULT_DEBOUNCE_MS,
    force_polling: bool | None = None,
    on_error: ErrorHandler | None = None,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Refresh ``provider`` whenever card files under its folder change, until cancelled.

    A folder that does not exist yet is watched from its nearest existing parent and picked
    up when it appears; a folder that is removed empties the provider and is waited for
    again.
    """
    assert provider.path is not None, "watch_local needs a local provider"
    # watchfiles waits for changes in a worker thread that a cancellation cannot interrupt;
    # without a stop event it only notices after rust_timeout (5 s), so leaving watching()
    # would hang for up to 5 s. A sibling task sets the event as soon as we are cancelled.
    stop = anyio.Event()

    async def stop_when_cancelled() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            stop.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_when_cancelled)
        if force_polling:
            tg.start_soon(_catch_up, provider, on_error)
        await _watch_until_stopped(
            provider, debounce_ms, force_polling, on_error, task_status, stop
        )
        tg.cancel_scope.cancel()


async def _catch_up(provider: FileAssetMetadataProvider, on_error: ErrorHandler | None) -> None:
    """While polling, re-list every :data:`POLLING_CATCH_UP` seconds: notify's poller
    compares mtimes to the second, so a second save within the same second goes unseen;
    our listing compares mtime in nanoseconds and size, and re-reads only what differs."""
    while True:
        await anyio.sleep(POLLING_CATCH_UP)
        if provider.path is not None and provider.path.exists():
            await _refresh(provider, None, on_error)


async def _watch_until_stopped(
    provider: FileAssetMetadataProvider,
    debounce_ms: int,
    force_polling: bool | None,
    on_error: ErrorHandler | None,
    task_status: TaskStatus[None],
    stop: anyio.Event,
) -> None:
    assert provider.path is not None
    root = provider.path
    started = False
    while True:
        if root.exists():
            target, recursive = root, True
        else:
            target, recursive = _nearest_existing(root.parent), False
        watcher = awatch(
            target,
            watch_filter=None,
            debounce=max(debounce_ms * 20, 1_000),
            step=debounce_ms,
            recursive=recursive,
            force_polling=force_polling,
            ignore_permission_denied=True,
            stop_event=stop,
        )
        if not started:
            started = True
            task_status.started()
        async for changes in watcher:
            if target != root:
                if root.exists() or _nearest_existing(root.parent) != target:
                    await _refresh(provider, [str(root)], on_error)
                    break  # watch the folder itself (or a nearer parent) now
                continue
            paths = {path for change, path in changes if _relevant(provider, change, path)}
            if not paths:
                continue
            if any(change == Change.deleted for change, _ in changes):
                # vim and others delete and re-create within a few ms: look again before
                # dropping cards that are only being rewritten.
                await anyio.sleep(debounce_ms / 1000)
            await _refresh(provider, sorted(paths), on_error)
            if not root.exists():
                break  # the folder went away: wait for it from its parent
        else:
            return  # the watcher stopped without being cancelled


async def _refresh(
    provider: FileAssetMetadataProvider, paths: list[str] | None, on_error: ErrorHandler | None
) -> None:
    """Refresh ``paths`` (None: re-list everything); failures go to ``on_error``."""
    try:
        await provider.refresh(paths)
    except Exception as exc:
        logger.warning("refreshing %s failed: %s", provider.source, exc)
        if on_error is not None:
            on_error(provider, exc)
