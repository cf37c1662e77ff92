"""Hugging Face Hub benchmark: ``huggingface_hub.snapshot_download`` against asyncassets.

One model repo (default 4 x 256 MiB safetensors and a config) is served by the Hub-protocol
server of ``tests/hub_server.py`` (the one the real huggingface_hub client is tested
against): its API and resolve endpoint behind one bench/delay_proxy.py, its LFS CDN behind
another (20 ms per request, 50 MB/s per connection by default, as far-away object storage
gives). The Hub redirects each LFS file to the CDN through the proxy.

Contenders, each in a fresh process with an empty cache, alternating, ``--repeat`` times:

- ``snapshot_download`` with its defaults (8 files at once, one stream each, its own cache),
- ``asyncassets``: ``CheckpointCache.fetch("hf://ORG/REPO")`` (parallel ranged reads of
  every file, resumable, sha256 checked as the bytes arrive, durable publish).

Prints the median wall time and throughput of each and the ratio. Never part of the test
suite. Usage::

    python bench/hub.py                        # 4 x 256 MiB, 3 rounds
    python bench/hub.py --files 2 --size 64M --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
REPO_ID = "bench/model"


def parse_size(text: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    text = text.strip().upper().rstrip("B").rstrip("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def serve(args: argparse.Namespace) -> None:
    """The Hub and its CDN, each behind a delay proxy, until stdin closes."""
    sys.path[:0] = [str(HERE), str(REPO / "tests")]
    from delay_proxy import ThreadedDelayProxy
    from hub_server import HubServer

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
    hub_port = int(server.url.rsplit(":", 1)[1])
    cdn_port = int(server._cdn.url.rsplit(":", 1)[1])
    options = {"delay": args.delay, "bandwidth": args.bandwidth}
    with (
        ThreadedDelayProxy("127.0.0.1", hub_port, **options) as hub_proxy,
        ThreadedDelayProxy("127.0.0.1", cdn_port, **options) as cdn_proxy,
    ):
        server.cdn_public = cdn_proxy.url
        print(json.dumps({"hub": hub_proxy.url}), flush=True)
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
        times: dict[str, list[float]] = {"snapshot_download": [], "asyncassets": []}
        for round_ in range(args.repeat):
            for name, code in (("snapshot_download", SNAPSHOT), ("asyncassets", ASYNCASSETS)):
                with tempfile.TemporaryDirectory(prefix="bench-hub-") as tmp:
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
    print("| contender | wall time | MB/s | x snapshot_download |")
    print("|---|---|---|---|")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"| {name} | {median:.2f} s | {total / median / 1e6:.0f} | {base / median:.2f} |")


if __name__ == "__main__":
    main()
