"""Gated cards: a card without the requested field but with a ``url`` (fairseq2's gated
models, e.g. the llama cards) makes ``prefetch`` raise ``AssetGatedError``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from asyncassets import (
    AssetCardError,
    AssetError,
    AssetGatedError,
    AssetStore,
    FileAssetMetadataProvider,
    InMemoryAssetMetadataProvider,
)
from asyncassets.cache import CheckpointCache
from asyncassets.cli import main

LLAMA_URL = "https://ai.meta.com/llama"


@pytest.fixture
def main_corpus(corpus_dir: Path) -> Path:
    return corpus_dir / "fairseq2-cards" / "main-027bdeb"


def _store(cards: list[dict[str, Any]], cache: CheckpointCache) -> AssetStore:
    return AssetStore([InMemoryAssetMetadataProvider(cards)], cache=cache, env_resolvers=[])


def _assert_gated(exc: AssetGatedError, *, name: str, field: str, url: str) -> None:
    assert isinstance(exc, AssetCardError)
    assert isinstance(exc, AssetError)
    assert (exc.name, exc.field, exc.url) == (name, field, url)
    message = str(exc)
    assert "\n" not in message
    assert f"'{name}'" in message
    assert url in message
    assert "request access" in message
    assert f"add the {field}" in message
    assert f"{name}@user" in message


# -- in-memory cards ------------------------------------------------------------------------


async def test_a_model_card_with_url_and_no_checkpoint_is_gated(cache: CheckpointCache) -> None:
    card = {"name": "m", "model_family": "llama", "model_arch": "7b", "url": "https://x.test/m"}
    store = _store([card], cache)
    with pytest.raises(AssetGatedError) as info:
        await store.prefetch("m", progress=False)
    _assert_gated(info.value, name="m", field="checkpoint", url="https://x.test/m")


async def test_a_tokenizer_card_with_url_and_no_tokenizer_is_gated(
    cache: CheckpointCache,
) -> None:
    card = {"name": "t", "tokenizer_family": "llama", "url": "https://x.test/t"}
    store = _store([card], cache)
    with pytest.raises(AssetGatedError) as info:
        await store.prefetch("t", field="tokenizer", progress=False)
    _assert_gated(info.value, name="t", field="tokenizer", url="https://x.test/t")


async def test_the_url_is_looked_up_through_the_base_chain(cache: CheckpointCache) -> None:
    cards = [
        {"name": "family", "model_family": "llama", "url": "https://x.test/family"},
        {"name": "mid", "base": "family", "model_arch": "big"},
        {"name": "leaf", "base": "mid"},
    ]
    store = _store(cards, cache)
    with pytest.raises(AssetGatedError) as info:
        await store.prefetch("leaf", progress=False)
    _assert_gated(info.value, name="leaf", field="checkpoint", url="https://x.test/family")


async def test_a_card_without_the_field_nor_url_keeps_the_missing_field_error(
    cache: CheckpointCache,
) -> None:
    store = _store([{"name": "m", "model_family": "llama"}], cache)
    with pytest.raises(AssetCardError, match=r"'m'.*checkpoint.*is not set") as info:
        await store.prefetch("m", progress=False)
    assert not isinstance(info.value, AssetGatedError)
    assert info.value.name == "m"
    assert info.value.field == "checkpoint"


async def test_a_card_that_sets_the_field_is_not_gated_by_its_url(
    tmp_path: Path, cache: CheckpointCache
) -> None:
    checkpoint = tmp_path / "m.pt"
    checkpoint.write_bytes(b"weights")
    card = {"name": "m", "model_family": "llama", "url": LLAMA_URL, "checkpoint": str(checkpoint)}
    store = _store([card], cache)
    path = await store.prefetch("m", progress=False)
    assert path.read_bytes() == b"weights"


async def test_a_user_card_with_the_checkpoint_lifts_the_gate(
    tmp_path: Path, cache: CheckpointCache
) -> None:
    checkpoint = tmp_path / "m.pt"
    checkpoint.write_bytes(b"granted")
    system = InMemoryAssetMetadataProvider(
        [{"name": "m", "model_family": "llama", "url": LLAMA_URL}]
    )
    user = InMemoryAssetMetadataProvider([{"name": "m@user", "checkpoint": str(checkpoint)}])
    gated = AssetStore([system], cache=cache, env_resolvers=[])
    with pytest.raises(AssetGatedError):
        await gated.prefetch("m", progress=False)
    store = AssetStore([system], user_providers=[user], cache=cache, env_resolvers=[])
    path = await store.prefetch("m", progress=False)
    assert path.read_bytes() == b"granted"


# -- the fairseq2 corpus --------------------------------------------------------------------


async def test_corpus_llama_cards_are_gated_through_their_base(
    main_corpus: Path, cache: CheckpointCache
) -> None:
    store = AssetStore([FileAssetMetadataProvider(main_corpus)], cache=cache, env_resolvers=[])
    card = await store.retrieve_card("llama3_2_1b")
    # The url is the base's (llama3), not the card's own.
    assert "url" not in card.raw_metadata
    assert not card.has_field("checkpoint")
    with pytest.raises(AssetGatedError) as info:
        await store.prefetch("llama3_2_1b", progress=False)
    _assert_gated(info.value, name="llama3_2_1b", field="checkpoint", url=LLAMA_URL)

    with pytest.raises(AssetGatedError) as info:
        await store.prefetch("llama_7b", field="tokenizer", progress=False)
    _assert_gated(info.value, name="llama_7b", field="tokenizer", url=LLAMA_URL)


async def test_corpus_model_card_without_checkpoint_nor_url_is_not_gated(
    main_corpus: Path, cache: CheckpointCache
) -> None:
    store = AssetStore([FileAssetMetadataProvider(main_corpus)], cache=cache, env_resolvers=[])
    card = await store.retrieve_card("nllb-200")
    assert card.has_field("model_family")
    assert not card.has_field("url")
    with pytest.raises(AssetCardError, match=r"'nllb-200'.*checkpoint.*is not set") as info:
        await store.prefetch("nllb-200", progress=False)
    assert not isinstance(info.value, AssetGatedError)


# -- the CLI --------------------------------------------------------------------------------


def test_cli_prefetch_of_a_gated_corpus_card_fails_with_one_line(
    main_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "--store",
            str(main_corpus),
            "--cache-dir",
            str(tmp_path / "c"),
            "prefetch",
            "llama3_8b",
        ]
    )
    assert code != 0
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert len(err) == 1
    line = err[0]
    assert line.startswith("asyncassets: error: llama3_8b: ")
    assert "gated" in line and LLAMA_URL in line and "request access" in line
    assert "llama3_8b@user" in line


def test_cli_prefetch_reports_each_gated_name_and_keeps_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cards = tmp_path / "cards"
    cards.mkdir()
    checkpoint = tmp_path / "open.pt"
    checkpoint.write_bytes(b"open")
    (cards / "models.yaml").write_text(
        "name: family\nmodel_family: llama\nurl: https://x.test/family\n---\n"
        "name: gated_a\nbase: family\nmodel_arch: a\n---\n"
        "name: gated_b\nbase: family\nmodel_arch: b\n---\n"
        f"name: open\nmodel_family: llama\ncheckpoint: {checkpoint}\n"
    )
    code = main(
        [
            "--store",
            str(cards),
            "--cache-dir",
            str(tmp_path / "c"),
            "prefetch",
            "gated_a",
            "open",
            "gated_b",
        ]
    )
    assert code != 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"open\t{checkpoint}"
    err = sorted(captured.err.strip().splitlines())
    assert len(err) == 2
    for name, line in zip(["gated_a", "gated_b"], err, strict=True):
        assert line.startswith(f"asyncassets: error: {name}: ")
        assert "https://x.test/family" in line and "request access" in line
