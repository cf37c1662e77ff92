"""fsspec filesystem instances for card providers: one per (event loop, protocol,
storage options, concurrency), shared by the providers that use it and closed by the last
one. An instance made on an asyncio loop is never used on another loop, nor after its loop
closed. Each is opened by :func:`asyncassets.object_stores.open_filesystem`, as the cache
opens its own, with the default storage options.

Async filesystems (s3fs, gcsfs, HTTP) are created with ``asynchronous=True`` inside the
running loop, their sessions opened once and closed explicitly, so that no "Unclosed
client session" warning is left behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from asyncassets.loops import current_loop, on_asyncio
from asyncassets.object_stores import close_filesystem, open_filesystem
from asyncassets.storage_options import options_key

__all__ = [
    "acquire_filesystem",
    "is_usable_here",
    "release_filesystem",
    "uses_async_api",
]

_Key = tuple[Any, str, str]
_pool: dict[_Key, tuple[Any, int]] = {}


def _key(protocol: str, options: Mapping[str, Any], max_concurrency: int) -> _Key:
    # asyncio: one instance per loop, its sessions bound to that loop. Elsewhere (trio):
    # one synchronous instance for every loop, driven from fsspec's own IO thread.
    loop = current_loop() if on_asyncio() else None
    chosen = options_key([options, max_concurrency])
    return (loop, protocol, chosen)


def uses_async_api(fs: Any) -> bool:
    """True when ``fs`` is an async filesystem made for the running asyncio loop (call its
    ``_coroutine`` methods); False: call its blocking API in a worker thread."""
    return bool(fs.async_impl and getattr(fs, "asynchronous", False))


def is_usable_here(key: _Key) -> bool:
    """True when the filesystem acquired under ``key`` may be used on the running loop."""
    loop = key[0]
    if loop is None:
        return not on_asyncio()
    return loop is current_loop() and not _is_closed(loop)


def _is_closed(loop: Any) -> bool:
    is_closed = getattr(loop, "is_closed", None)
    return bool(is_closed()) if is_closed is not None else False


def _forget_dead_loops() -> None:
    """Drop instances whose loop has closed: their sessions can never be used or closed."""
    for key in [k for k in _pool if k[0] is not None and _is_closed(k[0])]:
        del _pool[key]


async def acquire_filesystem(
    protocol: str, options: Mapping[str, Any], max_concurrency: int
) -> tuple[Any, _Key]:
    """The shared filesystem for (running loop, protocol, options, concurrency), its session
    open, and the key to hand back to :func:`release_filesystem`."""
    _forget_dead_loops()
    key = _key(protocol, options, max_concurrency)
    if key in _pool:
        fs, users = _pool[key]
        _pool[key] = (fs, users + 1)
        return fs, key
    # Opening blocks (importing the package, gcsfs' credential lookup): a worker thread.
    fs = await anyio.to_thread.run_sync(
        lambda: open_filesystem(
            protocol, options, asynchronous=key[0] is not None, max_concurrency=max_concurrency
        )
    )
    if uses_async_api(fs):
        for opener in ("set_session", "_set_session"):
            if hasattr(fs, opener):
                await getattr(fs, opener)()
                break
    if key in _pool:  # another task won the race while the session opened
        await close_filesystem(fs)
        fs, users = _pool[key]
        _pool[key] = (fs, users + 1)
        return fs, key
    _pool[key] = (fs, 1)
    return fs, key


async def release_filesystem(key: _Key, fs: Any) -> None:
    """Drop one use of ``fs``; the last use closes its sessions (when its loop is the
    running one; a session of another or a closed loop is only forgotten)."""
    entry = _pool.get(key)
    if entry is not None and entry[0] is fs:
        users = entry[1] - 1
        if users > 0:
            _pool[key] = (fs, users)
            return
        del _pool[key]
    if is_usable_here(key) and uses_async_api(fs):
        await close_filesystem(fs)
