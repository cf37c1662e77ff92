"""Static checks of a card index: shadowed names, orphan env overrides, missing bases and
base cycles. Pure: no I/O (what ``store.check()`` adds to the providers' parse problems).
"""

from __future__ import annotations

from asyncassets.problems import Problem
from asyncassets.resolution import CardIndex
from asyncassets.snapshot import CardEntry
from asyncassets.urls import display_path

__all__ = ["index_problems"]


def index_problems(index: CardIndex) -> list[Problem]:
    """Every problem of ``index`` that no single file shows, in a stable order."""
    return [
        *_shadowing_problems(index),
        *_orphan_override_problems(index),
        *_base_problems(index),
    ]


def _where(entry: CardEntry, field: str | None = None) -> str:
    line = entry.field_line(field) if field else entry.line
    return f"{display_path(entry.file)}:{line}"


def _shadowing_problems(index: CardIndex) -> list[Problem]:
    problems = []
    for name in sorted(index.names):
        definitions = index.definitions(name)
        for loser in definitions[1:]:
            problems.append(
                Problem(
                    "shadowed",
                    f"card '{name}' is shadowed by {_where(definitions[0])} "
                    f"({definitions[0].source}), which takes precedence",
                    loser.source,
                    loser.file,
                    loser.line,
                    card=name,
                )
            )
    return problems


def _orphan_override_problems(index: CardIndex) -> list[Problem]:
    """Env overrides of a card that no store defines: they can never apply."""
    problems = []
    for entry in sorted(index.entries(), key=lambda e: (e.file, e.line)):
        plain, _, env = entry.name.partition("@")
        if env and index.get(f"{plain}@") is None:
            problems.append(
                Problem(
                    "orphan-override",
                    f"card '{entry.name}' overrides '{plain}' for env '{env}', "
                    f"but no card named '{plain}' exists",
                    entry.source,
                    entry.file,
                    entry.line,
                    card=entry.name,
                )
            )
    return problems


def _base_problems(index: CardIndex) -> list[Problem]:
    problems = []
    edges: dict[str, set[str]] = {}
    entry_of: dict[tuple[str, str], CardEntry] = {}
    for entry in sorted(index.entries(), key=lambda e: (e.file, e.line)):
        base = entry.metadata.get("base")
        if not isinstance(base, str):
            continue
        plain = entry.name.partition("@")[0]
        if index.get(f"{base}@") is None:
            problems.append(
                Problem(
                    "missing-base",
                    f"card '{entry.name.rstrip('@')}' names base '{base}', which no card defines",
                    entry.source,
                    entry.file,
                    entry.field_line("base"),
                    card=entry.name,
                    field="base",
                )
            )
            continue
        edges.setdefault(plain, set()).add(base)
        entry_of.setdefault((plain, base), entry)
    seen_cycles: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                key = frozenset(cycle)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    entry = entry_of[(node, nxt)]
                    problems.append(
                        Problem(
                            "cycle",
                            f"base cycle: {' -> '.join(cycle)}",
                            entry.source,
                            entry.file,
                            entry.field_line("base"),
                            card=entry.name,
                            field="base",
                        )
                    )
            elif nxt not in state:
                visit(nxt, path)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    return problems
