"""``card.config(key, base)``: fairseq2 0.8.1's config overrides (``StandardAssetConfigLoader``,
``StandardConfigMerger`` and ``ReplaceEnvDirective``), on synthetic chains and on the corpus."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from asyncassets.card import AssetCard
from asyncassets.cli import main
from asyncassets.config import merge_overrides, substitute_env
from asyncassets.errors import AssetCardError
from asyncassets.providers.file import FileAssetMetadataProvider
from asyncassets.store import AssetStore


def chain(*layers: tuple[str, dict[str, Any]]) -> AssetCard:
    """A base chain from root to leaf: ``chain(("root", {...}), ("leaf", {...}))``."""
    card: AssetCard | None = None
    for name, metadata in layers:
        card = AssetCard(name, {"name": name, **metadata}, card)
    assert card is not None
    return card


@dataclass
class VocabInfo:
    size: int = 32000
    eos_idx: int = 2
    pad_idx: int | None = None


@dataclass
class ModelConfig:
    dim: int = 512
    layers: int = 6
    vocab_info: VocabInfo = field(default_factory=VocabInfo)
    langs: list[str] = field(default_factory=list)


# -- merging -----------------------------------------------------------------------------------


def test_no_override_anywhere_returns_a_copy_of_the_base() -> None:
    base = {"dim": 1, "nested": {"a": 1}}
    result = chain(("c", {})).config("model_config", base)
    assert result == base
    assert result is not base
    assert result["nested"] is not base["nested"]


def test_base_none_is_an_empty_mapping() -> None:
    card = chain(("c", {"model_config": {"dim": 8}}))
    assert card.config("model_config") == {"dim": 8}


def test_root_card_is_merged_first_and_the_card_itself_last() -> None:
    card = chain(
        ("root", {"model_config": {"dim": 1, "layers": 2}}),
        ("mid", {"model_config": {"dim": 3}}),
        ("leaf", {"model_config": {"layers": 4}}),
    )
    assert card.config("model_config", {"dim": 0, "heads": 8}) == {
        "dim": 3,
        "layers": 4,
        "heads": 8,
    }


def test_nested_mappings_merge_key_by_key() -> None:
    card = chain(("c", {"model_config": {"vocab_info": {"eos_idx": 9}}}))
    base = {"vocab_info": {"size": 100, "eos_idx": 2}}
    assert card.config("model_config", base) == {"vocab_info": {"size": 100, "eos_idx": 9}}


def test_set_replaces_a_mapping_without_merging_into_it() -> None:
    card = chain(("c", {"model_config": {"_set_": {"vocab_info": {"eos_idx": 9}}}}))
    base = {"dim": 4, "vocab_info": {"size": 100, "eos_idx": 2}}
    assert card.config("model_config", base) == {"dim": 4, "vocab_info": {"eos_idx": 9}}


def test_set_at_several_depths_down_the_chain() -> None:
    card = chain(
        ("root", {"model_config": {"encoder": {"_set_": {"dims": [1, 2]}}}}),
        ("mid", {"model_config": {"encoder": {"attn": {"_set_": {"heads": 4}}}}}),
        ("leaf", {"model_config": {"_set_": {"dim": 64}}}),
    )
    base = {"dim": 8, "encoder": {"dims": [0], "attn": {"heads": 1, "drop": 0.1}}}
    assert card.config("model_config", base) == {
        "dim": 64,
        "encoder": {"dims": [1, 2], "attn": {"heads": 4, "drop": 0.1}},
    }


def test_del_removes_keys_of_what_is_below_at_several_depths() -> None:
    card = chain(
        ("root", {"model_config": {"_del_": ["dropout"]}}),
        ("leaf", {"model_config": {"encoder": {"_del_": ["bias"], "extra": 1}}}),
    )
    base = {"dim": 8, "dropout": 0.1, "encoder": {"bias": True, "heads": 2}}
    assert card.config("model_config", base) == {"dim": 8, "encoder": {"heads": 2, "extra": 1}}


def test_del_then_same_key_in_the_same_override_sets_it_afresh() -> None:
    # fairseq2 drops the _del_ keys first, then merges the other keys onto an empty mapping.
    card = chain(("c", {"model_config": {"_del_": ["enc"], "enc": {"b": 2}}}))
    assert card.config("model_config", {"enc": {"a": 1}}) == {"enc": {"b": 2}}


def test_del_of_a_missing_key_is_not_an_error() -> None:
    # StandardConfigMerger only collects the keys to skip; absent keys are ignored.
    card = chain(("c", {"model_config": {"_del_": ["nope"]}}))
    assert card.config("model_config", {"dim": 1}) == {"dim": 1}


def test_directives_in_a_new_nested_mapping_are_applied_not_kept() -> None:
    card = chain(("c", {"model_config": {"enc": {"_set_": {"a": 1}, "_del_": ["x"]}}}))
    assert card.config("model_config") == {"enc": {"a": 1}}


def test_a_list_replaces_the_list_below() -> None:
    card = chain(("c", {"model_config": {"langs": ["de"]}}))
    assert card.config("model_config", {"langs": ["en", "fr"]}) == {"langs": ["de"]}


def test_a_mapping_override_replaces_a_scalar_below() -> None:
    card = chain(("c", {"model_config": {"dim": {"a": 1}}}))
    assert card.config("model_config", {"dim": 4}) == {"dim": {"a": 1}}


def test_a_null_override_is_skipped() -> None:
    card = chain(
        ("root", {"model_config": {"dim": 3}}),
        ("leaf", {"model_config": None}),
    )
    assert card.config("model_config", {"dim": 1}) == {"dim": 3}


def test_a_null_nested_value_is_kept() -> None:
    card = chain(("c", {"model_config": {"pad_idx": None}}))
    assert card.config("model_config", {"pad_idx": 0}) == {"pad_idx": None}


def test_a_non_mapping_override_on_a_mapping_base_is_an_error_naming_the_card() -> None:
    card = chain(("c", {"model_config": [1, 2]}))
    with pytest.raises(AssetCardError) as info:
        card.config("model_config", {"dim": 1})
    assert info.value.name == "c"
    assert "model_config" in str(info.value)


def test_base_mapping_and_store_data_are_not_mutated() -> None:
    override = {"vocab_info": {"_set_": {"eos_idx": 9}}, "langs": ["de"]}
    card = chain(("c", {"model_config": override}))
    base = {"vocab_info": {"size": 1, "eos_idx": 2}}
    result = card.config("model_config", base)
    result["langs"].append("x")
    result["vocab_info"]["size"] = 99
    assert base == {"vocab_info": {"size": 1, "eos_idx": 2}}
    assert override == {"vocab_info": {"_set_": {"eos_idx": 9}}, "langs": ["de"]}
    assert card.config("model_config", base)["langs"] == ["de"]


# -- environment variables ---------------------------------------------------------------------


def test_env_variable_is_substituted_in_strings() -> None:
    card = chain(("c", {"model_config": {"path": "${env:DATA}/spm.model", "n": 1}}))
    result = card.config("model_config", env={"DATA": "/data"})
    assert result == {"path": "/data/spm.model", "n": 1}


def test_env_default_is_used_when_the_variable_is_unset() -> None:
    card = chain(("c", {"model_config": {"path": "${env:DATA:/tmp/x}"}}))
    assert card.config("model_config", env={}) == {"path": "/tmp/x"}


def test_env_variable_wins_over_its_default() -> None:
    card = chain(("c", {"model_config": {"path": "${env:DATA:/tmp/x}"}}))
    assert card.config("model_config", env={"DATA": "/d"}) == {"path": "/d"}


def test_unset_env_variable_without_default_becomes_empty_string() -> None:
    # fairseq2's ReplaceEnvDirective substitutes "" (it never raises for a missing variable).
    card = chain(("c", {"model_config": {"path": "${env:NOPE}/x"}}))
    assert card.config("model_config", env={}) == {"path": "/x"}


def test_env_substitution_reaches_lists_and_the_base() -> None:
    card = chain(("c", {"model_config": {"dirs": ["${env:A}", 3]}}))
    result = card.config("model_config", {"root": "${env:A:r}"}, env={"A": "a"})
    assert result == {"root": "a", "dirs": ["a", 3]}


def test_env_substitution_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCASSETS_TEST_CONFIG_DIR", "/from/env")
    card = chain(("c", {"model_config": {"p": "${env:ASYNCASSETS_TEST_CONFIG_DIR}"}}))
    assert card.config("model_config") == {"p": "/from/env"}


# -- dataclass bases ---------------------------------------------------------------------------


def test_dataclass_base_gives_an_instance_of_its_class_with_nested_dataclasses() -> None:
    card = chain(
        ("root", {"model_config": {"dim": 1024, "langs": ["en"]}}),
        ("leaf", {"model_config": {"vocab_info": {"_set_": {"eos_idx": 7}}}}),
    )
    base = ModelConfig(vocab_info=VocabInfo(size=100, eos_idx=2, pad_idx=1))
    result = card.config("model_config", base)
    assert isinstance(result, ModelConfig)
    assert isinstance(result.vocab_info, VocabInfo)
    # _set_ on vocab_info sets only eos_idx; size and pad_idx come from the base.
    assert result == ModelConfig(
        dim=1024, layers=6, vocab_info=VocabInfo(size=100, eos_idx=7, pad_idx=1), langs=["en"]
    )
    assert base == ModelConfig(vocab_info=VocabInfo(size=100, eos_idx=2, pad_idx=1))


def test_dataclass_base_without_overrides_gives_an_equal_new_instance() -> None:
    base = ModelConfig()
    result = chain(("c", {})).config("model_config", base)
    assert result == base
    assert result is not base


def test_dataclass_base_with_unknown_key_is_an_error_naming_card_and_key() -> None:
    card = chain(
        ("root", {"model_config": {"vocab_info": {"bogus": 1}}}),
        ("leaf", {"other": 1}),
    )
    with pytest.raises(AssetCardError) as info:
        card.config("model_config", ModelConfig())
    assert info.value.name == "leaf"
    assert info.value.field == "model_config.vocab_info.bogus"
    assert "bogus" in str(info.value)


def test_dataclass_base_with_deleted_required_field_is_an_error() -> None:
    @dataclass
    class Required:
        dim: int

    card = chain(("c", {"cfg": {"_del_": ["dim"]}}))
    with pytest.raises(AssetCardError) as info:
        card.config("cfg", Required(dim=1))
    assert info.value.field == "cfg.dim"


# -- bad overrides -----------------------------------------------------------------------------


def test_del_not_a_list_is_an_error_naming_the_card_that_holds_it() -> None:
    card = chain(
        ("root", {"model_config": {"enc": {"_del_": 5}}}),
        ("leaf", {"model_config": {"dim": 1}}),
    )
    with pytest.raises(AssetCardError) as info:
        card.config("model_config")
    assert info.value.name == "root"
    assert info.value.field == "model_config.enc._del_"
    assert "root" in str(info.value)


def test_del_with_a_non_string_element_is_an_error() -> None:
    card = chain(("bad", {"model_config": {"_del_": ["a", 3]}}))
    with pytest.raises(AssetCardError) as info:
        card.config("model_config")
    assert info.value.name == "bad"
    assert info.value.field == "model_config._del_"


def test_set_not_a_mapping_is_an_error_naming_the_card_that_holds_it() -> None:
    card = chain(
        ("root", {"model_config": {"dim": 1}}),
        ("mid", {"model_config": {"vocab": {"_set_": [1]}}}),
        ("leaf", {}),
    )
    with pytest.raises(AssetCardError) as info:
        card.config("model_config")
    assert info.value.name == "mid"
    assert info.value.field == "model_config.vocab._set_"


def test_base_of_another_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        chain(("c", {"cfg": {}})).config("cfg", [1])


# -- the corpus --------------------------------------------------------------------------------
# Expectations below are derived by hand from the YAML with fairseq2's rules (root card first,
# _set_ sets without merging, untouched keys of the base stay).


async def _corpus_card(corpus_dir: Path, version: str, name: str) -> AssetCard:
    provider = FileAssetMetadataProvider(corpus_dir / "fairseq2-cards" / version)
    return await AssetStore([provider]).retrieve_card(name)


async def test_corpus_qwen_instruct_tokenizer_config_sets_use_im_end(corpus_dir: Path) -> None:
    card = await _corpus_card(corpus_dir, "main-027bdeb", "qwen25_32b_instruct")
    assert card.config("tokenizer_config") == {"use_im_end": True}
    base = {"use_im_end": False, "chat": True}
    assert card.config("tokenizer_config", base) == {"use_im_end": True, "chat": True}


async def test_corpus_qwen_base_card_has_no_override(corpus_dir: Path) -> None:
    card = await _corpus_card(corpus_dir, "main-027bdeb", "qwen25_32b")
    assert card.config("tokenizer_config", {"use_im_end": False}) == {"use_im_end": False}


async def test_corpus_llama3_instruct_eos_comes_through_the_base_chain(corpus_dir: Path) -> None:
    # llama3_8b_instruct -> llama3_instruct (vocab_info: {_set_: {eos_idx: 128009}}) -> llama3.
    card = await _corpus_card(corpus_dir, "v0.4.6", "llama3_8b_instruct")
    assert card.config("model_config") == {"vocab_info": {"eos_idx": 128009}}
    base = ModelConfig(dim=4096, vocab_info=VocabInfo(size=128256, eos_idx=128001, pad_idx=None))
    assert card.config("model_config", base) == ModelConfig(
        dim=4096, vocab_info=VocabInfo(size=128256, eos_idx=128009, pad_idx=None)
    )


async def test_corpus_jepa_encoder_config_set_keeps_other_encoder_keys(corpus_dir: Path) -> None:
    card = await _corpus_card(corpus_dir, "v0.4.6", "jepa_vith16_384")
    base = {"encoder_config": {"input_dims": [1, 2], "num_layers": 32}, "dim": 1}
    assert card.config("model_config", base) == {
        "encoder_config": {
            "input_dims": [16, 384, 384],
            "num_layers": 32,
            "patch_dims": [2, 16, 16],
            "uniform_power": True,
        },
        "dim": 1,
    }


async def test_corpus_s2t_conformer_rel_pos_sets_top_level_key(corpus_dir: Path) -> None:
    card = await _corpus_card(corpus_dir, "v0.4.6", "s2t_conformer_covost_st_en_de_rel_pos")
    base = {"use_relative_pos": False, "model_dim": 256}
    assert card.config("model_config", base) == {"use_relative_pos": True, "model_dim": 256}


# -- the CLI -----------------------------------------------------------------------------------


def test_cli_show_config_prints_the_merged_result_as_json(
    corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = corpus_dir / "fairseq2-cards" / "v0.4.6"
    argv = ["--store", str(store), "show", "llama3_8b_instruct", "--config", "model_config"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == {"vocab_info": {"eos_idx": 128009}}


def test_cli_show_config_of_a_card_without_the_field_prints_empty_object(
    corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = corpus_dir / "fairseq2-cards" / "v0.4.6"
    assert main(["--store", str(store), "show", "llama3_8b", "--config", "model_config"]) == 0
    assert json.loads(capsys.readouterr().out) == {}


# -- the pure module ---------------------------------------------------------------------------


def test_merge_overrides_applies_del_merge_and_set_in_one_mapping() -> None:
    target = {"a": 1, "b": {"x": 1, "y": {"z": 1}}, "c": True, "d": {"k": 1}}
    source = {
        "_del_": ["c"],
        "_set_": {"a": 2, "d": {"j": 2}},
        "b": {"_del_": ["x"], "_set_": {"w": 3}, "y": {"q": 2}},
        "e": {"f": {"g": 1}},
    }
    assert merge_overrides(target, source) == {
        "a": 2,
        "b": {"y": {"z": 1, "q": 2}, "w": 3},
        "d": {"j": 2},
        "e": {"f": {"g": 1}},
    }


def test_merge_overrides_with_a_non_mapping_override_replaces_everything() -> None:
    assert merge_overrides({"a": 1}, [1, 2]) == [1, 2]


def test_substitute_env_replaces_several_variables_in_one_string() -> None:
    env = {"A": "1", "B": "2"}
    text = "x ${env:A} y ${env:B} z ${env:C:3} ${env:D}"
    assert substitute_env(text, env) == "x 1 y 2 z 3 "
