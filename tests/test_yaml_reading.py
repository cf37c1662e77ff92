"""Cards read as fairseq2 reads them, seen from the store, the config and the command line.

The value-by-value table is tests/test_yaml_fidelity.py; here: what a fairseq2 user sees
through the public API when a card says ``lr: 1e-4`` or holds a duplicate key.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import pytest
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)

from asyncassets.cli import main as cli_main
from asyncassets.cli import parse_storage_options
from asyncassets.providers.file import FileAssetMetadataProvider
from asyncassets.store import AssetStore

TRAINING = b"""\
name: llama_tiny
model_family: llama
model_config:
  model_dim: 64
  norm_eps: 1e-5
  rope_theta: 5e5
  use_bias: no
  dropout_p: .1
  vocab_size: 0x100
  checkpoint_every: 010
  schedule: 1:30
  released: 2024-05-17
  flags: {on: 1, off: 0}
  path: ${env:TINY_ROOT:/data}/tiny
optimizer:
  lr: 1e-4
  betas: [0.9, 0.95]
"""

BASE = b"""\
name: base_config
defaults: &defaults
  lr: 3e-4
  warmup: 100
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "cards"
    path.mkdir()
    (path / "tiny.yaml").write_bytes(TRAINING)
    return path


@pytest.mark.anyio
async def test_every_scalar_has_the_type_fairseq2_gives_it(folder: Path) -> None:
    store = AssetStore([FileAssetMetadataProvider(folder)])
    config = (await store.retrieve_card("llama_tiny")).field("model_config").value
    assert config["norm_eps"] == 1e-5 and type(config["norm_eps"]) is float
    assert config["rope_theta"] == 500000.0 and type(config["rope_theta"]) is float
    assert config["use_bias"] == "no"
    assert config["dropout_p"] == 0.1
    assert config["vocab_size"] == 256
    assert config["checkpoint_every"] == 10
    assert config["schedule"] == "1:30"
    assert config["released"] == datetime.date(2024, 5, 17)
    assert config["flags"] == {"on": 1, "off": 0}
    optimizer = (await store.retrieve_card("llama_tiny")).field("optimizer").value
    assert optimizer == {"lr": 0.0001, "betas": [0.9, 0.95]}


@pytest.mark.anyio
async def test_config_and_env_substitution_follow_from_the_values(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINY_ROOT", "/fsx")
    store = AssetStore([FileAssetMetadataProvider(folder)])
    card = await store.retrieve_card("llama_tiny")
    config = card.config("model_config")
    assert config["norm_eps"] == 1e-5 and type(config["norm_eps"]) is float
    assert config["use_bias"] == "no"
    assert config["path"] == "/fsx/tiny"
    monkeypatch.delenv("TINY_ROOT")
    assert card.config("model_config")["path"] == "/data/tiny"


@pytest.mark.anyio
async def test_merge_keys_merge(folder: Path) -> None:
    (folder / "base.yaml").write_bytes(
        BASE + b"---\nname: run\noptimizer:\n  <<: *defaults\n  lr: 1e-3\n"
    )
    store = AssetStore([FileAssetMetadataProvider(folder)])
    problems = await store.check()
    assert [p for p in problems if "base.yaml" in (p.file or "")]  # an alias across documents
    (folder / "base.yaml").write_bytes(
        b"name: run\ndefaults: &d {lr: 3e-4, warmup: 100}\noptimizer:\n  <<: *d\n  lr: 1e-3\n"
    )
    store = AssetStore([FileAssetMetadataProvider(folder)])
    optimizer = (await store.retrieve_card("run")).field("optimizer").value
    assert optimizer == {"lr": 0.001, "warmup": 100}


@pytest.mark.anyio
async def test_a_duplicate_key_keeps_the_files_cards_out_and_names_file_line_and_key(
    folder: Path,
) -> None:
    duplicate = folder / "duplicate.yaml"
    duplicate.write_bytes(b"name: dup\nlr: 1e-4\nmodel_config:\n  x: 1\n  x: 2\n")
    store = AssetStore([FileAssetMetadataProvider(folder)])
    assert await store.maybe_retrieve_card("dup") is None
    assert (await store.retrieve_card("llama_tiny")).name == "llama_tiny"
    [problem] = [p for p in await store.check() if p.file and p.file.endswith("duplicate.yaml")]
    assert (problem.kind, problem.line) == ("yaml", 5)
    assert "duplicate key 'x' (first at line 4)" in problem.message
    assert str(problem).startswith(f"{duplicate}:5: ")


@pytest.mark.anyio
async def test_an_edit_that_adds_a_duplicate_key_keeps_the_last_good_cards(folder: Path) -> None:
    provider = FileAssetMetadataProvider(folder)
    store = AssetStore([provider])
    assert (await store.retrieve_card("llama_tiny")).field("model_family").value == "llama"
    tiny = folder / "tiny.yaml"
    tiny.write_bytes(TRAINING + b"model_family: mistral\n")  # line 18
    await provider.refresh([os.fspath(tiny)])
    card = await store.retrieve_card("llama_tiny")
    assert card.field("model_family").value == "llama"  # the last good version
    [problem] = await store.check()
    assert problem.line == 18 and "duplicate key 'model_family' (first at line 2)" in str(problem)
    tiny.write_bytes(TRAINING.replace(b"model_family: llama\n", b"model_family: gpt\n"))
    await provider.refresh([os.fspath(tiny)])
    assert (await store.retrieve_card("llama_tiny")).field("model_family").value == "gpt"
    assert await store.check() == []


def test_check_prints_file_and_line_of_every_reading_problem(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "dup.yaml").write_bytes(b"name: dup\n\nx: 1\nx: 2\n")
    (folder / "syntax.yaml").write_bytes(b"name: s\nx: [1, 2\ny: 3\n")
    (folder / "tag.yaml").write_bytes(b"name: t\nx: !secret lol\n")
    (folder / "bad_utf8.yaml").write_bytes(b"name: u\n\nx: caf\xc3\x28\n")
    code = cli_main(["--store", os.fspath(folder), "check", "--json"])
    problems = json.loads(capsys.readouterr().out)
    assert code == 1
    where = {Path(p["file"]).name: p["line"] for p in problems}
    assert where == {"dup.yaml": 4, "syntax.yaml": 3, "tag.yaml": 2, "bad_utf8.yaml": 3}


def test_a_list_used_as_a_key_is_a_tuple_and_prints(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "keys.yaml").write_bytes(
        b"name: keys\nshape:\n  ? [1, 2]\n  : square\n  2024-01-02: dated\ndata: !!binary aGk=\n"
    )
    assert cli_main(["--store", os.fspath(folder), "show", "keys", "--json"]) == 0
    fields = json.loads(capsys.readouterr().out)["fields"]
    assert fields["shape"] == {"(1, 2)": "square", "2024-01-02": "dated"}
    assert fields["data"] == "aGk="
    assert cli_main(["--store", os.fspath(folder), "show", "keys"]) == 0
    assert "square" in capsys.readouterr().out


def test_storage_options_are_read_as_card_values_are() -> None:
    options = parse_storage_options(
        ["anon=true", "flag=yes", "retries=010", "timeout=1e1", "client_kwargs.region=eu"]
    )
    assert options == {
        "anon": True,
        "flag": "yes",
        "retries": 10,
        "timeout": 10.0,
        "client_kwargs": {"region": "eu"},
    }
    assert parse_storage_options(["url=http://h:9000/x", "bad=[1,", "empty="]) == {
        "url": "http://h:9000/x",
        "bad": "[1,",
        "empty": "",
    }
