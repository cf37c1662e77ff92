"""The one access layer to fsspec that card stores and the checkpoint cache share: opening a
filesystem with the default storage options, reading what identifies an object's version
from fsspec's ``info``, and closing an async filesystem's sessions. Neither side opens or
reads a filesystem another way."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asyncassets.storage_options import default_storage_options

__all__ = [
    "ObjectIdentity",
    "close_filesystem",
    "content_md5",
    "object_identity",
    "open_filesystem",
]


def open_filesystem(
    protocol: str, options: Mapping[str, Any], *, asynchronous: bool, max_concurrency: int
) -> Any:
    """A new fsspec filesystem for ``protocol`` (never one of fsspec's shared instances),
    opened with ``options`` and the defaults (:func:`default_storage_options`: endpoints from
    the environment, a connection pool as large as ``max_concurrency``, finite timeouts).
    With ``asynchronous``, an async filesystem is made for the running asyncio loop.

    Blocking: importing the filesystem's package and constructing it block (gcsfs looks for
    credentials, up to a metadata-server probe): call it from a worker thread. Raises
    ``ImportError`` (its package is missing) or ``ValueError`` (an unknown protocol)."""
    import fsspec

    cls = fsspec.get_filesystem_class(protocol)
    # botocore edits nested option dicts in place: the filesystem gets its own copy.
    merged = default_storage_options(protocol, options, max_concurrency)
    if asynchronous and getattr(cls, "async_impl", False):
        merged["asynchronous"] = True
    return cls(skip_instance_cache=True, **merged)


async def close_filesystem(fs: Any) -> None:
    """Close the sessions of an async filesystem made for the running loop."""
    creator = getattr(fs, "_s3creator", None)  # s3fs: the aiobotocore client context
    if creator is not None and hasattr(creator, "__aexit__"):
        await creator.__aexit__(None, None, None)
        fs._s3 = None
        fs._s3creator = None
        return
    if creator is not None and hasattr(creator, "clear"):
        await creator.clear()
        fs._s3 = None
        return
    session = getattr(fs, "_session", None)  # gcsfs, fsspec's HTTP
    if session is not None and hasattr(session, "close") and not getattr(session, "closed", True):
        await session.close()


@dataclass(frozen=True)
class ObjectIdentity:
    """What fsspec's ``info`` of an object says of its version.

    ``etag`` (S3's ETag, GCS' md5Hash), ``version`` (S3's VersionId, GCS' generation) and
    ``mtime`` validate one version for the cache; ``token`` is one string that changes with
    the content, for a card store's listing (a validator with its name, else mtime and size).
    ``md5`` is the content's MD5 (hex) where ``info`` states it (:func:`content_md5`).
    """

    size: int | None
    etag: str | None
    version: str | None
    mtime: str | None
    token: str | None
    md5: str | None = None


_ETAG_KEYS = ("ETag", "etag", "md5Hash")
_VERSION_KEYS = ("VersionId", "generation")
_MTIME_KEYS = ("LastModified", "updated", "mtime", "last_modified", "created")
#: S3's ETag first; on GCS the generation, which every write of an object renews (its etag
#: changes with metadata too, and its md5Hash comes back when old content is written again).
_TOKEN_KEYS = ("ETag", "generation", "etag", "md5Hash", "crc32c")
_MD5_HEX = re.compile(r"[0-9a-f]{32}")


def content_md5(info: Mapping[str, Any]) -> str | None:
    """The MD5 of the object's content (hex) as a listing's ``info`` states it, when it
    does: GCS' ``md5Hash`` (base64), or an S3 ETag that is the MD5 itself (a single-part
    upload without SSE-KMS; a multipart ETag ends in ``-N`` and is not). None otherwise."""
    md5_hash = info.get("md5Hash")
    if isinstance(md5_hash, str):
        try:
            digest = base64.b64decode(md5_hash, validate=True)
        except ValueError:
            digest = b""
        if len(digest) == 16:
            return digest.hex()
    etag = info.get("ETag")
    if isinstance(etag, str):
        etag = etag.strip('"').lower()
        if _MD5_HEX.fullmatch(etag):
            return etag
    return None


def object_identity(info: Mapping[str, Any]) -> ObjectIdentity:
    """The identity of the object fsspec's ``info`` (or a listing's entry) describes."""
    etag = _first(info, _ETAG_KEYS)
    version = _first(info, _VERSION_KEYS)
    mtime = _first(info, _MTIME_KEYS)
    size = info.get("size")
    token = next((f"{key}:{info[key]}" for key in _TOKEN_KEYS if info.get(key)), None)
    if token is None and (mtime is not None or size is not None):
        token = f"{mtime}-{size}"
    return ObjectIdentity(
        size=int(size) if size is not None else None,
        etag=str(etag) if etag is not None else None,
        version=str(version) if version is not None else None,
        mtime=str(mtime) if mtime is not None else None,
        token=token,
        md5=content_md5(info),
    )


def _first(info: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    """The first of ``keys`` that ``info`` holds a true value for."""
    return next((info[key] for key in keys if info.get(key)), None)
