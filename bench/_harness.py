"""What the benchmarks share: sizes, ports, servers and the delay proxy in processes of their
own, contenders in fresh processes, alternating rounds, tables and the machine they ran on.

The servers and the proxy are the ones the tests use (``tests/servers.py``): ``free_port``,
``ServerProcess`` (a subprocess, waited for until it listens), ``moto_process`` and
``CountingProxy`` (a TCP proxy counting connections, requests and bytes, with ``delay`` per
request and a ``bandwidth`` cap per connection to play a far-away object store). Importing
this module puts ``tests/`` on ``sys.path``; ``tests/servers.py`` itself (aiohttp, pytest) is
imported on first use of one of its names, so that a benchmark timing a fresh process's cold
start on a clean heap (lookup, reading) never loads it.

Never part of the test suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))

if TYPE_CHECKING:
    from servers import CountingProxy, ServerProcess, free_port

__all__ = [
    "BENCH",
    "HOST",
    "REPO",
    "CountingProxy",
    "ServerProcess",
    "alternating",
    "byte_compile",
    "free_port",
    "machine_info",
    "moto_server",
    "parse_size",
    "print_columns",
    "print_markdown",
    "proxy_process",
    "run_json",
    "server_process",
    "static_server",
]

T = TypeVar("T")
HOST = "127.0.0.1"

#: Names this module lends from ``tests/servers.py`` (see ``__getattr__``).
_FROM_SERVERS = frozenset({"CountingProxy", "ServerProcess", "free_port"})


def __getattr__(name: str) -> Any:
    """``CountingProxy``, ``ServerProcess`` and ``free_port`` of ``tests/servers.py``,
    imported when first asked for."""
    if name in _FROM_SERVERS:
        import servers

        return getattr(servers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def byte_compile() -> None:
    """Write asyncassets' byte-code, as an installed package has it, before any timing: a
    contender in a fresh process that imports the package would otherwise compile it from
    source each time where ``PYTHONDONTWRITEBYTECODE`` is set (as on these machines), or
    once, in whichever run comes first, where it is not."""
    import compileall

    compileall.compile_dir(str(REPO / "asyncassets"), quiet=1)


def parse_size(text: str) -> int:
    """``"512M"`` -> 536870912 (K, M, G are powers of two; a trailing ``B`` or ``iB`` is
    allowed); a plain number is bytes."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


# -- servers in processes of their own --------------------------------------------------------


@contextlib.contextmanager
def server_process(argv: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``argv`` (a server listening on ``port``) until the block ends; yield its URL."""
    from servers import ServerProcess

    with ServerProcess(argv, port, env=env) as server:
        yield server.url


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A ``moto_server`` on a free port until the block ends; yield its endpoint URL."""
    from servers import moto_process

    with moto_process() as server:
        yield server.url


STATIC_SERVER = """
import sys
from aiohttp import web
app = web.Application()
app.router.add_static("/", sys.argv[1])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), print=None, access_log=None)
"""


def static_server(folder: Path) -> contextlib.AbstractContextManager[str]:
    """aiohttp's static handler over ``folder`` (``Range`` -> 206) in a process of its own,
    so that it shares no GIL with a proxy or a contender; yields its base URL.

    aiohttp's ``FileResponse`` answers with ``loop.sendfile`` (also for ranges) when there is
    no TLS and no compression, as here; ``AIOHTTP_NOSENDFILE`` is emptied in its environment
    (aiohttp reads any non-empty value as true) to keep it that way."""
    from servers import free_port

    port = free_port()
    argv = [sys.executable, "-c", STATIC_SERVER, str(folder), str(port)]
    return server_process(argv, port, env={"AIOHTTP_NOSENDFILE": ""})


def proxy_process(
    target_url: str, *, delay: float = 0.020, bandwidth: float = 50e6
) -> contextlib.AbstractContextManager[str]:
    """``bench/delay_proxy.py`` (a ``CountingProxy`` holding each request ``delay`` seconds,
    ``bandwidth`` bytes/s per connection, 0: no cap; a far-away object store by default) in
    a process of its own, so that it does not compete with the client for the GIL; yields
    its URL."""
    from servers import free_port

    port = free_port()
    argv = [sys.executable, str(BENCH / "delay_proxy.py"), "--target", target_url]
    argv += ["--port", str(port), "--delay-ms", str(delay * 1000)]
    argv += ["--bandwidth-mb", str(bandwidth / 1e6)]
    return server_process(argv, port)


# -- contenders -------------------------------------------------------------------------------


def run_json(argv: list[str], env: Mapping[str, str] | None = None) -> Any:
    """Run a contender in a fresh process; its last line of output, read as JSON. A
    contender that fails stops the benchmark with its error output."""
    done = subprocess.run(
        argv, capture_output=True, text=True, env=None if env is None else dict(env), check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{argv[:3]} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(lines[-1])


def alternating(contenders: Sequence[T], rounds: int) -> Iterator[tuple[int, T]]:
    """``(round, contender)``: every contender once a round, the order reversed each round
    (A B, B A, A B...), so that drift of the machine (disk writeback, a neighbour) weighs on
    each alike; compare medians over the rounds."""
    for round_ in range(rounds):
        order = contenders if round_ % 2 == 0 else list(reversed(contenders))
        for contender in order:
            yield round_, contender


# -- reporting --------------------------------------------------------------------------------


def print_columns(
    header: Sequence[str], rows: Sequence[Sequence[str]], left: frozenset[int] = frozenset({0})
) -> None:
    """A plain-text table: columns as wide as their widest cell, those in ``left`` aligned
    left and the others right, a rule under the header."""
    lines = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for n, line in enumerate(lines):
        cells = [
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def print_markdown(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table (for issues and closing notes)."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


def machine_info() -> dict[str, Any]:
    """The machine and the versions a figure was measured with."""
    import yaml

    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "cpu_count": os.cpu_count(),
        "usable_cores": len(affinity(0)) if affinity else os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "pyyaml": yaml.__version__,
        "libyaml": bool(getattr(yaml, "__with_libyaml__", False)),
    }
