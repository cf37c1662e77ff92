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
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import generate_latest as prometheus_text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from asyncassets.asgi_metrics import Metrics, edit_latency
from asyncassets.asgi_state import AppState, Prefetch, card_summary
from asyncassets.errors import AssetCardNotFoundError, AssetError
from asyncassets.events import ChangeEvent
from asyncassets.store import AssetStore
from asyncassets.values import json_value

__all__ = ["PING_SECONDS", "SUBSCRIBER_QUEUE", "create_app", "end_event_streams"]

logger = logging.getLogger("asyncassets.asgi")

#: Seconds between keep-alive comments on ``/events``.
PING_SECONDS = 15.0
#: Events queued for one ``/events`` subscriber before it is dropped as too slow.
SUBSCRIBER_QUEUE = 256
_WEB = Path(__file__).parent / "web"
_KINDS = ("model", "dataset", "tokenizer", "other")


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.asyncassets
    return state


def end_event_streams(app: Any) -> None:
    """End every open ``/events`` stream of ``app`` (a :func:`create_app` app).

    A server waits for its open responses before it stops, and an event stream never ends
    by itself: call this when the server starts shutting down (``asyncassets serve`` does),
    and the browsers' ``EventSource`` reconnect to wherever the service comes back."""
    state: AppState = app.state.asyncassets
    state.closing = True
    for stream in list(state.subscribers):
        stream.close()
    state.subscribers.clear()


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(json_value(data), default=str, ensure_ascii=False)
    return Response(body, status_code=status, media_type="application/json")


def _requested(name: str, env: str | None) -> str:
    return f"{name}@{env}" if env else name


def _env(request: Request) -> str | None:
    """The ``?env=`` of ``request`` (None when empty or absent)."""
    if not request.scope["query_string"]:  # most requests: no query string to parse
        return None
    return request.query_params.get("env") or None


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


class _Guard:
    """ASGI middleware: Starlette's ``TrustedHostMiddleware`` (a ``Host`` not in
    ``allowed_hosts`` gets a 400), then :data:`SECURITY_HEADERS` on every HTTP response,
    that 400 included.

    The check's answer depends on the ``Host`` header alone, so a value it let through once
    passes at once after (a few of them remembered: memory stays bounded whatever clients
    send); any other goes through the check again."""

    REMEMBERED = 64

    def __init__(self, app: Any, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.check = TrustedHostMiddleware(self._admit, allowed_hosts=allowed_hosts)
        self.admitted: set[bytes] = set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            send = _with_security_headers(send)
        elif scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        if _host_header(scope) in self.admitted:
            await self.app(scope, receive, send)
        else:
            await self.check(scope, receive, send)

    async def _admit(self, scope: Any, receive: Any, send: Any) -> None:
        host = _host_header(scope)
        if host is not None and len(self.admitted) < self.REMEMBERED:
            self.admitted.add(host)
        await self.app(scope, receive, send)


def _host_header(scope: Any) -> bytes | None:
    """The first ``Host`` header of ``scope``, as sent (what the host check reads)."""
    for key, value in scope["headers"]:
        if key == b"host":
            return bytes(value)
    return None


def _with_security_headers(send: Any) -> Any:
    async def send_with_headers(message: Any) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *SECURITY_HEADERS]}
        await send(message)

    return send_with_headers


class _PreparedCards:
    """ASGI middleware sending ``GET /cards/{name}`` (no query string) of a card that
    resolves, from the answer made once per snapshot (:class:`Bodies`): the bytes the route
    sends, without routing, request and response objects in between, since this is the path
    under load. Anything else, an unknown or broken card included, goes on to the routes."""

    def __init__(self, app: Any, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith("/cards/")
            and not scope["query_string"]
            and not scope.get("root_path")  # mounted: the routes know where they are
        ):
            try:
                card = await self.state.store.retrieve_card(scope["path"][len("/cards/") :])
            except AssetError:
                pass  # the route says why (404 with close matches, 422)
            else:
                body, headers = self.state.bodies.answer(card, None)
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


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
    state = AppState(
        store, {name: Prefetch() for name in prefetch}, watch=watch, prefetch_field=field
    )
    state.metrics = Metrics(state)
    app = Starlette(
        routes=[
            # First: the route under load (the others never match its paths).
            Route("/cards/{name:path}", _card),
            Route("/", _index),
            Route("/healthz", _healthz),
            Route("/readyz", _readyz),
            Route("/cards", _cards),
            Route("/problems", _problems),
            Route("/events", _events),
            Route("/metrics", _metrics),
            Mount("/web", StaticFiles(directory=_WEB, check_dir=False), name="web"),
        ],
        lifespan=_lifespan,
        middleware=[
            Middleware(_Guard, allowed_hosts=list(allowed_hosts or LOCAL_HOSTS)),
            Middleware(_PreparedCards, state=state),
        ],
    )
    app.state.asyncassets = state
    return app


# -- lifespan: load, prefetch, watch, broadcast


@asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    state: AppState = app.state.asyncassets
    async with anyio.create_task_group() as tg:
        tg.start_soon(_run, state)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()
            for stream in list(state.subscribers):
                await stream.aclose()
            state.subscribers.clear()


async def _run(state: AppState) -> None:
    store = state.store
    started = time.perf_counter()
    try:
        await store.load()
    except AssetError as exc:
        state.load_error = str(exc)
        logger.error("the store did not load: %s", exc)
    state.metrics.load_seconds.observe(time.perf_counter() - started)
    state.loaded = state.load_error is None
    async with anyio.create_task_group() as tg:
        tg.start_soon(_broadcast, state)
        for name in state.prefetch:
            tg.start_soon(_prefetch_one, state, name)
        if state.watch:
            async with store.watching():
                await anyio.sleep_forever()


async def _prefetch_one(state: AppState, name: str) -> None:
    progress = state.prefetch[name]
    progress.state = "running"

    def advance(done: int, total: int | None) -> None:
        progress.done, progress.total = done, total

    try:
        path = await state.store.prefetch(name, field=state.prefetch_field, progress=advance)
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


async def _broadcast(state: AppState) -> None:
    async for event in state.store.changes():
        state.metrics.reloads.inc()
        latency = await edit_latency(state.store, event)
        if latency is not None:
            state.metrics.reload_latency.observe(latency)
        for stream in list(state.subscribers):
            try:
                stream.send_nowait(event)
            except anyio.WouldBlock:  # too slow: drop it, its browser reconnects
                state.subscribers.discard(stream)
                await stream.aclose()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                state.subscribers.discard(stream)


# -- routes


async def _healthz(request: Request) -> Response:
    return _json({"status": "ok"})


async def _readyz(request: Request) -> Response:
    state = _state(request)
    body = {
        "ready": state.ready,
        "loaded": state.loaded,
        "error": state.load_error,
        "prefetch": {name: p.to_dict() for name, p in state.prefetch.items()},
    }
    return _json(body, 200 if state.ready else 503)


async def _cards(request: Request) -> Response:
    store = _state(request).store
    kind = request.query_params.get("kind")
    if kind is not None and kind not in _KINDS:
        return _json({"error": f"unknown kind {kind!r}; one of {', '.join(_KINDS)}"}, 400)
    env = _env(request)
    rows = []
    names = sorted({n.partition("@")[0] for n in await store.asset_names()})
    for name in names:
        try:
            card = await store.retrieve_card(_requested(name, env))
        except AssetCardNotFoundError:
            continue  # only env overrides of a card no store defines
        except AssetError as exc:
            error = {"kind": "error", "family": "", "source": "", "line": None}
            rows.append({"name": name, **error, "error": str(exc)})
            continue
        row = card_summary(card)
        if kind is None or row["kind"] == kind:
            rows.append(row)
    return _json({"cards": rows, "count": len(rows)})


async def _card(request: Request) -> Response:
    state: AppState = request.app.state.asyncassets
    name = request.path_params["name"]
    env = _env(request)
    try:
        resolved = await state.store.retrieve_card(_requested(name, env))
    except AssetCardNotFoundError as exc:
        plain = sorted({n.partition("@")[0] for n in await state.store.asset_names()})
        close = difflib.get_close_matches(name, plain, n=5)
        return _json({"error": str(exc), "name": name, "close_matches": close}, 404)
    except AssetError as exc:
        return _json({"error": str(exc), "name": name}, 422)
    body, _ = state.bodies.answer(resolved, env)
    return Response(body, media_type="application/json")


async def _problems(request: Request) -> Response:
    found = await _state(request).store.check()
    rows = [{**p.to_dict(), "text": str(p)} for p in found]
    return _json({"problems": rows, "count": len(rows)})


async def _events(request: Request) -> Response:
    state = _state(request)
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


async def _metrics(request: Request) -> Response:
    registry = _state(request).metrics.registry
    return Response(prometheus_text(registry), media_type=CONTENT_TYPE_LATEST)


async def _index(request: Request) -> Response:
    return FileResponse(_WEB / "index.html", media_type="text/html")


def _size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
