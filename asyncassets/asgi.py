"""The store as a service: an ASGI app (Starlette) with readiness, metrics, live events and a
live page. Extra ``serve`` (starlette, uvicorn, prometheus-client).

``create_app(store, prefetch=[...])`` returns a Starlette app whose lifespan loads the store,
prefetches the named cards (progress at ``/readyz`` and ``/metrics``) and watches the card
folders; ``asyncassets serve`` runs it with uvicorn. Routes:

- ``GET /healthz``: the process is up (always 200).
- ``GET /readyz``: 503 with JSON progress until the store is loaded and every prefetch is
  done, then 200 (what a Kubernetes readiness probe expects). A failed prefetch stays 503
  and says why.
- ``GET /cards`` (``?kind=``, ``?env=``), ``GET /cards/{name}`` (``?env=``; an unknown name
  is a 404 with close matches), ``GET /problems``.
- ``GET /events``: server-sent events, one ``change`` per refresh (a ``ChangeEvent`` as
  JSON), a ``: ping`` comment every 15 s. Each subscriber has a bounded queue: one that does
  not keep up is disconnected (its browser reconnects and reloads), never the store slowed.
- ``GET /metrics``: Prometheus text (cards, problems, reloads and their latency, cache hits,
  misses and bytes, prefetch progress per card), from a registry of the app's own.
- ``GET /``: the live page (``asyncassets/web/``), which follows ``/events``.

To embed it in a FastAPI or Starlette app, mount it and run its lifespan from yours::

    inner = create_app(store, prefetch=["qwen3_1.7b"])

    @asynccontextmanager
    async def lifespan(app):
        async with inner.router.lifespan_context(inner):
            yield

    app = FastAPI(lifespan=lifespan)
    app.mount("/assets", inner)
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from asyncassets.card import AssetCard
from asyncassets.errors import AssetCardNotFoundError, AssetError
from asyncassets.events import ChangeEvent
from asyncassets.kinds import card_family, card_kind
from asyncassets.store import AssetStore
from asyncassets.urls import local_path
from asyncassets.values import json_value

if TYPE_CHECKING:
    from starlette.responses import Response

__all__ = ["PING_SECONDS", "SUBSCRIBER_QUEUE", "create_app", "end_event_streams"]

logger = logging.getLogger("asyncassets.asgi")

#: Seconds between keep-alive comments on ``/events``.
PING_SECONDS = 15.0
#: Events queued for one ``/events`` subscriber before it is dropped as too slow.
SUBSCRIBER_QUEUE = 256
_WEB = Path(__file__).parent / "web"
_KINDS = ("model", "dataset", "tokenizer", "other")


@dataclass
class _Prefetch:
    state: str = "pending"  # pending | running | done | failed
    done: int = 0
    total: int | None = None
    error: str | None = None
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "done": self.done, "total": self.total, "error": self.error}


@dataclass
class _State:
    store: AssetStore
    prefetch: dict[str, _Prefetch]
    loaded: bool = False
    load_error: str | None = None
    subscribers: set[MemoryObjectSendStream[ChangeEvent]] = field(default_factory=set)
    metrics: Any = None
    counted: tuple[Any, int, int] | None = None
    closing: bool = False

    @property
    def ready(self) -> bool:
        return self.loaded and all(p.state == "done" for p in self.prefetch.values())


class _Metrics:
    """The app's Prometheus metrics, in a registry of its own (two apps never clash)."""

    def __init__(self, state: _State) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        self.registry = CollectorRegistry(auto_describe=True)
        self.reloads = Counter(
            "asyncassets_reloads",
            "Refreshes that changed cards or problems",
            registry=self.registry,
        )
        self.reload_latency = Histogram(
            "asyncassets_reload_latency_seconds",
            "From a card file's modification to the store serving it",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.load_seconds = Histogram(
            "asyncassets_load_seconds",
            "Time of the store's first load",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60),
            registry=self.registry,
        )

        class Live:
            """Values read at scrape time: never stale, no bookkeeping."""

            def collect(self) -> Any:
                cards, problems = _counts(state)
                yield GaugeMetricFamily("asyncassets_cards", "Cards (plain names)", cards)
                yield GaugeMetricFamily(
                    "asyncassets_problems", "Problems the store reports", problems
                )
                yield GaugeMetricFamily(
                    "asyncassets_ready", "1 when loaded and prefetched", 1 if state.ready else 0
                )
                yield GaugeMetricFamily(
                    "asyncassets_event_subscribers", "Open /events streams", len(state.subscribers)
                )
                stats = state.store.cache.stats
                for name, value, text in (
                    ("hits", stats.hits, "Fetches answered from the cache"),
                    ("misses", stats.misses, "Fetches that downloaded"),
                    ("bytes_downloaded", stats.bytes_downloaded, "Bytes written by downloads"),
                ):
                    yield CounterMetricFamily(f"asyncassets_cache_{name}", text, value)
                done = GaugeMetricFamily(
                    "asyncassets_prefetch_bytes", "Bytes prefetched so far", labels=["card"]
                )
                total = GaugeMetricFamily(
                    "asyncassets_prefetch_total_bytes", "Bytes to prefetch", labels=["card"]
                )
                finished = GaugeMetricFamily(
                    "asyncassets_prefetch_done",
                    "1 when the card's prefetch is done",
                    labels=["card"],
                )
                for card, progress in state.prefetch.items():
                    done.add_metric([card], progress.done)
                    if progress.total is not None:
                        total.add_metric([card], progress.total)
                    finished.add_metric([card], 1 if progress.state == "done" else 0)
                yield done
                yield total
                yield finished

        self.registry.register(Live())


def end_event_streams(app: Any) -> None:
    """End every open ``/events`` stream of ``app`` (a :func:`create_app` app).

    A server waits for its open responses before it stops, and an event stream never ends
    by itself: call this when the server starts shutting down (``asyncassets serve`` does),
    and the browsers' ``EventSource`` reconnect to wherever the service comes back."""
    state: _State = app.state.asyncassets
    state.closing = True
    for stream in list(state.subscribers):
        stream.close()
    state.subscribers.clear()


def _json(data: Any, status: int = 200) -> Response:
    from starlette.responses import Response

    body = json.dumps(json_value(data), default=str, ensure_ascii=False)
    return Response(body, status_code=status, media_type="application/json")


def _summary(card: AssetCard) -> dict[str, Any]:
    kind = card_kind(card)
    return {
        "name": card.name,
        "kind": kind,
        "family": card_family(card, kind) if kind != "other" else "",
        "source": card.source,
        "line": None,
    }


def _requested(name: str, env: str | None) -> str:
    return f"{name}@{env}" if env else name


#: The ``Host`` names the app answers by default: this machine's own. A web page elsewhere
#: that rebinds its DNS name to 127.0.0.1 sends its own name, and is refused.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "*.localhost")
#: Sent with every response (the page loads only its own script, style and events).
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        b"form-action 'self'; frame-ancestors 'none'",
    ),
    (b"referrer-policy", b"no-referrer"),
)


class _SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    store: AssetStore,
    *,
    prefetch: Sequence[str] = (),
    watch: bool = True,
    field: str = "checkpoint",
    allowed_hosts: Sequence[str] | None = None,
) -> Any:
    """A Starlette app serving ``store`` (see the module's documentation).

    ``prefetch`` names cards whose ``field`` is fetched into the cache before ``/readyz``
    says ready; ``watch`` keeps the store fresh while the app runs. ``allowed_hosts`` are
    the ``Host`` names it answers (default :data:`LOCAL_HOSTS`; ``"*.example.com"``
    patterns work, ``["*"]`` turns the check off, for an app behind a proxy that checks);
    any other gets a 400, so that a DNS-rebinding page cannot read the cards.
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    state = _State(store, {name: _Prefetch() for name in prefetch})
    bodies = _Bodies()
    metrics = _Metrics(state)
    state.metrics = metrics

    async def prefetch_one(name: str) -> None:
        progress = state.prefetch[name]
        progress.state = "running"

        def advance(done: int, total: int | None) -> None:
            progress.done, progress.total = done, total

        try:
            path = await store.prefetch(name, field=field, progress=advance)
        except AssetError as exc:
            progress.state, progress.error = "failed", str(exc)
            logger.error("prefetch of %s failed: %s", name, exc)
            return
        progress.path = str(path)
        if progress.total is None or progress.done < (progress.total or 0):
            size = await anyio.to_thread.run_sync(_size_of, path)
            progress.done = progress.total = size
        progress.state = "done"
        logger.info("prefetched %s: %s", name, path)

    async def broadcast() -> None:
        async for event in store.changes():
            metrics.reloads.inc()
            latency = await _edit_latency(store, event)
            if latency is not None:
                metrics.reload_latency.observe(latency)
            for stream in list(state.subscribers):
                try:
                    stream.send_nowait(event)
                except anyio.WouldBlock:  # too slow: drop it, its browser reconnects
                    state.subscribers.discard(stream)
                    await stream.aclose()
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    state.subscribers.discard(stream)

    async def run() -> None:
        started = time.perf_counter()
        try:
            await store.load()
        except AssetError as exc:
            state.load_error = str(exc)
            logger.error("the store did not load: %s", exc)
        metrics.load_seconds.observe(time.perf_counter() - started)
        state.loaded = state.load_error is None
        async with anyio.create_task_group() as tg:
            tg.start_soon(broadcast)
            for name in prefetch:
                tg.start_soon(prefetch_one, name)
            if watch:
                async with store.watching():
                    await anyio.sleep_forever()

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                for stream in list(state.subscribers):
                    await stream.aclose()
                state.subscribers.clear()

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(request: Request) -> Response:
        body = {
            "ready": state.ready,
            "loaded": state.loaded,
            "error": state.load_error,
            "prefetch": {name: p.to_dict() for name, p in state.prefetch.items()},
        }
        return _json(body, 200 if state.ready else 503)

    async def cards(request: Request) -> Response:
        kind = request.query_params.get("kind")
        if kind is not None and kind not in _KINDS:
            return _json({"error": f"unknown kind {kind!r}; one of {', '.join(_KINDS)}"}, 400)
        env = request.query_params.get("env") or None
        rows = []
        names = sorted({n.partition("@")[0] for n in await store.asset_names()})
        for name in names:
            try:
                card = await store.retrieve_card(_requested(name, env))
            except AssetCardNotFoundError:
                continue  # only env overrides of a card no store defines
            except AssetError as exc:
                rows.append(
                    {
                        "name": name,
                        "kind": "error",
                        "family": "",
                        "source": "",
                        "line": None,
                        "error": str(exc),
                    }
                )
                continue
            row = _summary(card)
            if kind is None or row["kind"] == kind:
                rows.append(row)
        return _json({"cards": rows, "count": len(rows)})

    async def card(request: Request) -> Response:
        name = request.path_params["name"]
        env = request.query_params.get("env") or None
        try:
            resolved = await store.retrieve_card(_requested(name, env))
        except AssetCardNotFoundError as exc:
            plain = sorted({n.partition("@")[0] for n in await store.asset_names()})
            close = difflib.get_close_matches(name, plain, n=5)
            return _json({"error": str(exc), "name": name, "close_matches": close}, 404)
        except AssetError as exc:
            return _json({"error": str(exc), "name": name}, 422)
        # The store hands out the same card object until a refresh changes it: its JSON is
        # made once per version (a hot path under load costs a dict lookup).
        cached = bodies.get(resolved.name, env)
        if cached is None or cached[0] is not resolved:
            cached = (resolved, _card_body(resolved))
            bodies.put(resolved.name, env, cached)
        return Response(cached[1], media_type="application/json")

    async def problems(request: Request) -> Response:
        found = await store.check()
        rows = [{**p.to_dict(), "text": str(p)} for p in found]
        return _json({"problems": rows, "count": len(rows)})

    async def events(request: Request) -> Response:
        send, receive = anyio.create_memory_object_stream[ChangeEvent](SUBSCRIBER_QUEUE)
        if state.closing:
            send.close()  # shutting down: the stream ends at once
        else:
            state.subscribers.add(send)

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                async with receive:
                    while True:
                        with anyio.move_on_after(PING_SECONDS) as timer:
                            try:
                                event = await receive.receive()
                            except anyio.EndOfStream:
                                return
                        if timer.cancelled_caught:
                            yield ": ping\n\n"
                            continue
                        yield f"event: change\ndata: {event.to_json()}\n\n"
            finally:
                state.subscribers.discard(send)
                send.close()

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    async def metrics_route(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def index(request: Request) -> Response:
        return FileResponse(_WEB / "index.html", media_type="text/html")

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/cards", cards),
            Route("/cards/{name:path}", card),
            Route("/problems", problems),
            Route("/events", events),
            Route("/metrics", metrics_route),
            Mount("/web", StaticFiles(directory=_WEB, check_dir=False), name="web"),
        ],
        lifespan=lifespan,
        middleware=[
            Middleware(_SecurityHeaders),
            Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts or LOCAL_HOSTS)),
        ],
    )
    app.state.asyncassets = state
    return app


class _Bodies:
    """JSON bodies of resolved cards, by (name, env), each with the card object it was made
    from; bounded (cleared when full: a store of more cards than this is rebuilt lazily)."""

    LIMIT = 8192

    def __init__(self) -> None:
        self._bodies: dict[tuple[str, str | None], tuple[AssetCard, bytes]] = {}

    def get(self, name: str, env: str | None) -> tuple[AssetCard, bytes] | None:
        return self._bodies.get((name, env))

    def put(self, name: str, env: str | None, entry: tuple[AssetCard, bytes]) -> None:
        if len(self._bodies) >= self.LIMIT:
            self._bodies.clear()
        self._bodies[(name, env)] = entry


def _card_body(card: AssetCard) -> bytes:
    body = _summary(card)
    body["metadata"] = card.to_dict()
    body["chain"] = [
        {"name": link.name, "source": link.source, "line": None, "fields": link.metadata}
        for link in card.chain()
    ]
    return json.dumps(json_value(body), default=str, ensure_ascii=False).encode()


def _counts(state: _State) -> tuple[int, int]:
    """Cards and problems of the store's current index, computed once per index (a scrape
    never loads the store nor walks 10,000 cards twice)."""
    from asyncassets.checks import index_problems

    store = state.store
    index = store._index
    if index is None:
        return 0, 0
    if state.counted is None or state.counted[0] is not index:
        cards = len({n.partition("@")[0] for n in index.names})
        problems = sum(len(p.snapshot.problems) for p in store.providers_by_precedence())
        problems += len(index_problems(index))
        state.counted = (index, cards, problems)
    return state.counted[1], state.counted[2]


def _size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


async def _edit_latency(store: AssetStore, event: ChangeEvent) -> float | None:
    """Seconds from the newest modification of the changed cards' files to the event."""
    newest = -math.inf
    for name in sorted(event.added | event.modified)[:64]:
        plain, _, env = name.partition("@")
        if env:
            continue
        try:
            card = await store.maybe_retrieve_card(plain)
        except AssetError:
            continue
        if card is None:
            continue
        path = local_path(card.source)
        if path is None:
            continue
        try:
            mtime = (await anyio.to_thread.run_sync(os.stat, path)).st_mtime
        except OSError:
            continue
        newest = max(newest, mtime)
    if newest == -math.inf:
        return None
    latency = event.time.timestamp() - newest
    return latency if 0 <= latency < 3600 else None
