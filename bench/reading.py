"""Reading benchmark: a cold load against libyaml's parse floor and fairseq2's reader.

Generates bench/lookup.py's folder (10,000 cards in 500 files, from the fairseq2 corpus),
then measures side by side in one run, the contenders alternating over ``--rounds``
rounds (medians compared), each load in a fresh process (a cold start is one; a heap left
by another contender would skew the garbage collector's cost), the page cache warm:

- **libyaml floor**: read every file and ``yaml.load_all`` it with PyYAML's
  ``CSafeLoader`` (C parser, C composer): the cost of parsing the bytes and nothing else;
- **fairseq2**: what fairseq2 0.8.1's store does on load: every file through ruamel's
  ``YAML(typ="safe", pure=True).load_all`` into ``{name: metadata}``. (Without ruamel.yaml
  installed, PyYAML's pure-Python ``SafeLoader`` stands in, and the table says so.)
- **asyncassets**: ``await AssetStore([FileAssetMetadataProvider(dir)]).load()`` and the
  merged index of names, as bench/lookup.py measures it;

Imports are outside every contender's timing: PyYAML's, ruamel's and asyncassets' modules,
and the event-loop backend anyio imports on first use (a service's framework has loaded it
before it loads cards: 20 ms here).
- **warm lookups**: ``await store.retrieve_card(name)`` against the floor of any async
  lookup, an ``await`` of a coroutine that returns ``d[name]``.

Each cold-load row comes twice: each load in a fresh process (a service's start: the
interpreter's first run of the code and its first memory), and all in one warm process
(the protocol of bench/lookup.py, which the issue's figures came from).

Targets (issue 17): cold load at most 0.35x the libyaml floor (ratio floor/asyncassets at
least 2.86x), at least 40x faster than fairseq2, warm lookups within 2x the floor (ratio
at least 0.5x).

Run: ``python bench/reading.py [--rounds 5] [--json]`` (``pip install 'ruamel.yaml==0.18.*'``
first for the fairseq2 row; ``nox -s bench`` does). Benchmarks report; they never fail.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import yaml
from lookup import (
    Row,
    asyncassets_cold_load,
    card_files,
    generate_store,
    machine_info,
    print_table,
)

from asyncassets import AssetStore

#: ours <= 0.35 x the floor.
FLOOR_TARGET = 1 / 0.35
FAIRSEQ2_TARGET = 40.0
#: ours within 2x an await plus a dict lookup.
WARM_TARGET = 0.5


def fairseq2_reader() -> tuple[str, Callable[[str], list[Any]]]:
    """(label, load_all) of the reader fairseq2 0.8.1 uses."""
    try:
        from ruamel.yaml import YAML
        from ruamel.yaml import __version__ as ruamel_version
    except ImportError:
        print(
            "note: ruamel.yaml is not installed; PyYAML's pure-Python SafeLoader stands in "
            "for fairseq2's reader (pip install 'ruamel.yaml==0.18.*' for the real one)",
            file=sys.stderr,
        )
        return "PyYAML SafeLoader (stand-in)", lambda text: list(
            yaml.load_all(text, Loader=yaml.SafeLoader)
        )

    def load_all(text: str) -> list[Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return list(YAML(typ="safe", pure=True).load_all(text))

    return f"ruamel.yaml {ruamel_version} safe, pure", load_all


def fairseq2_load(files: list[Path], load_all: Callable[[str], list[Any]]) -> int:
    """fairseq2's store on load: every document of every file into ``{name: metadata}``."""
    metadata: dict[str, Any] = {}
    for path in files:
        for document in load_all(path.read_text(encoding="utf-8")):
            if isinstance(document, dict) and "name" in document:
                name = document["name"]
                metadata[name if "@" in name else f"{name}@"] = document
    return len(metadata)


def libyaml_floor(files: list[Path]) -> int:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    documents = 0
    for path in files:
        documents += len(list(yaml.load_all(path.read_bytes(), Loader=loader)))
    return documents


async def dict_lookups(table: dict[str, Any], names: list[str]) -> float:
    async def lookup(name: str) -> Any:
        return table[name]

    start = time.perf_counter()
    for name in names:
        await lookup(name)
    return (time.perf_counter() - start) / len(names)


async def store_lookups(store: AssetStore, names: list[str]) -> float:
    start = time.perf_counter()
    for name in names:
        await store.retrieve_card(name)
    return (time.perf_counter() - start) / len(names)


def timed(run: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def child(contender: str, root: Path) -> float:
    """One timed load by ``contender``, in this (fresh) process: seconds."""
    files = list(card_files(root))
    for path in files:  # the page cache warm, as for every contender
        path.read_bytes()
    gc.collect()
    if contender == "floor":
        return timed(lambda: libyaml_floor(files))
    if contender == "fairseq2":
        _, load_all = fairseq2_reader()
        return timed(lambda: fairseq2_load(files, load_all))
    loop = asyncio.new_event_loop()
    # Imports stay outside every contender's timing (yaml's, ruamel's and ours are made
    # above). anyio imports its event-loop backend on first use, 20 ms here: a service's
    # framework (starlette, uvicorn) has done it before its startup hooks run; so is it here.
    loop.run_until_complete(anyio.to_thread.run_sync(int))
    elapsed, store = loop.run_until_complete(asyncassets_cold_load(root))
    loop.run_until_complete(store.aclose())
    return elapsed


def in_fresh_process(contender: str, root: Path) -> float:
    """A cold start is a fresh process: each load runs in one, so that no contender meets
    a heap the others left behind."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", contender, str(root)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
    )
    return float(out.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    log: Callable[[str], None] = (lambda _: None) if args.json else print
    generated = generate_store(root, files=args.files, cards=args.cards, seed=0)
    files = list(card_files(root))
    size = sum(path.stat().st_size for path in files)
    log(
        f"generated {len(generated.names):,} cards ({generated.documents:,} documents, "
        f"{size / 1e6:.1f} MB) in {len(files)} files under {root}"
    )
    label, _ = fairseq2_reader()
    times: dict[str, list[float]] = {"floor": [], "fairseq2": [], "asyncassets": []}
    for round_ in range(args.rounds):
        # Alternate the order, so that drift hits every side alike.
        order = ["floor", "asyncassets", "fairseq2"]
        if round_ % 2:
            order.reverse()
        for name in order:
            times[name].append(in_fresh_process(name, root))
        log(
            f"round {round_ + 1}: floor {times['floor'][-1]:.3f} s, asyncassets "
            f"{times['asyncassets'][-1]:.3f} s, fairseq2 {times['fairseq2'][-1]:.2f} s"
        )
    # The same again in this one process (the protocol of bench/lookup.py): the heap
    # collected before each load, the interpreter warm (its code specialised, its memory
    # mapped: what a fresh process pays on a first load).
    loop = asyncio.new_event_loop()
    for path in files:
        path.read_bytes()
    warm: dict[str, list[float]] = {"floor": [], "asyncassets": []}
    for round_ in range(args.rounds):
        for name in ("floor", "asyncassets") if round_ % 2 == 0 else ("asyncassets", "floor"):
            if name == "floor":
                warm[name].append(timed(lambda: libyaml_floor(files)))
            else:
                gc.collect()
                elapsed, store = loop.run_until_complete(asyncassets_cold_load(root))
                loop.run_until_complete(store.aclose())
                del store
                warm[name].append(elapsed)

    # fairseq2's reader last in this process (what ruamel leaves alive would skew the others).
    _, load_all = fairseq2_reader()
    warm["fairseq2"] = [timed(lambda: fairseq2_load(files, load_all)) for _ in range(3)]

    # Warm lookups: the store's resolved-card cache warm, as a service's is.
    _, store = loop.run_until_complete(asyncassets_cold_load(root))
    names = list(generated.names)[: args.sample]
    table = {name: {"name": name} for name in names}
    loop.run_until_complete(store_lookups(store, names))
    floor_calls: list[float] = []
    store_calls: list[float] = []
    calls = names * max(1, args.calls // len(names))
    for _ in range(args.rounds):
        floor_calls.append(loop.run_until_complete(dict_lookups(table, calls)))
        store_calls.append(loop.run_until_complete(store_lookups(store, calls)))
    loop.run_until_complete(store.aclose())
    loop.close()

    median = statistics.median
    rows = []
    for label, baseline, target in (
        ("cold load vs libyaml parse floor", "floor", FLOOR_TARGET),
        ("cold load vs fairseq2", "fairseq2", FAIRSEQ2_TARGET),
    ):
        for metric, runs in ((label, times), ("  same, in one warm process", warm)):
            rows.append(
                Row(metric, "s", median(runs[baseline]), median(runs["asyncassets"]), target)
            )
    warm_floor, warm_ours = median(floor_calls) * 1e6, median(store_calls) * 1e6
    rows.append(
        Row("warm retrieve_card vs await + dict", "us/call", warm_floor, warm_ours, WARM_TARGET)
    )
    return {
        "machine": machine_info(),
        "store": {"files": len(files), "cards": len(generated.names), "bytes": size},
        "fairseq2_reader": label,
        "seconds": times,
        "seconds_one_process": warm,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median)")
    parser.add_argument("--sample", type=int, default=1000, help="names in the warm sample")
    parser.add_argument("--calls", type=int, default=100_000, help="warm calls per round")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--child", nargs=2, metavar=("CONTENDER", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(child(args.child[0], Path(args.child[1])))
        return 0
    with tempfile.TemporaryDirectory(prefix="asyncassets-reading-") as tmp:
        result = run(args, Path(tmp))
    if args.json:
        result["rows"] = [row.as_json() for row in result["rows"]]
        print(json.dumps(result, indent=2))
        return 0
    info = result["machine"]
    print(
        f"\nmachine: {info['usable_cores']} usable cores, {info['python']}, PyYAML "
        f"{info['pyyaml']} (libyaml {'yes' if info['libyaml'] else 'NO'}); fairseq2 = "
        f"{result['fairseq2_reader']}\n"
    )
    print_table(result["rows"])
    print(
        "\nratio = baseline / asyncassets (higher is better for asyncassets). Targets: cold "
        "load <= 0.35x the libyaml floor (>= 2.86x), >= 40x fairseq2; warm lookups within "
        "2x an await + dict lookup (>= 0.5x)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
