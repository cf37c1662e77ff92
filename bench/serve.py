"""ASGI benchmark: ``GET /cards/{name}`` of ``asyncassets.asgi`` against an empty Starlette
handler, under 64 concurrent clients.

Both apps run under uvicorn (one worker, its defaults) in a process of their own; the load
comes from ``wrk`` (Debian's package ``wrk``: a C client, so that the client is not what is
measured on two cores). The app serves fairseq2's main card corpus and answers one resolved
card (base chain merged, to JSON); the baseline is a Starlette route that returns the same
JSON bytes, precomputed: the difference is what the store adds. Runs alternate
(``--repeat`` rounds) and medians are reported.

Never part of the test suite. Usage::

    python bench/serve.py                       # 3 rounds of 10 s, 64 connections
    python bench/serve.py --duration 5 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prefetch import free_port  # noqa: E402

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


def start(code: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/cards/{CARD}", timeout=5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def wrk(url: str, connections: int, duration: float) -> tuple[float, float]:
    """Requests per second and p99 latency (ms) of ``wrk --latency``."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{round(duration)}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"errors under load:\n{out}")
    return rps, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    port = free_port()
    app = start(APP.format(corpus=str(CORPUS), port=port), port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/cards/{CARD}") as resp:
            body = resp.read()
    finally:
        app.terminate()
        app.wait()
    json.loads(body)
    body_file = Path("/tmp") / f"bench-serve-{port}.json"
    body_file.write_bytes(body)
    results: dict[str, list[tuple[float, float]]] = {
        "empty Starlette handler": [],
        "asyncassets": [],
    }
    try:
        for round_ in range(args.repeat):
            for name in results:
                port = free_port()
                code = (
                    BASELINE.format(body=str(body_file), port=port)
                    if name != "asyncassets"
                    else APP.format(corpus=str(CORPUS), port=port)
                )
                server = start(code, port)
                try:
                    wrk(f"http://127.0.0.1:{port}/cards/{CARD}", args.connections, 2)  # warm-up
                    rps, p99 = wrk(
                        f"http://127.0.0.1:{port}/cards/{CARD}", args.connections, args.duration
                    )
                finally:
                    server.terminate()
                    server.wait()
                results[name].append((rps, p99))
                print(f"round {round_ + 1} {name:24} {rps:9.0f} req/s  p99 {p99:7.2f} ms")
    finally:
        body_file.unlink(missing_ok=True)
    base_rps = statistics.median(r for r, _ in results["empty Starlette handler"])
    base_p99 = statistics.median(p for _, p in results["empty Starlette handler"])
    print()
    print(
        f"GET /cards/{CARD} ({len(body)} bytes of JSON), {args.connections} connections, "
        f"{args.duration:g} s per run, median of {args.repeat}, uvicorn 1 worker, wrk"
    )
    print()
    print("| server | req/s | p99 | req/s vs empty handler | p99 vs empty handler |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        rps = statistics.median(r for r, _ in runs)
        p99 = statistics.median(p for _, p in runs)
        print(
            f"| {name} | {rps:.0f} | {p99:.2f} ms | {(rps / base_rps - 1) * 100:+.1f}% | "
            f"{(p99 / base_p99 - 1) * 100:+.1f}% |"
        )


if __name__ == "__main__":
    main()
