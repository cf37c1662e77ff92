"""store.prefetch and the `prefetch` / `cache` commands, against real servers."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest
import s3fs
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)
from servers import StaticServer, s3_storage_options

from asyncassets import (
    AssetCardError,
    AssetStore,
    ChecksumMismatchError,
    FileAssetMetadataProvider,
    InMemoryAssetMetadataProvider,
)
from asyncassets.cache import CheckpointCache
from asyncassets.cli import main


def _publish(server: StaticServer, data: bytes) -> str:
    name = f"{uuid.uuid4().hex}.bin"
    (server.folder / name).write_bytes(data)
    return server.url(name)


async def test_prefetch_returns_a_local_copy_of_the_checkpoint(
    http_static_server: StaticServer, cache: CheckpointCache
) -> None:
    data = os.urandom(300_000)
    uri = _publish(http_static_server, data)
    store = AssetStore(
        [InMemoryAssetMetadataProvider([{"name": "m", "checkpoint": uri}])], cache=cache
    )
    path = await store.prefetch("m", progress=False)
    assert path.read_bytes() == data
    assert path.is_relative_to(cache.root)


async def test_prefetch_verifies_the_cards_checksum(
    http_static_server: StaticServer, cache: CheckpointCache
) -> None:
    data = os.urandom(10_000)
    uri = _publish(http_static_server, data)
    wrong = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    card = {"name": "m", "checkpoint": uri, "checksum": wrong}
    store = AssetStore([InMemoryAssetMetadataProvider([card])], cache=cache)
    with pytest.raises(ChecksumMismatchError) as info:
        await store.prefetch("m", progress=False)
    assert uri in str(info.value)
    assert cache.path_of(uri) is None


async def test_prefetch_rejects_a_checksum_without_algorithm(cache: CheckpointCache) -> None:
    card = {"name": "m", "checkpoint": "https://example.invalid/m.pt", "checksum": "abc"}
    store = AssetStore([InMemoryAssetMetadataProvider([card])], cache=cache)
    with pytest.raises(AssetCardError, match=r"'m'.*checksum"):
        await store.prefetch("m")


async def test_prefetch_of_a_relative_local_checkpoint_returns_it_in_place(
    tmp_path: Path, cache: CheckpointCache
) -> None:
    (tmp_path / "cards").mkdir()
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "m.pt").write_bytes(b"weights")
    (tmp_path / "cards" / "m.yaml").write_text("name: m\ncheckpoint: ../ckpt/m.pt\n")
    store = AssetStore([FileAssetMetadataProvider(tmp_path / "cards")], cache=cache)
    assert await store.prefetch("m") == tmp_path / "ckpt" / "m.pt"


async def test_prefetch_uses_the_card_stores_credentials_for_the_same_protocol(
    moto_server: str, cache: CheckpointCache
) -> None:
    options = s3_storage_options(moto_server)
    bucket = f"pf-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    fs.mkdir(bucket)
    fs.pipe(f"{bucket}/cards/m.yaml", b"name: m\ncheckpoint: ../ckpt/m.bin\n")
    fs.pipe(f"{bucket}/ckpt/m.bin", b"x" * 50_000)
    async with AssetStore(
        [FileAssetMetadataProvider(f"s3://{bucket}/cards", storage_options=options)], cache=cache
    ) as store:
        path = await store.prefetch("m", progress=False)
    assert path.read_bytes() == b"x" * 50_000


def test_cli_prefetch_then_cache_ls_and_rm(
    http_static_server: StaticServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = _publish(http_static_server, b"y" * 4096)
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "m.yaml").write_text(f"name: m\ncheckpoint: {uri}\n")
    cache_dir = str(tmp_path / "cache")
    assert main(["--store", str(cards), "--cache-dir", cache_dir, "prefetch", "m"]) == 0
    out = capsys.readouterr().out
    name, path = out.strip().split("\t")
    assert name == "m"
    assert Path(path).read_bytes() == b"y" * 4096

    assert main(["--cache-dir", cache_dir, "cache", "ls"]) == 0
    assert uri in capsys.readouterr().out

    assert main(["--cache-dir", cache_dir, "cache", "rm", uri]) == 0
    capsys.readouterr()
    assert main(["--cache-dir", cache_dir, "cache", "ls", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"


def test_cli_prefetch_of_an_unknown_card_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "m.yaml").write_text("name: model_a\ncheckpoint: /nowhere/m.pt\n")
    code = main(["--store", str(cards), "--cache-dir", str(tmp_path / "c"), "prefetch", "model_b"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "model_b" in err[0] and "did you mean model_a" in err[0]


def test_cli_cache_prune_to_zero_removes_every_entry(
    http_static_server: StaticServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = _publish(http_static_server, b"z" * 2048)
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "m.yaml").write_text(f"name: m\ncheckpoint: {uri}\n")
    cache_dir = str(tmp_path / "cache")
    assert main(["--store", str(cards), "--cache-dir", cache_dir, "prefetch", "m"]) == 0
    assert main(["--cache-dir", cache_dir, "cache", "prune", "--max-size", "0"]) == 0
    assert f"removed {uri}" in capsys.readouterr().out
    assert CheckpointCache(cache_dir).entries() == []


class RecordingCache:
    """A cache that records what prefetch asks of it (the store's side of the contract)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def fetch(self, uri: str, **kwargs: Any) -> Path:
        self.calls.append((uri, kwargs.get("storage_options")))
        return Path("/nowhere")


async def test_a_card_stores_options_go_only_to_its_own_bucket() -> None:
    fs = fsspec.filesystem("memory")
    store_root = f"/store-{uuid.uuid4().hex[:8]}"
    fs.pipe(
        f"{store_root}/cards/m.yaml",
        b"name: same\ncheckpoint: ../ckpt/m.pt\n---\n"
        b"name: other\ncheckpoint: memory://elsewhere/m.pt\n",
    )
    options = {"secret": "store-only"}
    cache = RecordingCache()
    store = AssetStore(
        [FileAssetMetadataProvider(f"memory:/{store_root}/cards", storage_options=options)],
        cache=cache,
    )
    await store.prefetch("same", progress=False)
    await store.prefetch("other", progress=False)
    assert cache.calls == [
        (f"memory://{store_root}/ckpt/m.pt", options),
        ("memory://elsewhere/m.pt", None),
    ]
