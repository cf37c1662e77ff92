"""AssetCard and AssetCardField: values through the base chain, conversions, URIs and
immutability."""

import json
from collections.abc import Callable
from typing import Any

import pytest

from asyncassets.card import AssetCard, join_relative
from asyncassets.errors import AssetCardError, AssetError
from asyncassets.providers.file import FileAssetMetadataProvider
from asyncassets.store import AssetStore

MakeProvider = Callable[[dict[str, str]], FileAssetMetadataProvider]


def make_card(
    metadata: dict[str, Any],
    base: AssetCard | None = None,
    *,
    name: str = "tiny",
    source: str = "file:///cards/models.yaml",
) -> AssetCard:
    return AssetCard(name, metadata, base, source=source)


@pytest.fixture
def llama() -> AssetCard:
    family = make_card(
        {
            "name": "llama",
            "model_family": "llama",
            "checkpoint": "https://ai.meta.com/llama/;gated=true",
            "model_config": {"dim": 4096, "layers": 32},
            "langs": ["en", "fr"],
        },
        name="llama",
    )
    return make_card(
        {"name": "llama_7b", "base": "llama", "model_arch": "7b", "num_shards": 1},
        family,
        name="llama_7b",
    )


# -- fields and the base chain ---------------------------------------------------------------


def test_field_value_comes_from_the_card_itself(llama: AssetCard) -> None:
    assert llama.field("model_arch").value == "7b"


def test_field_value_falls_back_to_the_base(llama: AssetCard) -> None:
    assert llama.field("model_family").value == "llama"


def test_field_set_by_the_card_hides_the_base_field() -> None:
    base = make_card({"name": "base", "model_arch": "big"}, name="base")
    card = make_card({"name": "tiny", "base": "base", "model_arch": "small"}, base)
    assert card.field("model_arch").value == "small"


def test_nested_field_reads_a_key_of_a_mapping(llama: AssetCard) -> None:
    assert llama.field("model_config").field("dim").value == 4096


def test_field_path_is_dotted(llama: AssetCard) -> None:
    assert llama.field("model_config").field("dim").path == "model_config.dim"


def test_exists_is_true_for_a_field_of_the_base(llama: AssetCard) -> None:
    assert llama.field("checkpoint").exists()


def test_exists_is_false_for_an_absent_field(llama: AssetCard) -> None:
    assert not llama.field("tokenizer").exists()


def test_exists_is_false_for_an_absent_nested_key(llama: AssetCard) -> None:
    assert not llama.field("model_config").field("heads").exists()


def test_exists_is_false_below_a_scalar(llama: AssetCard) -> None:
    assert not llama.field("model_arch").field("x").exists()


def test_has_field_looks_through_the_base_chain(llama: AssetCard) -> None:
    assert llama.has_field("model_family")
    assert not llama.has_field("dataset_family")


def test_a_field_holding_null_exists_and_is_none() -> None:
    card = make_card({"name": "tiny", "tokenizer": None})
    assert card.field("tokenizer").exists()
    assert card.field("tokenizer").value is None


def test_value_of_an_absent_field_raises_naming_card_and_field(llama: AssetCard) -> None:
    with pytest.raises(AssetCardError, match=r"llama_7b.*model_config\.heads") as info:
        llama.field("model_config").field("heads").value  # noqa: B018
    assert info.value.name == "llama_7b"
    assert info.value.field == "model_config.heads"


def test_card_errors_are_asset_errors(llama: AssetCard) -> None:
    with pytest.raises(AssetError):
        llama.field("nope").value  # noqa: B018


def test_base_is_the_base_card(llama: AssetCard) -> None:
    assert llama.base is not None
    assert llama.base.name == "llama"
    assert llama.base.base is None


def test_metadata_holds_only_the_cards_own_fields(llama: AssetCard) -> None:
    assert "model_family" not in llama.metadata
    assert llama.metadata["model_arch"] == "7b"


# -- as_ ---------------------------------------------------------------------------------------


def test_as_returns_a_value_of_the_right_type(llama: AssetCard) -> None:
    assert llama.field("num_shards").as_(int) == 1


def test_as_with_the_wrong_type_names_card_field_and_types(llama: AssetCard) -> None:
    with pytest.raises(AssetCardError, match=r"llama_7b.*model_arch.*must be int.*str"):
        llama.field("model_arch").as_(int)


def test_as_int_refuses_a_bool() -> None:
    card = make_card({"name": "tiny", "gated": True})
    with pytest.raises(AssetCardError, match="gated"):
        card.field("gated").as_(int)


def test_as_bool_accepts_a_bool() -> None:
    card = make_card({"name": "tiny", "gated": True})
    assert card.field("gated").as_(bool) is True


def test_as_float_accepts_an_int() -> None:
    card = make_card({"name": "tiny", "dropout": 0})
    value = card.field("dropout").as_(float)
    assert value == 0.0
    assert isinstance(value, float)


def test_as_accepts_a_tuple_of_types() -> None:
    card = make_card({"name": "tiny", "size": "7b"})
    assert card.field("size").as_((int, str)) == "7b"


def test_as_dict_returns_a_mutable_copy(llama: AssetCard) -> None:
    config = llama.field("model_config").as_(dict)
    assert config == {"dim": 4096, "layers": 32}
    config["dim"] = 1
    assert llama.field("model_config").field("dim").value == 4096


def test_as_list_returns_a_mutable_copy(llama: AssetCard) -> None:
    langs = llama.field("langs").as_(list)
    assert langs == ["en", "fr"]
    langs.append("de")
    assert llama.field("langs").as_(list) == ["en", "fr"]


def test_as_dict_copies_nested_values_too() -> None:
    card = make_card({"name": "tiny", "cfg": {"inner": {"a": [1]}}})
    copy = card.field("cfg").as_(dict)
    copy["inner"]["a"].append(2)
    assert card.field("cfg").as_(dict) == {"inner": {"a": [1]}}


def test_as_one_of_returns_an_allowed_value() -> None:
    card = make_card({"name": "tiny", "split": "train"})
    assert card.field("split").as_one_of({"train", "test"}) == "train"


def test_as_one_of_refuses_another_value_and_lists_the_choices() -> None:
    card = make_card({"name": "tiny", "split": "dev"})
    with pytest.raises(AssetCardError, match=r"split.*test, train.*'dev'"):
        card.field("split").as_one_of({"train", "test"})


# -- as_uri and as_filename -------------------------------------------------------------------


def test_as_uri_keeps_a_scheme_and_its_suffix(llama: AssetCard) -> None:
    assert llama.field("checkpoint").as_uri() == "https://ai.meta.com/llama/;gated=true"


def test_as_uri_keeps_a_custom_scheme() -> None:
    card = make_card({"name": "tiny", "checkpoint": "hg://Qwen/Qwen2.5-Omni-3B"})
    assert card.field("checkpoint").as_uri() == "hg://Qwen/Qwen2.5-Omni-3B"


def test_as_uri_turns_an_absolute_path_into_a_file_uri() -> None:
    card = make_card({"name": "tiny", "checkpoint": "/models/tiny/../tiny.pt"})
    assert card.field("checkpoint").as_uri() == "file:///models/tiny.pt"


def test_as_uri_resolves_a_relative_path_against_the_card_files_folder() -> None:
    card = make_card(
        {"name": "tiny", "checkpoint": "../ckpt/model.pt"}, source="file:///srv/cards/x.yaml"
    )
    assert card.field("checkpoint").as_uri() == "file:///srv/ckpt/model.pt"


def test_as_uri_resolves_a_relative_path_against_a_remote_card_files_folder() -> None:
    card = make_card({"name": "tiny", "checkpoint": "../ckpt/m.pt"}, source="s3://b/cards/x.yaml")
    assert card.field("checkpoint").as_uri() == "s3://b/ckpt/m.pt"


def test_as_uri_of_a_base_field_is_relative_to_the_base_cards_file() -> None:
    base = make_card(
        {"name": "family", "checkpoint": "ckpt/m.pt"},
        name="family",
        source="s3://b/families/family.yaml",
    )
    card = make_card({"name": "tiny", "base": "family"}, base, source="s3://b/cards/tiny.yaml")
    assert card.field("checkpoint").as_uri() == "s3://b/families/ckpt/m.pt"


def test_as_uri_refuses_a_home_relative_path() -> None:
    card = make_card({"name": "tiny", "checkpoint": "~/m.pt"})
    with pytest.raises(AssetCardError, match=r"tiny.*checkpoint.*'~'"):
        card.field("checkpoint").as_uri()


def test_as_uri_refuses_an_empty_string() -> None:
    card = make_card({"name": "tiny", "checkpoint": ""})
    with pytest.raises(AssetCardError, match="checkpoint"):
        card.field("checkpoint").as_uri()


def test_as_filename_returns_a_bare_file_name() -> None:
    card = make_card({"name": "tiny", "tokenizer_file": "spm.model"})
    assert card.field("tokenizer_file").as_filename() == "spm.model"


@pytest.mark.parametrize("value", ["a/spm.model", "..", "", "a\\b"])
def test_as_filename_refuses_anything_with_a_folder(value: str) -> None:
    card = make_card({"name": "tiny", "tokenizer_file": value})
    with pytest.raises(AssetCardError, match="tokenizer_file"):
        card.field("tokenizer_file").as_filename()


@pytest.mark.parametrize(
    ("file_url", "relative", "expected"),
    [
        ("s3://b/cards/x.yaml", "../ckpt/m.pt", "s3://b/ckpt/m.pt"),
        ("s3://b/cards/x.yaml", "m.pt", "s3://b/cards/m.pt"),
        ("gs://b/a/b/x.yaml", "./c/../m.pt", "gs://b/a/b/m.pt"),
        ("file:///srv/cards/x.yaml", "../m.pt", "file:///srv/m.pt"),
        ("/srv/cards/x.yaml", "sub/m.pt", "/srv/cards/sub/m.pt"),
    ],
)
def test_join_relative_resolves_against_the_files_folder(
    file_url: str, relative: str, expected: str
) -> None:
    assert join_relative(file_url, relative) == expected


async def test_as_uri_of_a_stored_card_is_relative_to_its_file(
    make_provider: MakeProvider,
) -> None:
    provider = make_provider({"cards/tiny.yaml": "name: tiny\ncheckpoint: ../ckpt/m.pt\n"})
    card = await AssetStore([provider]).retrieve_card("tiny")
    assert card.field("checkpoint").as_uri() == f"{provider.source}/ckpt/m.pt"


async def test_as_uri_of_an_override_field_is_relative_to_the_override_file(
    make_provider: MakeProvider,
) -> None:
    provider = make_provider(
        {
            "cards/tiny.yaml": "name: tiny\ncheckpoint: ../ckpt/m.pt\n",
            "cards/clusters/aws.yaml": "name: tiny@aws\ncheckpoint: ckpt/m.pt\n",
        }
    )
    card = await AssetStore([provider], default_env="aws").retrieve_card("tiny")
    assert card.field("checkpoint").as_uri() == f"{provider.source}/cards/clusters/ckpt/m.pt"


async def test_card_source_is_the_file_that_defines_it(make_provider: MakeProvider) -> None:
    provider = make_provider({"sub/models.yaml": "name: a\n---\nname: tiny\nbase: a\n"})
    card = await AssetStore([provider]).retrieve_card("tiny")
    assert card.source == f"{provider.source}/sub/models.yaml"


# -- to_dict ----------------------------------------------------------------------------------


def test_to_dict_merges_the_base_chain_with_the_child_winning(llama: AssetCard) -> None:
    assert llama.to_dict() == {
        "name": "llama_7b",
        "base": "llama",
        "model_family": "llama",
        "checkpoint": "https://ai.meta.com/llama/;gated=true",
        "model_config": {"dim": 4096, "layers": 32},
        "langs": ["en", "fr"],
        "model_arch": "7b",
        "num_shards": 1,
    }


def test_to_dict_is_json_serialisable(llama: AssetCard) -> None:
    assert json.loads(json.dumps(llama.to_dict())) == llama.to_dict()


def test_to_dict_returns_plain_dicts_and_lists(llama: AssetCard) -> None:
    merged = llama.to_dict()
    assert type(merged["model_config"]) is dict
    assert type(merged["langs"]) is list


def test_to_dict_returns_a_copy_the_caller_owns(llama: AssetCard) -> None:
    merged = llama.to_dict()
    merged["model_config"]["dim"] = 1
    merged["model_arch"] = "70b"
    assert llama.field("model_config").field("dim").value == 4096
    assert llama.field("model_arch").value == "7b"


def test_to_dict_agrees_with_field_values(llama: AssetCard) -> None:
    for key, value in llama.to_dict().items():
        if key != "name":
            assert llama.field(key).as_((dict, list, object)) == value


# -- immutability and sharing -----------------------------------------------------------------


def test_changing_metadata_leaves_the_card_unchanged(llama: AssetCard) -> None:
    llama.metadata["model_arch"] = "70b"
    assert llama.metadata["model_arch"] == "7b"


def test_changing_a_nested_value_leaves_the_card_unchanged(llama: AssetCard) -> None:
    config = llama.field("model_config").value
    config["dim"] = 1
    assert llama.field("model_config").field("dim").value == 4096


def test_list_values_are_plain_lists_the_caller_owns(llama: AssetCard) -> None:
    langs = llama.field("langs").value
    assert langs == ["en", "fr"]
    langs.append("de")
    assert llama.field("langs").value == ["en", "fr"]


def test_card_attributes_cannot_be_reassigned(llama: AssetCard) -> None:
    with pytest.raises(AttributeError):
        llama.name = "other"  # type: ignore[misc]


async def test_retrieving_twice_returns_the_same_card(make_provider: MakeProvider) -> None:
    provider = make_provider({"models.yaml": "name: tiny\nmodel_config: {dim: 4}\n"})
    store = AssetStore([provider])
    assert await store.retrieve_card("tiny") is await store.retrieve_card("tiny")


async def test_changing_a_stored_cards_value_never_changes_the_store(
    make_provider: MakeProvider,
) -> None:
    provider = make_provider({"models.yaml": "name: tiny\nmodel_config: {dim: 4}\n"})
    store = AssetStore([provider])
    card = await store.retrieve_card("tiny")
    card.field("model_config").value["dim"] = 8
    card.metadata["model_config"]["dim"] = 8
    again = await store.retrieve_card("tiny")
    assert again.field("model_config").field("dim").value == 4
    assert (await provider.get_metadata("tiny@"))["model_config"] == {"dim": 4}


async def test_retrieving_a_card_does_not_copy_the_stores_data(
    make_provider: MakeProvider,
) -> None:
    provider = make_provider({"models.yaml": "name: tiny\nmodel_config: {dim: 4}\n"})
    card = await AssetStore([provider]).retrieve_card("tiny")
    entry = provider.snapshot.get("tiny@")
    assert entry is not None
    assert card.raw_metadata is entry.metadata
    assert card.field("model_config").raw_value is entry.metadata["model_config"]


async def test_cards_sharing_a_base_share_one_base_card(make_provider: MakeProvider) -> None:
    provider = make_provider(
        {"models.yaml": "name: fam\n---\nname: a\nbase: fam\n---\nname: b\nbase: fam\n"}
    )
    store = AssetStore([provider])
    a, b = await store.retrieve_card("a"), await store.retrieve_card("b")
    assert a.base is b.base
