"""A progress bar for long fetches: rich on stderr, only on a terminal and when wanted."""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import Protocol

__all__ = ["ProgressReporter", "open_progress", "progress_enabled"]


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
