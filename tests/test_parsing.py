"""YAML bytes -> card entries and problems: a pure function, tested without a loop or disk."""

import textwrap

import pytest
import yaml

from asyncassets.parsing import is_card_file, parse_card_file
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
