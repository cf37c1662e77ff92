"""Cards held in memory: for tests, generated cards and programmatic overrides."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from asyncassets.parsing import make_entry
from asyncassets.problems import Problem
from asyncassets.providers.base import SnapshotProvider
from asyncassets.snapshot import CardEntry, FileRecord, SnapshotDiff

__all__ = ["InMemoryAssetMetadataProvider"]


class InMemoryAssetMetadataProvider(SnapshotProvider):
    """Cards given as mappings, each with a ``name``.

    >>> InMemoryAssetMetadataProvider([{"name": "tiny", "model_family": "toy"}])

    :meth:`set_cards` replaces the whole set later (watchers and caches see the change).
    """

    def __init__(self, cards: Iterable[Mapping[str, Any]] = (), *, source: str = "memory"):
        super().__init__(source)
        self._record = self._make_record(cards)

    def _make_record(self, cards: Iterable[Mapping[str, Any]]) -> FileRecord:
        entries: list[CardEntry] = []
        problems: list[Problem] = []
        for index, card in enumerate(cards):
            made = make_entry(
                card, file=self._source, source=self._source, line=index + 1, index=index
            )
            if isinstance(made, Problem):
                problems.append(made)
            else:
                entries.append(made)
        return FileRecord(self._source, tuple(entries), tuple(problems), version=None)

    async def _read_all(self) -> list[FileRecord]:
        return [self._record]

    def set_cards(self, cards: Iterable[Mapping[str, Any]]) -> SnapshotDiff:
        """Replace every card; returns what changed."""
        self._record = self._make_record(cards)
        if not self._loaded:
            return SnapshotDiff()
        return self._apply({self._source: self._record})
