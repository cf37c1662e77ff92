"""Immutable snapshots of one provider's cards.

A :class:`Snapshot` maps canonical names (``foo@``, ``foo@env``) to the :class:`CardEntry`
that defines them, and remembers, per file, what that file contributed. A refresh never
edits a snapshot: :meth:`Snapshot.with_files` builds a new one from the old one plus the
changed files, and the provider swaps one reference. Readers see the old or the new
snapshot, never a mix.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from asyncassets.problems import Problem, display_path

__all__ = [
    "WHOLE_FILE_PROBLEMS",
    "CardEntry",
    "FileFieldLines",
    "FileRecord",
    "Snapshot",
    "SnapshotDiff",
]

#: Problem kinds that reject a whole file (it could not be read or parsed, or went past a
#: limit): a refresh that meets one keeps the file's last good cards.
WHOLE_FILE_PROBLEMS = frozenset({"yaml", "read", "too-large"})


class FileFieldLines(ABC):
    """The line of each top-level key of every document of one file, worked out when first
    asked for (a problem naming a field's line): shared by the file's entries."""

    __slots__ = ()

    @abstractmethod
    def of(self, index: int) -> Mapping[str, int]:
        """The key lines of document ``index`` (empty when unknown)."""


@dataclass(frozen=True, slots=True)
class CardEntry:
    """One YAML document that defines a card.

    ``metadata`` is plain data, never mutated (see :mod:`asyncassets.values`); ``file`` the file's
    URL; ``line`` the 1-based line where the document's mapping starts; ``field_lines`` the
    line of each top-level key (or, for the whole file, a :class:`FileFieldLines`);
    ``index`` the document's position in its file.
    """

    name: str
    metadata: Mapping[str, Any]
    file: str
    line: int
    source: str
    index: int = 0
    field_lines: Mapping[str, int] | FileFieldLines = field(default_factory=dict, compare=False)

    def field_line(self, key: str) -> int:
        lines = self.field_lines
        if isinstance(lines, FileFieldLines):
            lines = lines.of(self.index)
        return lines.get(key, self.line)


def _entry_maker() -> Callable[
    [str, Mapping[str, Any], str, int, str, int, FileFieldLines], CardEntry
]:
    """``new_entry(name, metadata, file, line, source, index, field_lines)``: a
    :class:`CardEntry`, made as its ``__init__`` makes it but by its slots' descriptors
    directly, for the parser's hot path: a frozen dataclass's ``__init__`` sets each field
    through ``object.__setattr__`` (1.5 us an entry, 12% of a cold load of 10,000 cards;
    this takes 0.5 us)."""
    new = object.__new__
    slots = [getattr(CardEntry, name).__set__ for name in CardEntry.__slots__]
    assert CardEntry.__slots__ == (
        "name",
        "metadata",
        "file",
        "line",
        "source",
        "index",
        "field_lines",
    ), "new_entry sets every field of CardEntry, in order"
    set_name, set_metadata, set_file, set_line, set_source, set_index, set_lines = slots

    def new_entry(
        name: str,
        metadata: Mapping[str, Any],
        file: str,
        line: int,
        source: str,
        index: int,
        field_lines: FileFieldLines,
    ) -> CardEntry:
        entry: CardEntry = new(CardEntry)
        set_name(entry, name)
        set_metadata(entry, metadata)
        set_file(entry, file)
        set_line(entry, line)
        set_source(entry, source)
        set_index(entry, index)
        set_lines(entry, field_lines)
        return entry

    return new_entry


new_entry = _entry_maker()


@dataclass(frozen=True, slots=True)
class FileRecord:
    """What one file contributed: its cards, its problems and the version it was read at.

    ``version`` is whatever identifies the content cheaply (mtime+size locally, ETag or
    generation remotely) so that a poller can tell whether the file changed.
    """

    file: str
    entries: tuple[CardEntry, ...] = ()
    problems: tuple[Problem, ...] = ()
    version: str | None = None
    #: True when the file could not be parsed and ``entries`` are the last good ones.
    stale: bool = False


@dataclass(frozen=True, slots=True)
class SnapshotDiff:
    """Canonical names whose winning definition appeared, changed or went away."""

    added: frozenset[str] = frozenset()
    modified: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    #: URLs of the files the refresh re-read or dropped.
    files: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.added or self.modified or self.removed)


def _sort_key(entry: CardEntry) -> tuple[str, int]:
    return (entry.file, entry.index)


class Snapshot:
    """Immutable index of one provider's cards. Build with :meth:`build`."""

    __slots__ = ("_by_name", "_files", "_rejected", "source")

    def __init__(
        self,
        source: str,
        files: dict[str, FileRecord],
        by_name: dict[str, tuple[CardEntry, ...]],
    ) -> None:
        self.source = source
        self._files = files
        self._by_name = by_name
        self._rejected: dict[str, Problem] | None = None

    @classmethod
    def build(cls, source: str, records: Iterable[FileRecord]) -> Snapshot:
        """Index ``records``. A name defined twice: the first file in path order wins."""
        files = {r.file: r for r in sorted(records, key=lambda r: r.file)}
        by_name: dict[str, list[CardEntry]] = {}
        for record in files.values():
            for entry in record.entries:
                by_name.setdefault(entry.name, []).append(entry)
        return cls(source, files, {k: tuple(v) for k, v in by_name.items()})

    @classmethod
    def empty(cls, source: str) -> Snapshot:
        return cls(source, {}, {})

    # -- reading

    def get(self, name: str) -> CardEntry | None:
        """The winning entry for canonical ``name``, or None."""
        entries = self._by_name.get(name)
        return entries[0] if entries else None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._by_name)

    @property
    def files(self) -> Mapping[str, FileRecord]:
        return self._files

    def entries(self) -> Iterable[CardEntry]:
        """Winning entries, one per canonical name."""
        return (entries[0] for entries in self._by_name.values())

    def rejected(self, name: str) -> Problem | None:
        """Why a document that meant to define ``name`` was left out, if one was."""
        if self._rejected is None:
            self._rejected = {
                p.card: p
                for record in self._files.values()
                for p in record.problems
                if p.card is not None and p.kind != "duplicate"
            }
        return self._rejected.get(name)

    @property
    def problems(self) -> list[Problem]:
        """Parse problems of every file, then every name defined twice in this provider."""
        found = [p for record in self._files.values() for p in record.problems]
        for name, entries in self._by_name.items():
            if len(entries) < 2:
                continue
            first = entries[0]
            for other in entries[1:]:
                found.append(
                    Problem(
                        kind="duplicate",
                        message=(
                            f"card '{name}' is defined again here; the definition at "
                            f"{_where(first)} wins"
                        ),
                        source=self.source,
                        file=other.file,
                        line=other.line,
                        card=name,
                    )
                )
        return found

    # -- refreshing

    def with_files(self, changed: Mapping[str, FileRecord | None]) -> tuple[Snapshot, SnapshotDiff]:
        """A new snapshot with ``changed`` files replaced (None: the file is gone).

        Costs O(changed entries), not O(store): the dictionaries are copied at C speed and
        only the names the changed files touch are re-sorted.
        """
        files = dict(self._files)
        by_name = dict(self._by_name)
        touched: set[str] = set()
        for path, record in changed.items():
            old = files.pop(path, None)
            if old is not None:
                for entry in old.entries:
                    touched.add(entry.name)
                    remaining = tuple(e for e in by_name.get(entry.name, ()) if e.file != path)
                    if remaining:
                        by_name[entry.name] = remaining
                    else:
                        by_name.pop(entry.name, None)
            if record is not None:
                files[path] = record
                for entry in record.entries:
                    touched.add(entry.name)
                    by_name[entry.name] = (*by_name.get(entry.name, ()), entry)
        for name in touched:
            entries = by_name.get(name)
            if entries and len(entries) > 1:
                by_name[name] = tuple(sorted(entries, key=_sort_key))
        if any(path not in self._files for path in changed):
            files = dict(sorted(files.items()))
        new = Snapshot(self.source, files, by_name)
        diff = diff_names(self, new, touched)
        return new, SnapshotDiff(diff.added, diff.modified, diff.removed, frozenset(changed))


def diff_names(old: Snapshot, new: Snapshot, names: Iterable[str]) -> SnapshotDiff:
    """Which of ``names`` were added, modified or removed between two snapshots."""
    added, modified, removed = set(), set(), set()
    for name in names:
        before, after = old.get(name), new.get(name)
        if before is None and after is not None:
            added.add(name)
        elif before is not None and after is None:
            removed.add(name)
        elif before is not None and after is not None and before != after:
            modified.add(name)
    return SnapshotDiff(frozenset(added), frozenset(modified), frozenset(removed))


def _where(entry: CardEntry) -> str:
    return f"{display_path(entry.file)}:{entry.line}"
