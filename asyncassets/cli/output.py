"""What the command line prints, and how: control characters escaped, a closed pipe told
apart from other errors, sizes for people."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

from asyncassets.problems import Problem
from asyncassets.urls import local_path


class OutputClosed(Exception):
    """The reader of stdout or stderr went away (``asyncassets list | head -1``).

    Raised by :func:`say` instead of ``BrokenPipeError``, so that a broken pipe of our own
    output is told apart from one on a network socket, which is a real error.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(f"{getattr(stream, 'name', 'output')} is closed")
        self.stream = stream


#: Control characters (ESC, BEL, CSI, CR...), which a card's name or fields may hold: shown
#: escaped, since printed raw they drive the terminal (rewrite its title, clear the screen,
#: hide the line before). Tab and line feed stay.
_CONTROLS = {
    code: f"\\x{code:02x}"
    for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))
    if code not in (0x09, 0x0A)
}


def printable(text: str) -> str:
    """``text`` with its control characters escaped (``\\x1b``)."""
    return text.translate(_CONTROLS)


class PrintableFormatter(logging.Formatter):
    """Log lines with their control characters escaped (they may quote a card)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def say(*values: object, file: TextIO | None = None, flush: bool = False) -> None:
    """``print``, with control characters escaped (:func:`printable`); a closed pipe raises
    :class:`OutputClosed`. JSON and YAML output hold none (both escape them)."""
    stream = sys.stdout if file is None else file
    try:
        print(*(printable(str(value)) for value in values), file=stream, flush=flush)
    except BrokenPipeError as exc:
        raise OutputClosed(stream) from exc


def flush_output() -> None:
    """Write what stdout still buffers, so that a closed pipe shows up now, while we can
    still end quietly, and not in the interpreter's last flush."""
    try:
        sys.stdout.flush()
    except BrokenPipeError as exc:
        raise OutputClosed(sys.stdout) from exc


def silence(stream: TextIO) -> None:
    """Point ``stream``'s file descriptor at the null device, so that what it still buffers
    goes nowhere instead of raising again at exit ("Exception ignored ... BrokenPipeError",
    see the note on SIGPIPE in the ``signal`` module's documentation)."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # not backed by a file descriptor (an in-memory stream)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def format_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def annotation(problem: Problem, level: str) -> str:
    """``problem`` as a GitHub Actions workflow command (``::error file=...,line=...::...``):
    the file relative to the working directory when it is under it, the message and the
    properties escaped as the runner reads them (``%``, CR, LF; ``:`` and ``,`` too in a
    property), so that a card's text can never start a command of its own."""
    properties = []
    path = local_path(problem.file) if problem.file else None
    message = problem.message
    if path is not None:
        try:
            shown = os.path.relpath(path) if path.is_relative_to(os.getcwd()) else str(path)
        except ValueError:
            shown = str(path)
        properties.append(f"file={_escape_property(shown)}")
        if problem.line is not None:
            properties.append(f"line={problem.line}")
    elif problem.file is not None:
        message = str(problem)  # a remote file: where it is goes into the message
    if problem.card:
        properties.append(f"title={_escape_property(f'{problem.kind}: {problem.card}')}")
    head = f"::{level} {','.join(properties)}" if properties else f"::{level}"
    return f"{head}::{_escape_data(printable(message))}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(printable(text)).replace(":", "%3A").replace(",", "%2C")
