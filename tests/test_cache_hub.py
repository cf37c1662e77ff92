"""Hugging Face Hub checkpoints (``hg://``, ``hf://``) through the cache and the store,
against the Hub-protocol server of ``hub_server.py`` (which the real huggingface_hub client
accepts: ``test_hub_server.py``)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import both_backends as anyio_backend  # noqa: F401
from hub_server import HubServer, hub_server  # noqa: F401

from asyncassets import (
    AssetCardError,
    AssetDownloadError,
    AssetStore,
    ChecksumMismatchError,
    InMemoryAssetMetadataProvider,
)
from asyncassets.cache import CheckpointCache
from asyncassets.cache.uri import HubTarget

MiB = 2**20


def _weights(seed: int, size: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


REPO_FILES = {
    "config.json": b'{"model_type": "qwen3"}',
    "README.md": b"# a model\n",
    "model-00001-of-00002.safetensors": _weights(1, 3 * MiB + 17),
    "model-00002-of-00002.safetensors": _weights(2, 2 * MiB),
    "model.safetensors.index.json": b'{"weight_map": {}}',
    "tokenizer.json": b'{"version": "1.0"}',
    "tokenizer_config.json": b'{"eos": "<|im_end|>"}',
    "original/consolidated.pt": _weights(3, MiB),
}
WEIGHTS = {
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model.safetensors.index.json",
    "original/consolidated.pt",
}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _entry_record(cache: CheckpointCache) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in cache.root.glob("*/entry.json")]


# -- URIs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("hg://Qwen/Qwen3-1.7B", ("model", "Qwen/Qwen3-1.7B", None, "")),
        ("hf://org/repo", ("model", "org/repo", None, "")),
        ("hf://models/org/repo@v1.0/sub/dir", ("model", "org/repo", "v1.0", "sub/dir")),
        ("hf://datasets/org/data@main/train", ("dataset", "org/data", "main", "train")),
        ("hf://org/repo@refs%2Fpr%2F3/model.pt", ("model", "org/repo", "refs/pr/3", "model.pt")),
        ("hf://org/repo@refs/pr/3/model.pt", ("model", "org/repo", "refs/pr/3", "model.pt")),
    ],
)
def test_hub_uris_parse(uri: str, expected: tuple[str, str, str | None, str]) -> None:
    target = HubTarget.parse(uri)
    assert (target.repo_type, target.repo_id, target.revision, target.path) == expected


@pytest.mark.parametrize(
    "uri",
    ["hg://justone", "hf://spaces/org/app", "hf://org/../etc", "hf://org/repo@", "hf://o/r?x=1"],
)
async def test_bad_hub_uris_are_clear_errors(uri: str, cache: CheckpointCache) -> None:
    with pytest.raises(AssetDownloadError) as info:
        await cache.fetch(uri, progress=False)
    assert uri.split("?")[0] in str(info.value)


# -- fetching ------------------------------------------------------------------------------


async def test_a_repo_is_a_folder_of_its_files_pinned_to_a_commit(
    hub: HubServer, cache: CheckpointCache
) -> None:
    commit = hub.add_repo("Qwen/Qwen3-1.7B", REPO_FILES)
    path = await cache.fetch("hg://Qwen/Qwen3-1.7B", progress=False)
    assert path.is_dir() and path.name == "Qwen3-1.7B"
    assert _tree(path) == REPO_FILES
    (record,) = _entry_record(cache)
    assert record["revision"] == commit and record["uri"] == "hg://Qwen/Qwen3-1.7B"


async def test_include_chooses_files_and_each_choice_is_its_own_entry(
    hub: HubServer, cache: CheckpointCache
) -> None:
    hub.add_repo("org/model", REPO_FILES)
    weights = await cache.fetch(
        "hg://org/model", include=["*.safetensors*", "*.pt"], progress=False
    )
    assert set(_tree(weights)) == WEIGHTS
    tokenizer = await cache.fetch("hg://org/model", include=["tokenizer*.json"], progress=False)
    assert _tree(tokenizer) == {
        "tokenizer.json": REPO_FILES["tokenizer.json"],
        "tokenizer_config.json": REPO_FILES["tokenizer_config.json"],
    }
    assert weights != tokenizer and weights.exists()
    assert cache.path_of("hg://org/model", include=["tokenizer*.json"]) == tokenizer
    assert await cache.remove("hg://org/model")
    assert not weights.exists() and not tokenizer.exists()


async def test_no_matching_file_names_the_patterns_and_the_files(
    hub: HubServer, cache: CheckpointCache
) -> None:
    hub.add_repo("org/model", {"config.json": b"{}", "model.bin": b"x" * 10})
    with pytest.raises(AssetDownloadError) as info:
        await cache.fetch("hg://org/model", include=["*.safetensors*"], progress=False)
    message = str(info.value)
    assert "hg://org/model" in message and "*.safetensors*" in message and "model.bin" in message


async def test_revalidation_is_one_request_and_no_bytes(
    hub: HubServer, cache: CheckpointCache
) -> None:
    hub.add_repo("org/model", REPO_FILES)
    first = await cache.fetch("hg://org/model", progress=False)
    hub.reset()
    again = await cache.fetch("hg://org/model", progress=False)
    assert again == first
    assert hub.count() == 1 and hub.bytes_served() == 0
    assert "/api/models/org/model" in hub.requests[0].path


async def test_a_new_commit_that_leaves_the_chosen_files_alone_is_a_hit(
    hub: HubServer, cache: CheckpointCache
) -> None:
    hub.add_repo("org/model", REPO_FILES)
    first = await cache.fetch("hg://org/model", include=["*.safetensors*"], progress=False)
    hub.add_repo("org/model", {**REPO_FILES, "README.md": b"# edited\n"})
    hub.reset()
    assert await cache.fetch("hg://org/model", include=["*.safetensors*"], progress=False) == first
    assert hub.bytes_served() == 0


async def test_a_new_commit_that_changes_a_weight_is_a_new_version(
    hub: HubServer, cache: CheckpointCache
) -> None:
    hub.add_repo("org/model", REPO_FILES)
    first = await cache.fetch("hg://org/model", progress=False)
    changed = {**REPO_FILES, "model-00002-of-00002.safetensors": _weights(9, 2 * MiB)}
    commit = hub.add_repo("org/model", changed)
    second = await cache.fetch("hg://org/model", progress=False)
    assert second != first and _tree(second) == changed
    assert _tree(first) == REPO_FILES  # a path handed out stays valid
    assert {r["revision"] for r in _entry_record(cache)} == {commit}


@pytest.mark.parametrize("form", ["branch", "tag", "commit", "pr-quoted", "pr-slashes"])
async def test_revisions(hub: HubServer, cache: CheckpointCache, form: str) -> None:
    old = hub.add_repo("org/model", {"model.safetensors": b"old" * 100})
    hub.add_repo("org/model", {"model.safetensors": b"new" * 100})
    hub.tag("org/model", "v1", old)
    hub.add_repo("org/model", {"model.safetensors": b"pr" * 100}, revision="refs/pr/1")
    hub.add_repo("org/model", {"model.safetensors": b"dev" * 100}, revision="dev")
    uri, data = {
        "branch": ("hf://org/model@dev", b"dev" * 100),
        "tag": ("hf://org/model@v1", b"old" * 100),
        "commit": (f"hf://org/model@{old}", b"old" * 100),
        "pr-quoted": ("hf://org/model@refs%2Fpr%2F1", b"pr" * 100),
        "pr-slashes": ("hf://org/model@refs/pr/1", b"pr" * 100),
    }[form]
    path = await cache.fetch(uri, progress=False)
    assert (path / "model.safetensors").read_bytes() == data


async def test_one_file_and_one_folder_of_a_repo(hub: HubServer, cache: CheckpointCache) -> None:
    hub.add_repo("org/model", REPO_FILES)
    file = await cache.fetch("hf://org/model/original/consolidated.pt", progress=False)
    assert file.is_file() and file.read_bytes() == REPO_FILES["original/consolidated.pt"]
    folder = await cache.fetch("hf://models/org/model/original", progress=False)
    assert _tree(folder) == {"consolidated.pt": REPO_FILES["original/consolidated.pt"]}
    with pytest.raises(AssetDownloadError, match="no file or folder 'missing'"):
        await cache.fetch("hf://org/model/missing", progress=False)


async def test_a_dataset_repo(hub: HubServer, cache: CheckpointCache) -> None:
    files = {"train/part-0.parquet": b"p0" * 5000, "README.md": b"data"}
    hub.add_repo("org/data", files, repo_type="dataset")
    path = await cache.fetch("hf://datasets/org/data", progress=False)
    assert _tree(path) == files
    with pytest.raises(AssetDownloadError, match="not found"):
        await cache.fetch("hf://org/data", progress=False)  # a model repo of that name


# -- trust -----------------------------------------------------------------------------------


async def test_lfs_files_come_from_the_cdn_without_the_token_and_no_signed_url_is_kept(
    hub: HubServer, cache: CheckpointCache, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    hub.add_repo("org/private", REPO_FILES, private=True)
    monkeypatch.setenv("HF_TOKEN", hub.token)
    caplog.set_level(logging.DEBUG)
    path = await cache.fetch("hg://org/private", progress=False)
    assert _tree(path) == REPO_FILES
    cdn = [r for r in hub.requests if r.host == "cdn"]
    assert cdn, "LFS files are redirected to the CDN"
    assert all("authorization" not in {k.lower() for k in r.headers} for r in cdn)
    hub_side = [r for r in hub.requests if r.host == "hub"]
    assert all(r.headers.get("Authorization") == f"Bearer {hub.token}" for r in hub_side)
    written = b"".join(p.read_bytes() for p in cache.root.rglob("*.json") if p.is_file())
    for text in (written.decode(), caplog.text):
        assert "Signature" not in text and hub.token not in text


async def test_bytes_that_do_not_match_the_published_sha256_are_discarded_alone(
    hub: HubServer, cache: CheckpointCache
) -> None:
    hub.add_repo("org/model", REPO_FILES)
    name = "model-00001-of-00002.safetensors"
    good = REPO_FILES[name]
    sha = hashlib.sha256(good).hexdigest()
    hub._lfs[sha] = good[:-1] + bytes([good[-1] ^ 1])  # the CDN serves one flipped byte
    with pytest.raises(ChecksumMismatchError) as info:
        await cache.fetch("hg://org/model", progress=False)
    assert name in str(info.value) and sha in str(info.value)
    assert cache.path_of("hg://org/model") is None  # nothing published
    hub._lfs[sha] = good
    hub.reset()
    path = await cache.fetch("hg://org/model", progress=False)
    assert _tree(path) == REPO_FILES
    # Only the discarded file came again: the files that were good were kept.
    assert hub.bytes_served() == len(good)


async def test_a_private_repo_without_a_token_says_to_set_one(
    hub: HubServer, cache: CheckpointCache
) -> None:
    hub.add_repo("org/private", REPO_FILES, private=True)
    with pytest.raises(AssetDownloadError) as info:
        await cache.fetch("hg://org/private", progress=False)
    message = str(info.value)
    assert "org/private" in message and "token" in message and "HF_TOKEN" in message


async def test_a_gated_repo_says_to_request_access(
    hub: HubServer, cache: CheckpointCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo("meta/gated", REPO_FILES, gated=True)
    monkeypatch.setenv("HF_TOKEN", hub.token)
    with pytest.raises(AssetDownloadError) as info:
        await cache.fetch("hg://meta/gated", include=["*.safetensors*"], progress=False)
    message = str(info.value)
    assert "meta/gated" in message and "gated" in message and "request access" in message
    assert f"{hub.url}/meta/gated" in message
    hub.grant("meta/gated")
    path = await cache.fetch("hg://meta/gated", include=["*.safetensors*"], progress=False)
    assert len(_tree(path)) == 3  # two shards and the index


async def test_a_token_from_storage_options(hub: HubServer, cache: CheckpointCache) -> None:
    hub.add_repo("org/private", {"model.safetensors": b"w" * 4096}, private=True)
    path = await cache.fetch(
        "hg://org/private", storage_options={"token": hub.token}, progress=False
    )
    assert (path / "model.safetensors").read_bytes() == b"w" * 4096


async def test_offline_serves_the_cached_commit(
    hub: HubServer, cache: CheckpointCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo("org/model", REPO_FILES)
    path = await cache.fetch("hg://org/model", progress=False)
    hub.reset()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert await cache.fetch("hg://org/model", progress=False) == path
    assert hub.count() == 0
    with pytest.raises(AssetDownloadError, match="HF_HUB_OFFLINE"):
        await cache.fetch("hg://org/other", progress=False)
    assert hub.count() == 0


# -- the local Hugging Face cache -----------------------------------------------------------


def _populate_hf_cache(hub: HubServer, repo_id: str, hf_cache: Path) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, endpoint=hub.url, cache_dir=hf_cache, token=False))


async def test_files_in_the_hugging_face_cache_are_linked_not_downloaded(
    hub: HubServer, cache: CheckpointCache, tmp_path: Path
) -> None:
    hub.add_repo("org/model", REPO_FILES)
    snapshot = _populate_hf_cache(hub, "org/model", Path(os.environ["HF_HUB_CACHE"]))
    hub.reset()
    path = await cache.fetch("hg://org/model", progress=False)
    assert _tree(path) == REPO_FILES
    assert hub.bytes_served() == 0 and hub.count() == 1  # the repo_info, nothing else
    weights = path / "model-00001-of-00002.safetensors"
    blob = (snapshot / "model-00001-of-00002.safetensors").resolve()
    assert weights.stat().st_ino == blob.stat().st_ino  # a hard link, same file system


async def test_a_damaged_blob_in_the_hugging_face_cache_is_downloaded_past(
    hub: HubServer, cache: CheckpointCache
) -> None:
    hub.add_repo("org/model", REPO_FILES)
    snapshot = _populate_hf_cache(hub, "org/model", Path(os.environ["HF_HUB_CACHE"]))
    blob = (snapshot / "model-00002-of-00002.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    hub.reset()
    path = await cache.fetch("hg://org/model", progress=False)
    assert _tree(path) == REPO_FILES
    assert hub.bytes_served() == len(REPO_FILES["model-00002-of-00002.safetensors"])


# -- the store and the CLI ------------------------------------------------------------------


def _store(cards: list[dict[str, Any]], cache: CheckpointCache) -> AssetStore:
    return AssetStore([InMemoryAssetMetadataProvider(cards)], cache=cache, env_resolvers=[])


async def test_store_prefetch_takes_fairseq2_files_per_field(
    hub: HubServer, cache: CheckpointCache
) -> None:
    hub.add_repo("qwen/qwen3-1.7b", REPO_FILES)
    hub.add_repo("org/data", {"a.jsonl": b"{}\n", "b/c.jsonl": b"{}\n"}, repo_type="dataset")
    store = _store(
        [
            {
                "name": "qwen3_1.7b",
                "model_family": "qwen",
                "checkpoint": "hg://qwen/qwen3-1.7b",
                "tokenizer": "hg://qwen/qwen3-1.7b",
            },
            {"name": "data", "dataset_family": "jsonl", "data": "hf://datasets/org/data"},
        ],
        cache,
    )
    checkpoint = await store.prefetch("qwen3_1.7b", progress=False)
    assert set(_tree(checkpoint)) == WEIGHTS
    tokenizer = await store.prefetch("qwen3_1.7b", field="tokenizer", progress=False)
    assert set(_tree(tokenizer)) == {"tokenizer.json", "tokenizer_config.json"}
    data = await store.prefetch("data", field="data", progress=False)
    assert set(_tree(data)) == {"a.jsonl", "b/c.jsonl"}
    chosen = await store.prefetch("qwen3_1.7b", include=["config.json"], progress=False)
    assert set(_tree(chosen)) == {"config.json"}


def _corpus_hub_cards(corpus: Path) -> dict[str, str]:
    """Every card of the corpus whose checkpoint (own or inherited) is a Hub repo."""
    import anyio

    from asyncassets import FileAssetMetadataProvider

    async def collect() -> dict[str, str]:
        store = AssetStore([FileAssetMetadataProvider(corpus)], env_resolvers=[])
        found = {}
        for name in sorted({n.partition("@")[0] for n in await store.asset_names()}):
            try:
                card = await store.retrieve_card(name)
            except AssetCardError:
                continue
            if card.has_field("checkpoint"):
                value = card.field("checkpoint").raw_value
                if isinstance(value, str) and value.startswith(("hg://", "hf://")):
                    found[name] = value
        return found

    return anyio.run(collect)


def test_cli_prefetch_fetches_every_hub_card_of_the_fairseq2_corpus(
    hub: HubServer, corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from asyncassets.cli import main

    corpus = corpus_dir / "fairseq2-cards" / "main-027bdeb"
    cards = _corpus_hub_cards(corpus)
    assert len(set(cards.values())) >= 30  # the issue counted 34 hg:// checkpoints
    for uri in sorted(set(cards.values())):
        repo = uri.split("://", 1)[1]
        hub.add_repo(
            repo,
            {
                "config.json": b"{}",
                "model.safetensors": repo.encode() * 200,
                "tokenizer.json": b'{"repo": "%s"}' % repo.encode(),
                "tokenizer_config.json": b"{}",
                "README.md": b"# model",
            },
        )
    names = sorted(cards)
    base = ["--store", str(corpus), "--cache-dir", str(tmp_path / "c")]
    assert main([*base, "prefetch", *names]) == 0
    out = dict(line.split("\t") for line in capsys.readouterr().out.splitlines())
    assert sorted(out) == names
    for name, path in out.items():
        repo = cards[name].split("://", 1)[1]
        assert (Path(path) / "model.safetensors").read_bytes() == repo.encode() * 200
        assert sorted(p.name for p in Path(path).iterdir()) == ["model.safetensors"]
    assert main([*base, "prefetch", "--field", "tokenizer", *names]) == 0
    out = dict(line.split("\t") for line in capsys.readouterr().out.splitlines())
    for path in out.values():
        assert sorted(p.name for p in Path(path).iterdir()) == [
            "tokenizer.json",
            "tokenizer_config.json",
        ]


async def test_cache_ls_tells_the_file_choices_and_commits_apart(
    hub: HubServer, cache: CheckpointCache, capsys: pytest.CaptureFixture[str]
) -> None:
    from asyncassets.cli import main

    commit = hub.add_repo("org/model", REPO_FILES)
    await cache.fetch("hg://org/model", include=["*.safetensors*"], progress=False)
    await cache.fetch("hg://org/model", include=["tokenizer*.json"], progress=False)
    capsys.readouterr()
    assert (
        await anyio.to_thread.run_sync(main, ["--cache-dir", str(cache.root), "cache", "ls"]) == 0
    )
    lines = sorted(capsys.readouterr().out.splitlines())
    assert len(lines) == 2
    assert all(f"hg://org/model @{commit[:12]}" in line for line in lines)
    assert "[*.safetensors*]" in lines[0] + lines[1] and "[tokenizer*.json]" in lines[0] + lines[1]


async def test_an_over_long_cdn_answer_is_never_published(hub: HubServer, tmp_path: Path) -> None:
    # A CDN that answers each ranged GET with the right Content-Range and a longer body:
    # the extra bytes are never written, so no file holds a tail the Hub never hashed.
    from asyncassets.cache import RetryPolicy

    retry = RetryPolicy(attempts=3, initial=0.01, maximum=0.05)
    cache = CheckpointCache(tmp_path / "parted", part_size=64 * 1024, retry=retry)
    hub.add_repo("org/model", REPO_FILES)
    hub.cdn_overlong = 10_000
    with pytest.raises(AssetDownloadError, match="more bytes than asked for"):
        await cache.fetch("hg://org/model", progress=False)
    assert cache.path_of("hg://org/model") is None
    hub.cdn_overlong = 3  # a few long answers: retried, and the files come out exact
    path = await cache.fetch("hg://org/model", progress=False)
    assert _tree(path) == REPO_FILES
    assert hub.cdn_overlong == 0
