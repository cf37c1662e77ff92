"""What the handlers and the lifespan of :mod:`asyncassets.asgi` share: the app's state
(``app.state.asyncassets``), prefetch progress, and the JSON of resolved cards, made once per
snapshot. Internal to :mod:`asyncassets.asgi`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from anyio.streams.memory import MemoryObjectSendStream

from asyncassets.card import AssetCard
from asyncassets.events import ChangeEvent
from asyncassets.kinds import card_family, card_kind
from asyncassets.store import AssetStore
from asyncassets.values import json_value

#: An ASGI message's headers (a tuple: shared by every answer of a card, never changed).
RawHeaders = tuple[tuple[bytes, bytes], ...]


@dataclass
class Prefetch:
    state: str = "pending"  # pending | running | done | failed
    done: int = 0
    total: int | None = None
    error: str | None = None
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "done": self.done, "total": self.total, "error": self.error}


class Bodies:
    """Answers of ``GET /cards/{name}``: the JSON of a resolved card and its response headers,
    by (name, env), each with the card object it was made from. The store hands out the same
    card object until its snapshot changes, so an answer is made once per snapshot, and a
    request of an edited card finds a stale entry and makes it again. Bounded (cleared when
    full: a store of more cards than this is rebuilt lazily)."""

    LIMIT = 8192

    def __init__(self) -> None:
        self._answers: dict[tuple[str, str | None], tuple[AssetCard, bytes, RawHeaders]] = {}

    def answer(self, card: AssetCard, env: str | None) -> tuple[bytes, RawHeaders]:
        """The JSON of ``card`` (resolved for ``env``) and the headers Starlette's
        ``Response(body, media_type="application/json")`` sends with it."""
        key = (card.name, env)
        entry = self._answers.get(key)
        if entry is None or entry[0] is not card:
            if len(self._answers) >= self.LIMIT:
                self._answers.clear()
            body = card_body(card)
            headers = (
                (b"content-length", str(len(body)).encode("latin-1")),
                (b"content-type", b"application/json"),
            )
            entry = self._answers[key] = (card, body, headers)
        return entry[1], entry[2]


@dataclass
class AppState:
    """What the app's handlers and lifespan share, as ``app.state.asyncassets``."""

    store: AssetStore
    prefetch: dict[str, Prefetch]
    watch: bool
    prefetch_field: str
    loaded: bool = False
    load_error: str | None = None
    subscribers: set[MemoryObjectSendStream[ChangeEvent]] = field(default_factory=set)
    bodies: Bodies = field(default_factory=Bodies)
    metrics: Any = None
    counted: tuple[Any, int, int] | None = None
    closing: bool = False

    @property
    def ready(self) -> bool:
        return self.loaded and all(p.state == "done" for p in self.prefetch.values())


def card_summary(card: AssetCard) -> dict[str, Any]:
    """A row of ``GET /cards``."""
    kind = card_kind(card)
    return {
        "name": card.name,
        "kind": kind,
        "family": card_family(card, kind) if kind != "other" else "",
        "source": card.source,
        "line": None,
    }


def card_body(card: AssetCard) -> bytes:
    """What ``GET /cards/{name}`` answers for ``card``."""
    body = card_summary(card)
    body["metadata"] = card.to_dict()
    body["chain"] = [
        {"name": link.name, "source": link.source, "line": None, "fields": link.metadata}
        for link in card.chain()
    ]
    return json.dumps(json_value(body), default=str, ensure_ascii=False).encode()
