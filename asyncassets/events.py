"""Change events: what a refresh changed, as the store reports it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from asyncassets.problems import Problem

__all__ = ["ChangeEvent"]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """Canonical card names added, modified and removed by one refresh, and the problems
    the refreshed files have now (empty when every changed file parsed cleanly)."""

    added: frozenset[str] = frozenset()
    modified: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    problems: tuple[Problem, ...] = ()
    source: str = ""
    time: datetime = field(default_factory=lambda: datetime.now(UTC), compare=False)

    def __bool__(self) -> bool:
        return bool(self.added or self.modified or self.removed or self.problems)
