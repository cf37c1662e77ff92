"""An ASGI app under a real uvicorn, in a thread, on a free 127.0.0.1 port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from servers import free_port

#: Seconds any wait in the ASGI tests may take before it fails.
DEADLINE = 30.0


class _Server(uvicorn.Server):
    """Ends the app's /events streams as the shutdown starts, as ``asyncassets serve`` does
    (an app mounted in another one has no such streams of its own to end)."""

    async def shutdown(self, sockets: Any = None) -> None:
        from asyncassets.asgi import end_event_streams

        app = self.config.app
        if hasattr(getattr(app, "state", None), "asyncassets"):
            end_event_streams(app)
        await super().shutdown(sockets)


@contextmanager
def serving(app: Any, *, port: int | None = None) -> Iterator[str]:
    """``app`` under a real uvicorn in a thread, on ``port`` (default: a free one); yields
    its base URL."""
    port = free_port() if port is None else port
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,  # as `asyncassets serve`
    )
    server = _Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + DEADLINE
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(DEADLINE)
        assert not thread.is_alive(), "uvicorn did not shut down"
