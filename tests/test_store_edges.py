"""Edges of the store and its CLI that a review of the first version found broken, kept as
specifications: cards changed while ``find_cards`` iterates, list values, unknown URL
schemes, dot folders and hidden paths, which card a prefetch takes its source and checksum
from, ``cache prune`` without a size, and ``--storage-option`` for a default store on S3."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import pytest

from asyncassets import (
    AssetMetadataError,
    AssetStore,
    FileAssetMetadataProvider,
    InMemoryAssetMetadataProvider,
)
from asyncassets.cache import CheckpointCache
from asyncassets.cli import main


async def test_refresh_during_find_cards_does_not_leave_stale_cards(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("name: a\nfam: x\nv: 1\n---\nname: b\nfam: x\nv: 1\n")
    provider = FileAssetMetadataProvider(tmp_path)
    store = AssetStore([provider])
    async for card in store.find_cards("fam", "x"):
        if card.name == "a":
            path.write_text("name: a\nfam: x\nv: 2\n---\nname: b\nfam: x\nv: 2\n")
            await provider.refresh()
    assert (await store.retrieve_card("b")).field("v").value == 2
    assert (await store.retrieve_card("a")).field("v").value == 2


async def test_find_cards_matches_list_values() -> None:
    provider = InMemoryAssetMetadataProvider(
        [{"name": "a", "tags": ["x", "y"]}, {"name": "b", "tags": ["x"]}]
    )
    found = [card.name async for card in AssetStore([provider]).find_cards("tags", ["x", "y"])]
    assert found == ["a"]


def test_unknown_url_scheme_is_an_asset_error_naming_the_url() -> None:
    with pytest.raises(AssetMetadataError, match=r"foo://bar.*unknown protocol"):
        FileAssetMetadataProvider("foo://bar/cards")


def test_cli_unknown_url_scheme_prints_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", "foo://bar", "list"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "foo://bar" in err[0]


def test_cli_cache_prune_without_a_size_reclaims_and_evicts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--cache-dir", str(tmp_path), "cache", "prune"]) == 0
    assert capsys.readouterr().err.strip() == "0 entries removed"


def test_cli_cache_prune_refuses_a_grace_that_is_not_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--cache-dir", str(tmp_path), "cache", "prune", "--grace", "soon"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--grace" in err[0]


async def test_remote_store_under_a_dot_folder_loads(tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    root = f"/review-{tmp_path.name}/.assets/cards"
    fs.pipe(f"{root}/a.yaml", b"name: a\n")
    fs.pipe(f"{root}/.git/b.yaml", b"name: hidden\n")
    try:
        store = AssetStore([FileAssetMetadataProvider(f"memory://{root}")])
        assert await store.asset_names() == frozenset({"a@"})
    finally:
        fs.rm(f"/review-{tmp_path.name}", recursive=True)


async def test_refresh_of_paths_outside_or_hidden_adds_nothing(tmp_path: Path) -> None:
    root = tmp_path / "cards"
    (root / ".git").mkdir(parents=True)
    (root / "a.yaml").write_text("name: a\n")
    (root / ".git" / "h.yaml").write_text("name: hidden\n")
    (tmp_path / "outside.yaml").write_text("name: outside\n")
    provider = FileAssetMetadataProvider(root)
    store = AssetStore([provider])
    await store.load()
    await provider.refresh([str(root / ".git" / "h.yaml"), str(tmp_path / "outside.yaml")])
    assert await store.asset_names() == frozenset({"a@"})


async def test_prefetch_takes_source_and_checksum_from_the_card_that_sets_the_field(
    tmp_path: Path,
) -> None:
    (tmp_path / "base" / "ckpt").mkdir(parents=True)
    (tmp_path / "user").mkdir()
    (tmp_path / "base" / "ckpt" / "small.pt").write_bytes(b"small")
    (tmp_path / "base" / "cards.yaml").write_text(
        "name: small\ncheckpoint: ckpt/small.pt\n"
        "checksum: sha256:0000000000000000000000000000000000000000000000000000000000000000\n"
    )
    (tmp_path / "user" / "derived.yaml").write_text(
        f"name: derived\nbase: small\ncheckpoint: {tmp_path}/base/ckpt/small.pt\n"
    )
    store = AssetStore(
        [FileAssetMetadataProvider(tmp_path / "base")],
        user_providers=[FileAssetMetadataProvider(tmp_path / "user")],
        cache=CheckpointCache(tmp_path / "cache"),
    )
    # derived sets its own checkpoint: small's checksum (of another file) does not apply.
    assert await store.prefetch("derived") == tmp_path / "base" / "ckpt" / "small.pt"


async def test_prefetch_of_a_local_file_with_hash_and_percent_in_its_name(
    tmp_path: Path,
) -> None:
    (tmp_path / "cards").mkdir()
    (tmp_path / "ck#1%41.pt").write_bytes(b"right")
    (tmp_path / "ck").write_bytes(b"wrong")
    (tmp_path / "cards" / "m.yaml").write_text('name: m\ncheckpoint: "../ck#1%41.pt"\n')
    store = AssetStore(
        [FileAssetMetadataProvider(tmp_path / "cards")], cache=CheckpointCache(tmp_path / "c")
    )
    path = await store.prefetch("m")
    assert path.read_bytes() == b"right"


def test_cli_storage_option_reaches_a_default_store_named_by_a_url(
    moto_server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import s3fs

    bucket = f"review-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(
        key="testing",
        secret="testing",
        client_kwargs={"endpoint_url": moto_server},
        skip_instance_cache=True,
    )
    fs.mkdir(bucket)
    fs.pipe(f"{bucket}/cards/m.yaml", b"name: remote_card\nmodel_family: toy\n")
    monkeypatch.setenv("ASYNCASSETS_ASSET_DIR", f"s3://{bucket}/cards")
    monkeypatch.setenv("ASYNCASSETS_USER_ASSET_DIR", str(Path("/nonexistent-user-cards")))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    code = main(
        [
            "--storage-option",
            f"client_kwargs.endpoint_url={moto_server}",
            "show",
            "remote_card",
            "--json",
        ]
    )
    assert code == 0
    assert '"model_family": "toy"' in capsys.readouterr().out
