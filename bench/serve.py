"""ASGI benchmark: ``GET /cards/{name}`` of ``asyncassets.asgi`` against an empty Starlette
handler, under 64 concurrent clients.

Both apps run under uvicorn (one worker, its defaults) in a process of their own, pinned to
core 0 (``taskset -c 0``); the load comes from ``wrk`` (Debian's package ``wrk``: a C client,
so that the client is not what is measured) pinned to core 1, so that server and client never
share a core. The app serves fairseq2's main card corpus and answers one resolved
card (base chain merged, to JSON); the baseline is a Starlette route that returns the same
JSON bytes, precomputed: the difference is what the store adds. Runs alternate (A B, B A...,
``--repeat`` rounds, at least 3) and medians are compared: the machine is noisy (a single run
drifts by 15%). Beside requests per second, the server's CPU time per request (user + system,
from ``/proc``), which a neighbour on the machine disturbs less, and the load average before
and after.

Never part of the test suite. Usage::

    python bench/serve.py                       # 3 rounds of 10 s, 64 connections
    python bench/serve.py --duration 5 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

from _harness import REPO, alternating, free_port, print_markdown

CORPUS = REPO.parent / "shared" / "corpus" / "fairseq2-cards" / "main-027bdeb"
CARD = "qwen3_1.7b"

APP = """
import uvicorn
from asyncassets import AssetStore, FileAssetMetadataProvider
from asyncassets.asgi import create_app
store = AssetStore([FileAssetMetadataProvider({corpus!r})], env_resolvers=[])
uvicorn.run(create_app(store, watch=False), host="127.0.0.1", port={port}, log_level="warning")
"""

BASELINE = """
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
body = open({body!r}, "rb").read()
async def card(request):
    return Response(body, media_type="application/json")
app = Starlette(routes=[Route("/cards/{{name:path}}", card)])
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
"""


#: The core the server runs on, and the core of the load generator.
SERVER_CORE, CLIENT_CORE = "0", "1"


def start(code: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, sys.executable, "-c", textwrap.dedent(code)]
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/cards/{CARD}", timeout=5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, connections: int, duration: float) -> tuple[float, float, int]:
    """Requests per second, p99 latency (ms) and requests done of ``wrk --latency``."""
    out = subprocess.run(
        [
            "taskset",
            "-c",
            CLIENT_CORE,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{round(duration)}s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"errors under load:\n{out}")
    return rps, p99, done


def measure(code: str, port: int, connections: int, duration: float) -> tuple[float, float, float]:
    """Requests per second, p99 (ms) and server CPU µs per request of the server ``code``."""
    url = f"http://127.0.0.1:{port}/cards/{CARD}"
    server = start(code, port)
    try:
        wrk(url, connections, 2)  # warm-up
        before = cpu_seconds(server.pid)
        rps, p99, done = wrk(url, connections, duration)
        cpu = (cpu_seconds(server.pid) - before) / done * 1e6
    finally:
        server.terminate()
        server.wait()
    return rps, p99, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds (>= 3)")
    args = parser.parse_args()
    if args.repeat < 3:
        parser.error("--repeat: at least 3 rounds (medians of fewer say little here)")
    for tool, package in (("wrk", "wrk"), ("taskset", "util-linux")):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install {package}")
    body = card_body()
    body_file = Path("/tmp") / f"bench-serve-{os.getpid()}.json"
    body_file.write_bytes(body)
    contenders = {
        "empty Starlette handler": lambda port: BASELINE.format(body=str(body_file), port=port),
        "asyncassets": lambda port: APP.format(corpus=str(CORPUS), port=port),
    }
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in contenders}
    load_before = os.getloadavg()[0]
    try:
        for round_, name in alternating(list(contenders), args.repeat):
            port = free_port()
            run = measure(contenders[name](port), port, args.connections, args.duration)
            results[name].append(run)
            print(
                f"round {round_ + 1} {name:24} {run[0]:9.0f} req/s  p99 {run[1]:7.2f} ms  "
                f"{run[2]:6.1f} µs CPU/request",
                flush=True,
            )
    finally:
        body_file.unlink(missing_ok=True)
    medians = {
        name: [statistics.median(run[i] for run in runs) for i in range(3)]
        for name, runs in results.items()
    }
    base = medians["empty Starlette handler"]
    print()
    print(
        f"GET /cards/{CARD} ({len(body)} bytes of JSON), {args.connections} connections, "
        f"{args.duration:g} s per run, median of {args.repeat} alternating rounds, uvicorn 1 "
        f"worker on core {SERVER_CORE}, wrk on core {CLIENT_CORE}; load average "
        f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    print()
    print_markdown(
        ["server", "req/s", "p99", "CPU/request", "req/s vs empty", "CPU/request vs empty"],
        [
            [
                name,
                f"{rps:.0f}",
                f"{p99:.2f} ms",
                f"{cpu:.1f} µs",
                f"{(rps / base[0] - 1) * 100:+.1f}%",
                f"{(cpu / base[2] - 1) * 100:+.1f}%",
            ]
            for name, (rps, p99, cpu) in medians.items()
        ],
    )


def card_body() -> bytes:
    """The JSON the app answers for :data:`CARD` (what the baseline returns as it is)."""
    port = free_port()
    app = start(APP.format(corpus=str(CORPUS), port=port), port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/cards/{CARD}") as resp:
            body: bytes = resp.read()
    finally:
        app.terminate()
        app.wait()
    json.loads(body)
    return body


if __name__ == "__main__":
    main()
