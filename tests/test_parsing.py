"""YAML bytes -> card entries and problems: a pure function, tested without a loop or disk."""

import json
import random
import textwrap
from typing import Any

import pytest
import yaml

from asyncassets.parsing import (
    MAX_DEPTH,
    MAX_VALUES,
    LimitError,
    is_card_file,
    measure_tree,
    measure_value,
    parse_card_file,
)
from asyncassets.snapshot import FileRecord

FILE = "file:///cards/models.yaml"
SOURCE = "file:///cards"


def parse(text: str) -> FileRecord:
    return parse_card_file(textwrap.dedent(text).encode(), file=FILE, source=SOURCE)


def test_single_document_becomes_one_entry() -> None:
    record = parse("name: tiny\nmodel_family: toy\n")
    assert [e.name for e in record.entries] == ["tiny@"]
    assert dict(record.entries[0].metadata) == {"name": "tiny", "model_family": "toy"}


def test_every_document_of_a_multi_document_file_becomes_an_entry() -> None:
    record = parse(
        """\
        name: a
        ---
        name: b
        ---
        name: c@slurm
        """
    )
    assert [e.name for e in record.entries] == ["a@", "b@", "c@slurm"]
    assert [e.index for e in record.entries] == [0, 1, 2]


def test_entry_line_is_where_its_document_starts() -> None:
    record = parse(
        """\
        # a comment
        # another

        name: a
        ---
        name: b
        """
    )
    assert [e.line for e in record.entries] == [4, 6]


def test_entry_records_the_line_of_each_top_level_field() -> None:
    record = parse(
        """\
        name: a
        model_family: toy
        base: b
        """
    )
    entry = record.entries[0]
    assert entry.field_line("name") == 1
    assert entry.field_line("base") == 3


def test_entry_carries_its_file_and_source() -> None:
    entry = parse("name: a\n").entries[0]
    assert (entry.file, entry.source) == (FILE, SOURCE)


def test_licence_header_and_comments_are_ignored() -> None:
    record = parse(
        """\
        # Copyright (c) Somebody.
        # All rights reserved.

        name: a  # trailing comment
        """
    )
    assert dict(record.entries[0].metadata) == {"name": "a"}
    assert record.problems == ()


def test_empty_documents_are_skipped_without_a_problem() -> None:
    record = parse("---\n---\nname: a\n---\n")
    assert [e.name for e in record.entries] == ["a@"]
    assert record.problems == ()


def test_an_empty_file_has_no_entries_and_no_problems() -> None:
    record = parse("")
    assert record.entries == ()
    assert record.problems == ()


def test_values_are_what_yaml_safe_load_returns() -> None:
    text = "name: a\nmodel_config:\n  dim: 4\nlangs: [en, fr]\nwhen: 2024-01-02\n"
    entry = parse(text).entries[0]
    assert entry.metadata == yaml.safe_load(text)
    assert type(entry.metadata["model_config"]) is dict
    assert type(entry.metadata["langs"]) is list


def test_an_alias_is_parsed_once_and_shared() -> None:
    entry = parse("name: a\nx: &x {dim: 4}\ny: *x\n").entries[0]
    assert entry.metadata["y"] == {"dim": 4}
    assert entry.metadata["x"] is entry.metadata["y"]


def test_yaml_syntax_error_rejects_the_whole_file_with_its_line() -> None:
    record = parse(
        """\
        name: a
        ---
        name: b
        model_config: {dim: 4
        """
    )
    assert record.entries == ()
    [problem] = record.problems
    assert problem.kind == "yaml"
    assert problem.file == FILE
    assert problem.line is not None and problem.line >= 4


def test_undecodable_bytes_are_a_yaml_problem() -> None:
    record = parse_card_file(b"name: \xff\xfe\x00a\n", file=FILE, source=SOURCE)
    assert record.entries == ()
    assert [p.kind for p in record.problems] == ["yaml"]


def test_a_bad_document_does_not_drop_the_others_in_its_file() -> None:
    record = parse(
        """\
        name: a
        ---
        - not
        - a mapping
        ---
        name: c
        """
    )
    assert [e.name for e in record.entries] == ["a@", "c@"]
    assert [p.kind for p in record.problems] == ["not-a-mapping"]


def test_problem_of_a_document_carries_the_document_line() -> None:
    record = parse("name: a\n---\nmodel_family: toy\n")
    [problem] = record.problems
    assert problem.line == 3
    assert "no 'name'" in problem.message


def test_name_problem_points_at_the_name_line() -> None:
    record = parse("model_family: toy\nname: 12\n")
    [problem] = record.problems
    assert problem.kind == "name"
    assert problem.line == 2


def test_base_problem_points_at_the_base_line() -> None:
    record = parse("name: a\nmodel_family: toy\nbase: b@slurm\n")
    [problem] = record.problems
    assert problem.kind == "base"
    assert problem.line == 3
    assert problem.card == "a@"


def test_base_may_be_set_on_an_env_override() -> None:
    record = parse("name: a@slurm\nbase: b\n")
    assert [e.name for e in record.entries] == ["a@slurm"]


def test_file_version_is_kept_on_the_record() -> None:
    record = parse_card_file(b"name: a\n", file=FILE, source=SOURCE, version="v7")
    assert record.version == "v7"


@pytest.mark.parametrize("path", ["a.yaml", "dir/b.yml"])
def test_yaml_and_yml_files_are_card_files(path: str) -> None:
    assert is_card_file(path)


@pytest.mark.parametrize("path", ["a.json", "a.yaml.bak", "README.md", "yaml"])
def test_other_files_are_not_card_files(path: str) -> None:
    assert not is_card_file(path)


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = {"k": value} if level % 2 else [value, 1]
    return value


def _random_tree(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 6 or roll < 0.4:
        return rng.choice([1, 2.5, "s", None, True, float("nan")])
    if roll < 0.7:
        return [_random_tree(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    return {f"k{i}": _random_tree(rng, depth + 1) for i in range(rng.randrange(0, 5))}


def _outcome(measure: Any, value: Any) -> Any:
    try:
        return measure(value)
    except LimitError as exc:
        return str(exc).split(" (")[0]


@pytest.mark.parametrize(
    "value",
    [
        "scalar",
        {},
        [],
        {"a": [1, {"b": None}], "c": "d"},
        _nested(MAX_DEPTH - 1),
        _nested(MAX_DEPTH),  # the deepest container sits at depth MAX_DEPTH - 1
        _nested(MAX_DEPTH + 1),
        list(range(MAX_VALUES - 1)),
        list(range(MAX_VALUES)),
        {str(i): i for i in range(MAX_VALUES // 2)},
        [[0] * 1000 for _ in range(MAX_VALUES // 1000)],
        *(_random_tree(random.Random(seed)) for seed in range(200)),
    ],
)
def test_measure_tree_agrees_with_measure_value_on_json_data(value: Any) -> None:
    """The index's check of an entry read back from JSON gives the size and the limits
    that the card file's own check gives."""
    value = json.loads(json.dumps(value))  # as the index's decoder builds it
    assert _outcome(measure_tree, value) == _outcome(measure_value, value)
