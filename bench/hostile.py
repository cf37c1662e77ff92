"""Hostile-input benchmark: what one bad card file costs, against plain PyYAML.

For each hostile case (deep nesting, alias bombs, huge scalars and files, many documents,
values Python refuses, non-regular files), measures side by side, each in a subprocess of
its own with a wall-clock timeout of 10 s and an address-space cap of 2 GiB
(``RLIMIT_AS``), so that a bomb cannot take the machine down:

- baseline: what fairseq2 does with a card file, ``yaml.load_all`` with PyYAML's C
  ``CSafeLoader`` on the opened file (a folder case walks the folder and loads each
  ``*.yaml``);
- asyncassets: ``AssetStore([FileAssetMetadataProvider(folder)])`` on a folder holding a
  good card (``name: good``) and the hostile file: ``retrieve_card("good")`` then
  ``check()`` (the good card served, the problem reported).

Times are measured inside the child, after imports (``timeout`` when the parent killed it);
memory is the growth of the child's peak RSS over what it had after imports
(``ru_maxrss``). ``MemoryError`` is the 2 GiB cap hit. The issue's budget: every hostile file
is handled in under a second with bounded memory; the worst asyncassets case is marked.

Run: ``python bench/hostile.py [--only ID ...] [--json]``. The exit code is always 0:
benchmarks report, they do not gate.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from _harness import machine_info, print_columns

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hostile_files import (
    billion_laughs,
    block_mappings,
    make_dev_zero_link,
    make_fifo,
    make_looping_folder,
    make_socket,
    make_symlink_loop,
    merge_bomb,
)

#: Seconds a child may run before it is killed and reported as ``timeout``.
TIMEOUT = 10.0
#: Address space of a child (RLIMIT_AS).
MEMORY_CAP = 2 * 2**30
#: The issue's budget for one hostile file (good card served, problem reported).
BUDGET_SECONDS = 1.0
GOOD = b"name: good\nmodel_family: toy\n"


# -- hostile contents (the cases of tests/test_hostile_cards.py) --------------------------------


CONTENTS: dict[str, Callable[[], bytes]] = {
    "500 nested [": lambda: b"name: hostile\nx: " + b"[" * 500 + b"]" * 500 + b"\n",
    "500 nested {": lambda: b"name: hostile\nx: " + b"{a: " * 500 + b"1" + b"}" * 500 + b"\n",
    "2,000 nested [": lambda: b"name: hostile\nx: " + b"[" * 2000 + b"]" * 2000 + b"\n",
    "500 nested block mappings": lambda: block_mappings(500),
    "500 nested block - - -": lambda: b"name: hostile\nx:\n  " + b"- " * 500 + b"lol\n",
    "billion laughs, 9 levels": lambda: billion_laughs(9),
    "billion laughs, 20 levels": lambda: billion_laughs(20),
    "alias bomb through <<": merge_bomb,
    "7 MiB scalar": lambda: b"name: big\nvalue: " + b"v" * (7 * 2**20) + b"\n",
    "1 MiB explicit key": lambda: b"name: big\n? " + b"k" * 2**20 + b"\n: v\n",
    "file over 8 MiB": lambda: b"name: hostile\npad: " + b"x" * (8 * 2**20) + b"\n",
    "100,000 empty documents": lambda: b"---\n" * 100_000,
    "200,000 empty documents": lambda: b"---\n" * 200_000,
    "100,000 tiny card documents": lambda: b"".join(
        b"---\nname: c%d\n" % i for i in range(100_000)
    ),
    "500,000-item flow list": lambda: b"name: hostile\nx: [" + b"1," * 500_000 + b"1]\n",
    "5,000-digit int": lambda: b"name: hostile\nx: " + b"7" * 5000 + b"\n",
    "impossible timestamp": lambda: b"name: hostile\nreleased: 2001-13-45\n",
    "python tag": lambda: b"name: hostile\nx: !!python/object/apply:os.system ['true']\n",
    "recursive alias": lambda: b"name: hostile\nx: &a [*a]\n",
    "list as mapping key": lambda: b"name: hostile\n? [a, b]\n: 1\n",
    "invalid UTF-8": lambda: b"name: hostile\nx: caf\xc3\x28\xff\n",
    "UTF-16 with BOM": lambda: "name: wide\nmodel_family: toy\n".encode("utf-16"),
    "NUL bytes": lambda: b"name: hostile\nx: a\x00b\n",
}


SPECIAL: dict[str, tuple[str, Callable[[Path], None]]] = {
    "FIFO": ("x.yaml", make_fifo),
    "symlink to /dev/zero": ("zero.yaml", make_dev_zero_link),
    "socket": ("socket.yaml", make_socket),
    "symlink loop": ("loop.yaml", make_symlink_loop),
    "symlink loop folder": ("loops", make_looping_folder),
}
#: The control row: the good card alone.
CONTROL = "(none: good card only)"


def write_case(root: Path, case: str) -> tuple[Path, Path]:
    """(folder holding good.yaml and the case, path of the case)."""
    folder = root / f"case-{len(list(root.iterdir())):02d}"
    folder.mkdir()
    (folder / "good.yaml").write_bytes(GOOD)
    if case == CONTROL:
        return folder, folder / "good.yaml"
    if case in SPECIAL:
        name, make = SPECIAL[case]
        path = folder / name
        make(path)
        return folder, path
    path = folder / "hostile.yaml"
    path.write_bytes(CONTENTS[case]())
    return folder, path


# -- children -----------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measured(work: Callable[[], str]) -> dict[str, Any]:
    """Outcome, seconds and peak-RSS growth of ``work()``; an exception is an outcome too
    (for the baseline, a ``ValueError`` is how PyYAML rejects a file)."""
    before = peak_rss_mib()
    start = time.perf_counter()
    try:
        outcome = work()
    except MemoryError:
        outcome = "MemoryError"
    except Exception as exc:
        outcome = f"raised {type(exc).__name__}"
    return {
        "outcome": outcome,
        "seconds": time.perf_counter() - start,
        "peak_mib": peak_rss_mib() - before,
    }


def child_baseline(path: str) -> dict[str, Any]:
    """fairseq2's load of a card file: open it, ``yaml.load_all`` with the C loader."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    def load() -> str:
        files = [path]
        if os.path.isdir(path):
            files = [
                os.path.join(folder, name)
                for folder, _, names in os.walk(path)
                for name in sorted(names)
                if name.endswith((".yaml", ".yml"))
            ]
        documents = 0
        for file in files:
            with open(file, encoding="utf-8") as f:
                documents += sum(1 for _ in yaml.load_all(f, Loader=loader))
        return f"loaded {documents} doc(s)"

    return measured(load)


def child_asyncassets(folder: str, path: str) -> dict[str, Any]:
    """The store on the folder: the good card served, the problems reported."""
    import asyncio

    from asyncassets import AssetStore, FileAssetMetadataProvider

    url = "file://" + path

    def about(file: str | None) -> bool:
        return file == url or (file or "").startswith(url + "/")

    async def run() -> str:
        store = AssetStore([FileAssetMetadataProvider(folder)])
        card = await store.retrieve_card("good")
        problems = await store.check()
        kinds = sorted({p.kind for p in problems if about(p.file)})
        others = [p for p in problems if not about(p.file)]
        names = len(await store.asset_names())
        await store.aclose()
        outcome = f"{card.name} served" + (f", {'+'.join(kinds)}" if kinds else "")
        if names > 1:
            outcome += f", {names - 1} other card(s)"
        if others:
            outcome += f", {len(others)} other problem(s)"
        return outcome

    return measured(lambda: asyncio.run(run()))


def child_main(argv: list[str]) -> int:
    kind, *paths = argv
    result = child_baseline(*paths) if kind == "baseline" else child_asyncassets(*paths)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_child(*args: str) -> dict[str, Any]:
    """Run this file as a child (``--child ...``) under the time and memory caps."""
    command = [sys.executable, __file__, "--child", *args]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            preexec_fn=limit_memory,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"outcome": "timeout", "seconds": None}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        if done.returncode < 0:
            return {"outcome": f"killed by signal {-done.returncode}"}
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        if "MemoryError" in tail:
            return {"outcome": "MemoryError"}
        return {"outcome": f"crashed: {tail[:40]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# -- table --------------------------------------------------------------------------------------


@dataclass
class Row:
    case: str
    size: int | None
    baseline: dict[str, Any]
    asyncassets: dict[str, Any]

    @property
    def ours(self) -> float | None:
        seconds: float | None = self.asyncassets.get("seconds")
        return seconds

    @property
    def ratio(self) -> str:
        ours = self.ours
        if not ours:
            return "-"
        if self.baseline["outcome"] == "timeout":
            return f">{TIMEOUT / ours:,.0f}x"
        base = self.baseline.get("seconds")
        return f"{base / ours:,.2f}x" if base is not None else "-"

    def as_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "bytes": self.size,
            "baseline": self.baseline,
            "asyncassets": self.asyncassets,
            "ratio": self.ratio,
        }


def seconds(result: dict[str, Any]) -> str:
    value = result.get("seconds")
    return f"{value:.3f}" if value is not None else "-"


def peak(result: dict[str, Any]) -> str:
    value = result.get("peak_mib")
    return f"{value:,.1f}" if value is not None else "-"


def size_text(size: int | None) -> str:
    if size is None:
        return "-"
    if size >= 2**20:
        return f"{size / 2**20:.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.0f} KiB"
    return f"{size} B"


def print_table(rows: list[Row]) -> Row | None:
    """Print the table; returns the worst asyncassets row (marked in the table)."""
    timed = [row for row in rows if row.ours is not None and row.case != CONTROL]
    worst = max(timed, key=lambda row: row.ours or 0.0, default=None)
    header = (
        "case",
        "size",
        "baseline: yaml C loader",
        "s",
        "MiB",
        "asyncassets: store",
        "s",
        "MiB",
        "ratio",
        "",
    )
    lines = [
        (
            row.case,
            size_text(row.size),
            row.baseline["outcome"],
            seconds(row.baseline),
            peak(row.baseline),
            row.asyncassets["outcome"],
            seconds(row.asyncassets),
            peak(row.asyncassets),
            row.ratio,
            "<- worst" if row is worst else "",
        )
        for row in rows
    ]
    print_columns(header, lines, left=frozenset({0, 2, 5, 9}))
    return worst


# -- main ---------------------------------------------------------------------------------------


def run(cases: list[str], root: Path, log: Callable[[str], None]) -> list[Row]:
    rows = []
    for case in cases:
        folder, path = write_case(root, case)
        size = path.stat().st_size if path.is_file() and not path.is_symlink() else None
        baseline = run_child("baseline", os.fspath(path))
        ours = run_child("asyncassets", os.fspath(folder), os.fspath(path))
        log(f"  {case}: baseline {baseline['outcome']}, asyncassets {ours['outcome']}")
        rows.append(Row(case, size, baseline, ours))
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(argv[1:])
    every = [CONTROL, *CONTENTS, *SPECIAL]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=every, metavar="CASE", help="these cases")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    cases = args.only or every
    log: Callable[[str], None] = (lambda _: None) if args.json else print

    log(f"{len(cases)} cases, each in two subprocesses ({TIMEOUT:g} s, {MEMORY_CAP >> 30} GiB cap)")
    with tempfile.TemporaryDirectory(prefix="aa-hostile-") as tmp:
        rows = run(cases, Path(tmp), log)

    if args.json:
        result = {"machine": machine_info(), "rows": [row.as_json() for row in rows]}
        print(json.dumps(result, indent=2))
        return 0
    info = machine_info()
    print(
        f"\nmachine: {info['cpu_count']} CPUs, {info['python']}, PyYAML {info['pyyaml']}, "
        f"libyaml {'available' if info['libyaml'] else 'NOT available'}, {info['platform']}\n"
    )
    worst = print_table(rows)
    print(
        "\nbaseline = open + yaml.load_all(CSafeLoader) of the hostile file alone (fairseq2's "
        "read);\nasyncassets = load of the folder (good card + hostile file), retrieve_card "
        "and check (the control row is its floor: listing, thread hops, the good card)."
        "\ns: wall time in the child after imports; MiB: growth of its peak RSS; "
        "ratio = baseline / asyncassets.\nPyYAML shares aliased values, so its load of an "
        "alias bomb is cheap: the bomb goes off in whoever walks the value (json.dumps, "
        "a copy without a memo). Benchmarks report; they never fail (exit 0)."
    )
    if worst is not None and worst.ours is not None:
        verdict = "PASS" if worst.ours < BUDGET_SECONDS else "MISS"
        print(
            f"worst asyncassets case: {worst.case}, {worst.ours:.3f} s, "
            f"{peak(worst.asyncassets)} MiB (budget {BUDGET_SECONDS:g} s: {verdict})"
        )
    failed = [row.case for row in rows if row.ours is None]
    if failed:
        print(f"asyncassets did not finish: {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
