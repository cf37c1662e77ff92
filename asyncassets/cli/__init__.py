"""The ``asyncassets`` command line. Uses only the public API; the only code that prints.

Errors print one line on stderr (no traceback) and exit 1; an unknown card exits 2, and
so does any error of ``diff`` (whose 1 means "differs"). An ``ExceptionGroup`` is reported
as its first real error. A reader that goes away (``asyncassets list | head -1``) ends the
command quietly with 141 (128 + SIGPIPE, as a shell reports ``yes | head -1``); Ctrl-C
exits 130 (``watch``: 0). ``-v`` adds the traceback of an unexpected error.

Modules by job: ``parser`` (the table of commands and options), ``stores`` (the store a
command line names), ``cards``, ``diffing``, ``fetching`` and ``serving`` (the commands),
``output`` (printing) and ``reporting`` (errors and exit statuses).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import anyio

from asyncassets import AssetStore
from asyncassets.cli.cards import cmd_check, cmd_demo, cmd_list, cmd_show, cmd_watch
from asyncassets.cli.diffing import cmd_diff
from asyncassets.cli.fetching import cmd_cache, cmd_prefetch, parse_size
from asyncassets.cli.output import (
    OutputClosed,
    PrintableFormatter,
    flush_output,
    format_size,
    printable,
    say,
)
from asyncassets.cli.parser import KINDS, make_parser, with_defaults
from asyncassets.cli.reporting import (
    EXIT_INTERRUPTED,
    EXIT_OUTPUT_CLOSED,
    UsageError,
    report_error,
)
from asyncassets.cli.serving import cmd_serve
from asyncassets.cli.stores import build_store, parse_storage_options

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OUTPUT_CLOSED",
    "KINDS",
    "OutputClosed",
    "UsageError",
    "format_size",
    "main",
    "make_parser",
    "parse_size",
    "parse_storage_options",
    "printable",
    "report_error",
    "say",
]

Command = Callable[[AssetStore, argparse.Namespace], Coroutine[Any, Any, int]]
COMMANDS: dict[str, Command] = {
    "list": cmd_list,
    "show": cmd_show,
    "check": cmd_check,
    "watch": cmd_watch,
    "prefetch": cmd_prefetch,
    "cache": cmd_cache,
    "demo": cmd_demo,
    "serve": cmd_serve,
}
#: Commands that open stores of their own instead of the one the store options name.
STANDALONE: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "diff": cmd_diff,
}


async def run(args: argparse.Namespace) -> int:
    if args.command in STANDALONE:
        return await STANDALONE[args.command](args)
    store = build_store(args)
    async with store:
        return await COMMANDS[args.command](store, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = with_defaults(make_parser().parse_args(argv))
    before = set(logging.getLogger().handlers)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    for handler in set(logging.getLogger().handlers) - before:  # ours, not an embedder's
        handler.setFormatter(PrintableFormatter("asyncassets: %(levelname)s: %(message)s"))
    try:
        code = anyio.run(run, args)
        flush_output()
    except SystemExit:
        raise
    except BaseException as exc:  # Ctrl-C, cancellations and groups of them included
        return report_error(exc, verbose=args.verbose, command=args.command)
    return code
