"""Checkpoint URIs without their secrets. Pure: no I/O.

A presigned URL (S3 ``X-Amz-*``, GCS ``X-Goog-*``, Azure SAS ``sig``/``se``/..., CloudFront
``Signature``/``Policy``/``Key-Pair-Id``) names the same object whatever its signature, and
its signature is a credential, as are ``token=``, ``api_key=`` and the like. The cache keys
an entry by the URI *without* them (a re-signed URL is a cache hit) and writes, logs and
prints only that form, without user info either (:func:`public_uri`); the full URI is used
for the requests and nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from asyncassets.urls import is_signature_param, local_path, public_uri, scrub

__all__ = ["CheckpointURI", "entry_name", "is_signature_param", "public_uri", "scrub"]


def entry_name(uri: str) -> str:
    """The last path component of a URI (``model.pt`` for ``s3://b/ckpt/model.pt``)."""
    stripped = uri.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    name = stripped.rsplit("/", 1)[-1] or "data"
    if name in {".", ".."} or (":" in name and "/" not in stripped):
        name = "data"
    return name


@dataclass(frozen=True)
class CheckpointURI:
    """A checkpoint URI parsed once: what every part of the cache needs to know of it.

    ``raw`` is the URI as given (with its credentials): it is used for requests and
    nothing else. ``public`` (no user info, no signature) keys the entry and is what is
    stored, logged and shown. ``local`` is the path of a local file or folder (``None``
    for a remote URI); ``name`` the entry's file or folder name; ``scheme`` and ``kind``
    (``local``, ``http`` or ``fsspec``) choose the source.
    """

    raw: str
    scheme: str
    kind: str
    public: str
    name: str
    local: Path | None

    @classmethod
    def parse(cls, uri: str | os.PathLike[str]) -> CheckpointURI:
        raw = os.fspath(uri)
        local = None if "::" in raw else local_path(raw)
        scheme = raw.split("://", 1)[0].lower() if "://" in raw else "file"
        if local is not None:
            kind = "local"
        elif scheme in ("http", "https"):
            kind = "http"
        else:
            kind = "fsspec"
        return cls(raw, scheme, kind, public_uri(raw), entry_name(raw), local)

    def __str__(self) -> str:
        return self.public
