"""The values a card hands out are plain data the caller owns.

``card.metadata``, ``card.field(x).value`` and ``card.to_dict()`` survive ``json``,
``pickle`` and ``copy.deepcopy``, compare equal to the YAML's dicts and lists, and mutating
them never changes what the next call returns. Cards pickle, and ``==`` agrees with
``hash``. ``field.as_(t)`` checks and converts element-wise, and a mismatch is an
:class:`AssetCardError` naming the card, the field, the expected and the actual type.

Every test runs on cards from a real store: an :class:`InMemoryAssetMetadataProvider` fed the
YAML's documents, and a :class:`FileAssetMetadataProvider` on a folder holding the YAML.
"""

from __future__ import annotations

import copy
import itertools
import json
import pickle
import re
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml

from asyncassets import (
    AssetCard,
    AssetCardError,
    AssetStore,
    FileAssetMetadataProvider,
    InMemoryAssetMetadataProvider,
)

CARDS = """\
name: family
model_family: toy
config: {dim: 4, heads: [1, 2]}
---
name: tiny
base: family
l: [1, 2]
nested: {a: {b: 1}}
langs: [en, fr]
"""

#: What ``yaml.safe_load`` gives for each document of ``CARDS``.
FAMILY, TINY = yaml.safe_load_all(CARDS)


class Cards:
    """One YAML text, from which any number of stores are made: each store reads the same
    folder (``file``) or equal documents (``memory``)."""

    def __init__(self, kind: str, text: str, folder: Path) -> None:
        self.kind = kind
        self.text = textwrap.dedent(text)
        self.folder = folder
        self.stores: list[AssetStore] = []
        if kind == "file":
            folder.mkdir()
            (folder / "cards.yaml").write_text(self.text)

    def store(self) -> AssetStore:
        if self.kind == "file":
            provider: Any = FileAssetMetadataProvider(self.folder)
        else:
            provider = InMemoryAssetMetadataProvider(list(yaml.safe_load_all(self.text)))
        store = AssetStore([provider])
        self.stores.append(store)
        return store

    async def card(self, name: str) -> AssetCard:
        return await self.store().retrieve_card(name)


MakeCards = Callable[[str], Cards]


@pytest.fixture(params=["memory", "file"])
async def make_cards(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[[str], Cards]]:
    """``make_cards(yaml_text) -> Cards`` in memory or in a local folder."""
    made: list[Cards] = []
    counter = itertools.count()

    def make(text: str) -> Cards:
        cards = Cards(str(request.param), text, tmp_path / f"cards-{next(counter)}")
        made.append(cards)
        return cards

    yield make
    for cards in made:
        for store in cards.stores:
            await store.aclose()


@pytest.fixture
async def tiny(make_cards: MakeCards) -> AssetCard:
    return await make_cards(CARDS).card("tiny")


# -- plain data ---------------------------------------------------------------------------------

VIEWS: dict[str, Callable[[AssetCard], Any]] = {
    "metadata": lambda card: card.metadata,
    "field_value": lambda card: card.field("nested").value,
    "list_value": lambda card: card.field("l").value,
    "to_dict": lambda card: card.to_dict(),
}
EXPECTED: dict[str, Any] = {
    "metadata": TINY,
    "field_value": {"a": {"b": 1}},
    "list_value": [1, 2],
    "to_dict": FAMILY | TINY,
}
ROUND_TRIPS: dict[str, Callable[[Any], Any]] = {
    "json": lambda value: json.loads(json.dumps(value)),
    "pickle": lambda value: pickle.loads(pickle.dumps(value)),
    "deepcopy": copy.deepcopy,
}


@pytest.mark.parametrize("how", ROUND_TRIPS, ids=list(ROUND_TRIPS))
@pytest.mark.parametrize("view", VIEWS, ids=list(VIEWS))
async def test_a_value_survives_json_pickle_and_deepcopy(
    tiny: AssetCard, view: str, how: str
) -> None:
    value = VIEWS[view](tiny)
    assert ROUND_TRIPS[how](value) == value == EXPECTED[view]


@pytest.mark.parametrize("view", VIEWS, ids=list(VIEWS))
async def test_a_value_compares_equal_to_the_yamls_dicts_and_lists(
    tiny: AssetCard, view: str
) -> None:
    assert VIEWS[view](tiny) == EXPECTED[view]
    assert EXPECTED[view] == VIEWS[view](tiny)


async def test_field_values_equal_plain_lists_and_mappings(tiny: AssetCard) -> None:
    assert tiny.field("l").value == [1, 2]
    assert tiny.field("nested").value == {"a": {"b": 1}}
    assert tiny.field("config").value == {"dim": 4, "heads": [1, 2]}
    assert tiny.field("nested").field("a").value == {"b": 1}


async def test_values_are_plain_dicts_and_lists(tiny: AssetCard) -> None:
    merged = tiny.to_dict()
    assert type(merged) is dict
    assert type(merged["nested"]) is dict and type(merged["nested"]["a"]) is dict
    assert type(merged["l"]) is list and type(merged["config"]["heads"]) is list
    assert type(tiny.metadata) is dict
    assert type(tiny.field("langs").value) is list


# -- the caller owns what it gets ---------------------------------------------------------------


async def test_appending_to_a_list_value_never_changes_the_next_value(tiny: AssetCard) -> None:
    tiny.field("l").value.append(3)
    tiny.metadata["l"].append(3)
    tiny.to_dict()["l"].append(3)
    assert tiny.field("l").value == [1, 2]


async def test_setting_a_key_in_metadata_never_changes_the_next_metadata(tiny: AssetCard) -> None:
    metadata = tiny.metadata
    metadata["model_arch"] = "huge"
    del metadata["l"]
    assert tiny.metadata == TINY


async def test_setting_a_key_in_to_dict_never_changes_the_next_to_dict(tiny: AssetCard) -> None:
    merged = tiny.to_dict()
    merged["model_family"] = "other"
    merged.pop("nested")
    assert tiny.to_dict() == FAMILY | TINY


async def test_changing_a_nested_dict_never_changes_the_card(tiny: AssetCard) -> None:
    tiny.field("nested").value["a"]["b"] = 2
    tiny.metadata["nested"]["a"]["c"] = 3
    tiny.to_dict()["config"]["heads"].append(3)
    tiny.field("nested").field("a").value.clear()
    assert tiny.field("nested").value == {"a": {"b": 1}}
    assert tiny.field("config").value == {"dim": 4, "heads": [1, 2]}


async def test_changing_a_base_value_got_through_the_child_never_changes_the_base(
    tiny: AssetCard,
) -> None:
    tiny.field("config").value["dim"] = 8
    tiny.to_dict()["config"]["dim"] = 8
    assert tiny.base is not None
    assert tiny.base.field("config").field("dim").value == 4
    assert tiny.field("config").field("dim").value == 4


async def test_changing_a_converted_value_never_changes_the_card(tiny: AssetCard) -> None:
    tiny.field("l").as_(list[int]).append(3)
    tiny.field("nested").as_(dict[str, dict[str, int]])["a"]["b"] = 2
    tiny.field("nested").as_(dict)["a"]["b"] = 2
    assert tiny.field("l").value == [1, 2]
    assert tiny.field("nested").value == {"a": {"b": 1}}


async def test_changing_a_value_never_changes_the_store(make_cards: MakeCards) -> None:
    store = make_cards(CARDS).store()
    card = await store.retrieve_card("tiny")
    card.metadata["l"].append(3)
    card.field("nested").value["a"]["b"] = 2
    card.to_dict()["langs"].clear()

    again = await store.retrieve_card("tiny")
    assert again.to_dict() == FAMILY | TINY
    [provider] = store.metadata_providers
    assert await provider.get_metadata("tiny@") == TINY


ALIASED = """\
name: aliased
defaults: &defaults {lr: 1, layers: [1, 2]}
a: *defaults
b: *defaults
merged:
  <<: *defaults
  extra: 3
"""


async def test_values_from_one_yaml_alias_are_independent_copies(make_cards: MakeCards) -> None:
    card = await make_cards(ALIASED).card("aliased")
    merged = card.to_dict()
    merged["a"]["layers"].append(3)
    merged["a"]["lr"] = 9
    assert merged["b"] == merged["defaults"] == {"lr": 1, "layers": [1, 2]}
    assert merged["merged"] == {"lr": 1, "layers": [1, 2], "extra": 3}


async def test_changing_an_aliased_value_never_changes_its_siblings(
    make_cards: MakeCards,
) -> None:
    card = await make_cards(ALIASED).card("aliased")
    card.field("a").value["layers"].append(3)
    card.metadata["b"]["lr"] = 9
    card.field("merged").value["layers"].clear()
    for field in ("a", "b", "defaults"):
        assert card.field(field).value == {"lr": 1, "layers": [1, 2]}
    assert card.field("merged").value == {"lr": 1, "layers": [1, 2], "extra": 3}


# -- cards as values: pickle, ==, hash ----------------------------------------------------------


async def test_a_card_pickles_to_an_equal_card_with_its_base_chain(tiny: AssetCard) -> None:
    again = pickle.loads(pickle.dumps(tiny))
    assert again == tiny
    assert hash(again) == hash(tiny)
    assert again.base is not None and tiny.base is not None
    assert again.base == tiny.base
    assert (again.base.name, again.source) == ("family", tiny.source)
    assert again.field("model_family").value == "toy"
    assert again.to_dict() == tiny.to_dict()


async def test_equal_cards_have_equal_hashes(make_cards: MakeCards) -> None:
    cards = make_cards(CARDS)
    first, second = await cards.card("tiny"), await cards.card("tiny")
    assert first is not second
    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second}) == 1


async def test_cards_of_different_names_differ(make_cards: MakeCards) -> None:
    cards = make_cards("name: x\nk: 1\n---\nname: y\nk: 1\n")
    store = cards.store()
    x, y = await store.retrieve_card("x"), await store.retrieve_card("y")
    assert x != y
    assert len({x, y}) == 2


async def test_cards_of_different_sources_differ(tmp_path: Path) -> None:
    text = "name: x\nk: 1\n"
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "x.yaml").write_text(text)
    (tmp_path / "two" / "x.yaml").write_text(text)
    one = await AssetStore([FileAssetMetadataProvider(tmp_path / "one")]).retrieve_card("x")
    two = await AssetStore([FileAssetMetadataProvider(tmp_path / "two")]).retrieve_card("x")
    assert one != two
    assert len({one, two}) == 2


async def test_memory_cards_of_different_sources_differ() -> None:
    cards = [{"name": "x", "k": 1}]
    one = await AssetStore([InMemoryAssetMetadataProvider(cards, source="one")]).retrieve_card("x")
    two = await AssetStore([InMemoryAssetMetadataProvider(cards, source="two")]).retrieve_card("x")
    assert one != two


# -- as_ ----------------------------------------------------------------------------------------

TYPED = """\
name: typed
s: x
i: 3
f: 1.5
whole: 2
flag: true
nothing: null
names: [a, b, a]
counts: {a: 1, b: 2}
ints: [1, 2, 3]
pair: [1, a]
rows: [{a: 1}, {b: 2}]
grid: [{a: 1}, {b: x}]
layers: [a, b, 3]
"""


@pytest.fixture
async def typed(make_cards: MakeCards) -> AssetCard:
    return await make_cards(TYPED).card("typed")


@pytest.mark.parametrize(
    ("field", "kind", "expected"),
    [
        pytest.param("s", str, "x", id="str"),
        pytest.param("i", int, 3, id="int"),
        pytest.param("f", float, 1.5, id="float"),
        pytest.param("whole", float, 2.0, id="float_of_an_int"),
        pytest.param("flag", bool, True, id="bool"),
        pytest.param("names", list[str], ["a", "b", "a"], id="list[str]"),
        pytest.param("counts", dict[str, int], {"a": 1, "b": 2}, id="dict[str,int]"),
        pytest.param("names", set[str], {"a", "b"}, id="set[str]"),
        pytest.param("ints", tuple[int, ...], (1, 2, 3), id="tuple[int,...]"),
        pytest.param("pair", tuple[int, str], (1, "a"), id="tuple[int,str]"),
        pytest.param("i", int | None, 3, id="int|None_of_an_int"),
        pytest.param("nothing", int | None, None, id="int|None_of_null"),
        pytest.param("s", Optional[str], "x", id="Optional[str]_of_a_str"),  # noqa: UP045
        pytest.param("nothing", Optional[str], None, id="Optional[str]_of_null"),  # noqa: UP045
        pytest.param("rows", list[dict[str, int]], [{"a": 1}, {"b": 2}], id="list[dict]"),
        pytest.param("ints", list[float], [1.0, 2.0, 3.0], id="list[float]"),
    ],
)
async def test_as_accepts_a_value_of_the_type_and_converts_it(
    typed: AssetCard, field: str, kind: Any, expected: Any
) -> None:
    value = typed.field(field).as_(kind)
    assert value == expected
    assert type(value) is type(expected)


async def test_as_a_set_of_a_yaml_list_returns_a_set(typed: AssetCard) -> None:
    assert isinstance(typed.field("names").as_(set[str]), set)


async def test_as_a_tuple_of_a_yaml_list_returns_a_tuple(typed: AssetCard) -> None:
    assert isinstance(typed.field("ints").as_(tuple[int, ...]), tuple)


async def test_as_converts_every_element(typed: AssetCard) -> None:
    assert [type(x) for x in typed.field("ints").as_(list[float])] == [float, float, float]


@pytest.mark.parametrize(
    ("field", "kind", "expected", "actual"),
    [
        pytest.param("flag", int, "int", "bool", id="int_of_a_bool"),
        pytest.param("s", int, "int", "str", id="int_of_a_str"),
        pytest.param("s", float, "float", "str", id="float_of_a_str"),
        pytest.param("layers", list[str], "str", "int", id="list[str]_with_an_int"),
        pytest.param("counts", dict[str, str], "str", "int", id="dict[str,str]_with_ints"),
        pytest.param("names", dict[str, int], "dict", "list", id="dict_of_a_list"),
        pytest.param("counts", list[str], "list", "dict", id="list_of_a_dict"),
        pytest.param("s", set[str], "set", "str", id="set_of_a_str"),
        pytest.param("layers", tuple[str, ...], "str", "int", id="tuple[str,...]_with_an_int"),
        pytest.param("pair", tuple[int, int], "int", "str", id="tuple[int,int]_with_a_str"),
        pytest.param("ints", tuple[int, str], "tuple", "list", id="tuple_of_the_wrong_length"),
        pytest.param("s", int | None, "int", "str", id="int|None_of_a_str"),
        pytest.param("i", Optional[str], "str", "int", id="Optional[str]_of_an_int"),  # noqa: UP045
        pytest.param("rows", list[dict[str, str]], "str", "int", id="list[dict]_with_an_int"),
    ],
)
async def test_as_refuses_a_mismatch_naming_card_field_and_types(
    typed: AssetCard, field: str, kind: Any, expected: str, actual: str
) -> None:
    with pytest.raises(AssetCardError) as info:
        typed.field(field).as_(kind)
    message = str(info.value)
    for word in ("typed", field, expected, actual):
        assert re.search(rf"\b{re.escape(word)}\b", message), f"{word!r} not in {message!r}"


async def test_as_names_the_position_of_the_element_that_does_not_fit(typed: AssetCard) -> None:
    with pytest.raises(AssetCardError, match=r"layers(\[2\]|\.2)"):
        typed.field("layers").as_(list[str])


async def test_as_names_the_position_inside_nested_containers(typed: AssetCard) -> None:
    with pytest.raises(AssetCardError, match=r"grid(\[1\]|\.1)"):
        typed.field("grid").as_(list[dict[str, int]])


async def test_as_int_refuses_a_bool(typed: AssetCard) -> None:
    with pytest.raises(AssetCardError, match="flag"):
        typed.field("flag").as_(int)


# -- as_uri -------------------------------------------------------------------------------------


async def test_as_uri_of_a_relative_path_on_a_memory_card_is_a_card_error() -> None:
    provider = InMemoryAssetMetadataProvider([{"name": "tiny", "checkpoint": "ckpt/m.pt"}])
    card = await AssetStore([provider]).retrieve_card("tiny")
    with pytest.raises(AssetCardError, match=r"tiny.*checkpoint"):
        card.field("checkpoint").as_uri()


async def test_as_uri_of_an_absolute_path_on_a_memory_card_is_a_file_uri() -> None:
    provider = InMemoryAssetMetadataProvider([{"name": "tiny", "checkpoint": "/ckpt/m.pt"}])
    card = await AssetStore([provider]).retrieve_card("tiny")
    assert card.field("checkpoint").as_uri() == "file:///ckpt/m.pt"


async def test_as_uri_of_a_relative_path_on_a_file_card_is_next_to_its_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "tiny.yaml").write_text("name: tiny\ncheckpoint: ckpt/m.pt\n")
    card = await AssetStore([FileAssetMetadataProvider(tmp_path)]).retrieve_card("tiny")
    assert card.field("checkpoint").as_uri() == f"file://{tmp_path}/ckpt/m.pt"
