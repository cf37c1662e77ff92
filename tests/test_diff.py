"""``asyncassets diff OLD NEW`` (issue 21): what a change to a card repository does to the
cards people resolve. Real folders under ``tmp_path``, and a store URL on moto; the pure
comparison (:mod:`asyncassets.card_diff`) is tested on its own at the end."""

from __future__ import annotations

import json
import math
import os
import re
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import put_s3_objects, unique_bucket

from asyncassets.card_diff import ABSENT, FieldChange, Unresolvable, diff_cards, flatten_fields
from asyncassets.cli import main

CardFiles = dict[str, str]

#: A base, a card inheriting it (in another file), a cluster override of the base.
TREE: CardFiles = {
    "base.yaml": """\
        name: llama
        model_family: llama
        model_config:
          dim: 2048
          layers: [1, 2]
        checkpoint: hg://org/llama
        ---
        name: llama@cluster
        checkpoint: /data/llama
        """,
    "instruct.yaml": """\
        name: llama_instruct
        base: llama
        chat: true
        """,
    "other.yaml": """\
        name: tiny
        model_family: toy
        """,
}

#: Every control character a terminal acts on, but tab and line feed.
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def write_tree(root: Path, files: CardFiles) -> Path:
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(content))
    return root


@pytest.fixture
def old(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "old", TREE)


@pytest.fixture
def new(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "new", TREE)


def edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def diff(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["diff", *map(os.fspath, args)])
    out, err = capsys.readouterr()
    return code, out, err


def diff_json(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, object]:
    code, out, _ = diff(capsys, *args, "--json")
    return code, json.loads(out)


# -- what shows and what does not ------------------------------------------------------------


def test_identical_trees_exit_0_with_no_output(
    old: Path, new: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = diff(capsys, old, new)
    assert code == 0
    assert out == ""
    assert "no differences (3 cards in OLD, 3 in NEW)" in err
    assert diff_json(capsys, old, new) == (0, {"added": [], "removed": [], "changed": {}})


def test_a_base_edit_shows_in_every_inheriting_card(
    old: Path, new: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(new, "base.yaml", "dim: 2048", "dim: 4096")
    code, result = diff_json(capsys, old, new)
    assert code == 1
    change = {"model_config.dim": [2048, 4096]}
    assert result == {
        "added": [],
        "removed": [],
        "changed": {
            "llama": change,
            "llama@cluster": change,
            "llama_instruct": change,
            "llama_instruct@cluster": change,
        },
    }


def test_a_card_moved_to_another_file_is_unchanged(
    old: Path, new: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (new / "models").mkdir()
    (new / "instruct.yaml").rename(new / "models" / "chat.yaml")
    # The override moves to a file of its own, the plain card into another one's.
    base = (new / "base.yaml").read_text()
    plain, override = base.split("---\n")
    (new / "base.yaml").unlink()
    (new / "other.yaml").write_text((new / "other.yaml").read_text() + "---\n" + plain)
    (new / "models" / "cluster.yaml").write_text(override)
    code, out, err = diff(capsys, old, new)
    assert (code, out) == (0, "")
    assert "no differences" in err


def test_a_moved_card_whose_relative_path_names_the_same_file_is_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write_tree(tmp_path / "old", {"m.yaml": "name: m\ncheckpoint: ckpt/m.pt\n"})
    same = write_tree(tmp_path / "same", {"sub/m.yaml": "name: m\ncheckpoint: ../ckpt/m.pt\n"})
    elsewhere = write_tree(
        tmp_path / "elsewhere", {"sub/m.yaml": "name: m\ncheckpoint: ckpt/m.pt\n"}
    )
    assert diff_json(capsys, old, same) == (0, {"added": [], "removed": [], "changed": {}})
    code, result = diff_json(capsys, old, elsewhere)
    assert code == 1
    assert result == {
        "added": [],
        "removed": [],
        "changed": {"m": {"checkpoint": ["ckpt/m.pt", "sub/ckpt/m.pt"]}},
    }


def test_an_env_override_change_shows_under_name_at_env(
    old: Path, new: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(new, "base.yaml", "checkpoint: /data/llama\n", "checkpoint: /data/llama2\n")
    code, result = diff_json(capsys, old, new)
    assert code == 1
    change = {"checkpoint": ["/data/llama", "/data/llama2"]}
    # Not under the plain cards; under the child too, which inherits the base's override.
    assert result == {
        "added": [],
        "removed": [],
        "changed": {"llama@cluster": change, "llama_instruct@cluster": change},
    }


def test_an_env_only_one_side_defines_is_compared_on_both(
    old: Path, new: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (new / "tiny_eu.yaml").write_text("name: tiny@eu\nmodel_family: toy_eu\n")
    code, result = diff_json(capsys, old, new)
    assert code == 1
    assert result == {
        "added": [],
        "removed": [],
        "changed": {"tiny@eu": {"model_family": ["toy", "toy_eu"]}},
    }


def test_added_and_removed_cards(old: Path, new: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (new / "other.yaml").unlink()
    (new / "fresh.yaml").write_text("name: fresh\nbase: llama\n")
    code, out, err = diff(capsys, old, new)
    assert code == 1
    assert out.splitlines() == [
        "added    fresh",
        "added    fresh@cluster",
        "removed  tiny",
    ]
    assert "2 added, 1 removed (3 cards in OLD, 3 in NEW)" in err  # lines, not cards
    _, result = diff_json(capsys, old, new)
    assert result == {"added": ["fresh", "fresh@cluster"], "removed": ["tiny"], "changed": {}}


def test_text_lists_each_changed_field_with_old_and_new_value(
    old: Path, new: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(new, "other.yaml", "model_family: toy\n", "model_family: toy\nmodel_config: {dim: 8}\n")
    edit(new, "instruct.yaml", "chat: true\n", "chat: 'true'\n")
    code, out, _ = diff(capsys, old, new)
    assert code == 1
    assert out.splitlines() == [
        "changed  llama_instruct",
        '  chat: true -> "true"',  # a string now: the type counts
        "changed  llama_instruct@cluster",
        '  chat: true -> "true"',
        "changed  tiny",
        "  model_config.dim: (absent) -> 8",
    ]


def test_json_prints_the_design_shape_exactly(
    old: Path, new: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (new / "other.yaml").unlink()
    (new / "zeta.yaml").write_text("name: zeta\n")
    edit(new, "instruct.yaml", "chat: true\n", "system_prompt: hi\n")
    edit(new, "base.yaml", "layers: [1, 2]", "layers: [1, 2, 3]")
    code, out, _ = diff(capsys, old, new, "--json")
    assert code == 1
    result = json.loads(out)
    assert list(result) == ["added", "removed", "changed"]
    assert result == {
        "added": ["zeta"],
        "removed": ["tiny"],
        "changed": {
            "llama": {"model_config.layers": [[1, 2], [1, 2, 3]]},
            "llama@cluster": {"model_config.layers": [[1, 2], [1, 2, 3]]},
            "llama_instruct": {
                "chat": [True, None],
                "model_config.layers": [[1, 2], [1, 2, 3]],
                "system_prompt": [None, "hi"],
            },
            "llama_instruct@cluster": {
                "chat": [True, None],
                "model_config.layers": [[1, 2], [1, 2, 3]],
                "system_prompt": [None, "hi"],
            },
        },
    }
    # Stable: keys and paths come out sorted.
    assert list(result["changed"]) == sorted(result["changed"])
    assert list(result["changed"]["llama_instruct"]) == sorted(result["changed"]["llama_instruct"])


def test_env_option_compares_each_card_once_under_that_env(
    old: Path, new: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(new, "base.yaml", "checkpoint: /data/llama\n", "checkpoint: /data/llama2\n")
    edit(new, "other.yaml", "toy", "toy2")
    code, result = diff_json(capsys, "--env", "cluster", old, new)
    assert code == 1
    assert result == {
        "added": [],
        "removed": [],
        "changed": {
            "llama@cluster": {"checkpoint": ["/data/llama", "/data/llama2"]},
            "llama_instruct@cluster": {"checkpoint": ["/data/llama", "/data/llama2"]},
            # tiny has no cluster override: what a job in cluster sees is the plain card.
            "tiny@cluster": {"model_family": ["toy", "toy2"]},
        },
    }
    # An env nobody defines: every card as its plain self, keyed NAME@ENV.
    code, result = diff_json(capsys, old, new, "--env", "nowhere")
    assert code == 1
    assert result == {
        "added": [],
        "removed": [],
        "changed": {"tiny@nowhere": {"model_family": ["toy", "toy2"]}},
    }


def test_environment_variables_do_not_choose_the_env(
    old: Path, new: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASYNCASSETS_ENV", "cluster")
    edit(new, "base.yaml", "checkpoint: /data/llama\n", "checkpoint: /data/llama2\n")
    _, result = diff_json(capsys, old, new)
    assert set(result["changed"]) == {"llama@cluster", "llama_instruct@cluster"}  # type: ignore[index]


# -- cards that do not resolve ---------------------------------------------------------------


def test_a_card_that_stops_resolving_is_changed_with_its_error(
    old: Path, new: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(new, "other.yaml", "model_family: toy\n", "base: nowhere\n")
    code, result = diff_json(capsys, old, new)
    assert code == 1
    (message,) = [result["changed"]["tiny"]["(error)"][1]]  # type: ignore[index]
    assert result["changed"] == {"tiny": {"(error)": [None, message]}}  # type: ignore[index]
    assert "names base 'nowhere', which no card defines" in message
    code, out, _ = diff(capsys, old, new)
    assert out.splitlines()[0] == "changed  tiny"
    assert out.splitlines()[1].startswith("  does not resolve in NEW: card 'tiny' (")
    # The other way round, the card resolves again.
    code, out, _ = diff(capsys, new, old)
    assert code == 1
    assert out.splitlines()[1].startswith("  resolves now (in OLD: card 'tiny' (")


def test_a_card_broken_on_both_sides_is_a_note_not_a_change(
    old: Path, new: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for root in (old, new):
        (root / "broken.yaml").write_text("name: broken\nbase: nowhere\n")
    (new / "moved").mkdir()
    (new / "broken.yaml").rename(new / "moved" / "broken.yaml")
    code, out, err = diff(capsys, old, new)
    assert (code, out) == (0, "")
    assert "note: broken resolves neither in OLD nor in NEW" in err
    assert diff_json(capsys, old, new)[0] == 0


def test_an_added_card_that_does_not_resolve_says_so(
    old: Path, new: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (new / "cycle.yaml").write_text("name: a\nbase: b\n---\nname: b\nbase: a\n")
    code, out, _ = diff(capsys, old, new)
    assert code == 1
    assert out.splitlines() == [
        "added    a  (does not resolve: base cycle: a -> b -> a)",
        "added    b  (does not resolve: base cycle: b -> a -> b)",
    ]


# -- errors ----------------------------------------------------------------------------------


def test_a_missing_side_is_one_line_and_exit_2(
    old: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing"
    code, out, err = diff(capsys, old, missing)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"asyncassets: error: cannot read NEW: card folder {missing} does not exist"
    ]
    code, _, err = diff(capsys, missing, old, "--json")
    assert code == 2
    assert err.startswith("asyncassets: error: cannot read OLD: ")


def test_store_option_is_refused_with_exit_2(
    old: Path, new: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--store", os.fspath(old), "diff", os.fspath(old), os.fspath(new)])
    _, err = capsys.readouterr()
    assert code == 2
    assert "--store does not apply" in err


# -- output on a terminal --------------------------------------------------------------------


def test_colour_only_on_a_terminal(
    old: Path, new: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    edit(new, "base.yaml", "dim: 2048", "dim: 4096")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    _, plain, _ = diff(capsys, old, new)
    assert "\x1b" not in plain

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    _, coloured, err = diff(capsys, old, new)
    assert "\x1b[33mchanged\x1b[0m  \x1b[1mllama\x1b[0m" in coloured
    assert "model_config.dim: \x1b[31m2048\x1b[0m -> \x1b[32m4096\x1b[0m" in coloured
    assert "\x1b" not in err  # the summary is plain
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain

    monkeypatch.setenv("NO_COLOR", "1")
    assert diff(capsys, old, new)[1] == plain


def test_control_characters_in_cards_are_escaped(
    old: Path, new: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (new / "evil.yaml").write_text(
        'name: "evil\\e]0;pwned\\a"\n"k\\e[2J": {"\\x9b1m": "v\\rhidden\\x85"}\n'
    )
    edit(
        new,
        "other.yaml",
        "model_family: toy\n",
        'model_family: "toy\\e[31m\\x9b"\n"k\\e[2J": {"\\x9b1m": "v\\rhidden"}\n',
    )
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code, out, err = diff(capsys, old, new)
    assert code == 1
    uncoloured = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert not RAW_CONTROL.search(uncoloured + err)
    assert "evil\\x1b]0;pwned\\x07" in uncoloured
    assert '  model_family: "toy" -> "toy\\u001b[31m\\x9b"' in uncoloured
    assert '  k\\x1b[2J.\\x9b1m: (absent) -> "v\\rhidden"' in uncoloured
    # JSON keeps the values exact, and escapes them itself.
    code, out, _ = diff(capsys, old, new, "--json")
    assert not RAW_CONTROL.search(out)
    assert json.loads(out)["changed"]["tiny"]["model_family"] == ["toy", "toy\x1b[31m\x9b"]


# -- a store URL on one side -----------------------------------------------------------------


def _s3_options(moto_server: str) -> list[str]:
    return [
        "--storage-option",
        "key=testing",
        "--storage-option",
        "secret=testing",
        "--storage-option",
        f"client_kwargs.endpoint_url={moto_server}",
    ]


def test_a_store_url_side_on_s3(
    moto_server: str, new: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = unique_bucket()
    files = {f"cards/{name}": text for name, text in TREE.items() if name != "other.yaml"}
    files["cards/moved/tiny.yaml"] = TREE["other.yaml"]  # moved: the same card
    files["cards/gone.yaml"] = "name: gone\n"
    put_s3_objects(moto_server, bucket, files)
    edit(new, "base.yaml", "dim: 2048", "dim: 4096")
    old_url = f"s3://{bucket}/cards"
    args = [*_s3_options(moto_server), "--cache-dir", os.fspath(tmp_path / "cache")]
    code, result = diff_json(capsys, *args, old_url, new)
    assert code == 1
    change = {"model_config.dim": [2048, 4096]}
    assert result == {
        "added": [],
        "removed": ["gone"],
        "changed": {
            "llama": change,
            "llama@cluster": change,
            "llama_instruct": change,
            "llama_instruct@cluster": change,
        },
    }
    assert list((tmp_path / "cache" / "index").glob("*.index.jsonl"))  # --cache-dir applies
    code, out, err = diff(capsys, *args, old_url, old_url)
    assert (code, out) == (0, "")

    missing = f"s3://{unique_bucket()}/cards"
    code, out, err = diff(capsys, *args, old_url, missing)
    assert (code, out) == (2, "")
    assert err.startswith("asyncassets: error: cannot read NEW: ")
    assert len(err.splitlines()) == 1
    assert "testing" not in err


# -- the comparison (asyncassets.card_diff) --------------------------------------------------


def test_values_compare_by_type_too() -> None:
    old = {"a": 1, "b": 1.0, "c": True, "d": [1, 2], "e": math.nan}
    new = {"a": True, "b": 1, "c": 1, "d": [1, 2.0], "e": math.nan}
    diff = diff_cards({"k": old}, {"k": new})
    assert [change.path for change in diff.changed["k"]] == ["a", "b", "c", "d"]


def test_lists_are_compared_whole_and_mappings_key_by_key() -> None:
    flat = flatten_fields({"m": {"dim": 4, "layers": [{"x": 1}], 3: {"y": None}}, "e": {}})
    assert flat == {("m", "dim"): 4, ("m", "layers"): [{"x": 1}], ("m", 3, "y"): None, ("e",): {}}
    diff = diff_cards({"k": {"m": {3: {"y": 1}}}}, {"k": {"m": {3: {"y": 2}}}})
    assert diff.to_dict()["changed"] == {"k": {"m.3.y": [1, 2]}}


def test_a_field_absent_on_one_side_is_null_there() -> None:
    diff = diff_cards({"k": {"a": {"b": 1}}}, {"k": {"a": 2}})
    assert diff.changed["k"] == [FieldChange("a", ABSENT, 2), FieldChange("a.b", 1, ABSENT)]
    assert diff.to_dict()["changed"] == {"k": {"a": [None, 2], "a.b": [1, None]}}


def test_keys_sort_plain_card_first_then_its_envs() -> None:
    side = {key: {} for key in ("a_b", "a@x", "a", "a-b")}
    diff = diff_cards({}, side)
    assert diff.added == ["a", "a@x", "a-b", "a_b"]


def test_unresolvable_on_both_sides_is_not_a_change() -> None:
    diff = diff_cards({"k": Unresolvable("x")}, {"k": Unresolvable("y")})
    assert not diff
    assert diff.broken == ["k"]
