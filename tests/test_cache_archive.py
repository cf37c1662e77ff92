"""extract=True unpacks archives into the cache, and refuses members that leave the folder."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)
from servers import StaticServer

from asyncassets.cache import CheckpointCache
from asyncassets.errors import AssetDownloadError


@pytest.fixture
def cache_settings() -> dict[str, Any]:
    return {"part_size": 64 * 1024, "concurrency": 4}


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return path


def _found(root: Path, name: str) -> list[Path]:
    return list(root.rglob(name))


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


async def test_tar_gz_over_http_is_unpacked_into_a_folder(
    cache: CheckpointCache, http_static_server: StaticServer, tmp_path: Path
) -> None:
    base_url, folder = http_static_server
    weights = os.urandom(300_000)
    _tar(
        folder / "tok.tar.gz",
        [(_file("tok/vocab.txt"), b"a b c"), (_file("tok/weights.bin"), weights)],
    )
    path = await cache.fetch(f"{base_url}/tok.tar.gz", extract=True)
    assert path.is_dir()
    assert path.name == "tok"
    assert (path / "tok" / "vocab.txt").read_bytes() == b"a b c"
    assert (path / "tok" / "weights.bin").read_bytes() == weights


async def test_zip_is_unpacked(cache: CheckpointCache, tmp_path: Path) -> None:
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("data/train.jsonl", "{}\n")
    path = await cache.fetch(archive, extract=True)
    assert (path / "data" / "train.jsonl").read_text() == "{}\n"
    assert path.is_relative_to(cache.root)


async def test_extracted_and_plain_fetches_are_separate_entries(
    cache: CheckpointCache, tmp_path: Path, http_static_server: StaticServer
) -> None:
    base_url, folder = http_static_server
    _tar(folder / "both.tar", [(_file("x.txt"), b"x")])
    plain = await cache.fetch(f"{base_url}/both.tar")
    unpacked = await cache.fetch(f"{base_url}/both.tar", extract=True)
    assert plain.is_file()
    assert (unpacked / "x.txt").read_bytes() == b"x"


async def test_tar_with_parent_entry_is_refused(cache: CheckpointCache, tmp_path: Path) -> None:
    archive = _tar(tmp_path / "evil.tar", [(_file("../evil.txt"), b"pwned")])
    with pytest.raises(AssetDownloadError, match=r"evil\.tar.*leaving"):
        await cache.fetch(archive, extract=True)
    assert not (cache.root.parent / "evil.txt").exists()
    assert cache.entries() == []


async def test_tar_with_absolute_path_is_refused(cache: CheckpointCache, tmp_path: Path) -> None:
    target = tmp_path / "absolute-evil.txt"
    archive = _tar(tmp_path / "abs.tar", [(_file(str(target)), b"pwned")])
    with pytest.raises(AssetDownloadError, match="absolute"):
        await cache.fetch(archive, extract=True)
    assert not target.exists()


async def test_tar_with_symlink_out_of_the_folder_is_refused(
    cache: CheckpointCache, tmp_path: Path
) -> None:
    archive = _tar(
        tmp_path / "link.tar",
        [(_symlink("escape", "../../.."), None), (_file("escape/evil.txt"), b"pwned")],
    )
    with pytest.raises(AssetDownloadError, match="outside"):
        await cache.fetch(archive, extract=True)
    assert not _found(tmp_path, "evil.txt")


async def test_zip_with_parent_entry_is_refused(cache: CheckpointCache, tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../evil.txt", "pwned")
    with pytest.raises(AssetDownloadError, match="leaving"):
        await cache.fetch(archive, extract=True)
    assert not _found(tmp_path, "evil.txt")


async def test_extract_of_a_non_archive_is_an_error(cache: CheckpointCache, tmp_path: Path) -> None:
    plain = tmp_path / "model.pt"
    plain.write_bytes(b"weights")
    with pytest.raises(AssetDownloadError, match="extract=True"):
        await cache.fetch(plain, extract=True)
