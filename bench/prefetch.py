"""Prefetch benchmark: asyncassets' CheckpointCache against one-stream and multi-part peers.

A file (default 512 MiB) is served by aiohttp's static handler (Range -> 206, sendfile) in
a process of its own, behind the delay proxy (20 ms per request, 50 MB/s per connection by
default; a thread of this process), and each contender downloads it in its own process, so
that its peak RSS is its own. The servers, the proxy and the plumbing are bench/_harness.py's.

Contenders:

- the ideal client (bench/ideal_client.py), the durable ceiling: 16 ranged streams over
  aiohttp, one connection each, ``os.pwrite`` of every chunk at its offset, no journal, no
  hashing, one ``fdatasync`` at the end,
- fsspec HTTP ``get_file`` (one stream), ``curl -o`` (when curl exists),
- s3fs ``get_file`` and boto3 ``download_file`` from moto through the same kind of proxy
  (for reference; moto slices the whole object for each ranged GET, so the S3 object is
  smaller by default: ``--s3-size``),
- asyncassets cold (empty cache) and asyncassets cache hit (same cache, second fetch; the
  requests column counts what went through the proxy: one HEAD).

P5, asyncassets cold against the ceiling, is measured in alternating rounds (``--rounds``,
at least 3): ideal, asyncassets; then asyncassets, ideal; and so on, the order reversed each
round, so that drift of the disk weighs on both alike. The table shows the median run of
each, and "x ceiling" is the ratio of the medians (a single run drifts by tens of percent).

Prints a table with throughput ratios against fsspec's single stream, the fastest peer and
the ceiling, then the P5 line. Never part of the test suite. Usage::

    python bench/prefetch.py                 # 512 MiB
    python bench/prefetch.py --size 256M --concurrency 16 --part-size 16M
    python bench/prefetch.py --only-asyncassets --skip-s3 --rounds 3   # P5 alone
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    BENCH,
    REPO,
    CountingProxy,
    alternating,
    moto_server,
    parse_size,
    run_json,
    static_server,
)

IDEAL = "ideal client (ceiling)"
COLD = "asyncassets cold"
MIN_ROUNDS = 3


# Each contender runs inside this wrapper: it times the download and reports its own peak
# RSS (ru_maxrss of the process, or of its child for curl) as one JSON line.
RUNNER = """
import json, os, resource, subprocess, sys, time
kind, args = sys.argv[1], json.loads(sys.argv[2])
if kind == "ideal":
    import asyncio
    sys.path.insert(0, args["bench"])
    from ideal_client import download
    started = time.perf_counter()
    asyncio.run(download(args["url"], args["dest"], args["streams"]))
    elapsed = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
elif kind == "curl":
    started = time.perf_counter()
    subprocess.run(["curl", "-s", "-f", "-o", args["dest"], args["url"]], check=True)
    elapsed = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
else:
    if kind == "fsspec-http":
        import fsspec
        fs = fsspec.filesystem("http")
        started = time.perf_counter()
        fs.get_file(args["url"], args["dest"])
    elif kind == "s3fs":
        import s3fs
        fs = s3fs.S3FileSystem(key="k", secret="s",
                               client_kwargs={"endpoint_url": args["endpoint"]})
        started = time.perf_counter()
        fs.get_file(args["path"], args["dest"])
    elif kind == "boto3":
        import boto3
        client = boto3.client("s3", endpoint_url=args["endpoint"], aws_access_key_id="k",
                              aws_secret_access_key="s", region_name="us-east-1")
        bucket, key = args["path"].split("/", 1)
        started = time.perf_counter()
        client.download_file(bucket, key, args["dest"])
    elif kind == "asyncassets":
        import asyncio
        from asyncassets.cache import CheckpointCache
        cache = CheckpointCache(args["root"], part_size=args["part_size"],
                                concurrency=args["concurrency"])
        started = time.perf_counter()
        args["dest"] = str(asyncio.run(cache.fetch(args["url"], progress=False,
                                                   local_only=args.get("offline", False))))
    elapsed = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": elapsed, "rss_kib": rss, "size": os.path.getsize(args["dest"])}))
"""


@dataclass
class Result:
    name: str
    size: int
    seconds: float
    rss_mib: float
    requests: int

    @property
    def mb_per_s(self) -> float:
        return self.size / self.seconds / 1e6


def run_contender(kind: str, args: dict[str, object]) -> dict[str, float]:
    """One download by ``kind`` in a fresh process: seconds, peak RSS (KiB), bytes written."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "ASYNCASSETS_NO_PROGRESS": "1"}
    data: dict[str, float] = run_json([sys.executable, "-c", RUNNER, kind, json.dumps(args)], env)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description="CheckpointCache prefetch benchmark")
    parser.add_argument("--size", default="512M", help="object size served over HTTP (512M)")
    parser.add_argument("--s3-size", default="128M", help="object size on moto (128M)")
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--bandwidth-mb", type=float, default=50.0, help="MB/s per connection")
    parser.add_argument("--part-size", default=None, help="default: the cache's (16M for HTTP)")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="default: the cache's (32 for HTTP)"
    )
    parser.add_argument(
        "--ideal-streams", type=int, default=16, help="ranged streams of the ideal client (16)"
    )
    parser.add_argument(
        "--rounds",
        "--repeat",
        type=int,
        default=MIN_ROUNDS,
        help=f"alternating rounds of the ceiling and asyncassets cold ({MIN_ROUNDS}, at least)",
    )
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument(
        "--only-asyncassets", action="store_true", help="skip the peers (for tuning runs)"
    )
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    opts = parser.parse_args()
    if opts.rounds < MIN_ROUNDS:
        parser.error(f"--rounds: P5 is the median of at least {MIN_ROUNDS} alternating rounds")
    size, s3_size = parse_size(opts.size), parse_size(opts.s3_size)
    part_size = parse_size(opts.part_size) if opts.part_size else None
    proxy_kwargs = {"delay": opts.delay_ms / 1000, "bandwidth": opts.bandwidth_mb * 1e6}

    work = Path(opts.workdir or tempfile.mkdtemp(prefix="prefetch-bench-"))
    serve = work / "serve"
    serve.mkdir(parents=True, exist_ok=True)
    blob = serve / "model.bin"
    print(f"writing {size / 2**20:.0f} MiB to {blob}", file=sys.stderr)
    with open(blob, "wb") as fh:
        chunk = os.urandom(16 * 2**20)
        for offset in range(0, size, len(chunk)):
            fh.write(chunk[: min(len(chunk), size - offset)])
        # On disk before anyone runs: otherwise its writeback lands on whichever contender
        # runs some 30 s later (dirty_expire), skewing that one.
        fh.flush()
        os.fsync(fh.fileno())

    results: list[Result] = []
    try:
        with static_server(serve) as origin, CountingProxy(origin, **proxy_kwargs) as proxy:
            url = f"{proxy.url}/model.bin"

            def http(name: str, kind: str, args: dict[str, object]) -> Result:
                print(f"running {name}", file=sys.stderr)
                proxy.reset()
                data = run_contender(kind, args)
                assert data["size"] == size, f"{name} wrote {data['size']} bytes, not {size}"
                return Result(name, size, data["seconds"], data["rss_kib"] / 1024, proxy.requests)

            dest = str(work / "out.bin")
            ideal_args = {
                "url": url,
                "dest": dest,
                "streams": opts.ideal_streams,
                "bench": str(BENCH),
            }
            root = work / "cache"
            cache_args = {
                "url": url,
                "root": str(root),
                "part_size": part_size,
                "concurrency": opts.concurrency,
            }
            # P5: the ceiling and asyncassets cold take turns, the order reversed each round;
            # the median run of each goes in the table. The cache of the last cold run
            # serves the hits.
            runs: dict[str, list[Result]] = {IDEAL: [], COLD: []}
            for _, name in alternating([IDEAL, COLD], opts.rounds):
                if name == IDEAL:
                    runs[IDEAL].append(http(IDEAL, "ideal", ideal_args))
                    os.unlink(dest)
                else:
                    shutil.rmtree(root, ignore_errors=True)
                    runs[COLD].append(http(COLD, "asyncassets", cache_args))
            results.append(median(runs[IDEAL]))
            if not opts.only_asyncassets:
                results.append(
                    http("fsspec HTTP get_file", "fsspec-http", {"url": url, "dest": dest})
                )
                os.unlink(dest)
                if shutil.which("curl"):
                    results.append(http("curl -o", "curl", {"url": url, "dest": dest}))
                    os.unlink(dest)
            results.append(median(runs[COLD]))
            results.append(http("asyncassets cache hit", "asyncassets", cache_args))
            offline_args = {**cache_args, "offline": True}
            results.append(http("asyncassets hit offline", "asyncassets", offline_args))
            shutil.rmtree(root)

        if not (opts.skip_s3 or opts.only_asyncassets):
            results.extend(run_s3(work, s3_size, proxy_kwargs))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print_table(results, opts)
    print_ceiling(runs, opts.rounds)


def median(runs: list[Result]) -> Result:
    """The median run by time (runs are odd in number: a real run); its peak RSS is the
    highest of all runs."""
    pick = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    return Result(pick.name, pick.size, pick.seconds, max(r.rss_mib for r in runs), pick.requests)


def run_s3(work: Path, size: int, proxy_kwargs: dict[str, float]) -> list[Result]:
    import boto3

    results = []
    with moto_server() as endpoint:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="k",
            aws_secret_access_key="s",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="bench")
        print(f"uploading {size / 2**20:.0f} MiB to moto", file=sys.stderr)
        client.put_object(Bucket="bench", Key="model.bin", Body=os.urandom(size))
        with CountingProxy(endpoint, **proxy_kwargs) as proxy:
            for name, kind in (
                ("s3fs get_file (moto)", "s3fs"),
                ("boto3 download_file (moto)", "boto3"),
            ):
                print(f"running {name}", file=sys.stderr)
                dest = str(work / "s3-out.bin")
                proxy.reset()
                data = run_contender(
                    kind, {"endpoint": proxy.url, "path": "bench/model.bin", "dest": dest}
                )
                os.unlink(dest)
                assert data["size"] == size
                results.append(
                    Result(name, size, data["seconds"], data["rss_kib"] / 1024, proxy.requests)
                )
    return results


def print_table(results: list[Result], opts: argparse.Namespace) -> None:
    ceiling = next(r for r in results if r.name == IDEAL)
    base = next((r for r in results if r.name.startswith("fsspec")), None)
    peers = [r for r in results if not r.name.startswith("asyncassets") and r is not ceiling]
    # Peers on moto move a smaller object; they still count as peers for throughput.
    fastest = max(peers, key=lambda r: r.mb_per_s, default=None)
    part, concurrency = opts.part_size or "default", opts.concurrency or "default"
    print(
        textwrap.dedent(
            f"""
            delay {opts.delay_ms:g} ms/request, {opts.bandwidth_mb:g} MB/s per connection;
            asyncassets part size {part}, concurrency {concurrency};
            fastest peer: {fastest.name if fastest else "- (no peers run)"};
            ceiling: {IDEAL}, {opts.ideal_streams} streams, pwrite, one fdatasync;
            ceiling and asyncassets cold: median of {opts.rounds} alternating rounds
            """
        ).strip()
    )
    header = (
        f"| {'contender':<28} | {'size':>9} | {'time s':>7} | {'MB/s':>7} | "
        f"{'x fsspec':>8} | {'x fastest':>9} | {'x ceiling':>9} | {'peak RSS MiB':>12} | "
        f"{'requests':>8} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")

    def ratio(r: Result, to: Result | None) -> str:
        return "-" if to is None else f"{r.mb_per_s / to.mb_per_s:.2f}"

    for r in results:
        if "hit" in r.name:  # nothing is transferred: time and requests are what count
            speed, vs_base, vs_fastest, vs_ceiling = "-", "-", "-", "-"
        else:
            speed = f"{r.mb_per_s:.1f}"
            vs_base, vs_fastest, vs_ceiling = ratio(r, base), ratio(r, fastest), ratio(r, ceiling)
        print(
            f"| {r.name:<28} | {r.size / 2**20:>5.0f} MiB | {r.seconds:>7.3f} | {speed:>7} | "
            f"{vs_base:>8} | {vs_fastest:>9} | {vs_ceiling:>9} | {r.rss_mib:>12.1f} | "
            f"{r.requests:>8} |"
        )


def print_ceiling(runs: dict[str, list[Result]], rounds: int) -> None:
    """P5: asyncassets cold against the ceiling, each run, the medians and their ratio."""
    print()
    for name, named_runs in runs.items():
        speeds = ", ".join(f"{r.mb_per_s:.0f}" for r in named_runs)
        print(f"{name} runs, MB/s: {speeds}")
    ideal = statistics.median(r.mb_per_s for r in runs[IDEAL])
    cold = statistics.median(r.mb_per_s for r in runs[COLD])
    peak = max(r.rss_mib for r in runs[COLD])
    print(
        f"P5 (median of {rounds} alternating rounds): asyncassets cold {cold:.1f} MB/s, "
        f"ceiling {ideal:.1f} MB/s = {cold / ideal:.2f}x ceiling (goal >= 0.90x); "
        f"peak RSS {peak:.1f} MiB (goal < 256 MiB)"
    )


if __name__ == "__main__":
    main()
