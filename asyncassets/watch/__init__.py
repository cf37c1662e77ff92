"""Watchers: keep providers fresh while files change (watchfiles locally, polling remotely)."""

from __future__ import annotations

from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from asyncassets.providers.base import AssetMetadataProvider
from asyncassets.providers.file import FileAssetMetadataProvider
from asyncassets.watch.local import DEFAULT_DEBOUNCE_MS, watch_local
from asyncassets.watch.remote import DEFAULT_POLL_INTERVAL, poll_remote

__all__ = ["DEFAULT_DEBOUNCE_MS", "DEFAULT_POLL_INTERVAL", "watch_provider"]


async def watch_provider(
    provider: AssetMetadataProvider,
    *,
    debounce_ms: int = DEFAULT_DEBOUNCE_MS,
    force_polling: bool | None = None,
    poll_interval: float | None = None,
    on_error: Callable[[AssetMetadataProvider, BaseException], None] | None = None,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Keep ``provider`` fresh until cancelled: a local folder is watched with watchfiles,
    a remote one polled every ``poll_interval`` seconds (the provider's own ``poll_interval``
    wins; default 10 s).
    Providers with nothing to watch (memory, packages) return at once."""
    if isinstance(provider, FileAssetMetadataProvider):
        if provider.is_local:
            await watch_local(
                provider,
                debounce_ms=debounce_ms,
                force_polling=force_polling,
                on_error=on_error,
                task_status=task_status,
            )
            return
        interval = provider.poll_interval or poll_interval or DEFAULT_POLL_INTERVAL
        await poll_remote(provider, interval=interval, on_error=on_error, task_status=task_status)
        return
    task_status.started()
