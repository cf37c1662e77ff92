"""Writing files so that a crash leaves either the old or the new content, never a torn
one, and reading back what such a write left. Used by the checkpoint cache (entries, the
journal of a download in progress) and the card stores' persistent index. No network I/O."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

__all__ = [
    "fdatasync",
    "fsync_dir",
    "fsync_tree",
    "read_json",
    "write_atomic",
    "write_json_atomic",
]


def write_json_atomic(path: Path, data: dict[str, Any], *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a unique temporary file and a rename."""
    write_atomic(path, json.dumps(data, sort_keys=True).encode("utf-8"), durable=durable)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a unique temporary file (``.NAME.XXXXXXXX.tmp``
    beside it) and a rename: readers, and writers racing to the same path, see a whole
    file, never a torn one. A failure (a full disk, a kill) leaves no temporary file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync every file and folder under ``path`` (the data of an entry being published)."""
    if path.is_file():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
        return
    for folder, _, files in os.walk(path):
        for name in files:
            file = Path(folder) / name
            if file.is_symlink():
                continue
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(Path(folder))


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; ``None`` when missing or unreadable (a torn write)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def fdatasync(fd: int) -> None:
    """Flush the data of ``fd`` to the disk (its metadata too where there is no fdatasync)."""
    getattr(os, "fdatasync", os.fsync)(fd)
