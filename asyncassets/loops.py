"""Objects that belong to one event loop: a lock per loop, the running loop's identity.

A store or a provider outlives event loops: the default ``asset_store`` may be used by two
``asyncio.run`` calls in a row, or by asyncio and then trio. anyio's primitives and
network sessions belong to the loop that made them, so whatever a loop made is remade
when another loop asks.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import sniffio

__all__ = ["LoopLocalLock", "current_loop", "on_asyncio"]


def current_loop() -> Any:
    """The running event loop itself (asyncio's loop object, trio's token).

    Holding it keeps it from being collected, so a later loop never compares equal to a
    dead one that happened to live at the same address."""
    return anyio.lowlevel.current_token().native_token


def on_asyncio() -> bool:
    """True when the running async library is asyncio (fsspec's async filesystems,
    aiohttp and aiobotocore only run there)."""
    try:
        return sniffio.current_async_library() == "asyncio"
    except sniffio.AsyncLibraryNotFoundError:
        return False


class LoopLocalLock:
    """An :class:`anyio.Lock` for the running loop, made anew when another loop asks."""

    __slots__ = ("_lock", "_loop")

    def __init__(self) -> None:
        self._loop: Any = None
        self._lock: anyio.Lock | None = None

    def get(self) -> anyio.Lock:
        loop = current_loop()
        if self._lock is None or self._loop is not loop:
            self._loop, self._lock = loop, anyio.Lock()
        return self._lock
