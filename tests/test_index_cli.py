"""The card stores' persistent indexes on the command line (issue 20): ``list`` and ``show``
against a remote store use the index, ``cache ls`` shows index files with their source and
size, ``cache prune`` reclaims those no store used for the grace period. Real moto."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import put_s3_objects, unique_bucket

from asyncassets.cli import main

CARDS = {
    "cards/a.yaml": "name: a\nmodel_family: toy\nwhen: 2024-01-02\n",
    "cards/b.yaml": "name: b\nbase: a\nlr: 1e-4\n",
}


def _store_args(moto_server: str, bucket: str, cache_dir: Path) -> list[str]:
    return [
        "--store",
        f"s3://{bucket}/cards",
        "--storage-option",
        "key=testing",
        "--storage-option",
        "secret=testing",
        "--storage-option",
        f"client_kwargs.endpoint_url={moto_server}",
        "--cache-dir",
        str(cache_dir),
    ]


def _index_files(cache_dir: Path) -> list[Path]:
    folder = cache_dir / "index"
    return sorted(folder.glob("*.index.jsonl")) if folder.is_dir() else []


@pytest.fixture
def bucket(moto_server: str) -> str:
    name = unique_bucket()
    put_s3_objects(moto_server, name, CARDS)
    return name


def test_list_and_show_write_and_use_the_index_under_the_cache_dir(
    moto_server: str, bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_dir = tmp_path / "cache"
    args = _store_args(moto_server, bucket, cache_dir)
    assert main([*args, "list"]) == 0
    first = capsys.readouterr().out
    (index,) = _index_files(cache_dir)
    written = index.read_bytes()
    assert f"s3://{bucket}/cards/a.yaml".encode() in written

    # A second command is warm: the same cards, the index not rewritten (nothing changed).
    assert main([*args, "list"]) == 0
    assert capsys.readouterr().out == first
    assert index.read_bytes() == written
    assert main([*args, "show", "b", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["fields"]["lr"] == 0.0001  # a float, as YAML 1.2 reads 1e-4
    assert shown["fields"]["model_family"] == "toy"  # from base a, out of the index


def test_cache_ls_shows_index_files_with_their_source_and_size(
    moto_server: str, bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_dir = tmp_path / "cache"
    assert main([*_store_args(moto_server, bucket, cache_dir), "list"]) == 0
    capsys.readouterr()
    (index,) = _index_files(cache_dir)

    assert main(["--cache-dir", str(cache_dir), "cache", "ls"]) == 0
    captured = capsys.readouterr()
    assert f"index of s3://{bucket}/cards" in captured.out
    assert index.name in captured.out
    assert "1 card store indexes" in captured.err

    assert main(["--cache-dir", str(cache_dir), "cache", "ls", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row == {
        "kind": "index",
        "source": f"s3://{bucket}/cards",
        "size": index.stat().st_size,
        "last_used": pytest.approx(index.stat().st_mtime),
        "path": str(index),
    }
    assert "testing" not in json.dumps(row)  # the credentials never show


def test_cache_prune_reclaims_indexes_unused_for_the_grace_period_only(
    moto_server: str, bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_dir = tmp_path / "cache"
    args = _store_args(moto_server, bucket, cache_dir)
    assert main([*args, "list"]) == 0
    (index,) = _index_files(cache_dir)
    leftover = index.with_name(f".{index.name}.0123abcd.tmp")  # a writer killed mid-write
    leftover.write_bytes(b"{")

    capsys.readouterr()
    assert main(["--cache-dir", str(cache_dir), "cache", "prune", "--grace", "3600"]) == 0
    assert index.exists() and leftover.exists()  # used a moment ago: kept
    assert "index" not in capsys.readouterr().out

    hour_ago = time.time() - 7200
    os.utime(index, (hour_ago, hour_ago))
    os.utime(leftover, (hour_ago, hour_ago))
    assert main(["--cache-dir", str(cache_dir), "cache", "prune", "--grace", "3600"]) == 0
    captured = capsys.readouterr()
    assert not index.exists() and not leftover.exists()
    assert f"removed the index of s3://{bucket}/cards" in captured.out
    assert "1 card store indexes unused for 3600 s removed" in captured.err

    # A load uses the index again: it is written anew, and a use keeps it young.
    assert main([*args, "list"]) == 0
    (index,) = _index_files(cache_dir)
    os.utime(index, (hour_ago, hour_ago))
    assert main([*args, "list"]) == 0  # warm: reads it, which counts as a use
    assert index.stat().st_mtime > hour_ago + 3600
    assert main(["--cache-dir", str(cache_dir), "cache", "prune", "--grace", "3600"]) == 0
    assert index.exists()
