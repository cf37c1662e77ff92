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
    "KnownKeyLines",
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

    @abstractmethod
    def portable(self) -> bytes | list[dict[str, int]]:
        """What makes these lines again in another process (the persistent index): the
        file's bytes while the lines are not worked out, else the lines of each document."""


class KnownKeyLines(FileFieldLines):
    """Key lines known already: found while the file was read, or kept in an index."""

    __slots__ = ("_documents",)

    def __init__(self, documents: list[dict[str, int]]) -> None:
        self._documents = documents

    def of(self, index: int) -> dict[str, int]:
        return self._documents[index] if index < len(self._documents) else {}

    def portable(self) -> list[dict[str, int]]:
        return self._documents


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
    [str, Mapping[str, Any], str, int, str, int, Mapping[str, int] | FileFieldLines], CardEntry
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
        field_lines: Mapping[str, int] | FileFieldLines,
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
    """Immutable index of one provider's cards. Build with :meth:`build`.

    ``_winners`` maps each canonical name to its winning entry; ``_more`` holds every
    definition, winner first, of the few names defined more than once.
    """

    __slots__ = ("_files", "_more", "_rejected", "_winners", "source")

    def __init__(
        self,
        source: str,
        files: dict[str, FileRecord],
        winners: dict[str, CardEntry],
        more: dict[str, tuple[CardEntry, ...]] | None = None,
    ) -> None:
        self.source = source
        self._files = files
        self._winners = winners
        self._more = more or {}
        self._rejected: dict[str, Problem] | None = None

    @classmethod
    def build(cls, source: str, records: Iterable[FileRecord]) -> Snapshot:
        """Index ``records``. A name defined twice: the first file in path order wins."""
        files = {r.file: r for r in sorted(records, key=lambda r: r.file)}
        winners: dict[str, CardEntry] = {}
        more: dict[str, list[CardEntry]] = {}
        for record in files.values():
            for entry in record.entries:
                name = entry.name
                winner = winners.get(name)
                if winner is None:
                    winners[name] = entry
                else:
                    more.setdefault(name, [winner]).append(entry)
        return cls(source, files, winners, {k: tuple(v) for k, v in more.items()})

    @classmethod
    def empty(cls, source: str) -> Snapshot:
        return cls(source, {}, {})

    # -- reading

    def get(self, name: str) -> CardEntry | None:
        """The winning entry for canonical ``name``, or None."""
        return self._winners.get(name)

    def definitions(self, name: str) -> tuple[CardEntry, ...]:
        """Every entry that defines ``name``, the winner first."""
        more = self._more.get(name)
        if more is not None:
            return more
        winner = self._winners.get(name)
        return () if winner is None else (winner,)

    def __contains__(self, name: object) -> bool:
        return name in self._winners

    def __len__(self) -> int:
        return len(self._winners)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._winners)

    @property
    def files(self) -> Mapping[str, FileRecord]:
        return self._files

    @property
    def winners(self) -> Mapping[str, CardEntry]:
        """The winning entry of each canonical name."""
        return self._winners

    def entries(self) -> Iterable[CardEntry]:
        """Winning entries, one per canonical name."""
        return self._winners.values()

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
        for name, entries in self._more.items():
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
        winners = dict(self._winners)
        more = dict(self._more)

        def definitions(name: str) -> tuple[CardEntry, ...]:
            if name in more:
                return more[name]
            return (winners[name],) if name in winners else ()

        def define(name: str, entries: tuple[CardEntry, ...]) -> None:
            more.pop(name, None)
            if not entries:
                winners.pop(name, None)
                return
            winners[name] = entries[0]
            if len(entries) > 1:
                more[name] = entries

        touched: set[str] = set()
        for path, record in changed.items():
            old = files.pop(path, None)
            if old is not None:
                for entry in old.entries:
                    touched.add(entry.name)
                    define(entry.name, tuple(e for e in definitions(entry.name) if e.file != path))
            if record is not None:
                files[path] = record
                for entry in record.entries:
                    touched.add(entry.name)
                    define(entry.name, (*definitions(entry.name), entry))
        for name in touched:
            entries = definitions(name)
            if len(entries) > 1:
                define(name, tuple(sorted(entries, key=_sort_key)))
        if any(path not in self._files for path in changed):
            files = dict(sorted(files.items()))
        new = Snapshot(self.source, files, winners, more)
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
