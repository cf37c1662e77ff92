"""One download per URI: tasks of one process share it, processes wait on the entry's lock,
and a killed download resumes from the parts already on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)
from fetch_children import start_child
from servers import Script, ScriptedServer, StaticServer

from asyncassets.cache import CheckpointCache, RetryPolicy

PART = 128 * 1024


def _child(root: Path, url: str, go: Path, name: str) -> subprocess.Popen[str]:
    return start_child(root, url, go, name, PART)


@pytest.fixture
def cache_settings() -> dict[str, Any]:
    retry = RetryPolicy(attempts=4, initial=0.01, maximum=0.05)
    return {"part_size": PART, "concurrency": 4, "retry": retry}


async def test_64_concurrent_fetches_download_the_bytes_once(
    cache: CheckpointCache, http_static_server: StaticServer
) -> None:
    base_url, folder = http_static_server
    payload = os.urandom(16 * PART + 17)
    name = f"shared64-{uuid.uuid4().hex[:8]}.bin"
    (folder / name).write_bytes(payload)
    paths: list[Path] = []

    async def fetch() -> None:
        paths.append(await cache.fetch(f"{base_url}/{name}"))

    async with anyio.create_task_group() as tg:
        for _ in range(64):
            tg.start_soon(fetch)
    assert len(set(paths)) == 1
    assert paths[0].read_bytes() == payload
    assert http_static_server.stats.bytes_for(f"/{name}") == len(payload)
    assert http_static_server.stats.count(f"/{name}", "HEAD") == 1


def test_4_processes_download_the_bytes_once(
    tmp_path: Path, scripted_http_server: ScriptedServer
) -> None:
    payload = os.urandom(16 * PART + 17)
    # Slow enough that the four processes overlap: each response is capped at 2 MB/s.
    url = scripted_http_server.put("shared4.bin", payload, Script(rate=2e6))
    root, go = tmp_path / "cache", tmp_path / "go"
    children = [_child(root, url, go, str(i)) for i in range(4)]
    deadline = time.monotonic() + 60
    while not all(Path(f"{go}.{i}").exists() for i in range(4)):
        assert time.monotonic() < deadline, "children did not start"
        time.sleep(0.02)
    go.touch()
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        outputs.append(out.strip())
    assert len(set(outputs)) == 1
    assert Path(outputs[0]).read_bytes() == payload
    assert scripted_http_server.stats.bytes_for("/shared4.bin") == len(payload)


async def test_killed_download_leaves_no_complete_entry_and_resumes(
    tmp_path: Path, scripted_http_server: ScriptedServer, cache: CheckpointCache
) -> None:
    payload = os.urandom(24 * PART)
    url = scripted_http_server.put("killed.bin", payload, Script(rate=1e6))
    go = tmp_path / "go"
    go.touch()
    child = _child(cache.root, url, go, "k")
    journal_done: list[int] = []
    deadline = time.monotonic() + 60
    while len(journal_done) < 4:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "no part was journaled"
        await anyio.sleep(0.05)
        for journal in cache.root.rglob("*.parts.json"):
            journal_done = json.loads(journal.read_text()).get("done", [])
    child.send_signal(signal.SIGKILL)
    child.communicate()

    assert cache.path_of(url) is None
    assert not list(cache.root.rglob("entry.json"))
    [entry] = cache.entries()
    assert not entry.complete

    scripted_http_server.script("killed.bin").rate = None
    scripted_http_server.stats.reset()
    path = await cache.fetch(url)
    assert path.read_bytes() == payload
    resumed_bytes = scripted_http_server.stats.bytes_for("/killed.bin")
    assert resumed_bytes <= len(payload) - len(journal_done) * PART


async def test_cancelled_fetch_is_taken_over_by_a_waiting_caller(
    cache: CheckpointCache, scripted_http_server: ScriptedServer
) -> None:
    payload = os.urandom(8 * PART)
    url = scripted_http_server.put("cancel.bin", payload, Script(rate=5e5))
    got: list[Path] = []
    leader_finished = False

    async def follow() -> None:
        got.append(await cache.fetch(url))

    leader = anyio.CancelScope()

    async def lead() -> None:
        nonlocal leader_finished
        with leader:
            await cache.fetch(url)
            leader_finished = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(lead)
        await anyio.sleep(0.05)
        tg.start_soon(follow)
        await anyio.sleep(0.05)
        leader.cancel()
    assert got[0].read_bytes() == payload
    assert leader.cancel_called and not leader_finished
