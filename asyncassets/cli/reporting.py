"""Exit statuses, and one line on stderr for an error that escaped a command."""

from __future__ import annotations

import asyncio
import sys
import traceback
from collections.abc import Iterator

from asyncassets import AssetCardNotFoundError, AssetError
from asyncassets.cli.output import OutputClosed, say, silence

#: Exit status when the reader of our output went away: 128 + SIGPIPE, what a shell
#: reports for ``yes | head -1``.
EXIT_OUTPUT_CLOSED = 141
#: Exit status after Ctrl-C: 128 + SIGINT.
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A command line that cannot be carried out as given."""


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (nested) exception groups, depth first, in order."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _is_cancellation(exc: BaseException) -> bool:
    """asyncio's and trio's cancellation: a consequence of another error, never the cause."""
    if isinstance(exc, asyncio.CancelledError):
        return True
    kind = type(exc)
    return kind.__module__.partition(".")[0] == "trio" and kind.__name__ == "Cancelled"


def _one_line(exc: BaseException) -> str:
    """``TypeName: message`` with the message's lines joined."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def report_error(exc: BaseException, *, verbose: bool = False, command: str | None = None) -> int:
    """Say what ``exc`` (which escaped a command) means, in one line on stderr, and return
    the exit status.

    - a closed output (``| head -1``) anywhere in ``exc``: nothing said, 141;
    - Ctrl-C: nothing said, 130 (0 for ``watch``, which runs until Ctrl-C);
    - otherwise the first real error of a (nested) ``ExceptionGroup`` (cancellations are
      consequences, not causes), or ``exc`` itself: an ``AssetError``'s message (exit 2 for
      an unknown card, else 1), or ``TypeName: message`` and a hint to run with ``-v``,
      which prints the traceback too (exit 1). Every error of ``diff`` exits 2, as
      ``diff(1)`` does, since its 1 means "the sides differ".
    """
    leaves = list(_leaves(exc))
    for leaf in leaves:
        if isinstance(leaf, OutputClosed):
            silence(leaf.stream)
            return EXIT_OUTPUT_CLOSED
    if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
        return 0 if command == "watch" else EXIT_INTERRUPTED
    real = [leaf for leaf in leaves if not _is_cancellation(leaf)] or [exc]
    first = real[0]
    expected = isinstance(first, AssetError | UsageError)
    line = str(first) if expected else _one_line(first)
    if len(real) > 1:
        line += f" (and {len(real) - 1} more error{'s' if len(real) > 2 else ''})"
    if not expected and not verbose:
        line += " (run with -v for the traceback)"
    try:
        if verbose:
            traceback.print_exception(exc, file=sys.stderr)
        say(f"asyncassets: error: {line}", file=sys.stderr, flush=True)
    except OutputClosed as closed:
        silence(closed.stream)
    except BrokenPipeError:  # the traceback could not be written: stderr is closed
        silence(sys.stderr)
    return 2 if isinstance(first, AssetCardNotFoundError) or command == "diff" else 1
