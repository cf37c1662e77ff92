"""Distributed prefetch with real torch.distributed: gloo on CPU, one process per rank on
127.0.0.1, an aiohttp server that counts the bytes it sends.

The scenarios of one layout run in one job (``distributed_worker.py``), because torch's import
and the rendezvous cost seconds per process on two cores; each test reads its scenario's
results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import StaticServer, free_port

from asyncassets.distributed import (
    DistributedPrefetchError,
    find_domains,
    init_from_environment,
)

HERE = Path(__file__).parent
WORKER = HERE / "distributed_worker.py"
WORLD = 4
SIZES = {"a.bin": 3 * 2**20 + 5, "b.bin": 2**20, "c.bin": 77_777, "d.bin": 2 * 2**20}
JOB_TIMEOUT = 240


def _payload(name: str, size: int) -> bytes:
    return (name.encode() * (size // len(name) + 1))[:size]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticServer]:
    folder = tmp_path_factory.mktemp("objects")
    for layout in ("shared", "nodes", "cards", "fail"):
        for name, size in SIZES.items():
            (folder / f"{layout}-{name}").write_bytes(_payload(name, size))
    server = StaticServer(folder).start()
    try:
        yield server
    finally:
        server.stop()


def _rank_env(rank: int, port: int, local_rank: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "MASTER_", "LOCAL_RANK"))
    }
    env.update(
        RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_RANK=str(local_rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        ASYNCASSETS_NO_PROGRESS="1",
        PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
    )
    return env


def _run_job(argv_of: Any, local_rank_of: Any) -> list[subprocess.CompletedProcess[str]]:
    port = free_port()
    procs = [
        subprocess.Popen(
            argv_of(rank),
            env=_rank_env(rank, port, local_rank_of(rank)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(WORLD)
    ]
    done = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=JOB_TIMEOUT)
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return done


@pytest.fixture(scope="module")
def job(server: StaticServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One 4-rank job running every scenario; results per scenario and rank, plus the
    bytes the server sent for each object."""
    work = tmp_path_factory.mktemp("job")
    shared = str(work / "shared-cache")
    node = [str(work / "node-a-cache"), str(work / "node-b-cache")]
    two_nodes = [node[0], node[0], node[1], node[1]]
    cards = work / "cards"
    cards.mkdir()
    (cards / "models.yaml").write_text(
        "".join(
            f"---\nname: model_{n[0]}\nmodel_family: test\ncheckpoint: {server.url('cards-' + n)}\n"
            for n in SIZES
        )
    )

    def urls(layout: str, names: list[str]) -> list[str]:
        return [server.url(f"{layout}-{n}") for n in names]

    plan = [
        {"name": "shared", "cache_dirs": [shared] * WORLD, "items": urls("shared", list(SIZES))},
        {"name": "nodes", "cache_dirs": two_nodes, "items": urls("nodes", list(SIZES))},
        {
            "name": "cards",
            "cache_dirs": two_nodes,
            "store": str(cards),
            "items": ["model_a", "model_b", urls("cards", ["c.bin"])[0], "model_d"],
        },
        {
            "name": "missing",
            "cache_dirs": two_nodes,
            "items": [*urls("fail", ["a.bin", "b.bin"]), server.url("no-such-object.bin")],
        },
        {
            "name": "different-items",
            "cache_dirs": two_nodes,
            "items_per_rank": [urls("fail", ["c.bin"])] * 3 + [urls("fail", ["d.bin"])],
        },
        {"name": "empty", "cache_dirs": two_nodes, "items": []},
    ]
    plan_file = work / "plan.json"
    plan_file.write_text(json.dumps(plan))
    out = work / "out"
    out.mkdir()
    server.stats.reset()
    finished = _run_job(
        lambda rank: [sys.executable, str(WORKER), str(plan_file), str(out)],
        lambda rank: rank % 2,
    )
    for proc in finished:
        assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]
    return {
        "results": results,
        "bytes": dict(server.stats.body_bytes),
        "node": node,
        "shared": shared,
    }


def _paths(job: dict[str, Any], scenario: str) -> list[list[str]]:
    ranks = [r[scenario] for r in job["results"]]
    for rank, result in enumerate(ranks):
        assert "paths" in result, f"rank {rank}: {result}"
    return [r["paths"] for r in ranks]


def test_a_shared_cache_folder_downloads_each_object_once(job: dict[str, Any]) -> None:
    paths = _paths(job, "shared")
    assert all(p == paths[0] for p in paths)  # one folder: the same paths everywhere
    for name, size in SIZES.items():
        assert job["bytes"][f"/shared-{name}"] == size  # exactly once for the job
    for path, (name, size) in zip(paths[0], SIZES.items(), strict=True):
        assert Path(path).read_bytes() == _payload(name, size)
        assert Path(path).is_relative_to(job["shared"])


def test_node_local_caches_download_each_object_once_per_node(job: dict[str, Any]) -> None:
    paths = _paths(job, "nodes")
    for name, size in SIZES.items():
        assert job["bytes"][f"/nodes-{name}"] == 2 * size  # once per node
    for rank, ranked in enumerate(paths):
        folder = job["node"][rank // 2]
        for path, (name, size) in zip(ranked, SIZES.items(), strict=True):
            assert Path(path).is_relative_to(folder)  # every rank has its own node's copy
            assert Path(path).read_bytes() == _payload(name, size)


def test_card_names_and_uris_mixed(job: dict[str, Any]) -> None:
    paths = _paths(job, "cards")
    for name, size in SIZES.items():
        assert job["bytes"][f"/cards-{name}"] == 2 * size
    for ranked in paths:
        assert [Path(p).read_bytes() for p in ranked] == [_payload(n, s) for n, s in SIZES.items()]


def test_a_failed_download_makes_every_rank_raise_the_same_error_promptly(
    job: dict[str, Any],
) -> None:
    results = [r["missing"] for r in job["results"]]
    assert all(r.get("error") == "AssetDownloadError" for r in results), results
    messages = {r["message"] for r in results}
    assert len(messages) == 1
    (message,) = messages
    assert "no-such-object.bin" in message and ("404" in message or "not found" in message)
    assert message.startswith("rank ")  # names the rank (and host) that failed


def test_ranks_given_different_items_all_refuse(job: dict[str, Any]) -> None:
    results = [r["different-items"] for r in job["results"]]
    assert all(r.get("error") == "DistributedPrefetchError" for r in results), results
    assert all("different items" in r["message"] for r in results)
    assert job["bytes"].get("/fail-c.bin", 0) == 0 and job["bytes"].get("/fail-d.bin", 0) == 0


def test_no_items_is_no_work(job: dict[str, Any]) -> None:
    assert [r["empty"] for r in job["results"]] == [
        {"paths": [], "elapsed": r["empty"]["elapsed"]} for r in job["results"]
    ]


def test_a_rank_that_dies_makes_the_others_raise_not_hang(
    server: StaticServer, tmp_path: Path
) -> None:
    plan = [
        {
            "name": "dies",
            "cache_dirs": [str(tmp_path / "cache")] * WORLD,
            "items": [server.url("shared-a.bin")],
            "die_rank": 3,
            "step_timeout": 10.0,
        }
    ]
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    out = tmp_path / "out"
    out.mkdir()
    finished = _run_job(
        lambda rank: [sys.executable, str(WORKER), str(tmp_path / "plan.json"), str(out)],
        lambda rank: rank,
    )
    assert finished[3].returncode == 3
    for rank in range(3):
        assert finished[rank].returncode == 0, finished[rank].stderr[-3000:]
        result = json.loads((out / f"rank{rank}.json").read_text())["dies"]
        assert result["error"] == "DistributedPrefetchError", result
        assert f"rank {rank}" in result["message"]


# -- the CLI under torchrun's variables -------------------------------------------------------


def test_cli_prefetch_distributed_under_torchrun_variables(
    server: StaticServer, tmp_path: Path
) -> None:
    (server.folder / "cli-x.bin").write_bytes(_payload("x", 2**20))
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "m.yaml").write_text(
        f"name: cli_model\nmodel_family: test\ncheckpoint: {server.url('cli-x.bin')}\n"
    )
    caches = [tmp_path / "node-a", tmp_path / "node-a", tmp_path / "node-b", tmp_path / "node-b"]
    server.stats.reset()
    finished = _run_job(
        lambda rank: [
            sys.executable,
            "-m",
            "asyncassets",
            "--store",
            str(cards),
            "--cache-dir",
            str(caches[rank]),
            "prefetch",
            "--distributed",
            "cli_model",
        ],
        lambda rank: rank % 2,
    )
    assert [p.returncode for p in finished] == [0] * WORLD, [p.stderr for p in finished]
    assert server.stats.bytes_for("/cli-x.bin") == 2 * 2**20  # two nodes, once each
    # One line per item on each node's first rank; nothing on the others.
    for rank, proc in enumerate(finished):
        if rank % 2 == 0:
            name, path = proc.stdout.strip().split("\t")
            assert name == "cli_model" and Path(path).is_relative_to(caches[rank])
        else:
            assert proc.stdout == ""


def test_cli_prefetch_distributed_without_a_job_says_what_it_needs(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "MASTER_", "LOCAL_RANK"))
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "asyncassets",
            "--store",
            str(tmp_path),
            "prefetch",
            "--distributed",
            "x",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1
    assert "RANK" in err and "WORLD_SIZE" in err and "MASTER_ADDR" in err and "torchrun" in err


# -- pure parts -------------------------------------------------------------------------------


def test_domains_from_sightings() -> None:
    assert find_domains([[0, 1], [0, 1], [2, 3], [2, 3]]) == [0, 0, 2, 2]
    assert find_domains([[0], [1], [2]]) == [0, 1, 2]
    # A marker one side does not see yet still joins the two ranks.
    assert find_domains([[0, 2], [1], [2]]) == [0, 1, 0]
    assert find_domains([[0, 1, 2, 3]] * 4) == [0, 0, 0, 0]


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, "RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT"),
        ({"RANK": "0", "WORLD_SIZE": "2"}, "MASTER_ADDR, MASTER_PORT"),
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"}, "MASTER_ADDR"),
    ],
)
def test_missing_job_variables_are_named(env: dict[str, str], missing: str) -> None:
    with pytest.raises(DistributedPrefetchError) as info:
        init_from_environment(env)
    assert f"missing: {missing}" in str(info.value)


def test_slurm_node_lists() -> None:
    from asyncassets.distributed import _first_slurm_host

    assert _first_slurm_host("node[01-04,07],gpu3") == "node01"
    assert _first_slurm_host("gpu3,node[1-2]") == "gpu3"
    assert _first_slurm_host("single") == "single"
