"""What both HTTP transports (aiohttp, and urllib in worker threads) check and conclude from
an answer: the headers of a pinned ranged GET, whether a ranged answer is the range asked for
of the version described, the identity a HEAD (or a one-byte GET) gives, and the error of an
HTTP status. Not a transport: no I/O."""

from __future__ import annotations

import re
from typing import Any

from asyncassets.errors import (
    PermanentError,
    RangeNotHonouredError,
    RemoteChangedError,
    TransientError,
)

from .base import RemoteFile, RemoteIdentity

__all__ = [
    "MAX_REDIRECTS",
    "REDIRECTS",
    "check_range_answer",
    "check_range_validators",
    "check_received",
    "check_whole_answer",
    "http_error",
    "identity_of_probe",
    "identity_of_response",
    "range_headers",
]

#: Redirects followed for one request.
MAX_REDIRECTS = 10
REDIRECTS = frozenset({301, 302, 303, 307, 308})

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


def range_headers(base: dict[str, str], file: RemoteFile, start: int, end: int) -> dict[str, str]:
    """Headers of a ranged GET of ``[start, end)``, pinned to the version described."""
    headers = {**base, "Range": f"bytes={start}-{end - 1}"}
    etag = file.identity.etag
    if etag and not etag.startswith("W/"):
        headers["If-Match"] = etag  # a 412 tells us the object changed between parts
    elif file.identity.mtime:
        # No strong validator: the modification time is the weaker pin (412 when newer).
        headers["If-Unmodified-Since"] = file.identity.mtime
    return headers


def check_range_validators(display: str, headers: Any, identity: RemoteIdentity) -> None:
    """Raise ``RemoteChangedError`` when a ranged answer names another version than the one
    described: servers that ignore ``If-Match`` still send the ETag of what they serve."""
    etag = headers.get("ETag")
    if identity.etag and etag:
        if _strong(etag) != _strong(identity.etag):
            raise RemoteChangedError(
                f"{display} changed during the download (ETag {etag}, expected {identity.etag})"
            )
        return
    modified = headers.get("Last-Modified")
    if identity.mtime and modified and modified != identity.mtime:
        raise RemoteChangedError(
            f"{display} changed during the download (Last-Modified {modified}, "
            f"expected {identity.mtime})"
        )


def _strong(etag: str) -> str:
    """An ETag without its weak marker: a proxy may weaken a tag it forwards unchanged."""
    etag = etag.strip()
    return etag[2:] if etag.startswith("W/") else etag


def check_range_answer(
    display: str,
    status: int,
    reason: str | None,
    headers: Any,
    file: RemoteFile,
    start: int,
    end: int,
) -> None:
    """Raise unless the answer to a ranged GET is ``206`` with the matching
    ``Content-Range`` of the version described: ``RangeNotHonouredError`` (read it in one
    stream instead), ``RemoteChangedError`` (412/416, another ETag or Last-Modified), or the
    error of the HTTP status."""
    if status == 200:
        raise RangeNotHonouredError(f"{display} answered 200 to a ranged read")
    if status in (412, 416):
        raise RemoteChangedError(f"{display} changed during the download")
    if status != 206:
        raise http_error(display, status, reason)
    match = _CONTENT_RANGE.match(headers.get("Content-Range", ""))
    total = str(file.identity.size) if file.identity.size is not None else None
    if (
        match is None
        or int(match.group(1)) != start
        or int(match.group(2)) != end - 1
        or (total is not None and match.group(3) not in (total, "*"))
    ):
        raise RangeNotHonouredError(
            f"{display} answered a ranged read with Content-Range "
            f"{headers.get('Content-Range')!r}, expected bytes {start}-{end - 1}"
        )
    check_range_validators(display, headers, file.identity)


def check_whole_answer(
    display: str, status: int, reason: str | None, headers: Any, file: RemoteFile
) -> None:
    """Raise unless the answer to a GET of the whole object is ``200`` of the version
    described."""
    if status != 200:
        raise http_error(display, status, reason)
    check_range_validators(display, headers, file.identity)


def check_received(display: str, received: int, expected: int | None, *, ranged: bool) -> None:
    """Raise a transient error when an answer ended before the bytes it announced."""
    if expected is None or received == expected:
        return
    if ranged:
        raise TransientError(f"{display}: ranged read ended after {received} of {expected} bytes")
    raise TransientError(f"{display}: got {received} of {expected} bytes")


def http_error(uri: str, status: int, reason: str | None) -> Exception:
    """The internal error of an HTTP status: transient (5xx, 408, 429) or permanent."""
    text = f"HTTP {status} {reason or ''}".strip() + f" for {uri}"
    if status >= 500 or status in (408, 429):
        return TransientError(text)
    if status in (404, 410):
        return PermanentError(f"not found ({text})", status=status)
    if status in (401, 403):
        return PermanentError(f"access denied ({text})", status=status)
    return PermanentError(text, status=status)


def identity_of_probe(
    display: str, status: int, reason: str | None, headers: Any
) -> RemoteIdentity:
    """The identity an answer to a ``Range: bytes=0-0`` GET gives (for servers that refuse
    HEAD): the total size from ``Content-Range`` when the range was honoured."""
    if status >= 400:
        raise http_error(display, status, reason)
    length = headers.get("Content-Length")
    if status == 206:
        match = _CONTENT_RANGE.match(headers.get("Content-Range", ""))
        length = match.group(3) if match and match.group(3) != "*" else None
    return identity_of_response(headers, length)


def identity_of_response(headers: Any, length: str | None) -> RemoteIdentity:
    """The identity the headers of an answer give (``length``: the object's size as sent)."""
    encoded = headers.get("Content-Encoding", "identity") != "identity"
    return RemoteIdentity(
        size=int(length) if length is not None and not encoded else None,
        etag=headers.get("ETag"),
        mtime=headers.get("Last-Modified"),
    )
