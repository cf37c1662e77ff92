"""Change events: what a refresh changed, and the feed that hands them to subscribers."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from asyncassets.errors import AssetError
from asyncassets.problems import Problem
from asyncassets.snapshot import Snapshot, SnapshotDiff

__all__ = ["ChangeEvent", "ChangeFeed"]


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


class ChangeFeed:
    """Hands every :class:`ChangeEvent` to every subscriber, each over its own anyio
    memory stream (unbounded: a refresh never waits for a slow reader).

    A store reports each snapshot swap with :meth:`swapped` and each failed refresh with
    :meth:`refresh_failed`; readers iterate :meth:`subscribe`.
    """

    def __init__(self) -> None:
        self._subscribers: set[MemoryObjectSendStream[ChangeEvent]] = set()
        #: Files whose last refresh had problems: their fix is news even when no name changed.
        self._files_with_problems: set[str] = set()

    def __len__(self) -> int:
        """How many subscribers are listening."""
        return len(self._subscribers)

    def publish(self, event: ChangeEvent) -> None:
        """Send ``event`` to every subscriber; drop those that stopped listening."""
        for stream in list(self._subscribers):
            try:
                stream.send_nowait(event)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.discard(stream)

    def swapped(self, source: str, snapshot: Snapshot, diff: SnapshotDiff) -> None:
        """Publish what a provider's new ``snapshot`` changed: names added, modified or
        removed, the problems of the refreshed files, and the fix of a file that had one.
        Nothing is published (or remembered) while nobody listens."""
        if not self._subscribers or (not diff.files and not diff):
            return
        problems = tuple(
            p for f in sorted(diff.files) if (r := snapshot.files.get(f)) for p in r.problems
        )
        if diff or problems or diff.files & self._files_with_problems:
            self.publish(ChangeEvent(diff.added, diff.modified, diff.removed, problems, source))
        self._files_with_problems -= diff.files
        self._files_with_problems |= {p.file for p in problems if p.file}

    def refresh_failed(self, source: str, exc: BaseException) -> None:
        """Publish a ``watch`` problem: refreshing ``source`` failed with ``exc``."""
        problem = Problem("watch", f"cannot refresh: {exc}", source)
        self.publish(ChangeEvent(problems=(problem,), source=source))

    async def subscribe(self) -> AsyncIterator[ChangeEvent]:
        """Every event published from the first iteration on, until the caller stops."""
        send, receive = anyio.create_memory_object_stream[ChangeEvent](math.inf)
        self._subscribers.add(send)
        try:
            async with receive:
                async for event in receive:
                    yield event
        finally:
            self._subscribers.discard(send)
            send.close()
