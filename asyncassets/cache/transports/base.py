"""The interface every transport implements, and the values it describes remote objects with.

A transport (:class:`Source`) is the only code that talks to remote storage: one metadata
request (:meth:`Source.describe`), ranged reads and whole-object reads. It is opened for one
fetch and closed after it, so that no session outlives the event loop that made it. Every
ranged read is pinned to the version described when the download started, and an answer of
another version raises ``RemoteChangedError`` (the cache starts over on the new version).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio
import anyio.to_thread

from ..uri import CheckpointURI

__all__ = [
    "HTTPTransport",
    "RemoteFile",
    "RemoteIdentity",
    "RemoteListing",
    "Source",
    "WriteChunk",
    "folder_identity",
    "select_files",
]

T = TypeVar("T")

WriteChunk = Callable[[bytes], Awaitable[None]]
"""Receives the bytes of a read in order; the caller knows where they go."""


@dataclass(frozen=True)
class RemoteIdentity:
    """What identifies one version of a remote object or folder.

    Two identities are the same version when their sizes agree and every validator both sides
    know (ETag, generation / version id, listing digest) agrees; the modification time is
    compared only when neither side has a validator.
    """

    size: int | None
    etag: str | None = None
    version: str | None = None
    mtime: str | None = None
    digest: str | None = None  # folders: hash of the listing (names, sizes, validators)

    def same_version(self, other: RemoteIdentity) -> bool:
        if self.size != other.size:
            return False
        validators = ("etag", "version", "digest")
        compared = False
        for name in validators:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None:
                if mine != theirs:
                    return False
                compared = True
        if not compared and self.mtime is not None and other.mtime is not None:
            return self.mtime == other.mtime
        return True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RemoteIdentity:
        return cls(
            size=data.get("size"),
            etag=data.get("etag"),
            version=data.get("version"),
            mtime=data.get("mtime"),
            digest=data.get("digest"),
        )


@dataclass(frozen=True)
class RemoteFile:
    """One remote file to download: ``relpath`` is where it goes inside the entry.

    ``sha256`` is the digest its source publishes (the Hub's LFS files), checked as the file
    downloads; ``blob`` names its content in its source's own local cache (the Hugging Face
    cache's blob name), where a copy may already be.
    """

    path: str
    relpath: str
    identity: RemoteIdentity
    sha256: str | None = None
    blob: str | None = None


@dataclass(frozen=True)
class RemoteListing:
    """What a metadata request said: a file or a folder, its version, the files to fetch,
    and (Hub repos) the commit a revision resolved to, recorded with the entry."""

    kind: Literal["file", "dir"]
    identity: RemoteIdentity
    files: list[RemoteFile] = field(default_factory=list)
    revision: str | None = None

    def chosen(self, include: Sequence[str]) -> RemoteListing:
        """This folder cut down to the files ``include`` chooses (it may hold none)."""
        files = select_files(self.files, include)
        return RemoteListing("dir", folder_identity(files), files, revision=self.revision)


def folder_identity(files: list[RemoteFile]) -> RemoteIdentity:
    """The version of a folder: its total size and a digest of its listing (names, sizes,
    validators), so that any change to a file it holds is a new version."""
    summary = [
        [f.relpath, f.identity.size, f.identity.etag, f.identity.version, f.identity.mtime]
        + ([f.identity.digest] if f.identity.digest is not None else [])
        for f in files
    ]
    digest = hashlib.sha256(json.dumps(summary).encode()).hexdigest()
    total = sum(f.identity.size or 0 for f in files)
    return RemoteIdentity(size=total, digest=digest)


def select_files(files: Iterable[RemoteFile], include: Sequence[str]) -> list[RemoteFile]:
    """The files whose path inside the folder (or its last component) matches a pattern."""
    chosen = []
    for file in files:
        base = file.relpath.rsplit("/", 1)[-1]
        names = (file.relpath, base)
        if any(fnmatch.fnmatchcase(n, p) for p in include for n in names):
            chosen.append(file)
    return chosen


class Source(ABC):
    """Metadata and reads for one parsed URI."""

    #: a good part size for this kind of source (bytes held in memory per request in flight)
    default_part_size: int = 16 * 2**20
    #: a good number of requests in flight for one fetch
    default_concurrency: int = 16

    def __init__(self, uri: CheckpointURI) -> None:
        self.uri = uri
        self.display = uri.public  # for messages and logs: no user info, no signature
        # Blocking network calls (urllib, fsspec's sync API on trio) wait in worker threads
        # of their own. On anyio's shared limiter (40 threads) 40 streams took every thread
        # while the disk writes they feed waited for one: a deadlock. Not bounded here: the
        # download's own limiter (``TransferSettings.concurrency``) bounds requests in flight.
        self._network_threads = anyio.CapacityLimiter(math.inf)

    async def _blocking(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)``, a blocking network call, in one of this source's worker threads.

        Cancelling the caller returns at once: the thread is left to finish its call in the
        background (a read blocked on a stalled server ends at its socket timeout), and a
        thread that hands bytes back checks whether it was abandoned first, so nothing it
        reads after that is written anywhere."""
        return await anyio.to_thread.run_sync(
            func, *args, limiter=self._network_threads, abandon_on_cancel=True
        )

    @abstractmethod
    async def describe(self, kind_hint: str | None = None) -> RemoteListing:
        """One metadata request (a listing for a folder). ``kind_hint`` skips the probe."""

    @abstractmethod
    async def read_range(self, file: RemoteFile, start: int, end: int, write: WriteChunk) -> None:
        """Pass bytes ``[start, end)`` of ``file`` to ``write``; raise
        ``RangeNotHonouredError`` when the source does not honour ranges."""

    @abstractmethod
    async def read_all(self, file: RemoteFile, write: WriteChunk) -> None:
        """Pass every byte of ``file`` to ``write``, in one stream."""

    async def local_copy(self, file: RemoteFile, target: Path) -> bool:
        """Put ``file`` at ``target`` from a local copy the source knows of (the Hugging
        Face cache), checked; True when it did, False to download it."""
        return False

    async def aclose(self) -> None:  # noqa: B027 - sources without sessions need nothing
        """Close sessions opened for this source."""


HTTPTransport = Callable[[CheckpointURI, dict[str, Any] | None], Source]
"""Opens the HTTP transport that suits the running event loop (for a transport, such as the
Hub's, whose bytes travel over plain HTTP): given to it by the dispatch, so that no transport
imports another."""
