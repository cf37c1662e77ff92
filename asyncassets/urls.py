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
from pathlib import Path

__all__ = [
    "FILE_SCHEME",
    "display_path",
    "file_url",
    "is_local_url",
    "join_relative",
    "local_path",
]

FILE_SCHEME = "file://"


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
