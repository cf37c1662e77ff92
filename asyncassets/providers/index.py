"""The persistent index of a card store: what a :class:`FileAssetMetadataProvider` parsed,
kept on disk keyed by each file's identity, so that a restarted process reads only the files
that changed since.

One file per source URL and storage options, under ``<cache root>/index/``: a header line,
one line per card file (:mod:`asyncassets.index_codec`), and a trailer with the count of
lines and the sha256 of everything before it. The name is a readable prefix of the public
URL and a hash of the URL and options (a secret is neither in the name nor in the file).

The index is only a cache. A file that is missing, truncated, corrupt, hostile, written by
another reader (its fingerprint: the format and the source of the modules that read cards)
or for another store is not used: a warning, and every card file is read. It is replaced
whole, through a temporary file and a rename, so that processes writing it at once leave
one of their indexes, never a mix. Blocking functions, for worker threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from asyncassets.durable import write_atomic
from asyncassets.index_codec import IndexedFile, decode_file
from asyncassets.locations import INDEX_FOLDER, default_cache_root
from asyncassets.urls import public_uri

__all__ = [
    "INDEX_SUFFIX",
    "MAX_INDEX_BYTES",
    "CardIndex",
    "IndexFile",
    "index_disabled",
    "list_indexes",
    "prune_indexes",
]

logger = logging.getLogger("asyncassets.index")

FORMAT = "asyncassets-card-index"
FORMAT_VERSION = 1
INDEX_SUFFIX = ".index.jsonl"
#: An index larger than this is not read (a card file is at most 8 MiB; 100,000 of the
#: largest cards of the corpora make about 400 MiB).
MAX_INDEX_BYTES = 1 << 30
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: The modules whose code decides what a card file gives: a change to any of them makes
#: indexes written before it foreign.
_READER_MODULES = ("parsing", "fast_reader", "yaml12", "yaml_values", "index_codec", "names")


def index_disabled() -> bool:
    """``$ASYNCASSETS_NO_INDEX`` is set to something true (``1``, ``true``, ``yes``)."""
    value = os.environ.get("ASYNCASSETS_NO_INDEX", "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


@cache
def reader_fingerprint() -> str:
    """The format's version, the parser's version and a hash of the reading modules."""
    import importlib.util

    digest = hashlib.sha256(f"{FORMAT}:{FORMAT_VERSION}".encode())
    for name in _READER_MODULES:
        spec = importlib.util.find_spec(f"asyncassets.{name}")
        origin = spec.origin if spec is not None else None
        digest.update(Path(origin).read_bytes() if origin else name.encode())
    try:
        from importlib.metadata import version

        digest.update(version("yaml-rs").encode())
    except Exception:
        digest.update(b"no yaml-rs")
    return digest.hexdigest()[:32]


class UnusableIndex(Exception):
    """Why an index file cannot be used (the text of the warning)."""


class CardIndex:
    """The index file of one card store (``source``, its public URL), at ``path``."""

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.source = source

    @classmethod
    def of(
        cls,
        url: str,
        storage_options: Mapping[str, Any],
        source: str,
        root: Path | None = None,
    ) -> CardIndex:
        """The index of the store at ``url`` read with ``storage_options``, under ``root``
        (default: the cache root's ``index/``)."""
        folder = root if root is not None else default_cache_root() / INDEX_FOLDER
        options = json.dumps(storage_options, sort_keys=True, default=_opaque)
        digest = hashlib.sha256(f"{url}\0{options}".encode("utf-8", "surrogatepass"))
        prefix = _UNSAFE.sub("_", public_uri(url).partition("://")[2])[:60].strip("._")
        name = f"{prefix or 'store'}-{digest.hexdigest()[:24]}{INDEX_SUFFIX}"
        return cls(folder / name, source)

    def load(self) -> dict[str, IndexedFile] | None:
        """``{file URL: what the index holds}``; None when there is no index yet. An index
        that cannot be used is a warning and None."""
        try:
            data = _read_regular(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning(
                "cannot read the card index %s: %s; reading every card file of %s",
                self.path,
                exc.strerror or exc,
                self.source,
            )
            return None
        try:
            files = self._decoded(data)
        except Exception as exc:  # hostile or torn bytes: whatever fails, read the cards
            reason = str(exc) if isinstance(exc, UnusableIndex) else _described(exc)
            logger.warning(
                "not using the card index %s (%s); reading every card file of %s",
                self.path,
                reason,
                self.source,
            )
            return None
        self.touch()
        return files

    def _decoded(self, data: bytes) -> dict[str, IndexedFile]:
        if len(data) > MAX_INDEX_BYTES:
            raise UnusableIndex(f"larger than {MAX_INDEX_BYTES} bytes")
        body_end = data.rfind(b"\n", 0, len(data) - 1) + 1
        if not data.endswith(b"\n") or body_end <= 0:
            raise UnusableIndex("truncated: no trailer")
        trailer = _object(data[body_end:], "trailer")
        lines = data[:body_end].split(b"\n")[:-1]
        if trailer.get("sha256") != hashlib.sha256(data[:body_end]).hexdigest():
            raise UnusableIndex("its checksum does not match: corrupt or truncated")
        if trailer.get("lines") != len(lines):
            raise UnusableIndex("its line count does not match")
        header = _object(lines[0], "header")
        if header.get("format") != FORMAT:
            raise UnusableIndex("not an index of asyncassets")
        if header.get("version") != FORMAT_VERSION or header.get("reader") != reader_fingerprint():
            raise UnusableIndex(
                "written by another version of asyncassets's card reader "
                f"(format {header.get('version')!r})"
            )
        if header.get("source") != self.source:
            raise UnusableIndex(f"an index of {header.get('source')!r}")
        files: dict[str, IndexedFile] = {}
        for line in lines[1:]:
            file, indexed = decode_file(line.decode("ascii"), self.source)
            files[file] = indexed
        return files

    def save(self, files: Iterable[IndexedFile]) -> None:
        """Replace the index with ``files`` (atomically; errors are the caller's)."""
        body = [
            json.dumps(
                {
                    "format": FORMAT,
                    "version": FORMAT_VERSION,
                    "reader": reader_fingerprint(),
                    "source": self.source,
                    "written": time.time(),
                },
                separators=(",", ":"),
            )
        ]
        body.extend(f.line for f in files)
        data = ("\n".join(body) + "\n").encode("ascii")
        trailer = {"lines": len(body), "sha256": hashlib.sha256(data).hexdigest()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, data + json.dumps(trailer).encode() + b"\n", durable=False)

    def touch(self) -> None:
        """Mark the index as used now (``cache prune`` reclaims those long unused)."""
        with contextlib.suppress(OSError, NotImplementedError):
            os.utime(self.path, follow_symlinks=False)


def _read_regular(path: Path) -> bytes:
    """The bytes of the regular file at ``path`` (at most one past the limit). Opened
    without blocking and without following a symlink: a FIFO or a device placed there
    must not hold the load, a link must not lead elsewhere."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file")
        chunks, total = [], 0
        while total <= MAX_INDEX_BYTES:
            chunk = os.read(fd, min(1 << 24, MAX_INDEX_BYTES + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _object(line: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        raise UnusableIndex(f"its {what} is not JSON: corrupt or truncated") from None
    if type(value) is not dict:
        raise UnusableIndex(f"its {what} is not a JSON object")
    return value


def _opaque(value: object) -> str:
    """An option JSON has no form for, by its type (never its repr: an address changes
    from process to process, and a credential object may print its secret)."""
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def _described(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return f"{type(exc).__name__}: {exc}"[:200]


# -- the indexes under a cache root (``asyncassets cache ls / prune``) ------------------------


@dataclass(frozen=True)
class IndexFile:
    """One index file: its ``path``, the ``source`` it indexes (None when unreadable),
    its ``size`` in bytes and when a store last used it (``last_used``, seconds)."""

    path: Path
    source: str | None
    size: int
    last_used: float


def list_indexes(cache_root: Path | None = None) -> list[IndexFile]:
    """The index files under ``cache_root`` (default: the cache root), most recently used
    first. Blocking."""
    folder = (cache_root if cache_root is not None else default_cache_root()) / INDEX_FOLDER
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.endswith(INDEX_SUFFIX) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        found.append(
            IndexFile(Path(entry.path), _source_of(entry.path), info.st_size, info.st_mtime)
        )
    found.sort(key=lambda f: f.last_used, reverse=True)
    return found


def prune_indexes(grace: float, cache_root: Path | None = None) -> list[IndexFile]:
    """Remove the index files no store has used for ``grace`` seconds, and temporary files
    of writes that never finished; returns the index files removed. Blocking."""
    folder = (cache_root if cache_root is not None else default_cache_root()) / INDEX_FOLDER
    cutoff = time.time() - grace
    removed = []
    for index in list_indexes(cache_root):
        if index.last_used < cutoff:
            with contextlib.suppress(FileNotFoundError):
                index.path.unlink()
            removed.append(index)
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
    return removed


def _source_of(path: str) -> str | None:
    """The source named in an index file's header (None when it has none)."""
    try:
        with open(path, "rb") as fh:
            header = json.loads(fh.readline(4096))
    except (OSError, ValueError):
        return None
    source = header.get("source") if type(header) is dict else None
    return public_uri(source) if type(source) is str else None
