"""What a download reports as it advances: a progress bar for long fetches (rich on stderr,
only on a terminal and when wanted), the caller's callback, and the cache's counters."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

__all__ = [
    "CacheStats",
    "CountingProgress",
    "ProgressCallback",
    "ProgressReporter",
    "download_progress",
    "open_progress",
    "progress_enabled",
]

#: Called with (bytes done, bytes in all or None) as a download advances.
ProgressCallback = Callable[[int, int | None], None]


@dataclass
class CacheStats:
    """What a cache did since it was made (for metrics): fetches answered from the cache,
    fetches that downloaded, and bytes written by downloads (a resumed download counts what
    it finds on disk)."""

    hits: int = 0
    misses: int = 0
    bytes_downloaded: int = 0


class ProgressReporter(Protocol):
    """Receives the bytes a download writes."""

    def advance(self, nbytes: int) -> None: ...

    def __enter__(self) -> ProgressReporter: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def progress_enabled(requested: bool) -> bool:
    """``requested`` unless ``$ASYNCASSETS_NO_PROGRESS=1`` or stderr is not a terminal."""
    if not requested or os.environ.get("ASYNCASSETS_NO_PROGRESS", "") not in ("", "0"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _Silent:
    def advance(self, nbytes: int) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _RichBar:
    def __init__(self, description: str, total: int | None, done: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task(description, total=total, completed=done)

    def advance(self, nbytes: int) -> None:
        self._progress.advance(self._task, nbytes)

    def __enter__(self) -> _RichBar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


def open_progress(
    description: str, total: int | None, *, done: int = 0, enabled: bool
) -> ProgressReporter:
    """A reporter to use as a context manager: a rich bar when ``enabled``, else silent."""
    if enabled:
        return _RichBar(description, total, done)
    return _Silent()


class CountingProgress:
    """A progress reporter that also counts bytes into the stats and tells a callback."""

    def __init__(
        self,
        stats: CacheStats,
        progress: bool | ProgressCallback,
        total: int | None,
        bar: ProgressReporter,
    ) -> None:
        self._stats = stats
        self._callback = progress if callable(progress) else None
        self._total = total
        self._bar = bar
        self._done = 0

    def advance(self, nbytes: int) -> None:
        self._done += nbytes
        self._stats.bytes_downloaded += nbytes
        self._bar.advance(nbytes)
        if self._callback is not None:
            self._callback(self._done, self._total)

    def __enter__(self) -> CountingProgress:
        self._bar.__enter__()
        if self._callback is not None:
            self._callback(0, self._total)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._bar.__exit__(*exc)


def download_progress(
    name: str, total: int | None, progress: bool | ProgressCallback, stats: CacheStats
) -> CountingProgress:
    """What the download of ``name`` (``total`` bytes) reports to: a bar when ``progress``
    is True (and a terminal shows it), the callable ``progress`` is, and ``stats``."""
    description = name if len(name) <= 30 else name[:29] + "…"
    enabled = not callable(progress) and progress_enabled(progress)
    return CountingProgress(
        stats, progress, total, open_progress(description, total, enabled=enabled)
    )
