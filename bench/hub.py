"""Hugging Face Hub benchmark: ``huggingface_hub.snapshot_download`` against asyncassets.

One model repo (default 4 x 256 MiB safetensors and a config) is served by the Hub-protocol
server of ``tests/hub_server.py`` (the one the real huggingface_hub client is tested
against): its API and resolve endpoint behind one delay proxy (bench/_harness.py), its LFS
CDN behind another (20 ms per request, 50 MB/s per connection by default, as far-away object storage
gives). The Hub redirects each LFS file to the CDN through the proxy.

Contenders, each in a fresh process with an empty cache, alternating, ``--repeat`` times:

- ``snapshot_download`` with its defaults (8 files at once, one stream each, its own cache),
- ``asyncassets``: ``CheckpointCache.fetch("hf://ORG/REPO")`` (parallel ranged reads of
  every file, resumable, sha256 checked as the bytes arrive, durable publish),
- the ceiling: bench/ideal_client.py on each file's signed CDN URL at once (32 streams in
  all; no journal, no hash, no publication), what this setup can carry on this machine.

Prints the median wall time and throughput of each and the ratio. Never part of the test
suite. Usage::

    python bench/hub.py                        # 4 x 256 MiB, 3 rounds
    python bench/hub.py --files 2 --size 64M --repeat 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
REPO_ID = "bench/model"

sys.path.insert(0, str(HERE))
from _harness import parse_size, print_markdown, proxy_process  # noqa: E402


def serve(args: argparse.Namespace) -> None:
    """The Hub and its CDN, each behind a delay proxy of its own process, until stdin closes.

    Three processes (the server and two proxies), so that no two of them share a GIL."""
    sys.path[:0] = [str(HERE), str(REPO / "tests")]
    import hub_server
    from hub_server import HubServer

    hub_server.CHUNK = 2**20  # the test server writes 64 KiB at a time: too slow here

    class ProxiedHub(HubServer):
        cdn_public = ""

        @property
        def cdn_url(self) -> str:  # the Location of LFS redirects: through the CDN proxy
            return self.cdn_public or self._cdn.url

    server = ProxiedHub().start()
    size = parse_size(args.size)
    files = {"config.json": b'{"model_type": "bench"}'}
    for index in range(args.files):
        files[f"model-{index + 1:05d}-of-{args.files:05d}.safetensors"] = os.urandom(size)
    server.add_repo(REPO_ID, files)
    del files
    with contextlib.ExitStack() as proxies:
        hub, cdn = (
            proxies.enter_context(proxy_process(target, delay=args.delay, bandwidth=args.bandwidth))
            for target in (server.url, server._cdn.url)
        )
        server.cdn_public = cdn
        print(json.dumps({"hub": hub}), flush=True)
        sys.stdin.read()
    server.stop()


SNAPSHOT = """
import sys, time
from huggingface_hub import snapshot_download
start = time.perf_counter()
snapshot_download({repo!r}, endpoint={hub!r}, cache_dir={cache!r}, token=False)
print(time.perf_counter() - start)
"""

ASYNCASSETS = """
import sys, time, anyio
import huggingface_hub  # imported before the clock starts, as for snapshot_download
from asyncassets.cache import CheckpointCache
async def main():
    async with CheckpointCache({cache!r}) as cache:
        await cache.fetch("hf://{repo}", progress=False)
start = time.perf_counter()
anyio.run(main)
print(time.perf_counter() - start)
"""


def cdn_urls(hub: str, files: int) -> list[str]:
    """The signed CDN URLs the Hub redirects each safetensors file to (through the proxy)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(hub)
    urls = []
    for index in range(files):
        name = f"model-{index + 1:05d}-of-{files:05d}.safetensors"
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        connection.request("HEAD", f"/{REPO_ID}/resolve/main/{name}")
        response = connection.getresponse()
        urls.append(response.getheader("Location"))
        connection.close()
    return urls


def ceiling(hub: str, files: int, work: Path) -> float:
    """bench/ideal_client.py on every file at once (32 streams in all, as asyncassets uses):
    no journal, no hashing, no publication; what this setup can carry at most."""
    urls = cdn_urls(hub, files)
    streams = max(1, 32 // files)
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "ideal_client.py"),
                url,
                str(work / f"f{i}"),
                "--streams",
                str(streams),
            ],
            stdout=subprocess.DEVNULL,
        )
        for i, url in enumerate(urls)
    ]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit("the ideal client failed")
    return time.perf_counter() - start


def run(code: str, hub: str, work: Path) -> float:
    env = {
        **os.environ,
        "HF_ENDPOINT": hub,
        "HF_HUB_DISABLE_TELEMETRY": "1",  # else huggingface_hub asks huggingface.co for agents
        "HF_HUB_CACHE": str(work / "hf-home" / "hub"),  # no blobs to reuse
        "HF_HOME": str(work / "hf-home"),
        "HF_TOKEN_PATH": str(work / "no-token"),
        "ASYNCASSETS_NO_PROGRESS": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    env.pop("HF_TOKEN", None)
    source = textwrap.dedent(code).format(repo=REPO_ID, hub=hub, cache=str(work / "cache"))
    out = subprocess.run(
        [sys.executable, "-c", source], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--size", default="256M", help="size of each safetensors file")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.020)
    parser.add_argument("--bandwidth", type=float, default=50e6, help="bytes/s per connection")
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    total = args.files * parse_size(args.size)
    argv = [sys.executable, __file__, "--serve", "--files", str(args.files), "--size", args.size]
    argv += ["--delay", str(args.delay), "--bandwidth", str(args.bandwidth)]
    server = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        hub = json.loads(server.stdout.readline())["hub"]
        ideal = "ideal client (ceiling)"
        times: dict[str, list[float]] = {"snapshot_download": [], "asyncassets": [], ideal: []}
        for round_ in range(args.repeat):
            for name, code in (
                ("snapshot_download", SNAPSHOT),
                ("asyncassets", ASYNCASSETS),
                (ideal, ""),
            ):
                with tempfile.TemporaryDirectory(prefix="bench-hub-") as tmp:
                    if name == ideal:
                        seconds = ceiling(hub, args.files, Path(tmp))
                    else:
                        seconds = run(code, hub, Path(tmp))
                times[name].append(seconds)
                print(
                    f"round {round_ + 1} {name:18} {seconds:6.2f} s "
                    f"{total / seconds / 1e6:7.1f} MB/s",
                    flush=True,
                )
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=60)
    base = statistics.median(times["snapshot_download"])
    print()
    print(
        f"{args.files} x {parse_size(args.size) / 2**20:.0f} MiB safetensors through the delay "
        f"proxy ({args.delay * 1000:.0f} ms, {args.bandwidth / 1e6:.0f} MB/s per connection), "
        f"median of {args.repeat}"
    )
    print()
    medians = {name: statistics.median(runs) for name, runs in times.items()}
    print_markdown(
        ["contender", "wall time", "MB/s", "x snapshot_download"],
        [
            (name, f"{median:.2f} s", f"{total / median / 1e6:.0f}", f"{base / median:.2f}")
            for name, median in medians.items()
        ],
    )


if __name__ == "__main__":
    main()
