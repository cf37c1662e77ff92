"""A TCP proxy that behaves like a far-away object store: latency per request, capped
bandwidth per connection.

Each chunk the client sends (a request, for HTTP/1.1 clients) is held ``delay`` seconds before
it is forwarded; the answer flows back at no more than ``bandwidth`` bytes per second on each
connection (real object stores give one connection about 50 MB/s). Counters tell how many
connections, requests (chunks starting with an HTTP method) and bytes went through.

Use it from code::

    async with DelayProxy("127.0.0.1", 9000, delay=0.02, bandwidth=50e6) as proxy:
        url = proxy.url            # http://127.0.0.1:<port>
        ...
        print(proxy.stats)

or from a shell: ``python bench/delay_proxy.py --target 127.0.0.1:9000 --port 9001``.
Only loopback addresses are meant as targets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import threading
import time
from dataclasses import dataclass
from types import TracebackType

__all__ = ["DelayProxy", "ProxyStats", "ThreadedDelayProxy"]

_METHOD = re.compile(rb"^(GET|HEAD|PUT|POST|DELETE|PATCH|OPTIONS) ")
_READ_SIZE = 256 * 1024


@dataclass
class ProxyStats:
    """What went through the proxy since the last ``reset()``."""

    connections: int = 0
    requests: int = 0
    bytes_up: int = 0
    bytes_down: int = 0

    def reset(self) -> None:
        self.connections = self.requests = self.bytes_up = self.bytes_down = 0


class DelayProxy:
    """An asyncio TCP proxy on ``host:port`` (0: a free port) to ``target_host:target_port``."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        delay: float = 0.020,
        bandwidth: float = 50e6,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self.bandwidth = bandwidth
        self.host = host
        self.port = port
        self.stats = ProxyStats()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> DelayProxy:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, backlog=512)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> DelayProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.stats.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(
                self._upstream(reader, up_writer), self._downstream(up_reader, writer)
            )
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()
            self._tasks.discard(task)

    async def _upstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(_READ_SIZE):
                if _METHOD.match(data):
                    self.stats.requests += 1
                    if self.delay:
                        await asyncio.sleep(self.delay)
                self.stats.bytes_up += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.write_eof()

    async def _downstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Token bucket: bytes sent may run at most one read ahead of bandwidth x time.
        started = time.monotonic()
        sent = 0
        try:
            while data := await reader.read(_READ_SIZE):
                sent += len(data)
                self.stats.bytes_down += len(data)
                writer.write(data)
                await writer.drain()
                if self.bandwidth:
                    ahead = sent / self.bandwidth - (time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                    elif ahead < -0.25:
                        # Idle time (between requests) is not credit for a later burst.
                        started = time.monotonic() - sent / self.bandwidth - 0.25
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


class ThreadedDelayProxy:
    """A ``DelayProxy`` on its own event loop in a daemon thread (for synchronous callers)."""

    def __init__(self, target_host: str, target_port: int, **kwargs: float | int | str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.proxy = DelayProxy(target_host, target_port, **kwargs)  # type: ignore[arg-type]

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(10)
        return self.proxy

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--bandwidth-mb", type=float, default=50.0, help="MB/s per connection")
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")

    async def run() -> None:
        proxy = DelayProxy(
            host,
            int(port),
            delay=args.delay_ms / 1000,
            bandwidth=args.bandwidth_mb * 1e6,
            host=args.host,
            port=args.port,
        )
        async with proxy:
            print(f"proxy {proxy.url} -> {args.target}", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
