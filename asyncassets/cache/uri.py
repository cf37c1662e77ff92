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
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from asyncassets.urls import local_path

__all__ = ["CheckpointURI", "entry_name", "is_signature_param", "public_uri", "scrub"]

#: Query parameters that sign a URL (compared case-insensitively).
_SIGNATURE_PARAMS = frozenset(
    {
        # legacy S3 query auth and CloudFront
        "awsaccesskeyid",
        "signature",
        "expires",
        "policy",
        "key-pair-id",
        # GCS V2
        "googleaccessid",
        # Azure SAS
        "sig",
        "se",
        "st",
        "sp",
        "sv",
        "sr",
        "spr",
        "sip",
        "ss",
        "srt",
        "skoid",
        "sktid",
        "skt",
        "ske",
        "sks",
        "skv",
        "sdd",
        "saoid",
        "suoid",
        "scid",
        # credentials passed in a query string
        "token",
        "access_token",
        "id_token",
        "auth",
        "authorization",
        "api_key",
        "apikey",
        "password",
        "secret",
        "client_secret",
        "credential",
        "credentials",
    }
)
_SIGNATURE_PREFIXES = ("x-amz-", "x-goog-")

#: A signature parameter and its value inside any text (an error message, a redirect URL).
_IN_TEXT = re.compile(
    r"(?i)(?P<name>(?:x-amz-|x-goog-)[a-z-]+|awsaccesskeyid|signature|policy|key-pair-id|"
    r"googleaccessid|sig|token|access_token|id_token|api_key|apikey|password|secret|"
    r"client_secret|credentials?)=(?P<value>[^&\s\"'<>]+)"
)


def entry_name(uri: str) -> str:
    """The last path component of a URI (``model.pt`` for ``s3://b/ckpt/model.pt``)."""
    stripped = uri.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    name = stripped.rsplit("/", 1)[-1] or "data"
    if name in {".", ".."} or (":" in name and "/" not in stripped):
        name = "data"
    return name


def is_signature_param(name: str) -> bool:
    """True for a query parameter that belongs to a URL signature."""
    lowered = name.lower()
    return lowered in _SIGNATURE_PARAMS or lowered.startswith(_SIGNATURE_PREFIXES)


def public_uri(uri: str) -> str:
    """``uri`` without user info, signature parameters or fragment: what the cache keys
    entries by, stores and shows. Other query parameters (``versionId``, ...) stay: they
    choose the object."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return scrub(uri)
    if not parts.scheme or parts.scheme == "file":
        return uri
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        kept = [
            (k, v) for k, v in parse_qsl(query, keep_blank_values=True) if not is_signature_param(k)
        ]
        query = urlencode(kept)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def scrub(text: str) -> str:
    """``text`` with the value of every signature parameter replaced by ``…`` (for error
    messages of HTTP libraries, which quote whole URLs)."""
    return _IN_TEXT.sub(lambda m: f"{m.group('name')}=…", text)


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
