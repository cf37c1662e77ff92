"""Child processes that fetch one URI into a shared cache folder, started together."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import asyncio, os, sys, time
from pathlib import Path
if os.environ.get("LYING_LOCKS") == "1":
    # What Lustre and GPFS do: every lock call succeeds, for every process at once.
    import fcntl
    fcntl.flock = fcntl.lockf = lambda *args, **kwargs: None
from asyncassets.cache import CheckpointCache

root, url, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
Path(str(go) + "." + sys.argv[4]).touch()          # ready
while not go.exists():
    time.sleep(0.01)
cache = CheckpointCache(root, part_size=int(sys.argv[5]), concurrency=2)
print(asyncio.run(cache.fetch(url, progress=False)))
"""


def start_child(
    root: Path, url: str, go: Path, name: str, part: int, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """A process that says it is ready (``<go>.<name>``), waits for ``go`` to exist, then
    fetches ``url`` into the cache at ``root`` and prints the path."""
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), url, str(go), name, str(part)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )
