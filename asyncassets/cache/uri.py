"""Checkpoint URIs without their secrets. Pure: no I/O.

A presigned URL (S3 ``X-Amz-*``, GCS ``X-Goog-*``, Azure SAS ``sig``/``se``/..., CloudFront
``Signature``/``Policy``/``Key-Pair-Id``) names the same object whatever its signature, and
its signature is a credential, as are ``token=``, ``api_key=`` and the like. The cache keys
an entry by the URI *without* them (a re-signed URL is a cache hit) and writes, logs and
prints only that form, without user info either (:func:`public_uri`); the full URI is used
for the requests and nothing else.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["is_signature_param", "public_uri", "scrub"]

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
