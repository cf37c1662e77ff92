"""Multi-node prefetch benchmark: bytes fetched from the object store and wall time.

Real torch.distributed jobs (gloo, one CPU process per rank, 127.0.0.1) fetch the same
objects from an aiohttp static server behind the delay proxy of bench/_harness.py (20 ms per
request, 50 MB/s per connection by default), in two layouts:

- ``shared``: every rank's cache is one folder (a shared file system);
- ``node-local``: two ranks per "node", each node with a cache folder of its own.

Contenders, each in a fresh job:

- ``asyncassets``: ``asyncassets.distributed.prefetch_distributed`` (one download per cache
  domain, found at run time);
- ``every rank``: each rank fetches on its own into a folder of its own (no coordination:
  what a job does when each process keeps its own copy);
- ``rank 0 + barrier``: fairseq2's answer; rank 0 fetches, a barrier, then every rank
  looks in its own cache folder (``local_only``). With node-local folders the other nodes
  find nothing: the "missing" column counts the ranks left without their files.

Bytes are counted by the proxy (what crossed the "network"); wall time runs from a barrier
after the group is up (torch's import and the rendezvous excluded) to the last rank's return.
Never part of the test suite. Usage::

    python bench/distributed.py                       # 4 and 8 ranks, 2 x 64 MiB
    python bench/distributed.py --ranks 4 --size 128M --objects 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import CountingProxy, free_port, parse_size, print_markdown, static_server

HOST = "127.0.0.1"
CONTENDERS = ("every rank", "rank 0 + barrier", "asyncassets")
LAYOUTS = ("shared", "node-local")
RANKS_PER_NODE = 2


# -- a rank ------------------------------------------------------------------------------------


def worker(args: argparse.Namespace) -> None:
    import anyio
    import torch.distributed as dist

    from asyncassets.cache import CheckpointCache
    from asyncassets.distributed import prefetch_distributed

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    work = Path(args.work)
    node = rank // RANKS_PER_NODE
    folder = work / ("cache" if args.layout == "shared" else f"node-{node}")
    urls = args.urls
    dist.barrier()
    start = time.time()
    missing = 0
    if args.contender == "asyncassets":
        anyio.run(_distributed, prefetch_distributed, CheckpointCache(folder), urls)
    elif args.contender == "every rank":
        anyio.run(_fetch_all, CheckpointCache(work / f"rank-{rank}"), urls, False)
    else:  # rank 0 + barrier
        if rank == 0:
            anyio.run(_fetch_all, CheckpointCache(folder), urls, False)
        dist.barrier()
        try:
            anyio.run(_fetch_all, CheckpointCache(folder), urls, True)
        except Exception:
            missing = 1
    end = time.time()
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, (start, end, missing))
    if rank == 0:
        Path(args.out).write_text(json.dumps(gathered))
    dist.destroy_process_group()


async def _distributed(prefetch: Any, cache: Any, urls: list[str]) -> None:
    await prefetch(cache, urls, progress=False)


async def _fetch_all(cache: Any, urls: list[str], local_only: bool) -> None:
    for url in urls:
        await cache.fetch(url, local_only=local_only, progress=False)


# -- the driver --------------------------------------------------------------------------------


def run_job(
    ranks: int, contender: str, layout: str, urls: list[str], work: Path
) -> dict[str, float]:
    port = free_port()
    out = work / "result.json"
    procs = []
    for rank in range(ranks):
        env = {
            **os.environ,
            "RANK": str(rank),
            "WORLD_SIZE": str(ranks),
            "LOCAL_RANK": str(rank % RANKS_PER_NODE),
            "MASTER_ADDR": HOST,
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
            "ASYNCASSETS_NO_PROGRESS": "1",
        }
        argv = [sys.executable, __file__, "--worker", "--contender", contender]
        argv += ["--layout", layout, "--work", str(work), "--out", str(out), "--urls", *urls]
        procs.append(subprocess.Popen(argv, env=env))
    for proc in procs:
        if proc.wait(timeout=900) != 0:
            raise SystemExit(f"{contender} / {layout} / {ranks} ranks: a rank failed")
    gathered = json.loads(out.read_text())
    return {
        "wall": max(e for _, e, _ in gathered) - min(s for s, _, _ in gathered),
        "missing": sum(m for _, _, m in gathered),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--layout", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--urls", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--ranks", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--size", default="64M", help="size of each object")
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.020)
    parser.add_argument("--bandwidth", type=float, default=50e6, help="bytes/s per connection")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        root = Path(tmp)
        objects = root / "objects"
        objects.mkdir()
        for index in range(args.objects):
            (objects / f"shard-{index}.bin").write_bytes(os.urandom(size))
        with (
            static_server(objects) as origin,
            CountingProxy(origin, delay=args.delay, bandwidth=args.bandwidth) as proxy,
        ):
            rows = []
            for ranks in args.ranks:
                for layout in LAYOUTS:
                    for contender in CONTENDERS:
                        work = root / f"{ranks}-{layout}-{contender.replace(' ', '')}"
                        work.mkdir()
                        urls = [
                            f"{proxy.url}/shard-{i}.bin?job={work.name}"
                            for i in range(args.objects)
                        ]
                        proxy.reset()
                        result = run_job(ranks, contender, layout, urls, work)
                        rows.append((ranks, layout, contender, proxy.downstream_bytes, result))
                        print(
                            f"{ranks} ranks {layout:10} {contender:17} "
                            f"{proxy.downstream_bytes / 2**20:8.0f} MiB "
                            f"{result['wall']:6.2f} s missing {result['missing']:.0f}",
                            flush=True,
                        )
    total = args.objects * size
    print()
    print(
        f"{args.objects} x {size / 2**20:.0f} MiB through the proxy ({args.delay * 1000:.0f} ms, "
        f"{args.bandwidth / 1e6:.0f} MB/s per connection); {RANKS_PER_NODE} ranks per node"
    )
    print()
    header = ["ranks", "layout", "contender", "fetched from server", "x the data", "wall time"]
    print_markdown(
        [*header, "ranks without their files"],
        [
            (
                ranks,
                layout,
                contender,
                f"{fetched / 2**20:.0f} MiB",
                f"{fetched / total:.2f}",
                f"{result['wall']:.2f} s",
                f"{result['missing']:.0f}",
            )
            for ranks, layout, contender, fetched, result in rows
        ],
    )


if __name__ == "__main__":
    main()
