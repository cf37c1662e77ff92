"""The ``asyncassets`` command line. Uses only the public API; the only code that prints.

Errors print one line on stderr (no traceback) and exit 1; an unknown card exits 2. An
``ExceptionGroup`` is reported as its first real error. A reader that goes away
(``asyncassets list | head -1``) ends the command quietly with 141 (128 + SIGPIPE, as a
shell reports ``yes | head -1``); Ctrl-C exits 130 (``watch``: 0). ``-v`` adds the
traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TextIO

import anyio
import anyio.to_thread

from asyncassets import (
    AssetCardError,
    AssetCardNotFoundError,
    AssetError,
    AssetStore,
    FileAssetMetadataProvider,
    create_default_store,
)
from asyncassets.kinds import card_family, card_kind
from asyncassets.loops import on_asyncio
from asyncassets.values import json_value

__all__ = ["EXIT_INTERRUPTED", "EXIT_OUTPUT_CLOSED", "main", "report_error"]

KINDS = ("model", "dataset", "tokenizer", "other")

#: Exit status when the reader of our output went away: 128 + SIGPIPE, what a shell
#: reports for ``yes | head -1``.
EXIT_OUTPUT_CLOSED = 141
#: Exit status after Ctrl-C: 128 + SIGINT.
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A command line that cannot be carried out as given."""


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


def parse_storage_options(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; VALUE is read as YAML, as card files are (so ``true``, ``10``
    and ``{a: 1}`` work, and ``yes`` is a string); a dotted KEY nests
    (``client_kwargs.endpoint_url=...``)."""
    from asyncassets.parsing import read_documents

    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--storage-option wants KEY=VALUE, not {item!r}")
        value: Any = raw
        if raw:
            try:
                documents, _ = read_documents(raw.encode())
            except Exception:  # not YAML: the text as it is
                documents = []
            if len(documents) == 1:
                value = documents[0][1]
        target = options
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return options


def build_store(args: argparse.Namespace) -> AssetStore:
    options = parse_storage_options(args.storage_option or [])
    if args.store:
        providers = [FileAssetMetadataProvider(url, storage_options=options) for url in args.store]
        store = AssetStore(providers, default_env=args.env)
    else:
        store = create_default_store(storage_options=options)
        store.default_env = args.env
    if args.cache_dir:
        from asyncassets.cache import CheckpointCache

        store.cache = CheckpointCache(args.cache_dir)
    return store


# -- commands


async def cmd_list(store: AssetStore, args: argparse.Namespace) -> int:
    names = await store.asset_names()
    envs_of: dict[str, list[str]] = {}
    for canonical in names:
        plain, _, env = canonical.partition("@")
        envs_of.setdefault(plain, [])
        if env:
            envs_of[plain].append(env)
    rows: list[dict[str, Any]] = []
    for plain in sorted(envs_of):
        try:
            card = await store.retrieve_card(plain)
        except AssetCardNotFoundError:
            continue  # only env overrides, no plain card: `check` reports it
        except AssetCardError as exc:
            rows.append({"name": plain, "kind": "error", "family": "", "error": str(exc)})
            continue
        kind = card_kind(card)
        if args.kind not in ("all", kind):
            continue
        rows.append(
            {
                "name": plain,
                "kind": kind,
                "family": card_family(card, kind) if kind != "other" else "",
                "envs": sorted(envs_of[plain]),
                "source": card.source,
            }
        )
    if args.json:
        say(json.dumps(rows, indent=2))
        return 0
    if not rows:
        say("no cards", file=sys.stderr)
        return 0
    width = max(len(r["name"]) for r in rows)
    for row in rows:
        envs = f"  [{', '.join(row.get('envs', []))}]" if row.get("envs") else ""
        detail = row.get("error") or row["family"]
        say(f"{row['name']:<{width}}  {row['kind']:<9}  {detail}{envs}")
    return 0


async def cmd_show(store: AssetStore, args: argparse.Namespace) -> int:
    card = await store.retrieve_card(args.name)
    config_key = getattr(args, "config", None)
    if config_key is not None:
        say(json.dumps(json_value(card.config(config_key)), indent=2, default=str))
        return 0
    chain = [c.name for c in card.chain()]
    if args.json:
        say(
            json.dumps(
                {
                    "name": card.name,
                    "source": card.source,
                    "chain": chain,
                    "fields": json_value(card.to_dict()),
                },
                indent=2,
                default=str,
            )
        )
        return 0
    import yaml

    say(f"# {card.name}  ({card.source})")
    if len(chain) > 1:
        say(f"# base chain: {' -> '.join(chain)}")

    class Dumper(yaml.SafeDumper):
        """Tuples (a list used as a mapping key) as YAML lists."""

    Dumper.add_representer(tuple, yaml.SafeDumper.represent_list)
    text = yaml.dump(card.to_dict(), Dumper=Dumper, sort_keys=False, default_flow_style=False)
    say(text.rstrip())
    return 0


async def cmd_check(store: AssetStore, args: argparse.Namespace) -> int:
    logging.getLogger("asyncassets.store").setLevel(logging.ERROR)  # we print them all
    problems = await store.check()
    if args.json:
        say(json.dumps([problem.to_dict() for problem in problems], indent=2))
    else:
        for problem in problems:
            say(problem)
        names = await store.asset_names()
        summary = f"{len(names)} cards, {len(problems)} problem(s)"
        say(summary, file=sys.stderr)
    return 1 if problems else 0


async def cmd_watch(store: AssetStore, args: argparse.Namespace) -> int:
    async with store.watching(debounce_ms=args.debounce_ms, poll_interval=args.poll_interval):
        sources = ", ".join(p.source for p in store.providers_by_precedence())
        say(f"watching {sources} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        async for event in store.changes():
            if args.json:
                say(event.to_json(), flush=True)
                continue
            parts = [
                f"{label} {', '.join(sorted(names))}"
                for label, names in (
                    ("added", event.added),
                    ("modified", event.modified),
                    ("removed", event.removed),
                )
                if names
            ]
            if not parts and not event.problems:
                parts.append("problems fixed")
            stamp = event.time.astimezone().strftime("%H:%M:%S")
            say(f"{stamp}  {'; '.join(parts) or 'problems'}", flush=True)
            for problem in event.problems:
                say(f"          problem: {problem}", flush=True)
    return 0


def _parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--grace takes a number of seconds, not {text!r}") from None
    if value < 0:
        raise UsageError(f"--grace takes a number of seconds, not {text!r}")
    return value


def parse_size(text: str) -> int:
    """``50G``, ``512M``, ``1.5T``, ``1000`` -> bytes (powers of 1024)."""
    units = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    raw = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = (raw[:-1], raw[-1]) if raw and raw[-1] in units else (raw, "")
    try:
        size = float(number) * units[unit]
    except ValueError:
        raise UsageError(f"not a size: {text!r} (try 50G, 512M)") from None
    if size < 0:
        raise UsageError(f"a size must not be negative: {text!r}")
    return int(size)


def format_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


async def cmd_prefetch(store: AssetStore, args: argparse.Namespace) -> int:
    if args.distributed:
        return await _prefetch_distributed(store, args)
    limiter = anyio.Semaphore(max(1, args.jobs))
    failures: list[str] = []

    async def one(name: str) -> None:
        async with limiter:
            try:
                path = await store.prefetch(
                    name,
                    field=args.field,
                    force=args.force,
                    local_only=args.offline,
                    include=args.include,
                )
            except AssetError as exc:
                failures.append(f"{name}: {exc}")
                return
            say(f"{name}\t{path}", flush=True)

    async with anyio.create_task_group() as tg:
        for name in args.names:
            tg.start_soon(one, name)
    for failure in failures:
        say(f"asyncassets: error: {failure}", file=sys.stderr)
    return 1 if failures else 0


async def _prefetch_distributed(store: AssetStore, args: argparse.Namespace) -> int:
    """``prefetch --distributed``: every rank of a torchrun / SLURM job runs this; each
    item is fetched once per cache domain. Paths print on each node's first rank."""
    try:
        from asyncassets import distributed
    except ImportError as exc:
        say(
            f"asyncassets: error: --distributed needs torch ({exc}); "
            "pip install 'asyncassets[distributed]'",
            file=sys.stderr,
        )
        return 1
    try:
        await anyio.to_thread.run_sync(distributed.init_from_environment)
        paths = await distributed.prefetch_distributed(
            store, args.names, field=args.field, include=args.include
        )
    except AssetError as exc:
        say(f"asyncassets: error: {exc}", file=sys.stderr)
        return 1
    if distributed.local_rank() == 0:
        for name, path in zip(args.names, paths, strict=True):
            say(f"{name}\t{path}", flush=True)
    return 0


async def cmd_serve(store: AssetStore, args: argparse.Namespace) -> int:
    """Run the ASGI app with uvicorn until SIGINT or SIGTERM."""
    try:
        import uvicorn

        from asyncassets.asgi import create_app
    except ImportError as exc:
        raise UsageError(
            f"serve needs the extra 'serve' ({exc}): pip install 'asyncassets[serve]'"
        ) from None
    if not on_asyncio():
        raise UsageError("serve runs on asyncio (uvicorn)")
    from asyncassets.asgi import LOCAL_HOSTS

    hosts = list(args.allowed_host or LOCAL_HOSTS)
    if not args.allowed_host and args.host not in ("0.0.0.0", "::", ""):
        hosts.append(f"[{args.host}]" if ":" in args.host else args.host)
    app = create_app(
        store,
        prefetch=args.prefetch,
        watch=not args.no_watch,
        field=args.field,
        allowed_hosts=hosts,
    )
    _Server = _server_class(app)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="debug" if args.verbose else "info",
        timeout_graceful_shutdown=5,
    )
    say(
        f"serving {len(store.providers_by_precedence())} store(s) on http://{args.host}:"
        f"{args.port}/ (Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )
    await _Server(config).serve()
    return 0


def _server_class(app: Any) -> Any:
    import uvicorn

    from asyncassets.asgi import end_event_streams

    class Server(uvicorn.Server):
        """uvicorn's server, except that SIGINT / SIGTERM end it with status 0 (a graceful
        stop is a success, not a death by signal: uvicorn raises the signal again), and
        that open /events streams end as the shutdown starts (else it waits for them)."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()

        async def shutdown(self, sockets: Any = None) -> None:
            end_event_streams(app)
            await super().shutdown(sockets)

    return Server


async def cmd_cache(store: AssetStore, args: argparse.Namespace) -> int:
    cache = store.cache
    if args.cache_command == "ls":
        entries = await cache.list_entries()
        if args.json:
            say(
                json.dumps(
                    [
                        {
                            "key": e.key,
                            "uri": e.uri,
                            "size": e.size,
                            "last_used": e.last_used,
                            "complete": e.complete,
                            "path": str(e.path) if e.path else None,
                            "include": e.include,
                            "revision": e.revision,
                        }
                        for e in entries
                    ],
                    indent=2,
                )
            )
            return 0
        from datetime import datetime

        for e in entries:
            used = datetime.fromtimestamp(e.last_used).strftime("%Y-%m-%d %H:%M")
            state = "" if e.complete else "  (partial)"
            chosen = f" [{', '.join(e.include)}]" if e.include else ""
            at = f" @{e.revision[:12]}" if e.revision else ""
            say(f"{e.key}  {format_size(e.size):>10}  {used}  {e.uri}{at}{chosen}{state}")
        total = sum(e.size for e in entries)
        say(f"{len(entries)} entries, {format_size(total)} in {cache.root}", file=sys.stderr)
        return 0
    if args.cache_command == "prune":
        limit = parse_size(args.max_size) if args.max_size is not None else cache.max_bytes
        grace = _parse_seconds(args.grace) if args.grace is not None else None
        removed = await cache.prune(limit, grace=grace)
        for e in removed:
            say(f"removed {e.uri} ({format_size(e.size)})")
        say(f"{len(removed)} entries removed", file=sys.stderr)
        return 0
    if not await cache.remove(args.uri):
        raise UsageError(f"{args.uri} is not in the cache")
    say(f"removed {args.uri}")
    return 0


async def cmd_demo(store: AssetStore, args: argparse.Namespace) -> int:
    from asyncassets.demo import run_demo

    await run_demo(say)
    return 0


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


def make_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("store options")
    group.add_argument(
        "--store",
        action="append",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="a card folder or URL (repeatable; replaces the default stores; later wins)",
    )
    group.add_argument(
        "--env", metavar="ENV", default=argparse.SUPPRESS, help="the active environment"
    )
    group.add_argument(
        "--storage-option",
        action="append",
        metavar="KEY=VALUE",
        default=argparse.SUPPRESS,
        help="an fsspec storage option for --store URLs (repeatable)",
    )
    group.add_argument(
        "--cache-dir", metavar="DIR", default=argparse.SUPPRESS, help="checkpoint cache folder"
    )
    group.add_argument(
        "--offline",
        action="store_true",
        default=argparse.SUPPRESS,
        help="never touch the network for cached files",
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log details"
    )

    parser = argparse.ArgumentParser(
        prog="asyncassets",
        description="Resolve fairseq2-style asset cards; prefetch what they point to.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", parents=[common], help="list cards")
    p.add_argument("--kind", choices=(*KINDS, "all"), default="all")
    p.add_argument("--json", action="store_true", help="JSON output")

    p = sub.add_parser("show", parents=[common], help="show a resolved card")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.add_argument(
        "--config",
        metavar="KEY",
        help="print field KEY merged down the base chain (fairseq2's config overrides), as JSON",
    )

    p = sub.add_parser("check", parents=[common], help="report problems (exit 1 if any)")
    p.add_argument("--json", action="store_true", help="JSON output")

    p = sub.add_parser("watch", parents=[common], help="print change events until Ctrl-C")
    p.add_argument("--json", action="store_true", help="one JSON object per event and line")
    p.add_argument("--debounce-ms", type=int, default=50, help="quiet time after an edit")
    p.add_argument(
        "--poll-interval", type=float, default=None, help="seconds between remote listings"
    )

    p = sub.add_parser("prefetch", parents=[common], help="fetch cards' checkpoints")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--field", default="checkpoint", help="the field holding the URI")
    p.add_argument("--jobs", type=int, default=4, help="cards fetched at once")
    p.add_argument("--force", action="store_true", help="download again even when cached")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="under torchrun or SLURM: fetch each item once per cache domain (the ranks "
        "that share a cache folder), not once per rank",
    )
    p.add_argument(
        "--include",
        action="append",
        metavar="PATTERN",
        help="files of a folder or Hub repo to fetch (glob, repeatable); default for a Hub "
        "repo: what fairseq2 loads (checkpoint: *.safetensors*, *.pt; tokenizer: "
        "tokenizer*.json; a dataset: everything)",
    )

    p = sub.add_parser("cache", parents=[common], help="inspect and trim the local cache")
    cache_sub = p.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    q = cache_sub.add_parser("ls", parents=[common], help="entries, URIs, sizes, last use")
    q.add_argument("--json", action="store_true", help="JSON output")
    q = cache_sub.add_parser(
        "prune",
        parents=[common],
        help="reclaim superseded versions and abandoned downloads; evict least recently used",
    )
    q.add_argument("--max-size", metavar="SIZE", help="keep at most SIZE (e.g. 50G)")
    q.add_argument(
        "--grace",
        metavar="SECONDS",
        help="reclaim versions superseded longer ago than this (default 3600)",
    )
    q = cache_sub.add_parser("rm", parents=[common], help="remove one URI's entry")
    q.add_argument("uri", metavar="URI")

    sub.add_parser("demo", parents=[common], help="a short tour on a temporary store")

    p = sub.add_parser(
        "serve",
        parents=[common],
        help="serve the store over HTTP: cards, problems, events, metrics, a live page",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="a Host name the app answers (repeatable; '*.example.com' works, '*' allows "
        "any); default: localhost names and --host",
    )
    p.add_argument(
        "--prefetch",
        action="append",
        default=[],
        metavar="NAME",
        help="a card to prefetch before /readyz says ready (repeatable)",
    )
    p.add_argument("--field", default="checkpoint", help="the field --prefetch fetches")
    p.add_argument("--no-watch", action="store_true", help="do not follow edits of the cards")
    return parser


def _defaults(args: argparse.Namespace) -> argparse.Namespace:
    for name, default in (
        ("store", None),
        ("env", None),
        ("storage_option", None),
        ("cache_dir", None),
        ("offline", False),
        ("verbose", False),
    ):
        if not hasattr(args, name):
            setattr(args, name, default)
    return args


async def run(args: argparse.Namespace) -> int:
    store = build_store(args)
    async with store:
        return await COMMANDS[args.command](store, args)


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
      which prints the traceback too (exit 1).
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
    return 2 if isinstance(first, AssetCardNotFoundError) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _defaults(make_parser().parse_args(argv))
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


if __name__ == "__main__":
    sys.exit(main())
