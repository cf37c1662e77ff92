"""Transports: the only code of the cache that talks to remote storage, one module per way of
reading bytes behind one interface (:mod:`.base`), in the shape of httpx's ``_transports/``:

- :mod:`.http_aiohttp` for ``http(s)://`` on asyncio;
- :mod:`.http_threads` for ``http(s)://`` elsewhere (trio), urllib in worker threads;
- :mod:`.objects` for every other fsspec protocol (S3 and GCS reads pinned to a version);
- :mod:`.hub` for Hugging Face Hub repos, whose bytes travel over one of the HTTP ones.

No transport imports another: :func:`open_source` chooses one for a parsed reference and
hands the Hub its HTTP transport.
"""

from __future__ import annotations

import functools
from typing import Any

from asyncassets.errors import PermanentError
from asyncassets.loops import on_asyncio

from ..uri import CheckpointURI
from .base import (
    RemoteFile,
    RemoteIdentity,
    RemoteListing,
    Source,
    WriteChunk,
    folder_identity,
    select_files,
)

__all__ = [
    "RemoteFile",
    "RemoteIdentity",
    "RemoteListing",
    "Source",
    "WriteChunk",
    "folder_identity",
    "open_source",
    "select_files",
]


def open_source(
    uri: CheckpointURI, storage_options: dict[str, Any] | None, *, concurrency: int | None = None
) -> Source:
    """The transport for a remote reference (``uri.kind`` is not ``local``); ``concurrency``
    (requests in flight, when the caller sets it) sizes an object store's connection pool."""
    if uri.kind == "hub":
        from .hub import HubSource

        return HubSource(
            uri, storage_options, http=functools.partial(_open_http, remember_redirects=True)
        )
    if uri.kind == "http":
        return _open_http(uri, storage_options)
    from .objects import FsspecSource

    return FsspecSource(uri, storage_options, concurrency=concurrency)


def _open_http(
    uri: CheckpointURI, storage_options: dict[str, Any] | None, *, remember_redirects: bool = False
) -> Source:
    """The HTTP transport of the running event loop: aiohttp on asyncio, else urllib in
    worker threads. ``remember_redirects``: a redirected GET goes where it ended next time."""
    if not on_asyncio():
        from .http_threads import ThreadedHTTPSource

        return ThreadedHTTPSource(uri, storage_options)
    try:
        from .http_aiohttp import AiohttpSource

        return AiohttpSource(uri, storage_options, remember_redirects=remember_redirects)
    except ImportError as exc:
        raise PermanentError(
            f"cannot fetch {uri.public}: aiohttp is missing (pip install 'asyncassets[http]')"
        ) from exc
