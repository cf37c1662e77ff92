"""Reachability benchmark: ``asyncassets check --reachable`` over the main corpus's Hub repos.

The fairseq2 card corpus (``main-027bdeb``, read in place from ``../shared/corpus`` or
``$ASYNCASSETS_CORPUS_DIR``) names 34 Hub repos in 68 ``checkpoint`` and ``tokenizer``
fields of its resolved cards (issue 21 counted them so). The Hub-protocol server of
``tests/hub_server.py`` (the one the real huggingface_hub client is tested against) serves
each repo with files that fairseq2's patterns choose (``model.safetensors`` for
``*.safetensors*``/``*.pt``, ``tokenizer.json`` and ``tokenizer_config.json`` for
``tokenizer*.json``), in threads of this process, behind the delay proxy of
``bench/_harness.py`` (``--delay-ms`` per request, default 20 ms, in a process of its own).

The corpus also names ``https://`` checkpoints on the internet (dl.fbaipublicfiles.com,
tinyurl.com, ...), which a benchmark must not ask. The store checked is therefore a copy of
the corpus in a temporary folder (never in the repository) in which every ``checkpoint``,
``tokenizer`` and ``data`` line whose value is not a Hub reference is commented out (line
numbers kept); nothing else changes. The benchmark stops, before timing, if that copy does
not plan exactly the Hub fields it counted, or plans any other remote reference.

Contenders, each a fresh ``python`` process (``$HF_ENDPOINT`` the proxy; a scratch
Hugging Face cache, no token; ``$ASYNCASSETS_CACHE_DIR`` shared, primed by one untimed run
of each), in alternating rounds (``--rounds``, at least 3; the order reversed each round):

- ``asyncassets --store COPY check --reachable --format json``, as CI runs it; its wall
  time (interpreter start-up included) is the figure of the goal;
- the library at its default concurrency: ``check_reachable(store, await
  store.card_index())``, the reachability step timed inside the child (huggingface_hub,
  which the first probe imports, imported before the clock starts);
- sequential: the same call with ``concurrency=1``, the same probes one at a time (each
  distinct reference's ``probe``, one after the other).

Every run must find exactly the corpus's one known problem (``librispeech_asr_100h``'s
missing base) and no unreachable reference. The Hub's API requests are counted per run on
the server.

Goal (issue 21): ``check --reachable`` under 2 s, because the requests are concurrent;
the sequential time beside it.

Run: ``python bench/reachable.py [--rounds 3] [--delay-ms 20] [--json]``. The exit code
is 0 whatever the figures: benchmarks report, they do not gate.
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
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    REPO,
    alternating,
    byte_compile,
    machine_info,
    print_columns,
    proxy_process,
)
from corpus import corpus_dir

from asyncassets.reachability import DEFAULT_CONCURRENCY

#: Issue 21's goal for ``check --reachable`` over the corpus, in seconds.
GOAL_S = 2.0
MIN_ROUNDS = 3
#: What issue 21 counted in the main corpus.
EXPECTED_FIELDS, EXPECTED_REPOS = 68, 34
HUB_PREFIXES = ("hg://", "hf://")
#: A top-level reference field of a card file (the corpus writes each on one line).
REFERENCE_LINE = re.compile(r"^(checkpoint|tokenizer|data):\s*(?P<value>.*)$")

#: The library contenders: the store checked, then the reachability step timed alone.
LIBRARY = """
import json, sys, time
import anyio
from asyncassets import AssetStore, FileAssetMetadataProvider
from asyncassets.reachability import check_reachable
# imported before the clock starts (a probe imports them on first use), for both contenders
import asyncassets.cache.probing, huggingface_hub
from huggingface_hub import HfApi

async def main(folder, concurrency):
    async with AssetStore([FileAssetMetadataProvider(folder)]) as store:
        problems = await store.check()
        index = await store.card_index()
        started = time.perf_counter()
        report = await check_reachable(store, index, concurrency=concurrency)
        elapsed = time.perf_counter() - started
    problems += report.problems
    return {
        "reach_s": elapsed,
        "checked": report.checked,
        "problems": [p.to_dict() for p in problems],
    }

print(json.dumps(anyio.run(main, sys.argv[1], int(sys.argv[2]))))
"""


@dataclass
class Contender:
    key: str
    label: str
    argv: list[str]
    walls: list[float] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    checked: int | None = None

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def step(self) -> float | None:
        return statistics.median(self.steps) if self.steps else None


# -- the store and the Hub ----------------------------------------------------------------------


def copy_without_other_references(corpus: Path, target: Path) -> int:
    """``corpus`` into ``target``, every reference line that is not a Hub reference
    commented out; the number of lines commented out."""
    shutil.copytree(corpus, target)
    dropped = 0
    for path in sorted(target.rglob("*.yaml")):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        for number, line in enumerate(lines):
            match = REFERENCE_LINE.match(line)
            value = match["value"].strip().strip("\"'") if match else ""
            if match and not value.startswith(HUB_PREFIXES):
                lines[number] = "# (bench: not a Hub reference) " + line
                dropped += 1
        path.write_text("".join(lines), encoding="utf-8")
    return dropped


def hub_fields(folder: Path) -> list[tuple[str, str, str]]:
    """``(card, field, uri)`` of every reference field of every resolved card (plain and
    per env), planned as ``check --reachable`` plans it; stops on a remote reference that is
    not a Hub one (the benchmark never leaves 127.0.0.1)."""
    import anyio

    from asyncassets import AssetCardError, AssetStore, FileAssetMetadataProvider
    from asyncassets.planning import plan_fetch
    from asyncassets.reachability import REACHABLE_FIELDS

    async def collect() -> list[tuple[str, str, str]]:
        found = []
        async with AssetStore([FileAssetMetadataProvider(folder)]) as store:
            for name in sorted(await store.asset_names()):
                try:
                    card = await store.retrieve_card(name)
                except AssetCardError:
                    continue
                for each in REACHABLE_FIELDS:
                    if not card.has_field(each):
                        continue
                    try:
                        uri = plan_fetch(card, each).uri
                    except AssetCardError:
                        continue
                    if "://" in uri and not uri.startswith(HUB_PREFIXES):
                        raise SystemExit(f"{name}.{each} = {uri}: not a Hub reference")
                    found.append((name, each, uri))
        return found

    return anyio.run(collect)


def start_hub(repos: list[str]) -> Any:
    """The Hub-protocol server (threads of this process) serving each repo."""
    sys.path.insert(0, str(REPO / "tests"))
    from hub_server import HubServer

    server = HubServer().start()
    for repo in repos:
        server.add_repo(
            repo,
            {
                "config.json": b'{"model_type": "bench"}',
                "model.safetensors": repo.encode() * 64,
                "tokenizer.json": b'{"version": "1.0"}',
                "tokenizer_config.json": b"{}",
                "README.md": b"# " + repo.encode(),
            },
        )
    return server


def child_env(work: Path, endpoint: str) -> dict[str, str]:
    """The children's environment: the proxied Hub, no token, scratch caches, no proxies."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "HF_TOKEN")
        and not k.startswith(("ASYNCASSETS_", "HF_", "SLURM_"))
    }
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_CACHE=str(work / "hf-cache"),
        HF_TOKEN_PATH=str(work / "no-token"),
        ASYNCASSETS_CACHE_DIR=str(work / "cache"),
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


# -- runs ------------------------------------------------------------------------------------


def run_once(contender: Contender, env: dict[str, str], hub: Any) -> tuple[float, dict[str, Any]]:
    """One run in a fresh process: its wall time and what it printed (problems checked)."""
    before = hub.count(host="hub")
    started = time.perf_counter()
    done = subprocess.run(contender.argv, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    requests = hub.count(host="hub") - before
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise SystemExit(
            f"{contender.label} printed no JSON ({done.returncode}):\n{done.stderr[-4000:]}"
        ) from None
    if isinstance(data, list):  # the CLI: the problem list
        data = {"problems": data}
    kinds = sorted((p["kind"], p["card"]) for p in data["problems"])
    if kinds != [("missing-base", "librispeech_asr_100h@")] or done.returncode not in (0, 1):
        raise SystemExit(
            f"{contender.label}: expected only the corpus's missing base, got {kinds} "
            f"(exit {done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
        )
    data["requests"] = requests
    return wall, data


def measure(contenders: list[Contender], env: dict[str, str], hub: Any, rounds: int) -> None:
    for contender in contenders:  # untimed: the index written, the imports in the OS cache
        run_once(contender, env, hub)
    for _, contender in alternating(contenders, rounds):
        wall, data = run_once(contender, env, hub)
        contender.walls.append(wall)
        contender.requests.append(data["requests"])
        if "reach_s" in data:
            contender.steps.append(data["reach_s"])
            contender.checked = data["checked"]


# -- report ----------------------------------------------------------------------------------


def report(
    contenders: list[Contender], args: argparse.Namespace, facts: dict[str, Any]
) -> dict[str, Any]:
    cli, concurrent, sequential = contenders
    assert concurrent.step is not None and sequential.step is not None
    figures = {
        **facts,
        "delay_ms": args.delay_ms,
        "rounds": args.rounds,
        "goal_s": GOAL_S,
        "contenders": {
            c.key: {
                "label": c.label,
                "wall_median_s": c.wall,
                "walls_s": c.walls,
                "reach_median_s": c.step,
                "reach_s": c.steps,
                "hub_requests": c.requests,
            }
            for c in contenders
        },
        "sequential_over_concurrent_reach": sequential.step / concurrent.step,
        "sequential_over_concurrent_wall": sequential.wall / concurrent.wall,
        "goal_met": cli.wall < GOAL_S,
        "machine": machine_info(),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return figures
    print(
        f"check --reachable: {facts['fields']} Hub fields of the main corpus's resolved cards, "
        f"{facts['repos']} repos, {facts['probes']} distinct references probed; the Hub "
        f"behind a {args.delay_ms:g} ms delay proxy; medians of {args.rounds} alternating "
        "rounds, each run a fresh process"
    )
    print()
    rows = []
    for c in contenders:
        step = "" if c.step is None else f"{c.step:.3f}"
        requests = "/".join(str(n) for n in sorted(set(c.requests)))
        rows.append([c.label, f"{c.wall:.3f}", step, requests])
    print_columns(["contender", "wall s", "reach step s", "Hub requests/run"], rows)
    print()
    print(
        f"sequential / concurrent: {figures['sequential_over_concurrent_reach']:.1f}x on the "
        f"reachability step, {figures['sequential_over_concurrent_wall']:.2f}x on the process"
    )
    if max(cli.requests) > facts["repos"]:
        print(
            f"note: {max(cli.requests)} Hub requests for {facts['repos']} repos: a repo named "
            "as checkpoint and as tokenizer is asked once per choice of its files"
        )
    state = "met" if figures["goal_met"] else "MISSED"
    print(f"goal: check --reachable under {GOAL_S:g} s: [{state}] {cli.wall:.3f} s (CLI, wall)")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS, help="at least 3")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="per Hub request")
    parser.add_argument("--corpus", type=Path, default=corpus_dir() / "main-027bdeb")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    args.rounds = max(args.rounds, MIN_ROUNDS)
    if not args.corpus.is_dir():
        raise SystemExit(f"no corpus at {args.corpus} (set ASYNCASSETS_CORPUS_DIR)")
    byte_compile()

    with tempfile.TemporaryDirectory(prefix="bench-reachable-") as scratch:
        work = Path(scratch)
        store = work / "cards"
        dropped = copy_without_other_references(args.corpus, store)
        fields = hub_fields(store)
        repos = sorted({uri.split("://", 1)[1] for _, _, uri in fields})
        facts = {
            "fields": len(fields),
            "repos": len(repos),
            "probes": len({(uri, each) for _, each, uri in fields}),
            "lines_commented_out": dropped,
        }
        if (len(fields), len(repos)) != (EXPECTED_FIELDS, EXPECTED_REPOS):
            print(
                f"note: the corpus plans {len(fields)} Hub fields in {len(repos)} repos "
                f"(issue 21 counted {EXPECTED_FIELDS} in {EXPECTED_REPOS})",
                file=sys.stderr,
            )
        hub = start_hub(repos)
        try:
            with proxy_process(hub.url, delay=args.delay_ms / 1000, bandwidth=0) as endpoint:
                env = child_env(work, endpoint)
                python = [sys.executable]
                library = [*python, "-c", textwrap.dedent(LIBRARY), str(store)]
                check = ["--store", str(store), "check", "--reachable", "--format", "json"]
                contenders = [
                    Contender(
                        "cli",
                        "asyncassets check --reachable (CLI)",
                        [*python, "-m", "asyncassets", *check],
                    ),
                    Contender(
                        "library",
                        f"check_reachable, {DEFAULT_CONCURRENCY} at once",
                        [*library, str(DEFAULT_CONCURRENCY)],
                    ),
                    Contender("sequential", "sequential (one probe at a time)", [*library, "1"]),
                ]
                measure(contenders, env, hub, args.rounds)
        finally:
            hub.stop()
    facts["probes"] = contenders[1].checked or facts["probes"]
    report(contenders, args, facts)


if __name__ == "__main__":
    main()
