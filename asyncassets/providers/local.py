"""Listing and reading card files in a local folder (blocking; run in worker threads)."""

from __future__ import annotations

import os
from pathlib import Path

from asyncassets.errors import AssetSourceNotFoundError
from asyncassets.parsing import is_card_file, parse_card_file, paused_gc
from asyncassets.problems import Problem
from asyncassets.snapshot import FileRecord

__all__ = ["file_url", "is_hidden_below", "list_local_cards", "read_local_cards"]


def file_url(path: str | os.PathLike[str]) -> str:
    """``/a/b.yaml`` -> ``file:///a/b.yaml`` (the form entries and problems carry)."""
    return "file://" + os.fspath(path)


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
    records: list[FileRecord] = []
    with paused_gc():
        records.extend(_read_and_parse(path, version, source) for path, version in paths)
    return records


def _read_and_parse(path: str, version: str | None, source: str) -> FileRecord:
    url = file_url(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        problem = Problem("read", f"cannot read card file: {reason}", source, url)
        return FileRecord(url, (), (problem,), version)
    return parse_card_file(data, file=url, source=source, version=version)
