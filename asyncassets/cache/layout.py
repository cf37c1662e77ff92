"""Where a cache entry lives on disk and what its metadata says.

One folder per entry under the cache root, named after the URI::

    <root>/<key>/entry.json           present only when the entry is complete; its mtime is the
                                      entry's last use (LRU eviction reads it)
    <root>/<key>/v-<token>/<name>     the data: a file, a folder, or an extracted archive
    <root>/<key>/superseded-v-<token> when that version stopped being current (its mtime)
    <root>/<key>/partial-<token>/     a download in progress (state.json, lease, files/, data/)
    <root>/.locks/<key>.lock          the inter-process lock of the entry (never deleted)

A version folder is immutable once published: a new remote version goes to a new ``v-`` folder,
``entry.json`` is replaced atomically to point at it, and the old one stays readable until
``prune`` reclaims it after a grace period (a reader may hold its path).
Nothing in this module does network I/O.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from asyncassets.durable import fsync_dir, fsync_tree, read_json, write_json_atomic
from asyncassets.locations import INDEX_FOLDER, default_cache_root

from .leases import (
    ACTIVE_PARTIALS,
    LEASE_SECONDS,
    STATE_FILE,
    claim_lease,
    lease_time,
    renew_lease,
    writer_alive,
)
from .transports.base import RemoteIdentity
from .uri import CheckpointURI

__all__ = [
    "ACTIVE_PARTIALS",
    "DEFAULT_GRACE_SECONDS",
    "LEASE_SECONDS",
    "STATE_FILE",
    "CacheEntry",
    "CacheLayout",
    "EntryRecord",
    "PartialState",
    "default_cache_root",
    "lease_time",
    "renew_lease",
]

ENTRY_FILE = "entry.json"
SUPERSEDED_PREFIX = "superseded-"
#: How long a superseded version stays readable before ``prune`` may reclaim it.
DEFAULT_GRACE_SECONDS = 3600.0
#: Folders of the cache root that are no entry: the locks, the card stores' indexes.
_NOT_ENTRIES = frozenset({".locks", INDEX_FOLDER})
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
logger = logging.getLogger("asyncassets.cache.layout")


@dataclass
class EntryRecord:
    """Content of ``entry.json``: a complete, verified entry."""

    uri: str
    kind: str  # "file" | "dir"
    name: str
    version_dir: str
    identity: RemoteIdentity
    size: int
    sha256: str | None = None
    extracted: bool = False
    created: float = field(default_factory=time.time)
    #: the commit a Hub revision resolved to when the files were downloaded
    revision: str | None = None
    #: the glob patterns that chose the files of a folder (``None``: every file)
    include: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["identity"] = self.identity.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EntryRecord:
        return cls(
            uri=data["uri"],
            kind=data["kind"],
            name=data["name"],
            version_dir=data["version_dir"],
            identity=RemoteIdentity.from_json(data["identity"]),
            size=int(data["size"]),
            sha256=data.get("sha256"),
            extracted=bool(data.get("extracted", False)),
            created=float(data.get("created", 0.0)),
            revision=data.get("revision"),
            include=data.get("include"),
        )


@dataclass(frozen=True)
class PartialState:
    """Content of a partial download's ``state.json``: what it downloads (the URI's public
    form, a file or a folder, the remote version, how it is cut, unpacked and chosen) and
    when it started. A partial is resumed only by a download of the same URI, version and
    part size."""

    uri: str
    kind: str
    identity: RemoteIdentity
    part_size: int
    extract: bool = False
    include: list[str] | None = None
    created: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["identity"] = self.identity.to_json()
        return data

    @classmethod
    def of(cls, value: PartialState | Mapping[str, Any]) -> PartialState:
        """``value``, or the state its JSON form (``state.json``'s) describes."""
        if isinstance(value, PartialState):
            return value
        return cls(
            uri=value["uri"],
            kind=value["kind"],
            identity=RemoteIdentity.from_json(value["identity"]),
            part_size=int(value["part_size"]),
            extract=bool(value.get("extract", False)),
            include=value.get("include"),
            created=float(value.get("created", 0.0)),
        )

    def same_download(self, found: Mapping[str, Any] | None) -> bool:
        """``found`` (a ``state.json`` read back, None when unreadable) downloads what this
        state does: the same URI, kind, part size, unpacking and remote version."""
        if found is None:
            return False
        mine = self.to_json()
        if any(found.get(k) != mine[k] for k in ("uri", "kind", "part_size", "extract")):
            return False
        try:
            identity = RemoteIdentity.from_json(found["identity"])
        except (KeyError, TypeError, AttributeError):
            return False
        return identity.same_version(self.identity)


@dataclass(frozen=True)
class CacheEntry:
    """One entry as ``CheckpointCache.entries()`` lists it.

    ``path`` is the local file or folder (``None`` while incomplete); ``last_used`` is a Unix
    time; ``complete`` is false for a download that was interrupted and can be resumed.
    """

    key: str
    uri: str
    size: int
    last_used: float
    complete: bool
    path: Path | None
    #: the patterns that chose the files of a folder (``None``: all of them)
    include: list[str] | None = None
    #: the commit of a Hub revision the files came from
    revision: str | None = None


#: A version folder's name, as :meth:`CheckpointCache` makes them (``v-`` and hex).
_VERSION_DIR = re.compile(r"v-[0-9a-f]{1,64}")


def _safe_component(name: object) -> bool:
    """``name`` is one path component that stays where it is joined: not empty, not ``.``
    or ``..``, no separator, no NUL."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not any(bad in name for bad in ("/", "\\", "\0"))
    )


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _tree_bytes(path: Path) -> int:
    """Disk bytes of the files under ``path``, never following a symlink."""
    if path.is_symlink():
        return 0
    total = 0
    for folder, _, files in os.walk(path, followlinks=False):
        for name in files:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(folder, name))
                if stat.S_ISREG(info.st_mode):
                    total += info.st_blocks * 512
    with contextlib.suppress(OSError):
        if path.is_file():
            total += os.lstat(path).st_blocks * 512
    return total


def remove_tree(path: Path) -> bool:
    """Delete ``path`` without ever following a symlink: a symlink is unlinked (its target
    left alone), a folder removed by ``shutil.rmtree`` (which unlinks the symlinks inside
    it). True when nothing is left at ``path``; a failure is logged, not raised."""
    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path)
    except OSError as exc:
        logger.warning("cannot remove %s: %s", path, exc)
    return not os.path.lexists(path)


class CacheLayout:
    """Paths of the entries under one cache root, and the few file operations on them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def key(
        self,
        uri: CheckpointURI,
        *,
        extract: bool = False,
        include: tuple[str, ...] | None = None,
    ) -> str:
        """A stable folder name for ``uri`` (its public form, with the patterns that choose
        files of a folder): readable prefix + hash."""
        material = uri.public + ("\0extract" if extract else "")
        if include is not None:
            material += "\0include\0" + "\0".join(include)
        digest = hashlib.sha256(material.encode("utf-8")).hexdigest()[:20]
        prefix = _UNSAFE.sub("_", uri.name)[:40].strip("._") or "entry"
        return f"{prefix}-{digest}"

    def entry_dir(self, key: str) -> Path:
        return self.root / key

    def lock_path(self, key: str) -> Path:
        return self.root / ".locks" / f"{key}.lock"

    def ensure(self, key: str) -> Path:
        (self.root / ".locks").mkdir(parents=True, exist_ok=True)
        path = self.entry_dir(key)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def entry_keys(self) -> list[str]:
        if not self.root.is_dir():
            return []
        # Real folders only: a symlink placed in the root is no entry, and walking it would
        # let a prune delete whatever it points at.
        with os.scandir(self.root) as found:
            return sorted(
                e.name
                for e in found
                if e.is_dir(follow_symlinks=False) and e.name not in _NOT_ENTRIES
            )

    # -- complete entries ---------------------------------------------------------------

    def read_entry(self, key: str) -> EntryRecord | None:
        """The entry's record, or None: absent, unreadable, or not one this cache could
        have written (a tampered ``entry.json`` naming a path outside the entry, a version
        folder that is a symlink out of the cache). A bad entry is an absent one: it is
        fetched again, never served."""
        data = read_json(self.entry_dir(key) / ENTRY_FILE)
        if data is None:
            return None
        try:
            record = EntryRecord.from_json(data)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        if not (_VERSION_DIR.fullmatch(record.version_dir) and _safe_component(record.name)):
            logger.warning("cache entry %s names unsafe paths: ignored", key)
            return None
        if not self._inside_root(self.entry_dir(key) / record.version_dir):
            logger.warning("cache entry %s points outside the cache: ignored", key)
            return None
        return record

    def _inside_root(self, path: Path) -> bool:
        """``path`` (and every symlink on its way) resolves inside the cache root."""
        try:
            return path.resolve().is_relative_to(self.root.resolve())
        except (OSError, RuntimeError):  # a symlink loop
            return False

    def data_path(self, key: str, record: EntryRecord) -> Path:
        return self.entry_dir(key) / record.version_dir / record.name

    def last_used(self, key: str) -> float:
        try:
            return (self.entry_dir(key) / ENTRY_FILE).stat().st_mtime
        except OSError:
            return 0.0

    def touch(self, key: str) -> None:
        """Record a use of the entry (its ``entry.json`` mtime)."""
        with contextlib.suppress(OSError):
            os.utime(self.entry_dir(key) / ENTRY_FILE)

    def publish(self, key: str, partial: Path, record: EntryRecord) -> None:
        """Make the verified ``partial/data`` the entry's current version, durably.

        Every file of the data is fsync'd, the data folder renamed into place (atomic), the
        entry folder fsync'd, ``entry.json`` replaced (atomic, fsync'd) and the folder
        fsync'd again: after a power cut the entry is either complete or absent. Older
        versions are *not* deleted (a reader may hold their paths): they are marked
        superseded and :meth:`reclaim` removes them after the grace period.
        """
        data = partial / "data"
        fsync_tree(data)
        target = self.entry_dir(key) / record.version_dir
        os.replace(data, target)
        fsync_dir(self.entry_dir(key))
        write_json_atomic(self.entry_dir(key) / ENTRY_FILE, record.to_json())
        fsync_dir(self.entry_dir(key))
        remove_tree(partial)
        self.mark_superseded(key, keep=record.version_dir)

    def mark_superseded(self, key: str, *, keep: str | None) -> None:
        """Record when each version other than ``keep`` stopped being current."""
        for path in self.entry_dir(key).glob("v-*"):
            marker = path.with_name(SUPERSEDED_PREFIX + path.name)
            if path.name != keep and not marker.exists():
                with contextlib.suppress(OSError):
                    marker.touch()

    def reclaim(self, key: str, grace: float, *, now: float | None = None) -> int:
        """Delete what nobody can be using any more: versions superseded (or never
        published, from a crash or a lost race) more than ``grace`` seconds ago, and
        partial downloads whose writer stopped more than ``grace`` seconds ago. Never the
        current version. Returns the bytes freed."""
        now = time.time() if now is None else now
        record = self.read_entry(key)
        current = record.version_dir if record is not None else None
        freed = 0
        entry = self.entry_dir(key)
        for path in entry.glob("v-*"):
            if path.name == current:
                continue
            marker = path.with_name(SUPERSEDED_PREFIX + path.name)
            since = _mtime(marker) if marker.exists() else _mtime(path)
            if now - since >= grace:
                size = _tree_bytes(path)
                if remove_tree(path):
                    freed += size
                marker.unlink(missing_ok=True)
        for marker in entry.glob(SUPERSEDED_PREFIX + "*"):
            if not (entry / marker.name[len(SUPERSEDED_PREFIX) :]).exists():
                marker.unlink(missing_ok=True)
        for partial in [*entry.glob("partial-*"), *entry.glob(".building-*")]:
            if partial.is_symlink() or now - lease_time(partial) >= grace:
                size = _tree_bytes(partial)
                if remove_tree(partial):
                    freed += size
        return freed

    # -- partial downloads --------------------------------------------------------------

    def partials(self, key: str) -> list[Path]:
        """The entry's partial downloads (real folders: a symlink is none, and is removed
        by the next :meth:`reclaim`)."""
        return sorted(p for p in self.entry_dir(key).glob("partial-*") if not p.is_symlink())

    def new_partial(self, key: str, state: PartialState | Mapping[str, Any]) -> Path:
        token = uuid.uuid4().hex[:12]
        # Built under a name no other process looks at, then renamed: a partial is never
        # seen without its state and lease (it would look abandoned).
        building = self.entry_dir(key) / f".building-{token}"
        (building / "files").mkdir(parents=True)
        (building / "data").mkdir()
        # Its start is now: of two writers the locks let in together, the later steps back.
        started = dataclasses.replace(PartialState.of(state), created=time.time())
        write_json_atomic(building / STATE_FILE, started.to_json())
        claim_lease(building)
        path = self.entry_dir(key) / f"partial-{token}"
        os.replace(building, path)
        return path

    def claim_partial(self, key: str, state: PartialState) -> Path:
        """A partial to download ``state`` into: an interrupted download of the same remote
        version (:meth:`adopt_partial`), else a new one."""
        return self.adopt_partial(key, state) or self.new_partial(key, state)

    def adopt_partial(self, key: str, state: PartialState | Mapping[str, Any]) -> Path | None:
        """Take over an interrupted download of the same remote version, if there is one.

        Only a partial whose writer is gone (:func:`writer_alive`) is adopted or deleted,
        whatever the entry's lock says: locks may lie (Lustre, GPFS), and a lock may only
        save bytes, never hand a live writer's files to another. The partial is renamed to
        a fresh unique name first, so that two processes never write the same files.
        Abandoned partials of other versions are deleted.
        """
        wanted = PartialState.of(state)
        adopted: Path | None = None
        now = time.time()
        for path in self.partials(key):
            if writer_alive(path, now):
                continue  # someone is writing it: it stays theirs
            if adopted is None and wanted.same_download(read_json(path / STATE_FILE)):
                fresh = path.with_name(f"partial-{uuid.uuid4().hex[:12]}")
                try:
                    os.replace(path, fresh)
                except OSError:
                    continue
                claim_lease(fresh)
                adopted = fresh
            else:
                remove_tree(path)
        return adopted

    def live_partial(
        self,
        key: str,
        state: PartialState | Mapping[str, Any],
        *,
        before: Path | None = None,
    ) -> Path | None:
        """A partial download of the same remote version that another writer is filling now
        (started before ``before``'s, when given), if there is one."""
        wanted = PartialState.of(state)
        now = time.time()
        mine = _started(before) if before is not None else None
        for path in self.partials(key):
            if path == before or not writer_alive(path, now):
                continue
            if not wanted.same_download(read_json(path / STATE_FILE)):
                continue
            if mine is None or _started(path) < mine:
                return path
        return None

    def partial_bytes(self, key: str) -> int:
        return sum(_tree_bytes(partial) for partial in self.partials(key))

    def remove(self, key: str) -> bool:
        """Delete the entry's folder (never what a symlink points at); True when it is gone."""
        return remove_tree(self.entry_dir(key))


def _started(partial: Path) -> tuple[float, str]:
    """When a partial was started (its state's time), and its name to break ties."""
    state = read_json(partial / STATE_FILE) or {}
    created = state.get("created")
    return (float(created) if isinstance(created, int | float) else 0.0, partial.name)
