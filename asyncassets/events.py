"""Change events: what a refresh changed, as the store reports it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asyncassets.errors import AssetError
from asyncassets.problems import Problem

__all__ = ["ChangeEvent"]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """Canonical card names added, modified and removed by one refresh, and the problems
    the refreshed files have now (empty when every changed file parsed cleanly).

    ``to_dict()`` / ``to_json()`` give it as JSON data (sorted name lists, problems as
    objects, ``time`` in ISO 8601) and ``ChangeEvent.from_dict`` reads it back::

        async for event in store.changes():
            await websocket.send_text(event.to_json())
    """

    added: frozenset[str] = frozenset()
    modified: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    problems: tuple[Problem, ...] = ()
    source: str = ""
    time: datetime = field(default_factory=lambda: datetime.now(UTC), compare=False)

    def __bool__(self) -> bool:
        return bool(self.added or self.modified or self.removed or self.problems)

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON data: ``json.dumps(event.to_dict())`` always works."""
        return {
            "added": sorted(self.added),
            "modified": sorted(self.modified),
            "removed": sorted(self.removed),
            "problems": [problem.to_dict() for problem in self.problems],
            "source": self.source,
            "time": self.time.isoformat(),
        }

    def to_json(self, *, indent: int | None = None) -> str:
        """``json.dumps(event.to_dict())``: one line unless ``indent`` is given."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChangeEvent:
        """The event ``to_dict()`` described; a missing key takes its default.

        Raises :class:`AssetError` naming the key when a value has the wrong type or
        ``time`` is not an ISO 8601 string.
        """
        if not isinstance(data, Mapping):
            raise AssetError(f"a change event is a JSON object, not {type(data).__name__}")
        problems = data.get("problems", [])
        if not isinstance(problems, list | tuple):
            raise AssetError(
                f"change event 'problems' must be a list, not {type(problems).__name__}"
            )
        source = data.get("source", "")
        if not isinstance(source, str):
            raise AssetError(f"change event 'source' must be a string, not {type(source).__name__}")
        extra: dict[str, Any] = {}
        if "time" in data:
            extra["time"] = _time(data["time"])
        return cls(
            added=_names(data, "added"),
            modified=_names(data, "modified"),
            removed=_names(data, "removed"),
            problems=tuple(Problem.from_dict(problem) for problem in problems),
            source=source,
            **extra,
        )


def _names(data: Mapping[str, Any], key: str) -> frozenset[str]:
    names = data.get(key, [])
    if not isinstance(names, list | tuple | set | frozenset):
        raise AssetError(f"change event {key!r} must be a list, not {type(names).__name__}")
    for name in names:
        if not isinstance(name, str):
            raise AssetError(f"change event {key!r} holds {name!r}, not a card name")
    return frozenset(names)


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise AssetError(f"change event 'time' must be an ISO 8601 string, not {value!r}")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise AssetError(f"change event 'time' is not an ISO 8601 time: {value!r}") from None
