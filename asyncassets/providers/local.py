"""Card files in a local folder: listing and reading (blocking functions, run in worker
threads) and :class:`LocalCardFolder`, the card source that runs them."""

from __future__ import annotations

import os
import stat as stat_module
from collections.abc import Iterable
from pathlib import Path

import anyio

from asyncassets.errors import AssetSourceNotFoundError
from asyncassets.parsing import MAX_FILE_BYTES, is_card_file, parse_card_file, too_large_file
from asyncassets.problems import Problem
from asyncassets.providers.base import FileIdentity
from asyncassets.snapshot import FileRecord
from asyncassets.urls import display_path, file_url, local_path

__all__ = [
    "LocalCardFolder",
    "is_hidden_below",
    "list_local_cards",
    "local_identity",
    "read_card_bytes",
    "read_local_cards",
]


def is_hidden_below(root: Path, path: Path) -> bool:
    """True when ``path`` is outside ``root`` or has a hidden part below it (``.git/``,
    ``.swp`` files): what a listing of ``root`` would never return."""
    try:
        relative = path.relative_to(root)
    except ValueError:
        return True
    return any(part.startswith(".") for part in relative.parts)


def _version(stat: os.stat_result) -> str:
    """What changes with a file's content: mtime and size, and ctime and inode, which an
    edit that restores the mtime (``os.utime``) or replaces the file still changes."""
    return f"{stat.st_mtime_ns}-{stat.st_size}-{stat.st_ctime_ns}-{stat.st_ino}"


def local_identity(version: str | None) -> FileIdentity | None:
    """The persistent index's identity of a file listed at ``version``, with its mtime for
    the racy rule; None for what is no file's version (an unreadable folder)."""
    mtime, _, rest = (version or "").partition("-")
    if not mtime.isdigit() or rest.count("-") != 2:
        return None
    return FileIdentity(version or "", mtime_ns=int(mtime))


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
        # Read what fstat announced (a buffer of the limit's size per file would cost
        # more than the parse), then whatever a writer appended since, up to the limit.
        chunks = [os.read(fd, info.st_size + 1)]
        total = len(chunks[0])
        while chunks[-1] and total <= MAX_FILE_BYTES:
            chunks.append(os.read(fd, min(2**20, MAX_FILE_BYTES + 1 - total)))
            total += len(chunks[-1])
        return total if total > MAX_FILE_BYTES else b"".join(chunks)
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


#: Local files read and parsed per worker-thread hop.
LOCAL_BATCH = 64
#: Worker threads parsing local files at once. Parsing holds the GIL: more threads only
#: contend for it (bench/lookup.py: 1 thread 0.31 s, 2 threads 0.34 s, 4 threads 0.36 s for
#: 10,000 cards), while one thread still keeps the event loop free.
LOCAL_THREADS = 1


class LocalCardFolder:
    """A local folder (or a single card file) as a :class:`CardSource`. Listing, reading
    and parsing run in worker threads, a batch of files per hop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = file_url(path)

    def file_url(self, path: str) -> str:
        return file_url(path)

    async def list_files(self) -> dict[str, str | None]:
        return dict(await anyio.to_thread.run_sync(list_local_cards, self.path))

    def identity(self, file: str, version: str | None) -> FileIdentity | None:
        return local_identity(version)

    async def read(self, items: list[tuple[str, str | None]], source: str) -> list[FileRecord]:
        limiter = anyio.CapacityLimiter(LOCAL_THREADS)
        results: list[list[FileRecord]] = []

        async def run(batch: list[tuple[str, str | None]]) -> None:
            results.append(
                await anyio.to_thread.run_sync(read_local_cards, batch, source, limiter=limiter)
            )

        async with anyio.create_task_group() as tg:
            for start in range(0, len(items), LOCAL_BATCH):
                tg.start_soon(run, items[start : start + LOCAL_BATCH])
        return [record for batch in results for record in batch]

    async def read_paths(
        self, paths: list[str], source: str, known: Iterable[str]
    ) -> dict[str, FileRecord | None]:
        listing, gone = await anyio.to_thread.run_sync(
            _expand_local_paths, self.path, paths, list(known)
        )
        changed: dict[str, FileRecord | None] = dict.fromkeys(gone)
        for record in await self.read(list(listing.items()), source):
            changed[record.file] = record
        return changed

    async def aclose(self) -> None:
        return None


def _expand_local_paths(
    root: Path, paths: list[str], known: list[str]
) -> tuple[dict[str, str], list[str]]:
    """Card files under changed ``paths`` (``{path: version}``) and known file URLs that
    are gone (a deleted file, or any file under a deleted or renamed folder). Paths outside
    ``root`` or hidden below it are left out, as a full listing leaves them out."""
    present: dict[str, str] = {}
    gone: list[str] = []
    for path in paths:
        local = local_path(path)
        if local is None:
            continue
        url = file_url(local)
        if local != root and is_hidden_below(root, local):
            continue
        under = [f for f in known if f == url or f.startswith(url + "/")]
        if not local.exists():
            gone.extend(under)
            continue
        if local.is_file() and not is_card_file(local.name):
            continue
        listing = list_local_cards(local)
        present.update(listing)
        gone.extend(f for f in under if display_path(f) not in listing)
    return present, gone
