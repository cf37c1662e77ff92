"""Card files read as fairseq2 reads them (ruamel's safe loader, YAML 1.2), on every path.

tests/data/yaml_fidelity.json holds the table: each form with the value and type of every
document as ruamel gives it (tests/data/yaml_fidelity.py made it, from the YAML 1.2 spec,
checked against ruamel). Each case runs through:

* the fast reader (yaml-rs), for the cases it takes;
* the exact reader (libyaml's parser, ruamel's resolver and constructor), for all;
* ``parse_card_file``, which picks one (its problems name the line).

A random sweep of number-like plain scalars then checks that the two readers never
disagree: the fast reader must take a form only if it reads it as the exact reader does.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from asyncassets import yaml12
from asyncassets.fast_reader import fast_documents
from asyncassets.parsing import parse_card_file, read_documents

sys_path = Path(__file__).parent / "data"
import sys  # noqa: E402

sys.path.insert(0, str(sys_path))
from yaml_fidelity import encode  # noqa: E402

TABLE = json.loads((sys_path / "yaml_fidelity.json").read_text(encoding="utf-8"))
CASES = TABLE["cases"]
IDS = [case["id"] for case in CASES]


def test_the_table_is_big_enough_and_covers_every_kind_of_form() -> None:
    assert len(CASES) >= 120
    kinds = json.dumps([case["expect"] for case in CASES])
    for kind in ("str", "int", "float", "bool", "null", "date", "datetime", "binary", "map"):
        assert f'"{kind}"' in kinds
    for kind in ("seq", "tuple", "set", "DuplicateKeyError", "ConstructorError"):
        assert kind in kinds
    assert TABLE["reader"].startswith("ruamel.yaml 0.18")


def _read(text: str, *, fast: bool) -> Any:
    return [encode(value) for _, value in read_documents(text.encode(), fast=fast)[0]]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_exact_reader_reads_each_form_as_fairseq2(case: dict[str, Any]) -> None:
    expect = case["expect"]
    if isinstance(expect, dict):  # ruamel refuses the file
        with pytest.raises(Exception):  # noqa: B017 (any refusal; the problem test names it)
            read_documents(case["yaml"].encode(), fast=False)
    else:
        assert _read(case["yaml"], fast=False) == expect, case["note"]


def _composed(text: str, reader: str) -> Any:
    return [encode(value) for _, value in yaml12.documents(text.encode(), reader)]


def _for_reader(case: dict[str, Any], reader: str) -> bool:
    """The cases a composer is for: libyaml's parser takes the tabs ruamel refuses (the
    exact reader sends files with a tab to the pure-Python one), and its own composer knows
    no ``%YAML`` version (those go to the events composer). The pure one takes them all."""
    text = case["yaml"]
    if reader == "pure":
        return True
    return "\t" not in text and (reader == "events" or "%" not in text)


@pytest.mark.parametrize("reader", yaml12.READERS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_each_composer_of_the_exact_reader_reads_each_form_as_fairseq2(
    case: dict[str, Any], reader: str
) -> None:
    if not _for_reader(case, reader):
        assert "%" in case["yaml"] or "\t" in case["yaml"]
        return
    expect = case["expect"]
    if isinstance(expect, dict):
        with pytest.raises(Exception):  # noqa: B017 (any refusal)
            _composed(case["yaml"], reader)
    else:
        assert _composed(case["yaml"], reader) == expect, case["note"]


#: Cases the fast reader must take itself (not hand to the exact reader): the everyday
#: forms of card files. The rest may go either way, as long as the value is right.
FAST_CASES = {
    "card",
    "keys-yes-on",
    "key-true",
    "key-int",
    "key-float",
    "key-flow-seq",
    "literal",
    "literal-strip",
    "literal-keep",
    "folded",
    "flow-map",
    "flow-seq-nested",
    "seq-of-maps",
    "empty-values",
    "comments",
    "crlf",
    "unicode-key",
    "long-string",
    "multi-doc",
    "multi-doc-empty",
    "doc-marker-first",
    "doc-marker-comment",
    "doc-list",
    "doc-list-multi",
    "doc-scalar",
    "doc-inline-map",
    "scalar-int-leading-zero",
    "scalar-int-octal",
    "scalar-int-hex",
    "scalar-float-exp-neg",
    "scalar-float-exp-pos-int",
    "scalar-float-exp-upper",
    "scalar-float-trailing-dot",
    "scalar-inf-plus",
    "scalar-no",
    "scalar-on",
    "scalar-int-sexagesimal",
    "scalar-string-path",
    "scalar-string-url",
    "scalar-double-escapes",
    "scalar-plain-multiline",
}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_fast_reader_reads_each_form_it_takes_as_fairseq2(case: dict[str, Any]) -> None:
    expect = case["expect"]
    documents = fast_documents(case["yaml"].encode())
    if case["id"] in FAST_CASES:
        assert documents is not None, "the fast reader should take this everyday form"
    if documents is None:
        return  # the exact reader's case, checked above
    assert not isinstance(expect, dict), f"ruamel refuses this file: {expect}"
    assert [encode(value) for _, value in documents] == expect, case["note"]
    exact, _ = read_documents(case["yaml"].encode(), fast=False)
    lines = [line for line, value in exact if value is not None]
    assert [line for line, value in documents if value is not None] == lines


def test_the_fast_reader_takes_most_of_the_table() -> None:
    taken = [case["id"] for case in CASES if fast_documents(case["yaml"].encode()) is not None]
    assert len(taken) >= 100
    assert set(taken) >= FAST_CASES


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_parse_card_file_gives_the_table_or_a_problem_with_a_line(case: dict[str, Any]) -> None:
    expect = case["expect"]
    record = parse_card_file(case["yaml"].encode(), file="/cards/case.yaml", source="test")
    if isinstance(expect, dict):
        assert not record.entries
        (problem,) = record.problems
        assert problem.kind == "yaml"
        assert problem.file == "/cards/case.yaml"
        if expect["line"] is not None and expect["error"] == "DuplicateKeyError":
            assert problem.line == expect["line"]
            assert "duplicate key" in problem.message
        return
    # Documents are not cards (no name): each mapping is a 'name' problem, never a yaml one.
    assert all(problem.kind != "yaml" for problem in record.problems)


@pytest.mark.parametrize("case", [c for c in CASES if c["id"].startswith("dup-")], ids=str)
def test_a_duplicate_key_names_the_file_line_and_key(case: dict[str, Any]) -> None:
    record = parse_card_file(case["yaml"].encode(), file="/cards/dup.yaml", source="test")
    (problem,) = record.problems
    assert problem.line == case["expect"]["line"]
    assert str(problem).startswith(f"/cards/dup.yaml:{problem.line}: invalid YAML: duplicate key")


def test_field_lines_of_the_fast_reader_match_the_exact_reader() -> None:
    text = b"# licence\n---\nname: a\nbase: b\n\nlr: 1e-4\n---\nname: c\nconfig:\n  x: 1\n"
    fast_documents, fast = read_documents(text)
    exact_documents, exact = read_documents(text, fast=False)
    assert (
        fast_documents
        == exact_documents
        == [
            (3, {"name": "a", "base": "b", "lr": 0.0001}),
            (8, {"name": "c", "config": {"x": 1}}),
        ]
    )
    assert [fast.of(i) for i in range(2)] == [exact.of(i) for i in range(2)]
    assert fast.of(0) == {"name": 3, "base": 4, "lr": 6}
    record = parse_card_file(text, file="/cards/x.yaml", source="test")
    assert [entry.field_line("lr") for entry in record.entries] == [6, 8]  # 8: its start


# -- the two readers agree on every number-like plain scalar --------------------------------------

_ALPHABET = list("0123456789") + list("._-+eExXoObB:_") + [".inf", ".nan", "0x", "0o", "0b"]


def _token(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 7)))


def _both(text: str) -> tuple[Any, Any] | None:
    fast = fast_documents(text.encode())
    if fast is None:
        return None
    try:
        exact = [value for _, value in read_documents(text.encode(), fast=False)[0]]
    except Exception as exc:
        return [v for _, v in fast], type(exc).__name__
    return [encode(v) for _, v in fast], [encode(v) for v in exact]


def test_the_readers_agree_on_random_number_like_scalars() -> None:
    rng = random.Random(20261204)
    taken = 0
    for _ in range(20_000):
        token = _token(rng)
        for text in (f"v: {token}\n", f"v: [{token}, x]\n", f"- {token}\n", f"{token}: k\n"):
            both = _both(text)
            if both is None:
                continue
            taken += 1
            fast, exact = both
            assert fast == exact, text
    assert taken > 20_000  # most forms are the fast reader's


_ATOMS = [
    *("a", "b c", "1", "-1", "1.5", "1e3", "1e-4", "0x1F", "0o7", "010", ".5", "1_0", "1:30"),
    *("true", "no", "on", "~", "null", "Yes", "NULL", "''", "'x y'", '"q\\n"', "x:y", "a#b"),
    *("x-y", "http://h/p", "../p", "\u00e9", "llama3_8b", "s3://b/k", "hg://o/r", "_set_"),
    *(":", ",", "[", "]", "{", "}", "-", "?", "|", ">", "'", '"', "#c", "%", "@", "=", "..."),
]


def _document(rng: random.Random, indent: int = 0, depth: int = 0) -> list[str]:
    def scalar() -> str:
        return "".join(rng.choice(_ATOMS) for _ in range(rng.randint(1, 3)))

    def flow(level: int = 0) -> str:
        if level > 2 or rng.random() < 0.5:
            return scalar()
        if rng.random() < 0.5:
            return "[" + ", ".join(flow(level + 1) for _ in range(rng.randint(0, 3))) + "]"
        items = (f"{scalar()}: {flow(level + 1)}" for _ in range(rng.randint(0, 3)))
        return "{" + ", ".join(items) + "}"

    lines = []
    pad = " " * indent
    for _ in range(rng.randint(1, 4)):
        key, roll = scalar(), rng.random()
        if depth < 3 and roll < 0.25:
            lines.append(f"{pad}{key}:")
            lines.extend(_document(rng, indent + rng.choice([1, 2, 4]), depth + 1))
        elif depth < 3 and roll < 0.4:
            lines.append(f"{pad}{key}:")
            lines.extend(f"{pad}{rng.choice(['', '  '])}- {flow()}" for _ in range(2))
        elif roll < 0.5:
            lines.append(f"{pad}{key}: |{rng.choice(['', '-', '+', '2'])}")
            lines.extend(" " * (indent + rng.choice([1, 2, 3])) + scalar() for _ in range(2))
        else:
            lines.append(f"{pad}{key}: {flow()}{rng.choice(['', ' # c'])}")
    return lines


def test_the_readers_agree_on_random_documents() -> None:
    rng = random.Random(4)
    taken = 0
    for _ in range(6000):
        text = "\n---\n".join("\n".join(_document(rng)) for _ in range(rng.randint(1, 2)))
        text += rng.choice(["\n", "", "\n\n"])
        both = _both(text)
        if both is not None:
            taken += 1
            assert both[0] == both[1], text
    assert taken > 150  # the rest holds forms for the exact reader, or is no YAML


def test_yaml_rs_is_the_fast_reader_here() -> None:
    # The fast reader is an accelerator: without yaml-rs every file takes the exact one.
    # CI installs it, so the fast path above is really exercised.
    assert fast_documents(b"name: a\n") == [(1, {"name": "a"})]
    assert yaml.__with_libyaml__


def test_the_fast_reader_takes_the_fairseq2_corpus(corpus_dir: Path) -> None:
    # Speed is the fast reader's whole point: the screen must not send everyday card files
    # to the exact reader (a rule too broad once sent a fifth of bench/lookup.py's files).
    files = sorted((corpus_dir / "fairseq2-cards").rglob("*.yaml"))
    taken = [path.name for path in files if fast_documents(path.read_bytes()) is not None]
    assert len(files) >= 20
    assert len(taken) >= len(files) - 2, sorted({p.name for p in files} - set(taken))
