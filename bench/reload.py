"""Hot-reload benchmark: how soon an edit is served, and what one refresh costs.

Measures in one run:

(a) latency from writing a card file to ``retrieve_card`` returning the new value, while
    ``store.watching()`` runs, over ``--edits`` in-place edits (median and p95), against the
    floor: a bare ``watchfiles.awatch`` on the same folder with the settings asyncassets
    uses (``step`` = the debounce, ``debounce`` = max(20 x debounce, 1 s), no filter),
    running at the same time and timed on the same writes;
(b) the cost of one refresh after editing one file in a folder of ``--files`` cards:
    ``await provider.refresh([path])`` (the watcher's path) and ``await provider.refresh()``
    (a full re-list that re-reads only the changed file), against loading the folder from
    scratch (a new provider's ``load()``).

Targets (issue 4): (a) median within the debounce + 50 ms of the floor; (b) one refresh at
least 100x cheaper than a full reload.

Run: ``python bench/reload.py [--edits 50] [--files 5000] [--debounce-ms 50] [--json]``.
The exit code is always 0: benchmarks report, they do not gate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from watchfiles import awatch

from asyncassets import AssetStore, FileAssetMetadataProvider
from asyncassets.watch import DEFAULT_DEBOUNCE_MS

#: (a): the store's median may exceed the floor's by the debounce plus this many ms.
LATENCY_ALLOWANCE_MS = 50.0
#: (b): one refresh must be at least this many times cheaper than a full reload.
REFRESH_TARGET_RATIO = 100.0
#: Quiet time between two edits of (a), so that watchfiles never merges two edits.
EDIT_GAP = 0.15
#: Seconds to wait for one edit to be seen before the benchmark gives up on it.
EDIT_TIMEOUT = 10.0
SUBFOLDERS = 50


def card_text(index: int, value: int) -> str:
    return (
        f"name: model_{index}\n"
        f"model_family: family_{index % 17}\n"
        f"model_arch: arch_{index % 5}\n"
        f"checkpoint: ../checkpoints/model_{index}.pt\n"
        f"tokenizer: tokenizer_{index % 7}\n"
        f"value: {value}\n"
        "settings:\n"
        f"  max_seq_len: {1024 * (1 + index % 8)}\n"
        "  dtype: bfloat16\n"
    )


def write_folder(root: Path, files: int) -> list[Path]:
    paths = []
    for i in range(files):
        folder = root / f"group{i % SUBFOLDERS:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"model_{i}.yaml"
        path.write_text(card_text(i, 0))
        paths.append(path)
    return paths


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def wait_for(condition: Callable[[], Awaitable[bool]], within: float) -> bool:
    with anyio.move_on_after(within):
        while not await condition():  # noqa: ASYNC110  (the watcher gives us nothing to await)
            await anyio.sleep(0.0005)
        return True
    return False


# -- (a) latency -----------------------------------------------------------------------------


async def measure_latency(root: Path, edits: int, debounce_ms: int) -> dict[str, Any]:
    """Seconds from each write to the new value served, and to watchfiles' own report."""
    path = root / "edited.yaml"
    path.write_text(card_text(0, 0))
    target = os.fspath(path)
    store = AssetStore([FileAssetMetadataProvider(root)])
    seen_by_floor: list[float] = []
    floor_ready = anyio.Event()

    async def floor() -> None:
        watcher = awatch(
            root,
            watch_filter=None,
            debounce=max(debounce_ms * 20, 1_000),
            step=debounce_ms,
            recursive=True,
        )
        floor_ready.set()
        async for changes in watcher:
            if any(p == target for _, p in changes):
                seen_by_floor.append(time.perf_counter())

    store_latencies: list[float] = []
    floor_latencies: list[float] = []
    missed = 0
    async with store, store.watching(debounce_ms=debounce_ms), anyio.create_task_group() as tg:
        tg.start_soon(floor)
        await floor_ready.wait()
        await anyio.sleep(0.5)  # let both watchers settle before the first write
        for value in range(1, edits + 1):
            floor_before = len(seen_by_floor)
            started = time.perf_counter()
            path.write_text(card_text(0, value))

            async def served(expected: int = value) -> bool:
                card = await store.retrieve_card("model_0")
                return bool(card.field("value").value == expected)

            async def floor_saw(count: int = floor_before) -> bool:
                return len(seen_by_floor) > count

            if not await wait_for(served, EDIT_TIMEOUT):
                missed += 1
                continue
            store_latencies.append(time.perf_counter() - started)
            if await wait_for(floor_saw, EDIT_TIMEOUT):
                floor_latencies.append(seen_by_floor[floor_before] - started)
            await anyio.sleep(EDIT_GAP)
        tg.cancel_scope.cancel()
    return {
        "edits": edits,
        "missed": missed,
        "store_ms": [round(x * 1000, 2) for x in store_latencies],
        "floor_ms": [round(x * 1000, 2) for x in floor_latencies],
    }


# -- (b) refresh cost ------------------------------------------------------------------------


async def time_call(call: Callable[[], Awaitable[Any]], repeat: int) -> float:
    """Median seconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def measure_refresh(root: Path, files: int, repeat: int) -> dict[str, Any]:
    paths = write_folder(root, files)
    edited = paths[files // 2]
    value = 0

    async def full_load() -> None:
        fresh = FileAssetMetadataProvider(root)
        await fresh.load()
        assert len(fresh.asset_names) == files

    load_s = await time_call(full_load, max(3, repeat // 4))

    provider = FileAssetMetadataProvider(root)
    await provider.load()

    def edit() -> None:
        nonlocal value
        value += 1
        edited.write_text(card_text(files // 2, value))

    async def refresh_one() -> None:
        edit()
        diff = await provider.refresh([os.fspath(edited)])
        assert diff.modified == {f"model_{files // 2}@"}, diff

    async def refresh_all() -> None:
        edit()
        diff = await provider.refresh()
        assert diff.modified == {f"model_{files // 2}@"}, diff

    refresh_one_s = await time_call(refresh_one, repeat)
    refresh_all_s = await time_call(refresh_all, max(3, repeat // 4))
    return {
        "files": files,
        "full_load_ms": round(load_s * 1000, 3),
        "refresh_path_ms": round(refresh_one_s * 1000, 3),
        "refresh_relist_ms": round(refresh_all_s * 1000, 3),
    }


# -- report ----------------------------------------------------------------------------------


def report(latency: dict[str, Any], refresh: dict[str, Any], debounce_ms: int) -> None:
    store, floor = latency["store_ms"], latency["floor_ms"]
    print(
        f"# bench/reload.py  python {platform.python_version()}  {platform.system()}  "
        f"{os.cpu_count()} cpus  debounce {debounce_ms} ms"
    )
    print()
    print(f"(a) write -> new value served, {latency['edits']} in-place edits")
    print(f"{'':<44} {'median':>9} {'p95':>9} {'n':>4}")
    rows = [
        ("watchfiles awatch, same settings (floor)", floor),
        ("asyncassets retrieve_card", store),
    ]
    for label, values in rows:
        if values:
            med, p95 = statistics.median(values), percentile(values, 0.95)
            print(f"{label:<44} {med:>7.1f}ms {p95:>7.1f}ms {len(values):>4}")
        else:
            print(f"{label:<44} {'-':>9} {'-':>9} {0:>4}")
    if latency["missed"]:
        print(f"  {latency['missed']} edit(s) not served within {EDIT_TIMEOUT:.0f} s")
    print()
    print(f"(b) one edited file in a folder of {refresh['files']:,} cards")
    print(f"{'':<44} {'time':>9} {'cheaper':>9}")
    load = refresh["full_load_ms"]
    for label, key in (
        ("full load from scratch (baseline)", "full_load_ms"),
        ("provider.refresh([path])", "refresh_path_ms"),
        ("provider.refresh()  (re-list, read 1 file)", "refresh_relist_ms"),
    ):
        ms = refresh[key]
        print(f"{label:<44} {ms:>7.2f}ms {load / ms:>8.1f}x")
    print()
    print("targets:")
    if store and floor:
        gap = statistics.median(store) - statistics.median(floor)
        allowed = debounce_ms + LATENCY_ALLOWANCE_MS
        ok = gap <= allowed
        print(
            f"  [{'met' if ok else 'MISSED'}] (a) median {gap:+.1f} ms from the floor "
            f"(allowed: debounce + {LATENCY_ALLOWANCE_MS:.0f} = {allowed:.0f} ms)"
        )
    else:
        print("  [MISSED] (a) no latency measured")
    ratio = load / refresh["refresh_path_ms"]
    ok = ratio >= REFRESH_TARGET_RATIO
    print(
        f"  [{'met' if ok else 'MISSED'}] (b) refresh([path]) {ratio:.0f}x cheaper than a "
        f"full reload (target >= {REFRESH_TARGET_RATIO:.0f}x)"
    )
    relist = load / refresh["refresh_relist_ms"]
    print(f"  [info] (b) refresh() with a full re-list: {relist:.1f}x cheaper (no target)")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="asyncassets-bench-reload-") as tmp:
        latency_root = Path(tmp) / "latency"
        latency_root.mkdir()
        latency = await measure_latency(latency_root, args.edits, args.debounce_ms)
        refresh = await measure_refresh(Path(tmp) / "refresh", args.files, args.repeat)
    return {"latency": latency, "refresh": refresh, "debounce_ms": args.debounce_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=50, help="edits timed in (a)")
    parser.add_argument("--files", type=int, default=5000, help="cards in the folder of (b)")
    parser.add_argument("--repeat", type=int, default=20, help="refreshes timed in (b)")
    parser.add_argument("--debounce-ms", type=int, default=DEFAULT_DEBOUNCE_MS)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    results = anyio.run(run, args)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        report(results["latency"], results["refresh"], args.debounce_ms)
    sys.exit(0)


if __name__ == "__main__":
    main()
