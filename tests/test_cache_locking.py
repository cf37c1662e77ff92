"""Locks only save bytes: with locks off (or lying), many processes fetching one URI still
publish one correct entry and never hand out a partial file; a published path stays
readable while newer versions are published."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)
from fetch_children import start_child
from servers import Script, ScriptedServer

from asyncassets.cache import CheckpointCache

PART = 128 * 1024


def run_children(
    root: Path, url: str, tmp_path: Path, count: int, env: dict[str, str]
) -> list[str]:
    go = tmp_path / f"go-{uuid.uuid4().hex[:6]}"
    children = [start_child(root, url, go, str(i), PART, env) for i in range(count)]
    deadline = time.monotonic() + 60
    while not all(Path(f"{go}.{i}").exists() for i in range(count)):
        assert time.monotonic() < deadline, "children did not start"
        time.sleep(0.02)
    go.touch()
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        outputs.append(out.strip())
    return outputs


def test_without_locks_four_processes_publish_one_correct_entry(
    tmp_path: Path, scripted_http_server: ScriptedServer
) -> None:
    payload = os.urandom(12 * PART + 5)
    name = f"nolock-{uuid.uuid4().hex[:6]}.bin"
    url = scripted_http_server.put(name, payload, Script(rate=2e6))
    root = tmp_path / "cache"
    outputs = run_children(root, url, tmp_path, 4, {"ASYNCASSETS_NO_LOCKS": "1"})
    for path in outputs:
        assert Path(path).read_bytes() == payload  # every path handed out is complete
        assert "partial-" not in path
    [entry] = CheckpointCache(root).entries()
    assert entry.complete and entry.path is not None
    assert entry.path.read_bytes() == payload
    assert len(list(root.rglob("entry.json"))) == 1


def test_with_locks_that_lie_twenty_processes_publish_one_entry_from_one_download(
    tmp_path: Path, scripted_http_server: ScriptedServer
) -> None:
    # Every lock call succeeds for everyone (each process believes it holds the entry):
    # only the leases keep writers apart. Slow enough that the downloads overlap.
    payload = os.urandom(16 * PART + 7)
    name = f"lying-{uuid.uuid4().hex[:6]}.bin"
    url = scripted_http_server.put(name, payload, Script(rate=4e6))
    for round_ in range(2):  # a race is run more than once
        root = tmp_path / f"cache-{round_}"
        scripted_http_server.stats.reset()
        outputs = run_children(root, url, tmp_path, 20, {"LYING_LOCKS": "1"})
        for path in outputs:
            assert Path(path).read_bytes() == payload
        assert len(list(root.rglob("entry.json"))) == 1
        # The writers that started later waited for the first: about one object's bytes.
        sent = scripted_http_server.stats.bytes_for(f"/{name}")
        assert sent <= 1.25 * len(payload), sent / len(payload)


async def test_a_returned_path_stays_readable_while_newer_versions_are_published(
    tmp_path: Path, scripted_http_server: ScriptedServer
) -> None:
    name = f"versions-{uuid.uuid4().hex[:6]}.bin"
    cache = CheckpointCache(tmp_path / "cache", part_size=PART, locking=False)
    first = os.urandom(3 * PART)
    url = scripted_http_server.put(name, first)
    held = await cache.fetch(url, progress=False)
    with open(held, "rb") as reader:  # noqa: ASYNC230  (a reader holding the old path open)
        for _ in range(3):
            scripted_http_server.put(name, os.urandom(3 * PART))
            newest = await cache.fetch(url, progress=False)
            await cache.prune()  # within the grace period: nothing a reader holds goes
            assert held.exists()
        assert reader.read() == first
    assert held.read_bytes() == first
    await cache.prune(grace=0)
    assert not held.exists()
    assert newest.exists()


async def test_a_lease_keeps_a_live_writers_partial_private(tmp_path: Path) -> None:
    from asyncassets.cache.layout import ACTIVE_PARTIALS, CacheLayout, renew_lease

    layout = CacheLayout(tmp_path / "cache")
    layout.ensure("k")
    state = {
        "uri": "s3://b/m",
        "kind": "file",
        "part_size": 1,
        "extract": False,
        "identity": {"size": 1},
    }
    live = layout.new_partial("k", state)
    renew_lease(live)
    ACTIVE_PARTIALS.add(str(live))  # this process is writing it
    try:
        assert layout.adopt_partial("k", state) is None
        assert live.exists()  # neither adopted nor deleted: its writer is alive
    finally:
        ACTIVE_PARTIALS.discard(str(live))
    adopted = layout.adopt_partial("k", state)
    assert adopted is not None and not live.exists()  # its writer stopped: adopted
