"""The command line's grammar: a table of commands and their options, which
:func:`make_parser` turns into an ``argparse`` parser."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KINDS = ("model", "dataset", "tokenizer", "other")


@dataclass(frozen=True)
class Option:
    """One argument: ``flags`` and ``settings`` as ``ArgumentParser.add_argument`` takes them."""

    flags: tuple[str, ...]
    settings: Mapping[str, Any]

    @property
    def dest(self) -> str:
        """The attribute it sets (``--cache-dir``: ``cache_dir``)."""
        long = next(flag for flag in self.flags if flag.startswith("--"))
        return long[2:].replace("-", "_")


def arg(*flags: str, **settings: Any) -> Option:
    return Option(flags, settings)


def switch(*flags: str, help: str) -> Option:
    """An option without a value: True when given."""
    return arg(*flags, action="store_true", help=help)


def repeatable(flag: str, metavar: str, help: str, **settings: Any) -> Option:
    """An option given any number of times, its values in a list (None when never given)."""
    return arg(flag, action="append", metavar=metavar, help=help, **settings)


@dataclass(frozen=True)
class Command:
    """A command (or an action of one, ``cache ls``): its options, or its own actions."""

    name: str
    help: str
    options: Sequence[Option] = ()
    actions: Sequence[Command] = ()
    #: What ``asyncassets NAME -h`` says above the options (default: nothing).
    description: str | None = None


JSON = switch("--json", help="JSON output")

#: Options every command takes, before or after its name; one given nowhere is set to
#: ``False`` (a switch) or None by :func:`with_defaults`.
STORE_OPTIONS = (
    repeatable(
        "--store",
        "URL",
        "a card folder or URL (repeatable; replaces the default stores; later wins)",
    ),
    arg("--env", metavar="ENV", help="the active environment"),
    repeatable(
        "--storage-option",
        "KEY=VALUE",
        "an fsspec storage option for --store URLs (repeatable)",
    ),
    arg("--cache-dir", metavar="DIR", help="checkpoint cache folder"),
    switch("--offline", help="never touch the network for cached files"),
    switch("-v", "--verbose", help="log details"),
)

COMMAND_TABLE = (
    Command("list", "list cards", (arg("--kind", choices=(*KINDS, "all"), default="all"), JSON)),
    Command(
        "show",
        "show a resolved card",
        (
            arg("name", metavar="NAME"),
            JSON,
            arg(
                "--config",
                metavar="KEY",
                help="print field KEY merged down the base chain (fairseq2's config "
                "overrides), as JSON",
            ),
        ),
    ),
    Command(
        "check",
        "report problems (exit 1 if any)",
        (
            JSON,
            switch(
                "--reachable",
                help="also ask whether every checkpoint, tokenizer and data URI exists (one "
                "metadata request per distinct URI; without it, no network request)",
            ),
            arg(
                "--format",
                choices=("text", "json", "github"),
                help="text (file:line: message, the default), json (--json) or github "
                "(GitHub Actions annotations)",
            ),
        ),
    ),
    Command(
        "diff",
        "what a change does to the resolved cards, OLD -> NEW (exit 1 if anything differs)",
        (
            arg("old", metavar="OLD", help="the card folder or store URL before the change"),
            arg("new", metavar="NEW", help="the card folder or store URL after the change"),
            switch(
                "--json",
                help='{"added": [KEY...], "removed": [KEY...], "changed": {KEY: {FIELD_PATH: '
                "[OLD, NEW]}}} (an absent value is null)",
            ),
        ),
        description="Resolve every card of OLD and of NEW (base chains and env overrides "
        "applied) and print what differs: added and removed cards, and each changed field "
        "by its dotted path (model_config.dim) with its old and new value. Values are "
        "compared, not files: a card that only moved is unchanged; a base edit shows in "
        "every card that inherits it. A KEY is NAME, the plain card (no env), or NAME@ENV, "
        "the card resolved under ENV, for every ENV the card or its bases override on "
        "either side. With --env ENV, each card is compared once, as NAME@ENV (what a job "
        "in ENV resolves). A card that resolves on one side only shows as changed with the "
        "path (error). --storage-option and --cache-dir apply to both sides; --store does "
        "not apply. Exit 0: no difference; 1: differences; 2: a side cannot be read.",
    ),
    Command(
        "watch",
        "print change events until Ctrl-C",
        (
            switch("--json", help="one JSON object per event and line"),
            arg("--debounce-ms", type=int, default=50, help="quiet time after an edit"),
            arg("--poll-interval", type=float, help="seconds between remote listings"),
        ),
    ),
    Command(
        "prefetch",
        "fetch cards' checkpoints",
        (
            arg("names", nargs="+", metavar="NAME"),
            arg("--field", default="checkpoint", help="the field holding the URI"),
            arg("--jobs", type=int, default=4, help="cards fetched at once"),
            switch("--force", help="download again even when cached"),
            switch(
                "--distributed",
                help="under torchrun or SLURM: fetch each item once per cache domain (the "
                "ranks that share a cache folder), not once per rank",
            ),
            repeatable(
                "--include",
                "PATTERN",
                "files of a folder or Hub repo to fetch (glob, repeatable); default for "
                "a Hub repo: what fairseq2 loads (checkpoint: *.safetensors*, *.pt; "
                "tokenizer: tokenizer*.json; a dataset: everything)",
            ),
        ),
    ),
    Command(
        "cache",
        "inspect and trim the local cache",
        actions=(
            Command("ls", "entries, URIs, sizes, last use; the card stores' indexes", (JSON,)),
            Command(
                "prune",
                "reclaim superseded versions, abandoned downloads and card store indexes "
                "unused for the grace period; evict least recently used",
                (
                    arg("--max-size", metavar="SIZE", help="keep at most SIZE (e.g. 50G)"),
                    arg(
                        "--grace",
                        metavar="SECONDS",
                        help="reclaim versions superseded, and indexes unused, longer ago than "
                        "this (default 3600)",
                    ),
                ),
            ),
            Command("rm", "remove one URI's entry", (arg("uri", metavar="URI"),)),
        ),
    ),
    Command("demo", "a short tour on a temporary store"),
    Command(
        "serve",
        "serve the store over HTTP: cards, problems, events, metrics, a live page",
        (
            arg("--host", default="127.0.0.1", help="address to listen on"),
            arg("--port", type=int, default=8000, help="port to listen on"),
            repeatable(
                "--allowed-host",
                "NAME",
                "a Host name the app answers (repeatable; '*.example.com' works, '*' "
                "allows any); default: localhost names and --host",
            ),
            repeatable(
                "--prefetch",
                "NAME",
                "a card to prefetch before /readyz says ready (repeatable)",
                default=[],
            ),
            arg("--field", default="checkpoint", help="the field --prefetch fetches"),
            switch("--no-watch", help="do not follow edits of the cards"),
        ),
    ),
)


def make_parser() -> argparse.ArgumentParser:
    """The ``asyncassets`` parser, made from :data:`COMMAND_TABLE` and :data:`STORE_OPTIONS`."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("store options")
    for option in STORE_OPTIONS:
        # Not defaulted here: given before the command, an option must survive the
        # subparser, which would otherwise write its own default over it.
        group.add_argument(*option.flags, default=argparse.SUPPRESS, **option.settings)
    parser = argparse.ArgumentParser(
        prog="asyncassets",
        description="Resolve fairseq2-style asset cards; prefetch what they point to.",
        parents=[common],
    )
    _add_commands(parser, COMMAND_TABLE, "command", "COMMAND", common)
    return parser


def _add_commands(
    parser: argparse.ArgumentParser,
    commands: Sequence[Command],
    dest: str,
    metavar: str,
    common: argparse.ArgumentParser,
) -> None:
    sub = parser.add_subparsers(dest=dest, required=True, metavar=metavar)
    for command in commands:
        p = sub.add_parser(
            command.name,
            parents=[common],
            help=command.help,
            description=command.description,
        )
        for option in command.options:
            p.add_argument(*option.flags, **option.settings)
        if command.actions:
            _add_commands(p, command.actions, f"{command.name}_command", "ACTION", common)


def with_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with every store option given nowhere set to its default."""
    for option in STORE_OPTIONS:
        if not hasattr(args, option.dest):
            switch = option.settings.get("action") == "store_true"
            setattr(args, option.dest, False if switch else None)
    return args
