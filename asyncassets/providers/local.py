"""Listing and reading card files in a local folder (blocking; run in worker threads)."""

from __future__ import annotations

import os
import stat as stat_module
from pathlib import Path

from asyncassets.errors import AssetSourceNotFoundError
from asyncassets.parsing import MAX_FILE_BYTES, is_card_file, parse_card_file, too_large_file
from asyncassets.problems import Problem
from asyncassets.snapshot import FileRecord
from asyncassets.urls import file_url

__all__ = ["file_url", "is_hidden_below", "list_local_cards", "read_card_bytes", "read_local_cards"]


def is_hidden_below(root: Path, path: Path) -> bool:
    """True when ``path`` is outside ``root`` or has a hidden part below it (``.git/``,
    ``.swp`` files): what a listing of ``root`` would never return."""
    try:
        relative = path.relative_to(root)
    except ValueError:
        return True
    return any(part.startswith(".") for part in relative.parts)


def _version(stat: os.stat_result) -> str:
    return f"{stat.st_mtime_ns}-{stat.st_size}"


def list_local_cards(root: Path) -> dict[str, str]:
    """``{path: version}`` of every ``*.yaml``/``*.yml`` under ``root``, recursively.

    Hidden files and folders (``.git``, editor swap files) are skipped. ``root`` may be a
    single card file.
    """
    try:
        stat = root.stat()
    except FileNotFoundError:
        raise AssetSourceNotFoundError(
            f"card folder {root} does not exist", source=file_url(root)
        ) from None
    if not root.is_dir():
        return {os.fspath(root): _version(stat)}
    found: dict[str, str] = {}
    pending = [os.fspath(root)]
    seen = {(stat.st_dev, stat.st_ino)}  # folder symlinks may loop
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.name.startswith("."):
                        continue
                    try:
                        if entry.is_dir():
                            info = entry.stat()
                            if (info.st_dev, info.st_ino) not in seen:
                                seen.add((info.st_dev, info.st_ino))
                                pending.append(entry.path)
                        elif is_card_file(entry.name):
                            found[entry.path] = _version(entry.stat())
                    except OSError:
                        continue  # vanished between listing and stat
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError:
            found[folder] = "unreadable"
    return found


def read_local_cards(paths: list[tuple[str, str | None]], source: str) -> list[FileRecord]:
    """Read and parse ``paths`` (``(path, version)``) in one go; errors become problems."""
    return [_read_and_parse(path, version, source) for path, version in paths]


def read_card_bytes(path: str) -> bytes | int:
    """The bytes of the card file at ``path``, or its size when it is larger than a card
    file may be. Raises OSError for anything but a regular file: a FIFO or a device named
    ``*.yaml`` (or a symlink to one) must not block the reader or feed it forever."""
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat_module.S_ISREG(info.st_mode):
            raise OSError(0, "not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            return info.st_size
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_FILE_BYTES + 1)
        return len(data) if len(data) > MAX_FILE_BYTES else data
    finally:
        os.close(fd)


def _read_and_parse(path: str, version: str | None, source: str) -> FileRecord:
    url = file_url(path)
    try:
        data = read_card_bytes(path)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        problem = Problem("read", f"cannot read card file: {reason}", source, url)
        return FileRecord(url, (), (problem,), version)
    if isinstance(data, int):
        return FileRecord(url, (), (too_large_file(data, url, source),), version)
    return parse_card_file(data, file=url, source=source, version=version)
