"""File URLs and card-relative paths: the one place that turns paths into URLs and back.

A local file travels as ``file://`` followed by its absolute path, *not* percent-encoded,
exactly as fsspec reads such URLs: ``/cards/a#b.yaml`` is ``file:///cards/a#b.yaml`` and a
``%`` in a file name stays a ``%``. Nothing in asyncassets splits a file URL on ``#`` or
``?`` or decodes ``%XX`` in it, so every file name works through the public API. Pure: no
I/O.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "FILE_SCHEME",
    "HUB_SCHEMES",
    "display_path",
    "file_url",
    "is_local_url",
    "is_signature_param",
    "join_relative",
    "local_path",
    "public_uri",
    "scrub",
]

FILE_SCHEME = "file://"
#: The schemes of Hugging Face Hub references: ``hg://ORG/REPO`` (fairseq2's) and
#: ``hf://[models/|datasets/]ORG/REPO``.
HUB_SCHEMES = frozenset({"hg", "hf"})

# -- secrets in URLs ----------------------------------------------------------------------------
#
# A presigned URL (S3 ``X-Amz-*``, GCS ``X-Goog-*``, Azure SAS ``sig``/``se``/..., CloudFront
# ``Signature``/``Policy``/``Key-Pair-Id``) names the same object whatever its signature, and
# its signature is a credential, as are ``token=``, ``api_key=``, ``user:password@`` and the
# like. What asyncassets stores, logs and shows is the URL without them (:func:`public_uri`);
# the full URL is used for requests and nothing else. One sanitiser, for card stores and the
# checkpoint cache alike.

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


#: The user info of a URL inside any text: ``https://user:pass@host`` -> ``https://host``.
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@?#]*@")


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
    if not netloc and "://" in uri:  # memory:///x stays memory:///x (urlunsplit drops //)
        return f"{parts.scheme}://{parts.path}" + (f"?{query}" if query else "")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def scrub(text: str) -> str:
    """``text`` with the value of every signature parameter replaced by ``…``, and the user
    info (``user:password@``) of every URL in it dropped: for error messages and log lines,
    which quote whole URLs."""
    text = _USERINFO.sub(lambda m: m.group("scheme"), text)
    return _IN_TEXT.sub(lambda m: f"{m.group('name')}=…", text)


def file_url(path: str | os.PathLike[str]) -> str:
    """``/a/b.yaml`` -> ``file:///a/b.yaml`` (the form entries, cards and problems carry)."""
    return FILE_SCHEME + os.fspath(path)


def is_local_url(url: str | os.PathLike[str]) -> bool:
    """True for a plain path and a ``file://`` URL."""
    text = os.fspath(url)
    return "://" not in text or text.startswith(FILE_SCHEME)


def local_path(url: str | os.PathLike[str]) -> Path | None:
    """The absolute local path a plain path or ``file://`` URL names, else None.

    ``~`` is expanded in plain paths (not in ``file://`` URLs, where it is a file name).
    """
    text = os.fspath(url)
    if text.startswith(FILE_SCHEME):
        return Path(text[len(FILE_SCHEME) :]).absolute()
    if "://" in text:
        return None
    return Path(text).expanduser().absolute()


def display_path(url: str) -> str:
    """A file URL as a person reads it: ``file:///a/b.yaml`` -> ``/a/b.yaml``."""
    return url[len(FILE_SCHEME) :] if url.startswith(FILE_SCHEME) else url


def join_relative(file: str, relative: str) -> str:
    """Resolve ``relative`` against the folder of ``file`` (a file URL of any scheme, or a
    plain path).

    Remote URLs keep their bucket or host: ``..`` never climbs above it
    (``s3://b/cards/x.yaml`` + ``../../m.pt`` -> ``s3://b/m.pt``).
    """
    scheme, sep, path = file.rpartition("://")
    if not sep:
        scheme, path = "", file
    folder = posixpath.dirname(path)
    if scheme in ("", "file"):
        joined = posixpath.normpath(posixpath.join(folder, relative))
        return f"{FILE_SCHEME}{joined}" if scheme else joined
    bucket, _, key_folder = folder.partition("/")
    key = posixpath.normpath(posixpath.join("/", key_folder, relative)).lstrip("/")
    return f"{scheme}://{bucket}/{key}" if key else f"{scheme}://{bucket}"
