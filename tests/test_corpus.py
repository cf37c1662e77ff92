"""fairseq2's own card folders, read where they lie: every card resolves with the fields
fairseq2 gives it, on every backend; main-027bdeb's one real defect is reported alone.

The expected values are computed here the way fairseq2 computes them — ``yaml.safe_load_all``
on each file, a dict by name, and each top-level field looked up through the ``base`` chain
with the child winning — independently of asyncassets' parser and resolver. (PyYAML reads
YAML 1.1 where fairseq2's ruamel reads 1.2; on these corpora both give the same values:
test_config_corpus checks every scalar of them.)
"""

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from asyncassets.errors import AssetCardError
from asyncassets.providers.file import FileAssetMetadataProvider
from asyncassets.store import AssetStore

MakeProvider = Callable[[dict[str, bytes]], FileAssetMetadataProvider]

MAIN = "main-027bdeb"
V046 = "v0.4.6"
#: The one card of main-027bdeb whose base no card defines.
BROKEN, MISSING_BASE = "librispeech_asr_100h", "wav2vec2_asr"


def card_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml"))


def fairseq2_cards(folder: Path) -> dict[str, dict[str, Any]]:
    """name -> metadata, as fairseq2's file metadata provider reads a folder."""
    cards: dict[str, dict[str, Any]] = {}
    for path in card_files(folder):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                cards[document["name"]] = document
    return cards


def fairseq2_merged(cards: Mapping[str, Mapping[str, Any]], name: str) -> dict[str, Any]:
    """Every top-level field of ``name`` as fairseq2's ``card.field(k)`` finds it."""
    chain, current = [], name
    while current is not None:
        chain.append(cards[current])
        current = cards[current].get("base")
    keys = {key for card in chain for key in card}
    merged = {key: next(card[key] for card in chain if key in card) for key in keys}
    merged["name"] = name
    return merged


def plain(value: Any) -> Any:
    """Read-only views (mappings, tuples) as plain dicts and lists, for comparisons."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


@pytest.fixture(params=[V046, MAIN])
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_corpus(
    backend: str, corpus_dir: Path, make_provider: MakeProvider
) -> Callable[[str], FileAssetMetadataProvider]:
    """``open_corpus(version)``: a provider of that corpus folder on the current backend,
    read in place locally and uploaded elsewhere."""

    def open_(version: str) -> FileAssetMetadataProvider:
        folder = corpus_dir / "fairseq2-cards" / version
        if backend == "local":
            return FileAssetMetadataProvider(folder)
        return make_provider(
            {p.relative_to(folder).as_posix(): p.read_bytes() for p in card_files(folder)}
        )

    return open_


@pytest.fixture
def corpus_provider(
    open_corpus: Callable[[str], FileAssetMetadataProvider], version: str
) -> FileAssetMetadataProvider:
    return open_corpus(version)


@pytest.fixture
def corpus_store(corpus_provider: FileAssetMetadataProvider) -> AssetStore:
    return AssetStore([corpus_provider], env_resolvers=[])


@pytest.fixture
def main_provider(
    open_corpus: Callable[[str], FileAssetMetadataProvider],
) -> FileAssetMetadataProvider:
    return open_corpus(MAIN)


@pytest.fixture
def main_store(main_provider: FileAssetMetadataProvider) -> AssetStore:
    return AssetStore([main_provider], env_resolvers=[])


@pytest.fixture
def v046_store(open_corpus: Callable[[str], FileAssetMetadataProvider]) -> AssetStore:
    return AssetStore([open_corpus(V046)], env_resolvers=[])


@pytest.fixture
def expected(corpus_dir: Path, version: str) -> dict[str, dict[str, Any]]:
    return fairseq2_cards(corpus_dir / "fairseq2-cards" / version)


def resolvable(expected: Mapping[str, Any]) -> list[str]:
    """Every card whose whole base chain exists (all but main-027bdeb's defect)."""

    def resolves(name: str | None) -> bool:
        return name is None or (name in expected and resolves(expected[name].get("base")))

    return sorted(name for name in expected if resolves(name))


# -- every card, both corpora -----------------------------------------------------------------


async def test_corpus_holds_the_documented_number_of_cards(
    corpus_store: AssetStore, version: str
) -> None:
    names = await corpus_store.asset_names()
    assert len(names) == {V046: 50, MAIN: 88}[version]


async def test_asset_names_are_every_cards_canonical_name(
    corpus_store: AssetStore, expected: dict[str, dict[str, Any]]
) -> None:
    assert await corpus_store.asset_names() == {f"{name}@" for name in expected}


async def test_all_cards_but_the_documented_defect_resolve(
    expected: dict[str, dict[str, Any]], version: str
) -> None:
    unresolvable = sorted(set(expected) - set(resolvable(expected)))
    assert unresolvable == {V046: [], MAIN: [BROKEN]}[version]
    assert len(resolvable(expected)) == {V046: 50, MAIN: 87}[version]


async def test_every_card_resolves_to_fairseq2s_merged_fields(
    corpus_store: AssetStore, expected: dict[str, dict[str, Any]]
) -> None:
    for name in resolvable(expected):
        card = await corpus_store.retrieve_card(name)
        assert card.to_dict() == fairseq2_merged(expected, name), name


async def test_every_field_value_is_fairseq2s(
    corpus_store: AssetStore, expected: dict[str, dict[str, Any]]
) -> None:
    for name in resolvable(expected):
        card = await corpus_store.retrieve_card(name)
        for key, value in fairseq2_merged(expected, name).items():
            assert plain(card.field(key).value) == value, (name, key)


async def test_every_card_has_its_own_metadata_and_base(
    corpus_store: AssetStore, expected: dict[str, dict[str, Any]]
) -> None:
    for name in resolvable(expected):
        card = await corpus_store.retrieve_card(name)
        assert plain(card.metadata) == expected[name]
        assert (card.base.name if card.base else None) == expected[name].get("base")


async def test_every_card_is_json_serialisable(
    corpus_store: AssetStore, expected: dict[str, dict[str, Any]]
) -> None:
    for name in resolvable(expected):
        merged = (await corpus_store.retrieve_card(name)).to_dict()
        assert json.loads(json.dumps(merged)) == merged


async def test_find_cards_finds_the_llama_family(
    corpus_store: AssetStore, expected: dict[str, dict[str, Any]]
) -> None:
    found = {card.name async for card in corpus_store.find_cards("model_family", "llama")}
    assert "llama2_7b" in found
    assert found == {
        name
        for name in resolvable(expected)
        if fairseq2_merged(expected, name).get("model_family") == "llama"
    }


# -- check and the documented defect -----------------------------------------------------------


async def test_v046_check_reports_nothing(v046_store: AssetStore) -> None:
    assert await v046_store.check() == []


async def test_main_check_reports_exactly_the_missing_base(
    main_store: AssetStore, main_provider: FileAssetMetadataProvider, corpus_dir: Path
) -> None:
    file = corpus_dir / "fairseq2-cards" / MAIN / "datasets" / "librispeech.yaml"
    lines = file.read_text().splitlines()
    base_line = lines.index(f"base: {MISSING_BASE}", lines.index(f"name: {BROKEN}")) + 1

    [problem] = await main_store.check()

    assert problem.kind == "missing-base"
    assert (problem.file, problem.line) == (
        f"{main_provider.source}/datasets/librispeech.yaml",
        base_line,
    )
    assert f"'{BROKEN}'" in problem.message
    assert f"'{MISSING_BASE}'" in problem.message
    assert str(problem).endswith(f"datasets/librispeech.yaml:{base_line}: {problem.message}")


async def test_main_retrieving_the_broken_card_names_both_cards(main_store: AssetStore) -> None:
    with pytest.raises(AssetCardError) as info:
        await main_store.retrieve_card(BROKEN)
    message = str(info.value)
    assert f"'{BROKEN}'" in message
    assert f"'{MISSING_BASE}'" in message
    assert "datasets/librispeech.yaml" in message


# -- spot checks of real values ---------------------------------------------------------------


async def test_llama2_7b_inherits_from_llama2(corpus_store: AssetStore) -> None:
    card = await corpus_store.retrieve_card("llama2_7b")
    assert card.field("model_family").value == "llama"
    assert card.field("model_arch").value == "llama2_7b"
    assert card.field("tokenizer_family").value == "llama"
    assert card.base is not None and card.base.name == "llama2"
    assert card.source.endswith("/models/llama.yaml")


async def test_llama2_70b_has_eight_shards(corpus_store: AssetStore) -> None:
    card = await corpus_store.retrieve_card("llama2_70b")
    assert card.field("num_shards").as_(int) == 8


async def test_v046_gated_checkpoint_uri_is_kept_whole(v046_store: AssetStore) -> None:
    card = await v046_store.retrieve_card("llama2_7b")
    assert card.field("checkpoint").as_uri() == "https://ai.meta.com/llama/;gated=true"


async def test_v046_nllb_inherits_its_language_list(v046_store: AssetStore) -> None:
    card = await v046_store.retrieve_card("nllb-200_dense_1b")
    assert "eng_Latn" in card.field("langs").as_(list)
    assert card.field("default_lang").as_(str) == "eng_Latn"
    assert card.field("checkpoint").as_uri() == "https://tinyurl.com/nllb200dense1bcheckpoint"


async def test_main_nllb_inherits_its_nested_tokenizer_overrides(main_store: AssetStore) -> None:
    card = await main_store.retrieve_card("nllb-200_dense_1b")
    overrides = card.field("tokenizer_config_overrides")
    assert overrides.field("default_lang").as_(str) == "eng_Latn"
    assert "eng_Latn" in overrides.field("langs").as_(list)


async def test_main_hugging_face_card_has_a_nested_model_config(main_store: AssetStore) -> None:
    card = await main_store.retrieve_card("hg_qwen25_omni_3b")
    config = card.field("model_config")
    assert config.field("hf_name").as_(str) == "Qwen/Qwen2.5-Omni-3B"
    assert config.field("trust_remote_code").as_(bool) is True
    assert card.field("checkpoint").as_uri() == "hg://Qwen/Qwen2.5-Omni-3B"


async def test_main_card_without_a_base_has_no_base(main_store: AssetStore) -> None:
    card = await main_store.retrieve_card("qwen25_7b_instruct")
    assert card.base is None
    assert card.field("tokenizer_config").field("use_im_end").as_(bool) is True
