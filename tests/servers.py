"""Real servers on 127.0.0.1 for the tests: S3 (moto), GCS (gcp-storage-emulator), HTTP.

Import the fixtures into a conftest or a test module (``from servers import *``); ``tests/``
is on ``sys.path`` through pytest's rootdir-based import. Nothing here touches the network
beyond 127.0.0.1, and nothing global is set except ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT`` (see
below).

Fixtures (session scope unless said otherwise):

- ``moto_server`` -> endpoint URL of a ``moto_server`` process. Pass it to s3fs with
  ``s3_storage_options(endpoint)``. Buckets live for the session: use unique names.
- ``private_moto_server`` (function scope) -> ``ServerProcess``: a moto server of the test's
  own, which the test may stop (``moto_process(port)`` makes one, unstarted, to restart on
  the same port); ``botocore_does_not_retry`` keeps botocore's backoff out of such tests.
- ``gcs_emulator`` -> endpoint URL of gcp-storage-emulator (in memory). Pass it to gcsfs with
  ``gcs_storage_options(endpoint)`` (``endpoint_url`` + ``token="anon"``), or as
  ``STORAGE_EMULATOR_HOST``.
- ``http_static_server`` -> ``StaticServer``: ``base_url, folder = http_static_server``; an
  aiohttp static server (``Range`` -> ``206``) over a temporary folder; ``.stats`` counts
  requests and body bytes per path; ``.url(name)``.
- ``scripted_http_server`` (function scope) -> ``ScriptedServer``: an aiohttp app serving
  blobs you ``put()``, with faults you script per path (503s, resets, truncated bodies,
  ignoring ``Range``, a fixed status, a bandwidth cap). Exact byte counts in ``.stats``.
- ``counting_proxy`` (function scope) -> ``factory(target_url, stall=0) -> CountingProxy``:
  a TCP proxy counting bytes each way, to measure traffic to moto or the emulator. The
  benchmarks use the same proxy with ``delay`` and ``bandwidth`` to play a far-away store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

# gcsfs reads this when it is imported: the experimental hierarchical-namespace probe sends
# requests the emulator does not know. It must be set before anything imports gcsfs.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import aiohttp
import pytest
from aiohttp import web

__all__ = [
    "CountingProxy",
    "OverlongProxy",
    "RequestStats",
    "ScriptedServer",
    "ServerProcess",
    "StaticServer",
    "ThreadedApp",
    "botocore_does_not_retry",
    "counting_proxy",
    "free_port",
    "gcs_emulator",
    "gcs_storage_options",
    "http_static_server",
    "moto_process",
    "moto_server",
    "overlong_proxy",
    "private_moto_server",
    "s3_storage_options",
    "scripted_http_server",
]

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


def _console_script(name: str) -> str:
    """``name`` from the running interpreter's bin folder (the venv), else from PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found next to {sys.executable} nor on PATH")
    return found


class ServerProcess:
    """A server subprocess listening on ``port``; ``start()`` waits until it accepts
    (``with ServerProcess(...) as server`` starts and stops it).

    Output goes to a temporary file that is quoted when the server fails to come up.
    """

    def __init__(self, argv: list[str], port: int, *, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.port = port
        self.env = env
        self._log = tempfile.NamedTemporaryFile(prefix="server-", suffix=".log", delete=False)  # noqa: SIM115
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def output(self) -> str:
        with open(self._log.name, "rb") as fh:
            return fh.read().decode("utf-8", "replace")[-4000:]

    def start(self, timeout: float = STARTUP_TIMEOUT) -> ServerProcess:
        self.process = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(self.env or {})},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.argv[0]} exited with {self.process.returncode} before listening on "
                    f"{self.port}; its output:\n{self.output()}"
                )
            if _port_open(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"{self.argv[0]} did not listen on {HOST}:{self.port} within {timeout:.0f}s; "
            f"its output:\n{self.output()}"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- object stores ---------------------------------------------------------------------------


def s3_storage_options(endpoint: str) -> dict[str, Any]:
    """s3fs options for the moto server at ``endpoint`` (no region: moto then refuses
    ``CreateBucket`` with a location constraint it does not expect)."""
    return {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint}}


def random_bytes(size: int) -> bytes:
    """``size`` random bytes that the GCS emulator stores as they are. It reads a multipart
    upload (gcsfs' ``pipe``) with the email parser, which takes a lone ``\r`` ending the
    content for a line break and drops it: one upload of random bytes in 256 came back a
    byte short. Neither end is a ``\r`` here (tests upload the reversed bytes too)."""
    data = bytearray(os.urandom(size))
    for end in (0, -1):
        if data and data[end] == ord("\r"):
            data[end] = ord("\n")
    return bytes(data)


def gcs_storage_options(endpoint: str) -> dict[str, Any]:
    """gcsfs options for the emulator at ``endpoint``."""
    return {"endpoint_url": endpoint, "token": "anon", "project": "test"}


def moto_process(port: int | None = None) -> ServerProcess:
    """A ``moto_server`` on ``port`` (default: a free one), not started yet."""
    port = free_port() if port is None else port
    return ServerProcess(
        [_console_script("moto_server"), "-H", HOST, "-p", str(port)],
        port,
        env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Endpoint URL of a moto S3 server for the session."""
    with moto_process() as server:
        yield server.url


@pytest.fixture
def private_moto_server() -> Iterator[ServerProcess]:
    """A moto server of this test's own, which the test may stop."""
    with moto_process() as server:
        yield server


@pytest.fixture
def botocore_does_not_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only asyncassets retries: botocore's own default backoff (under asyncassets' retries,
    or under a poller's first failure) takes about 40 s to give up on a dead endpoint."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """Endpoint URL of gcp-storage-emulator (in memory) for the session."""
    port = free_port()
    launcher = Path(__file__).with_name("gcs_emulator_launcher.py")
    server = ServerProcess([sys.executable, str(launcher), HOST, str(port)], port).start()
    try:
        yield server.url
    finally:
        server.stop()


# -- HTTP servers in a thread ----------------------------------------------------------------


class ThreadedApp:
    """Runs an aiohttp application on 127.0.0.1 in a daemon thread with its own loop, so it
    serves while the test's event loop (or a subprocess) is the client."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> ThreadedApp:
        self._thread.start()

        async def start() -> None:
            self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
            await self._runner.setup()
            site = web.TCPSite(self._runner, HOST, self.port, backlog=1024)
            await site.start()

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(STARTUP_TIMEOUT)
        return self

    def call(self, func: Callable[[], Awaitable[Any]]) -> Any:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(func(), self._loop).result(STARTUP_TIMEOUT)

    def stop(self) -> None:
        if self._runner is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@dataclass
class RequestStats:
    """What a server answered: thread-safe counters of requests and body bytes per path."""

    requests: list[tuple[str, str, int, str | None]] = field(default_factory=list)
    body_bytes: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, method: str, path: str, status: int, range_header: str | None) -> None:
        with self._lock:
            self.requests.append((method, path, status, range_header))

    def add_bytes(self, path: str, n: int) -> None:
        with self._lock:
            self.body_bytes[path] = self.body_bytes.get(path, 0) + n

    def bytes_for(self, path: str) -> int:
        """Body bytes sent for ``path`` (e.g. ``"/model.bin"``)."""
        with self._lock:
            return self.body_bytes.get(path, 0)

    def count(self, path: str | None = None, method: str | None = None) -> int:
        """Requests for ``path`` (all paths when None) with ``method`` (any when None)."""
        with self._lock:
            return sum(
                1
                for m, p, _, _ in self.requests
                if (path is None or p == path) and (method is None or m == method)
            )

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.body_bytes.clear()


class StaticServer:
    """aiohttp's static file handler over ``folder``. Unpacks as ``(base_url, folder)``.

    Body bytes are counted from the ``Content-Length`` of each GET response (aiohttp sends
    files with ``sendfile``; a client that hangs up early is counted in full).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.stats = RequestStats()
        app = web.Application()
        app.on_response_prepare.append(self._count)
        app.router.add_static("/", folder, show_index=False, follow_symlinks=False)
        self._app = ThreadedApp(app)

    async def _count(self, request: web.Request, response: web.StreamResponse) -> None:
        self.stats.record(
            request.method, request.path, response.status, request.headers.get("Range")
        )
        if request.method == "GET":
            self.stats.add_bytes(request.path, int(response.headers.get("Content-Length", "0")))

    @property
    def base_url(self) -> str:
        return self._app.url

    def url(self, name: str) -> str:
        return f"{self._app.url}/{name.lstrip('/')}"

    def __iter__(self) -> Iterator[Any]:
        return iter((self.base_url, self.folder))

    def start(self) -> StaticServer:
        self._app.start()
        return self

    def stop(self) -> None:
        self._app.stop()


@pytest.fixture(scope="session")
def http_static_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticServer]:
    """An aiohttp static server over a temporary folder: ``base_url, folder = ...``."""
    server = StaticServer(tmp_path_factory.mktemp("static")).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Script:
    """Faults for one path of a ``ScriptedServer``; counters run down as they are used.

    - ``status``: answer every GET/HEAD with this status (404, 403...).
    - ``head_status``: answer HEAD with this status (405: a server without HEAD).
    - ``fail_first``: answer the first N GETs with 503.
    - ``reset_after``: for the first ``resets`` GETs, abort the connection after this many
      body bytes.
    - ``truncate_first``: the first N GETs end cleanly (chunked, no length) after half.
    - ``ignore_range``: answer ranged GETs with 200 and the whole body, like ``http.server``.
    - ``rate``: cap each response at this many bytes per second.
    - ``announce_size``: HEAD announces this size instead of the blob's (2**62: a server
      that lies to make the client allocate).
    - ``overlong_first``: the first N ranged GETs answer the right ``Content-Range`` with
      a longer body (chunked, so the client reads all of it): a hostile CDN.
    """

    status: int | None = None
    head_status: int | None = None
    fail_first: int = 0
    reset_after: int | None = None
    resets: int = 0
    truncate_first: int = 0
    ignore_range: bool = False
    rate: float | None = None
    overlong_first: int = 0
    announce_size: int | None = None


class ScriptedServer:
    """An HTTP server for blobs you ``put()``, with ``Range`` support and scripted faults.

    ETags change with the content, so replacing a blob is a new remote version. Body bytes
    are counted exactly as they are written.
    """

    def __init__(self) -> None:
        self.stats = RequestStats()
        self.blobs: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        self.scripts: dict[str, Script] = {}
        app = web.Application()
        app.router.add_route("*", "/{name:.+}", self._handle)
        self._app = ThreadedApp(app)

    def put(self, name: str, data: bytes, script: Script | None = None) -> str:
        """Serve ``data`` at ``/name`` (a new ETag each time); return its URL."""
        path = "/" + name.lstrip("/")
        self.blobs[path] = data
        self.etags[path] = f'"{uuid.uuid4().hex}"'
        self.scripts[path] = script or Script()
        return self.url(name)

    def script(self, name: str) -> Script:
        return self.scripts["/" + name.lstrip("/")]

    def url(self, name: str) -> str:
        return f"{self._app.url}/{name.lstrip('/')}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        range_header = request.headers.get("Range")
        data = self.blobs.get(path)
        script = self.scripts.get(path, Script())
        status = 404 if data is None else script.status
        if status is None and request.method == "HEAD":
            status = script.head_status
        if status is None and request.method == "GET" and script.fail_first > 0:
            script.fail_first -= 1
            status = 503
        self.stats.record(request.method, path, status or 200, range_header)
        if status is not None:
            return web.Response(status=status, text=f"scripted {status}\n")
        assert data is not None
        etag = self.etags[path]
        if request.method == "HEAD":
            announced = len(data) if script.announce_size is None else script.announce_size
            return web.Response(
                headers={"Content-Length": str(announced), "ETag": etag, "Accept-Ranges": "bytes"}
            )
        if_match = request.headers.get("If-Match")
        if if_match is not None and if_match != etag:
            self.stats.record(request.method, path, 412, range_header)
            return web.Response(status=412)
        start, end, code = 0, len(data), 200
        if range_header and not script.ignore_range:
            spec = range_header.split("=", 1)[1]
            first, _, last = spec.partition("-")
            start = int(first)
            end = min(len(data), int(last) + 1) if last else len(data)
            code = 206
        body = data[start:end]
        overlong = code == 206 and script.overlong_first > 0
        if overlong:
            script.overlong_first -= 1
            body += b"\x00ATTACKER-TAIL" * 1000
        response = web.StreamResponse(status=code)
        response.headers["ETag"] = etag
        if code == 206:
            response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        limit = len(body)
        abort = False
        if overlong:
            response.enable_chunked_encoding()
        elif script.truncate_first > 0:
            # A well-formed chunked response that simply ends early: only a client that
            # counts the bytes against the range notices.
            script.truncate_first -= 1
            limit = len(body) // 2
            response.enable_chunked_encoding()
        else:
            response.headers["Content-Length"] = str(len(body))
        await response.prepare(request)
        if script.resets > 0 and script.reset_after is not None:
            script.resets -= 1
            limit, abort = min(len(body), script.reset_after), True
        chunk = 64 * 1024
        for offset in range(0, limit, chunk):
            piece = body[offset : min(limit, offset + chunk)]
            await response.write(piece)
            self.stats.add_bytes(path, len(piece))
            if script.rate:
                await asyncio.sleep(len(piece) / script.rate)
        if abort:
            assert request.transport is not None
            request.transport.abort()
            return response
        await response.write_eof()
        return response

    def start(self) -> ScriptedServer:
        self._app.start()
        return self

    def stop(self) -> None:
        self._app.stop()


@pytest.fixture
def scripted_http_server() -> Iterator[ScriptedServer]:
    """A fresh ``ScriptedServer`` for one test."""
    server = ScriptedServer().start()
    try:
        yield server
    finally:
        server.stop()


# -- a TCP proxy: counting, and slow or stalled on demand ------------------------------------

#: The start of a chunk that opens an HTTP/1.1 request (what ``requests`` counts).
_HTTP_METHOD = re.compile(rb"^(GET|HEAD|PUT|POST|DELETE|PATCH|OPTIONS) ")
_PROXY_READ_SIZE = 256 * 1024


class CountingProxy:
    """A TCP proxy from 127.0.0.1:``port`` (default: a free port) to ``target_url``, on an
    event loop of its own in a daemon thread, counting connections, HTTP requests and bytes
    each way (``reset()`` zeroes the counters).

    - ``stall``: its first N connections are a stalled peer: their requests are read and
      never answered.
    - ``delay``: each chunk the client sends that opens an HTTP request is held this many
      seconds before it is forwarded (a far-away server's round trip).
    - ``bandwidth``: answers flow back at no more than this many bytes per second on each
      connection (real object stores give one connection about 50 MB/s); 0: no cap.

    ``start()`` / ``stop()``, or ``with CountingProxy(...) as proxy``.
    """

    def __init__(
        self,
        target_url: str,
        *,
        stall: int = 0,
        delay: float = 0.0,
        bandwidth: float = 0.0,
        port: int = 0,
    ) -> None:
        self.stall = stall
        self.delay = delay
        self.bandwidth = bandwidth
        hostport = target_url.split("://", 1)[-1].split("/", 1)[0]
        host, _, target_port = hostport.rpartition(":")
        self.target = (host, int(target_port))
        self.port = port or free_port()
        self.upstream_bytes = 0  # client -> server
        self.downstream_bytes = 0  # server -> client
        self.connections = 0
        self.requests = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.upstream_bytes = self.downstream_bytes = self.connections = self.requests = 0

    async def _upstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(_PROXY_READ_SIZE):
                opens_request = bool(_HTTP_METHOD.match(data))
                with self._lock:
                    self.upstream_bytes += len(data)
                    self.requests += opens_request
                if opens_request and self.delay:
                    await asyncio.sleep(self.delay)
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
            while data := await reader.read(_PROXY_READ_SIZE):
                with self._lock:
                    self.downstream_bytes += len(data)
                writer.write(data)
                await writer.drain()
                sent += len(data)
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

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.connections += 1
            stalled = self.connections <= self.stall
        if stalled:  # read whatever comes, answer nothing, until the client gives up
            try:
                while await reader.read(64 * 1024):
                    pass
            except (ConnectionError, OSError):
                pass
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(
                self._upstream(reader, up_writer), self._downstream(up_reader, writer)
            )
        finally:
            for each in (writer, up_writer):
                with contextlib.suppress(Exception):
                    each.close()

    def start(self) -> CountingProxy:
        self._thread.start()

        async def start() -> None:
            self._server = await asyncio.start_server(self._client, HOST, self.port, backlog=512)

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(STARTUP_TIMEOUT)
        return self

    def stop(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def counting_proxy() -> Iterator[Callable[..., CountingProxy]]:
    """``factory(target_url, stall=0) -> CountingProxy`` (started; stopped after the test)."""
    with _stopped_after(
        lambda target_url, stall=0: CountingProxy(target_url, stall=stall).start()
    ) as make:
        yield make


_Stoppable = TypeVar("_Stoppable", bound="CountingProxy | OverlongProxy")


@contextlib.contextmanager
def _stopped_after(start: Callable[..., _Stoppable]) -> Iterator[Callable[..., _Stoppable]]:
    """A factory that starts servers with ``start`` and stops every one of them at exit."""
    started: list[_Stoppable] = []

    def make(*args: Any, **kwargs: Any) -> _Stoppable:
        server = start(*args, **kwargs)
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()


# -- a hostile object store: a reverse proxy that lengthens ranged answers ------------------


class OverlongProxy:
    """An HTTP reverse proxy to ``target`` (moto, the GCS emulator) that answers each of
    its first ``overlong`` ranged GETs (status 206) with the right ``Content-Range`` and a
    longer body: an attacker's tail after the bytes asked for, as a hostile CDN sends it."""

    TAIL = b"attacker's tail " * 64

    def __init__(self, target_url: str, overlong: int) -> None:
        self.target = target_url.rstrip("/")
        self.overlong = overlong
        self.lengthened = 0
        app = web.Application(client_max_size=2**30)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._app = ThreadedApp(app)
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return self._app.url

    async def _forward(self, request: web.Request) -> web.Response:
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self._session.request(
            request.method,
            self.target + request.path_qs,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as answer:
            body = await answer.read()
            out = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "connection")
            }
            if request.method == "HEAD":
                out["Content-Length"] = answer.headers.get("Content-Length", "0")
                return web.Response(status=answer.status, headers=out)
            if answer.status == 206 and self.overlong > 0:
                self.overlong -= 1
                self.lengthened += 1
                body += self.TAIL
            return web.Response(status=answer.status, body=body, headers=out)

    def start(self) -> OverlongProxy:
        self._app.start()
        return self

    def stop(self) -> None:
        if self._session is not None:
            session = self._session
            with contextlib.suppress(Exception):
                self._app.call(session.close)
        self._app.stop()


@pytest.fixture
def overlong_proxy() -> Iterator[Callable[..., OverlongProxy]]:
    """``factory(target_url, overlong) -> OverlongProxy`` (started; stopped after)."""
    with _stopped_after(
        lambda target_url, overlong: OverlongProxy(target_url, overlong).start()
    ) as make:
        yield make
