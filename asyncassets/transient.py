"""Which failures are worth another try: the one classification that providers (card
folders) and the cache (checkpoints) share, and a one-line description of a cause.

Transient: network failures, timeouts, 5xx, 408 and 429 answers, truncated bodies, and
errors of the HTTP/S3 client libraries that are not about the request itself. Permanent: a
missing object, denied access, a bad request, missing credentials, a remote that changed.
"""

from __future__ import annotations

import errno

from asyncassets.errors import (
    PermanentError,
    RangeNotHonouredError,
    RemoteChangedError,
    TransientError,
)
from asyncassets.urls import scrub

__all__ = ["describe", "is_transient", "status_of"]

_PERMANENT_ERRNOS = {
    errno.ENOENT,
    errno.EACCES,
    errno.EPERM,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.ENOSPC,
    errno.EROFS,
    errno.EDQUOT,
    errno.ENAMETOOLONG,
    errno.EFBIG,
    errno.ELOOP,
    errno.EXDEV,
}


def is_transient(exc: BaseException) -> bool:
    """True for errors that a later attempt may not hit (network, 5xx, timeouts)."""
    if isinstance(exc, TransientError | TimeoutError):
        return True
    if isinstance(exc, PermanentError | RangeNotHonouredError | RemoteChangedError):
        return False
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return False
    status = status_of(exc)
    if status is not None:
        return status >= 500 or status in (408, 429)
    if isinstance(exc, ConnectionError):
        return True
    if isinstance(exc, OSError):
        return exc.errno not in _PERMANENT_ERRNOS
    name = type(exc).__name__
    if "Credentials" in name or "Invalid" in name:
        return False  # NoCredentialsError, InvalidUrlClientError & co: no retry fixes them
    if any(word in name for word in ("Connection", "Timeout", "ServerDisconnected", "Endpoint")):
        return True
    # aiohttp's ClientError family and botocore's connection errors are not OSError subclasses
    # in every version: match them by module name instead of importing optional packages.
    module = type(exc).__module__
    return module.startswith(("aiohttp", "botocore", "aiobotocore", "urllib3"))


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (aiohttp, botocore, fsspec), if any."""
    for attr in ("status", "code", "status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        meta = response.get("ResponseMetadata", {})
        value = meta.get("HTTPStatusCode") if isinstance(meta, dict) else None
        if isinstance(value, int):
            return value
    return None


def describe(exc: BaseException) -> str:
    """A one-line cause: ``TypeName: first line of the message``, scrubbed: the libraries'
    messages quote whole URLs, with a store's ``user:password@`` or a signed query in them
    (:func:`asyncassets.urls.scrub`)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return scrub(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
