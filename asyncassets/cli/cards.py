"""Commands that read cards: ``list``, ``show``, ``check``, ``watch``, ``demo``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from asyncassets import AssetCardError, AssetCardNotFoundError, AssetStore
from asyncassets.cli.output import annotation, say
from asyncassets.kinds import card_family, card_kind
from asyncassets.problems import Problem
from asyncassets.reachability import check_reachable
from asyncassets.values import json_value


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
    output = args.format or ("json" if args.json else "text")
    problems = await store.check()
    notes: list[Problem] = []
    checked = None
    if args.reachable:
        report = await check_reachable(store, await store.card_index())
        problems.extend(report.problems)
        notes, checked = report.notes, report.checked
    if output == "json":
        say(json.dumps([problem.to_dict() for problem in problems], indent=2))
        for note in notes:
            say(f"note: {note}", file=sys.stderr)
        return 1 if problems else 0
    for problem in problems:
        say(annotation(problem, "error") if output == "github" else problem)
    for note in notes:
        say(annotation(note, "notice") if output == "github" else f"note: {note}")
    names = await store.asset_names()
    summary = f"{len(names)} cards, {len(problems)} problem(s)"
    if checked is not None:
        summary += f"; {checked} distinct URIs checked, {len(notes)} gated card(s)"
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


async def cmd_demo(store: AssetStore, args: argparse.Namespace) -> int:
    from asyncassets.demo import run_demo

    await run_demo(say)
    return 0
