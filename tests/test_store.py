"""AssetStore: lazy single-flight loading, the default store, queries, and the providers."""

import logging
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)

import asyncassets
from asyncassets.card import AssetCard
from asyncassets.defaults import create_default_store
from asyncassets.errors import (
    AssetCardError,
    AssetError,
    AssetMetadataError,
    AssetMetadataNotFoundError,
    AssetSourceNotFoundError,
)
from asyncassets.providers.file import FileAssetMetadataProvider
from asyncassets.providers.memory import InMemoryAssetMetadataProvider
from asyncassets.providers.package import PackageAssetMetadataProvider
from asyncassets.snapshot import FileRecord
from asyncassets.store import AssetStore

MakeProvider = Callable[[dict[str, str]], FileAssetMetadataProvider]
WriteCards = Callable[..., Path]

MODELS = """\
name: toy
model_family: toy
---
name: tiny
base: toy
dim: 8
---
name: tiny@aws
checkpoint: s3://models/tiny.pt
"""


class CountingProvider(FileAssetMetadataProvider):
    """A real folder provider that counts how often it reads every file."""

    reads = 0

    async def _read_all(self) -> list[FileRecord]:
        self.reads += 1
        return await super()._read_all()


@pytest.fixture
def counting_provider(upload: Callable[..., object]) -> CountingProvider:
    root = upload({"models.yaml": MODELS})
    return CountingProvider(root.url, storage_options=root.storage_options)  # type: ignore[attr-defined]


# -- lazy, single-flight loading ----------------------------------------------------------------


async def test_creating_a_store_loads_nothing(counting_provider: CountingProvider) -> None:
    AssetStore([counting_provider])
    assert not counting_provider.loaded
    assert counting_provider.reads == 0


async def test_first_call_loads_the_providers(counting_provider: CountingProvider) -> None:
    store = AssetStore([counting_provider])
    card = await store.retrieve_card("tiny")
    assert card.field("dim").value == 8
    assert counting_provider.loaded


async def test_later_calls_do_not_load_again(counting_provider: CountingProvider) -> None:
    store = AssetStore([counting_provider])
    await store.retrieve_card("tiny")
    await store.asset_names()
    await store.check()
    assert counting_provider.reads == 1


async def retrieve_concurrently(store: AssetStore, name: str, times: int) -> list[AssetCard]:
    cards: list[AssetCard] = []

    async def retrieve() -> None:
        cards.append(await store.retrieve_card(name))

    async with anyio.create_task_group() as tg:
        for _ in range(times):
            tg.start_soon(retrieve)
    return cards


async def test_100_concurrent_first_calls_load_once(counting_provider: CountingProvider) -> None:
    store = AssetStore([counting_provider])
    cards = await retrieve_concurrently(store, "tiny", 100)
    assert counting_provider.reads == 1
    assert [card.field("dim").value for card in cards] == [8] * 100


async def test_concurrent_first_calls_of_different_methods_load_once(
    counting_provider: CountingProvider,
) -> None:
    store = AssetStore([counting_provider])
    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(store.retrieve_card, "tiny")
            tg.start_soon(store.asset_names)
            tg.start_soon(store.check)
            tg.start_soon(store.load)
    assert counting_provider.reads == 1


async def test_explicit_load_loads_every_provider(make_provider: MakeProvider) -> None:
    first, second = make_provider({"a.yaml": "name: a\n"}), make_provider({"b.yaml": "name: b\n"})
    store = AssetStore([first], user_providers=[second])
    await store.load()
    assert first.loaded and second.loaded


async def test_provider_appended_after_first_use_is_loaded_on_the_next_call(
    make_provider: MakeProvider,
) -> None:
    store = AssetStore([make_provider({"a.yaml": "name: a\n"})])
    assert await store.maybe_retrieve_card("b") is None
    store.metadata_providers.append(make_provider({"b.yaml": "name: b\nwho: new\n"}))
    assert (await store.retrieve_card("b")).field("who").value == "new"


async def test_appending_a_provider_replaces_cached_cards(make_provider: MakeProvider) -> None:
    store = AssetStore([make_provider({"a.yaml": "name: a\nwho: old\n"})])
    assert (await store.retrieve_card("a")).field("who").value == "old"
    store.metadata_providers.append(make_provider({"a.yaml": "name: a\nwho: new\n"}))
    assert (await store.retrieve_card("a")).field("who").value == "new"


# -- the seed's snippet and the default store ------------------------------------------------


async def test_seed_snippet_appending_a_provider_to_asset_store(
    write_cards: WriteCards, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ASYNCASSETS_ASSET_DIR", str(tmp_path / "no-system-cards"))
    monkeypatch.setattr(asyncassets, "asset_store", create_default_store())
    my_dir = write_cards({"models.yaml": MODELS})

    from asyncassets import FileAssetMetadataProvider, asset_store

    asset_store.metadata_providers.append(FileAssetMetadataProvider(my_dir))
    card = await asset_store.retrieve_card("tiny")

    assert card.field("model_family").value == "toy"


def test_default_asset_store_is_an_asset_store() -> None:
    assert isinstance(asyncassets.asset_store, AssetStore)


async def test_default_store_reads_the_asyncassets_asset_dir(
    write_cards: WriteCards, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ASYNCASSETS_ASSET_DIR", str(write_cards({"m.yaml": MODELS})))
    store = create_default_store()
    assert (await store.retrieve_card("tiny")).field("dim").value == 8


async def test_default_store_falls_back_to_fairseq2_asset_dir(
    write_cards: WriteCards, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("FAIRSEQ2_ASSET_DIR", str(write_cards({"m.yaml": MODELS})))
    assert (await create_default_store().retrieve_card("tiny")).field("dim").value == 8


async def test_asyncassets_asset_dir_wins_over_fairseq2_asset_dir(
    write_cards: WriteCards, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ours = write_cards({"m.yaml": "name: a\nwho: ours\n"}, root=tmp_path / "ours")
    theirs = write_cards({"m.yaml": "name: a\nwho: fairseq2\n"}, root=tmp_path / "theirs")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ASYNCASSETS_ASSET_DIR", str(ours))
    monkeypatch.setenv("FAIRSEQ2_ASSET_DIR", str(theirs))
    assert (await create_default_store().retrieve_card("a")).field("who").value == "ours"


async def test_default_store_reads_the_asyncassets_user_asset_dir(
    write_cards: WriteCards, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ASYNCASSETS_ASSET_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("ASYNCASSETS_USER_ASSET_DIR", str(write_cards({"m.yaml": MODELS})))
    store = create_default_store()
    assert len(store.user_metadata_providers) == 1
    assert (await store.retrieve_card("tiny")).field("dim").value == 8


async def test_default_store_falls_back_to_fairseq2_user_asset_dir(
    write_cards: WriteCards, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ASYNCASSETS_ASSET_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("FAIRSEQ2_USER_ASSET_DIR", str(write_cards({"m.yaml": MODELS})))
    assert (await create_default_store().retrieve_card("tiny")).field("dim").value == 8


async def test_default_user_folder_is_under_xdg_config_home(
    write_cards: WriteCards, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_cards({"m.yaml": MODELS}, root=tmp_path / "config" / "asyncassets" / "assets")
    monkeypatch.setenv("ASYNCASSETS_ASSET_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert (await create_default_store().retrieve_card("tiny")).field("dim").value == 8


async def test_default_user_folder_is_under_home_config_without_xdg(
    write_cards: WriteCards, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_cards({"m.yaml": MODELS}, root=tmp_path / "home" / ".config" / "asyncassets" / "assets")
    monkeypatch.setenv("ASYNCASSETS_ASSET_DIR", str(tmp_path / "none"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert (await create_default_store().retrieve_card("tiny")).field("dim").value == 8


async def test_default_user_cards_win_over_system_cards(
    write_cards: WriteCards, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    system = write_cards({"m.yaml": "name: a\nwho: system\n"}, root=tmp_path / "system")
    user = write_cards({"m.yaml": "name: a\nwho: user\n"}, root=tmp_path / "user")
    monkeypatch.setenv("ASYNCASSETS_ASSET_DIR", str(system))
    monkeypatch.setenv("ASYNCASSETS_USER_ASSET_DIR", str(user))
    assert (await create_default_store().retrieve_card("a")).field("who").value == "user"


async def test_missing_default_folders_are_skipped_silently(
    write_cards: WriteCards,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-without-cards"))
    monkeypatch.setenv("ASYNCASSETS_ASSET_DIR", str(write_cards({"m.yaml": MODELS})))
    with caplog.at_level(logging.WARNING, logger="asyncassets"):
        card = await create_default_store().retrieve_card("tiny")
    assert card.field("dim").value == 8
    assert "config-without-cards" not in caplog.text


async def test_missing_folder_named_by_a_variable_is_a_warning(
    write_cards: WriteCards,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("ASYNCASSETS_ASSET_DIR", str(write_cards({"m.yaml": MODELS})))
    monkeypatch.setenv("ASYNCASSETS_USER_ASSET_DIR", str(tmp_path / "typo-in-user-dir"))
    with caplog.at_level(logging.WARNING, logger="asyncassets"):
        card = await create_default_store().retrieve_card("tiny")
    assert card.field("dim").value == 8
    assert "typo-in-user-dir" in caplog.text


async def test_default_store_variable_may_hold_a_url(
    upload_memory: Callable[..., object], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = upload_memory({"cards/m.yaml": MODELS})
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ASYNCASSETS_ASSET_DIR", root.url)  # type: ignore[attr-defined]
    assert (await create_default_store().retrieve_card("tiny")).field("dim").value == 8


# -- queries ----------------------------------------------------------------------------------


async def test_asset_names_are_canonical_across_providers(make_provider: MakeProvider) -> None:
    store = AssetStore(
        [make_provider({"m.yaml": MODELS})], user_providers=[make_provider({"u.yaml": "name: u"})]
    )
    assert await store.asset_names() == frozenset({"toy@", "tiny@", "tiny@aws", "u@"})


async def test_provider_asset_names_after_load(make_provider: MakeProvider) -> None:
    provider = make_provider({"m.yaml": MODELS})
    await provider.load()
    assert provider.asset_names == frozenset({"toy@", "tiny@", "tiny@aws"})


async def test_find_cards_matches_fields_through_the_base_chain(
    make_provider: MakeProvider,
) -> None:
    provider = make_provider({"m.yaml": MODELS + "---\nname: other\nmodel_family: big\n"})
    found = [card.name async for card in AssetStore([provider]).find_cards("model_family", "toy")]
    assert found == ["tiny", "toy"]


async def test_find_cards_applies_the_active_envs(make_provider: MakeProvider) -> None:
    store = AssetStore([make_provider({"m.yaml": MODELS})], default_env="aws")
    found = [c.name async for c in store.find_cards("checkpoint", "s3://models/tiny.pt")]
    assert found == ["tiny"]


async def test_find_cards_skips_cards_that_do_not_resolve(make_provider: MakeProvider) -> None:
    provider = make_provider({"m.yaml": MODELS + "---\nname: broken\nbase: ghost\n"})
    found = [c.name async for c in AssetStore([provider]).find_cards("model_family", "toy")]
    assert found == ["tiny", "toy"]


async def test_find_cards_yields_nothing_when_nothing_matches(make_provider: MakeProvider) -> None:
    store = AssetStore([make_provider({"m.yaml": MODELS})])
    assert [c async for c in store.find_cards("model_family", "llama")] == []


async def test_maybe_retrieve_card_returns_none_for_an_unknown_name(
    make_provider: MakeProvider,
) -> None:
    store = AssetStore([make_provider({"m.yaml": MODELS})])
    assert await store.maybe_retrieve_card("ghost") is None


async def test_maybe_retrieve_card_returns_a_known_card(make_provider: MakeProvider) -> None:
    store = AssetStore([make_provider({"m.yaml": MODELS})])
    card = await store.maybe_retrieve_card("tiny")
    assert card is not None and card.name == "tiny"


async def test_maybe_retrieve_card_still_raises_for_a_missing_base(
    make_provider: MakeProvider,
) -> None:
    store = AssetStore([make_provider({"m.yaml": "name: tiny\nbase: ghost\n"})])
    with pytest.raises(AssetCardError, match="ghost"):
        await store.maybe_retrieve_card("tiny")


# -- get_metadata -----------------------------------------------------------------------------


async def test_get_metadata_returns_the_cards_own_fields(make_provider: MakeProvider) -> None:
    provider = make_provider({"m.yaml": MODELS})
    assert await provider.get_metadata("tiny@") == {"name": "tiny", "base": "toy", "dim": 8}


async def test_get_metadata_returns_an_override_by_canonical_name(
    make_provider: MakeProvider,
) -> None:
    provider = make_provider({"m.yaml": MODELS})
    metadata = await provider.get_metadata("tiny@aws")
    assert metadata["checkpoint"] == "s3://models/tiny.pt"


async def test_get_metadata_returns_a_copy(make_provider: MakeProvider) -> None:
    provider = make_provider({"m.yaml": "name: tiny\nmodel_config: {dim: 8}\nlangs: [en]\n"})
    metadata = await provider.get_metadata("tiny@")
    metadata["model_config"]["dim"] = 1
    metadata["langs"].append("fr")
    metadata["extra"] = True
    assert await provider.get_metadata("tiny@") == {
        "name": "tiny",
        "model_config": {"dim": 8},
        "langs": ["en"],
    }


async def test_get_metadata_of_an_unknown_name_names_it_and_the_source(
    make_provider: MakeProvider,
) -> None:
    provider = make_provider({"m.yaml": MODELS})
    with pytest.raises(AssetMetadataNotFoundError, match="ghost@") as info:
        await provider.get_metadata("ghost@")
    assert provider.source in str(info.value)
    assert info.value.name == "ghost@"


# -- lifetime, errors and folders -------------------------------------------------------------


async def test_store_is_an_async_context_manager(make_provider: MakeProvider) -> None:
    async with AssetStore([make_provider({"m.yaml": MODELS})]) as store:
        assert isinstance(store, AssetStore)
        assert (await store.retrieve_card("tiny")).name == "tiny"


async def test_missing_folder_raises_naming_it(tmp_path: Path) -> None:
    store = AssetStore([FileAssetMetadataProvider(tmp_path / "no-such-folder")])
    with pytest.raises(AssetSourceNotFoundError, match="no-such-folder"):
        await store.retrieve_card("tiny")


async def test_missing_folder_error_is_an_asset_error(tmp_path: Path) -> None:
    store = AssetStore([FileAssetMetadataProvider(tmp_path / "no-such-folder")])
    with pytest.raises(AssetError):
        await store.asset_names()


async def test_missing_memory_folder_raises_naming_it() -> None:
    url = f"memory://no-such-folder-{uuid.uuid4().hex}"
    with pytest.raises(AssetSourceNotFoundError, match="no-such-folder"):
        await AssetStore([FileAssetMetadataProvider(url)]).retrieve_card("tiny")


async def test_strict_store_raises_on_problems(make_provider: MakeProvider) -> None:
    store = AssetStore([make_provider({"m.yaml": "name: a\n---\nname: 7\n"})], strict=True)
    with pytest.raises(AssetMetadataError, match=r"m\.yaml:3"):
        await store.load()


async def test_cards_are_found_in_sub_folders_and_yml_files(make_provider: MakeProvider) -> None:
    provider = make_provider({"a/b/c/deep.yml": "name: deep\n", "top.yaml": "name: top\n"})
    assert await AssetStore([provider]).asset_names() == frozenset({"deep@", "top@"})


async def test_files_that_are_not_yaml_are_ignored(make_provider: MakeProvider) -> None:
    provider = make_provider({"m.yaml": "name: a\n", "README.md": "name: b\n", "x.json": "{}"})
    assert await AssetStore([provider]).asset_names() == frozenset({"a@"})


async def test_hidden_local_files_and_folders_are_ignored(write_cards: WriteCards) -> None:
    root = write_cards({"m.yaml": "name: a\n", ".git/x.yaml": "name: b\n", ".#m.yaml": "name: c\n"})
    assert await AssetStore([FileAssetMetadataProvider(root)]).asset_names() == {"a@"}


async def test_file_url_reads_a_local_folder(write_cards: WriteCards) -> None:
    root = write_cards({"m.yaml": MODELS})
    provider = FileAssetMetadataProvider(f"file://{root}")
    assert provider.source == f"file://{root}"
    assert (await AssetStore([provider]).retrieve_card("tiny")).field("dim").value == 8


async def test_a_single_card_file_is_a_store(write_cards: WriteCards) -> None:
    root = write_cards({"m.yaml": MODELS})
    store = AssetStore([FileAssetMetadataProvider(root / "m.yaml")])
    assert (await store.retrieve_card("tiny")).field("dim").value == 8


# -- package and in-memory providers ----------------------------------------------------------


@pytest.fixture
def card_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable package with cards in ``cards/`` (and a sub-folder), on sys.path."""
    name = f"cardpkg_{uuid.uuid4().hex}"
    package = tmp_path / "site" / name
    (package / "cards" / "more").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cards" / "__init__.py").write_text("")
    (package / "cards" / "models.yaml").write_text(MODELS)
    (package / "cards" / "more" / "extra.yml").write_text("name: extra\nbase: toy\n")
    (package / "module.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[module]


async def test_package_provider_reads_cards_shipped_in_a_package(card_package: str) -> None:
    store = AssetStore([PackageAssetMetadataProvider(f"{card_package}.cards")])
    assert (await store.retrieve_card("tiny")).field("model_family").value == "toy"


async def test_package_provider_reads_sub_folders(card_package: str) -> None:
    store = AssetStore([PackageAssetMetadataProvider(card_package, "cards")])
    assert await store.asset_names() == frozenset({"toy@", "tiny@", "tiny@aws", "extra@"})


async def test_package_provider_source_names_the_package(card_package: str) -> None:
    provider = PackageAssetMetadataProvider(card_package, "cards")
    assert provider.source == f"package://{card_package}/cards"


async def test_package_provider_of_a_missing_package_raises_naming_it() -> None:
    store = AssetStore([PackageAssetMetadataProvider("no_such_card_package_xyz")])
    with pytest.raises(AssetSourceNotFoundError, match="no_such_card_package_xyz"):
        await store.retrieve_card("tiny")


async def test_package_provider_of_a_missing_folder_raises_naming_it(card_package: str) -> None:
    store = AssetStore([PackageAssetMetadataProvider(card_package, "nope")])
    with pytest.raises(AssetSourceNotFoundError, match="nope"):
        await store.retrieve_card("tiny")


async def test_in_memory_provider_serves_cards_given_as_mappings() -> None:
    provider = InMemoryAssetMetadataProvider(
        [{"name": "toy", "model_family": "toy"}, {"name": "tiny", "base": "toy"}]
    )
    card = await AssetStore([provider]).retrieve_card("tiny")
    assert card.field("model_family").value == "toy"


async def test_in_memory_provider_set_cards_replaces_the_cards_a_store_serves() -> None:
    provider = InMemoryAssetMetadataProvider([{"name": "tiny", "who": "old"}])
    store = AssetStore([provider])
    assert (await store.retrieve_card("tiny")).field("who").value == "old"
    provider.set_cards([{"name": "tiny", "who": "new"}])
    assert (await store.retrieve_card("tiny")).field("who").value == "new"


async def test_in_memory_provider_reports_invalid_cards() -> None:
    provider = InMemoryAssetMetadataProvider([{"name": "ok"}, {"model_family": "nameless"}])
    [problem] = await AssetStore([provider]).check()
    assert problem.kind == "name"


async def test_in_memory_cards_do_not_share_the_callers_dicts() -> None:
    config = {"dim": 8}
    provider = InMemoryAssetMetadataProvider([{"name": "tiny", "model_config": config}])
    card = await AssetStore([provider]).retrieve_card("tiny")
    config["dim"] = 1
    assert card.field("model_config").field("dim").value == 8


async def test_setting_default_env_before_first_use_applies_it() -> None:
    provider = InMemoryAssetMetadataProvider(
        [{"name": "tiny", "who": "plain"}, {"name": "tiny@aws", "who": "aws"}]
    )
    store = AssetStore([provider])
    store.default_env = "aws"
    assert (await store.retrieve_card("tiny")).field("who").value == "aws"


async def test_refreshed_provider_serves_the_new_cards(write_cards: WriteCards) -> None:
    root = write_cards({"m.yaml": "name: tiny\nwho: old\n"})
    provider = FileAssetMetadataProvider(root)
    store = AssetStore([provider])
    assert (await store.retrieve_card("tiny")).field("who").value == "old"
    write_cards({"m.yaml": "name: tiny\nwho: new\nextra: 1\n"})
    await provider.refresh()
    assert (await store.retrieve_card("tiny")).field("who").value == "new"


async def test_concurrent_first_calls_get_the_same_cached_card(
    counting_provider: CountingProvider,
) -> None:
    store = AssetStore([counting_provider])
    cards = await retrieve_concurrently(store, "tiny", 100)
    assert all(card is cards[0] for card in cards)
    assert await store.retrieve_card("tiny") is cards[0]


async def test_setting_default_env_after_first_use_applies_to_later_calls() -> None:
    provider = InMemoryAssetMetadataProvider(
        [{"name": "tiny", "who": "plain"}, {"name": "tiny@aws", "who": "aws"}]
    )
    store = AssetStore([provider])
    assert (await store.retrieve_card("tiny")).field("who").value == "plain"
    store.default_env = "aws"
    assert store.active_envs == ("user", "aws")
    assert (await store.retrieve_card("tiny")).field("who").value == "aws"


async def test_assigning_a_new_provider_list_replaces_the_served_cards() -> None:
    store = AssetStore([InMemoryAssetMetadataProvider([{"name": "tiny", "v": 1}])])
    assert (await store.retrieve_card("tiny")).field("v").value == 1
    store.metadata_providers = [InMemoryAssetMetadataProvider([{"name": "tiny", "v": 2}])]
    assert (await store.retrieve_card("tiny")).field("v").value == 2
    store.metadata_providers.append(InMemoryAssetMetadataProvider([{"name": "tiny", "v": 3}]))
    assert (await store.retrieve_card("tiny")).field("v").value == 3


async def test_in_memory_set_cards_is_served_and_announced() -> None:
    provider = InMemoryAssetMetadataProvider([{"name": "tiny", "v": 1}])
    store = AssetStore([provider])
    assert (await store.retrieve_card("tiny")).field("v").value == 1
    received = []

    async def first_event() -> None:
        async for event in store.changes():
            received.append(event)
            return

    async with anyio.create_task_group() as tg:
        tg.start_soon(first_event)
        await anyio.wait_all_tasks_blocked()
        provider.set_cards([{"name": "tiny", "v": 2}, {"name": "other"}])
    assert (await store.retrieve_card("tiny")).field("v").value == 2
    assert (received[0].added, received[0].modified) == (
        frozenset({"other@"}),
        frozenset({"tiny@"}),
    )
