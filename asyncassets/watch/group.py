"""Watching many providers at once: one task group that a context manager closes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial

import anyio

from asyncassets.errors import AssetError
from asyncassets.providers.base import AssetMetadataProvider
from asyncassets.providers.file import FileAssetMetadataProvider
from asyncassets.watch import DEFAULT_DEBOUNCE_MS, watch_provider

__all__ = ["watch_providers"]


@asynccontextmanager
async def watch_providers(
    providers: Sequence[AssetMetadataProvider],
    *,
    debounce_ms: int = DEFAULT_DEBOUNCE_MS,
    force_polling: bool | None = None,
    poll_interval: float | None = None,
    on_error: Callable[[AssetMetadataProvider, BaseException], None],
) -> AsyncIterator[None]:
    """Watch every provider of ``providers`` (see :func:`watch_provider`) while the block
    runs; every watcher has started, and every local folder caught up with the edits made
    before it started, when the block begins. A failed refresh goes to ``on_error``.

    An error of the block leaves as it is, not wrapped in an ``ExceptionGroup``.
    """
    async with anyio.create_task_group() as tg:
        for provider in providers:
            await tg.start(
                partial(
                    watch_provider,
                    provider,
                    debounce_ms=debounce_ms,
                    force_polling=force_polling,
                    poll_interval=poll_interval,
                    on_error=on_error,
                )
            )
        # Catch up with edits made between loading and the watchers starting.
        for provider in providers:
            if isinstance(provider, FileAssetMetadataProvider) and provider.is_local:
                try:
                    await provider.refresh()
                except AssetError as exc:
                    on_error(provider, exc)
        try:
            yield
        except BaseException as exc:
            # Re-raised below, outside the task group, so that the caller's own error
            # is not wrapped in an ExceptionGroup.
            body_error: BaseException | None = exc
        else:
            body_error = None
        finally:
            tg.cancel_scope.cancel()
    if body_error is not None:
        raise body_error
