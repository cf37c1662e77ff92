"""A download killed with SIGKILL resumes from every byte that reached the disk, also when
no part had completed (per-part progress in the journal)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import anyio
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)
from servers import Script, ScriptedServer

from asyncassets.cache import CheckpointCache

REPO = Path(__file__).resolve().parents[1]
PART = 4 * 2**20
SIZE = 2 * PART  # two parts, both in flight at once: none completes before the kill

CHILD = """
import asyncio, sys
from asyncassets.cache import CheckpointCache
cache = CheckpointCache(sys.argv[1], part_size=int(sys.argv[3]), concurrency=2)
asyncio.run(cache.fetch(sys.argv[2], progress=False))
"""


def journaled_bytes(root: Path) -> int:
    total = 0
    for journal in root.rglob("*.parts.json"):
        try:
            data = json.loads(journal.read_text())
        except ValueError:
            continue  # replaced while we read it
        total += len(data.get("done", [])) * PART + sum(data.get("written", {}).values())
    return total


def kill_midway(root: Path, url: str) -> int:
    """Run a fetch in a child process, SIGKILL it past 40% of the bytes; the bytes the
    journal claims."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), url, str(PART)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while journaled_bytes(root) < 0.4 * SIZE:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "no progress was journaled"
        time.sleep(0.05)
    on_disk = journaled_bytes(root)
    child.send_signal(signal.SIGKILL)
    child.communicate()
    return on_disk


async def test_a_download_killed_before_any_part_completed_resumes_its_bytes(
    tmp_path: Path, scripted_http_server: ScriptedServer
) -> None:
    payload = os.urandom(SIZE)
    name = f"resume-{uuid.uuid4().hex[:6]}.bin"
    url = scripted_http_server.put(name, payload, Script(rate=1.5e6))
    root = tmp_path / "cache"
    on_disk = await anyio.to_thread.run_sync(kill_midway, root, url)
    assert on_disk < SIZE  # no part had completed: whole-part journaling would keep nothing

    scripted_http_server.script(name).rate = None
    scripted_http_server.stats.reset()
    cache = CheckpointCache(root, part_size=PART, concurrency=2)
    path = await cache.fetch(url, progress=False)
    assert path.read_bytes() == payload
    refetched = scripted_http_server.stats.bytes_for(f"/{name}")
    assert refetched <= SIZE - on_disk
    assert refetched < 0.7 * SIZE
