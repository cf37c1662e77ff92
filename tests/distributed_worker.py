"""One rank of a distributed-prefetch test job: ``python distributed_worker.py PLAN OUT``.

Started by ``test_distributed.py`` with torchrun's variables (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``). It joins a real gloo process group, then runs every
scenario of the plan (a JSON list) in order, in that one group, and writes what each gave
(local paths, or the error and how long it took to come) to ``OUT/rank<N>.json``. Running all
scenarios in one job keeps the suite fast: torch's import and the rendezvous cost seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio


async def run_scenario(scenario: dict[str, Any], rank: int) -> dict[str, Any]:
    from asyncassets import AssetStore, FileAssetMetadataProvider
    from asyncassets.cache import CheckpointCache
    from asyncassets.distributed import prefetch_distributed

    cache = CheckpointCache(scenario["cache_dirs"][rank])
    target: Any = cache
    if scenario.get("store"):
        target = AssetStore(
            [FileAssetMetadataProvider(scenario["store"])], cache=cache, env_resolvers=[]
        )
    items = scenario["items_per_rank"][rank] if "items_per_rank" in scenario else scenario["items"]
    if scenario.get("die_rank") == rank:
        os._exit(3)  # a rank that dies before the first exchange
    start = time.monotonic()
    try:
        paths = await prefetch_distributed(
            target,
            items,
            step_timeout=scenario.get("step_timeout", 60.0),
            interval=scenario.get("interval", 0.2),
            progress=False,
        )
    except Exception as exc:
        return {
            "error": type(exc).__name__,
            "message": str(exc),
            "elapsed": time.monotonic() - start,
        }
    return {"paths": [str(p) for p in paths], "elapsed": time.monotonic() - start}


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    import torch.distributed as dist

    from asyncassets.distributed import init_from_environment

    init_from_environment()
    rank = dist.get_rank()
    results = {}
    for scenario in plan:
        results[scenario["name"]] = anyio.run(run_scenario, scenario, rank)
    (out / f"rank{rank}.json").write_text(json.dumps(results))
    if any("error" in r for r in results.values()):
        # A collective abandoned on a timeout may still hold a thread in gloo: leave at once.
        sys.stdout.flush()
        os._exit(0)
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("ASYNCASSETS_NO_PROGRESS", "1")
    main()
