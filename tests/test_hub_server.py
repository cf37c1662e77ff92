"""The real huggingface_hub client against ``hub_server.HubServer``: the server is faithful
enough when huggingface_hub's own code paths (``snapshot_download``, ``hf_hub_download``,
``HfApi``, ``HfFileSystem``) work against it and see what they see on the real Hub.

Everything is real: two aiohttp servers on 127.0.0.1, the client's HTTP stack, git for the
object ids. A guard fails any test that resolves a host other than 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hub_server import (
    HubRequest,
    HubServer,
    RequestHeaders,
    git_blob_sha,
    hub_server,  # noqa: F401
    lfs_pointer,
    quiet_huggingface_hub,
)
from huggingface_hub import (
    HfApi,
    HfFileSystem,
    ModelInfo,
    constants,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

KiB = 1024


def _weights(seed: int, size: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


MODEL_FILES = {
    "config.json": b'{"model_type": "test"}',  # regular
    "model.safetensors": _weights(1, 3000),  # LFS: name and size
    "tokenizer/vocab.txt": b"a\nb\nc\n",  # regular, in a folder
    "weights/part-1.bin": _weights(2, 200),  # LFS by name only
    "data/big/table.csv": _weights(3, 300 * KiB + 3),  # LFS by size, several chunks
}
LFS = {"model.safetensors", "weights/part-1.bin", "data/big/table.csv"}
FOLDERS = {"tokenizer", "weights", "data", "data/big"}


@pytest.fixture(autouse=True)
def only_localhost(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail the test if anything resolved a host other than 127.0.0.1 (huggingface_hub
    swallows some network errors, so the attempts are collected and checked at the end)."""
    attempts: list[str] = []
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in ("127.0.0.1", "localhost"):
            attempts.append(str(name))
            raise OSError(f"test guard: no network beyond 127.0.0.1 ({name!r})")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    yield attempts
    assert attempts == [], f"tried to reach {attempts}"


@pytest.fixture
def hub(hub_server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> HubServer:  # noqa: F811
    """The server, with no token to find anywhere but where a test passes one."""
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    return hub_server


def _tree(root: str | Path) -> dict[str, bytes]:
    root = Path(root)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _cdn(hub: HubServer) -> list[HubRequest]:
    return [r for r in hub.requests if r.host == "cdn"]


def _no_token_reached_the_cdn(hub: HubServer) -> None:
    assert _cdn(hub), "expected CDN requests"
    assert all("authorization" not in {k.lower() for k in r.headers} for r in _cdn(hub))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _http(method: str, url: str, **headers: str) -> tuple[int, Message, bytes]:
    """One request, redirects not followed, no proxy."""
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def _git(cwd: Path, *args: str, data: bytes | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, input=data, capture_output=True, check=True
    ).stdout.decode()


def _git_ids(tmp_path: Path, files: dict[str, bytes], lfs: set[str]) -> dict[str, str]:
    """What git says: the blob id of every file (of its pointer for LFS) and the tree id of
    every folder, from a real index."""
    work = tmp_path / "git"
    work.mkdir()
    _git(work, "init", "-q")
    for path, data in files.items():
        target = work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        stored = lfs_pointer(hashlib.sha256(data).hexdigest(), len(data)) if path in lfs else data
        target.write_bytes(stored)
    _git(work, "add", "-A")
    tree = _git(work, "write-tree").strip()
    ids = {"": tree}
    for path in [*files, *FOLDERS]:
        ids[path] = _git(work, "rev-parse", f"{tree}:{path}").strip()
    return ids


# -- snapshot_download ---------------------------------------------------------------------


def test_snapshot_download_is_a_folder_named_by_the_commit(hub: HubServer, tmp_path: Path) -> None:
    commit = hub.add_repo("org/model", MODEL_FILES)
    path = Path(snapshot_download("org/model", endpoint=hub.url, cache_dir=tmp_path, token=False))
    assert path.name == commit and path.parent.name == "snapshots"
    assert _tree(path) == MODEL_FILES
    assert (path.parent.parent / "refs" / "main").read_text() == commit
    # repo_info for the commit, the tree at that commit, then a HEAD per file
    assert hub.requests[0].path == "/api/models/org/model/revision/main"
    assert hub.requests[1].path.startswith(f"/api/models/org/model/tree/{commit}?recursive=true")
    assert hub.count(host="hub", method="HEAD") == len(MODEL_FILES)
    # regular files come from the Hub, LFS files straight from the CDN: the client does not
    # follow the HEAD's redirect to another origin, and GETs the signed URL it carried
    assert hub.count(host="hub", method="GET", path_contains="/resolve/") == 2
    assert hub.count(host="cdn", method="GET") == len(LFS)
    assert hub.count(host="cdn", method="HEAD") == 0
    assert hub.bytes_served(host="cdn") == sum(len(MODEL_FILES[p]) for p in LFS)
    assert hub.bytes_served(host="hub") == sum(
        len(d) for p, d in MODEL_FILES.items() if p not in LFS
    )
    assert hub.bytes_served() == sum(len(d) for d in MODEL_FILES.values())
    assert all(r.status in (200, 302) for r in hub.requests)


def test_snapshot_download_allow_patterns(hub: HubServer, tmp_path: Path) -> None:
    hub.add_repo("org/model", MODEL_FILES)
    path = snapshot_download(
        "org/model",
        endpoint=hub.url,
        cache_dir=tmp_path,
        token=False,
        allow_patterns=["tokenizer/*", "*.json"],
    )
    assert _tree(path) == {k: MODEL_FILES[k] for k in ("config.json", "tokenizer/vocab.txt")}
    assert hub.count(host="cdn") == 0
    assert hub.count(method="HEAD") == 2


def test_a_second_snapshot_download_is_one_request_and_a_pinned_one_none(
    hub: HubServer, tmp_path: Path
) -> None:
    commit = hub.add_repo("org/model", MODEL_FILES)
    first = snapshot_download("org/model", endpoint=hub.url, cache_dir=tmp_path, token=False)
    hub.reset()
    again = snapshot_download("org/model", endpoint=hub.url, cache_dir=tmp_path, token=False)
    assert again == first
    assert [r.path for r in hub.requests] == ["/api/models/org/model/revision/main"]
    assert hub.bytes_served() == 0
    hub.reset()
    kwargs: dict[str, Any] = {"endpoint": hub.url, "cache_dir": tmp_path, "token": False}
    assert snapshot_download("org/model", revision=commit, **kwargs) == first
    assert snapshot_download("org/model", local_files_only=True, **kwargs) == first
    assert hub.count() == 0


def test_offline_mode_serves_the_cache_and_sends_nothing(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo("org/model", MODEL_FILES)
    hub.add_repo("org/other", {"a.txt": b"a"})
    kwargs: dict[str, Any] = {"endpoint": hub.url, "cache_dir": tmp_path, "token": False}
    first = snapshot_download("org/model", **kwargs)
    hub.reset()
    # huggingface_hub reads $HF_HUB_OFFLINE once, at import: setting the variable later
    # changes nothing, the constant has to be patched
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not constants.is_offline_mode()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert snapshot_download("org/model", **kwargs) == first
    assert (
        Path(hf_hub_download("org/model", "config.json", **kwargs)).read_bytes()
        == (MODEL_FILES["config.json"])
    )
    with pytest.raises(LocalEntryNotFoundError):
        snapshot_download("org/other", **kwargs)
    assert hub.count() == 0


# -- hf_hub_download -----------------------------------------------------------------------


def test_hf_hub_download_lfs_and_regular_from_a_private_repo(
    hub: HubServer, tmp_path: Path
) -> None:
    commit = hub.add_repo("org/private", MODEL_FILES, private=True)
    kwargs: dict[str, Any] = {"endpoint": hub.url, "cache_dir": tmp_path, "token": hub.token}
    lfs = Path(hf_hub_download("org/private", "data/big/table.csv", **kwargs))
    regular = Path(hf_hub_download("org/private", "tokenizer/vocab.txt", **kwargs))
    assert lfs.read_bytes() == MODEL_FILES["data/big/table.csv"]
    assert regular.read_bytes() == MODEL_FILES["tokenizer/vocab.txt"]
    assert lfs.parents[2].name == commit == regular.parents[1].name
    # the cache names blobs by the ETag: sha256 for LFS (X-Linked-Etag), git blob id otherwise
    sha256 = hashlib.sha256(MODEL_FILES["data/big/table.csv"]).hexdigest()
    assert lfs.resolve().name == sha256
    assert regular.resolve().name == git_blob_sha(MODEL_FILES["tokenizer/vocab.txt"])
    _no_token_reached_the_cdn(hub)
    hub_side = [r for r in hub.requests if r.host == "hub"]
    assert all(r.headers.get("Authorization") == f"Bearer {hub.token}" for r in hub_side)
    # the LFS file: HEAD on the Hub (302), then GET on the CDN only
    assert hub.count(host="hub", path_contains="table.csv") == 1
    (head,) = [r for r in hub.requests if "table.csv" in r.path]
    assert head.method == "HEAD" and head.status == 302
    (get,) = _cdn(hub)
    assert get.method == "GET" and get.status == 200 and sha256 in get.path


def test_a_dataset_repo(hub: HubServer, tmp_path: Path) -> None:
    files = {
        "train/part-0.parquet": _weights(4, 5000),
        "README.md": b"# data\n",
        "notes/a b é%.txt": b"quoted",  # every segment goes out percent-encoded
    }
    commit = hub.add_repo("org/data", files, repo_type="dataset")
    kwargs: dict[str, Any] = {"endpoint": hub.url, "cache_dir": tmp_path, "token": False}
    path = Path(snapshot_download("org/data", repo_type="dataset", **kwargs))
    assert _tree(path) == files and path.name == commit
    assert "datasets--org--data" in str(path)
    readme = hf_hub_download("org/data", "README.md", repo_type="dataset", **kwargs)
    assert Path(readme).read_bytes() == b"# data\n"
    assert hub.count(path_contains="/notes/a%20b%20%C3%A9%25.txt") == 2  # HEAD and GET
    local = tmp_path / "local"
    snapshot_download("org/data", repo_type="dataset", local_dir=local, **kwargs)
    assert {k: v for k, v in _tree(local).items() if not k.startswith(".cache/")} == files
    assert hub.count(path_contains="/api/datasets/org/data/") >= 2
    assert hub.count(path_contains="/datasets/org/data/resolve/") >= 2
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("org/data", "README.md", **kwargs)  # no model of that name


@pytest.mark.parametrize("form", ["branch", "tag", "commit", "pr"])
def test_revisions(hub: HubServer, tmp_path: Path, form: str) -> None:
    old = hub.add_repo("org/model", {"model.safetensors": b"old" * 500, "a.txt": b"old"})
    hub.add_repo("org/model", {"model.safetensors": b"new" * 500, "a.txt": b"new"})
    hub.tag("org/model", "v1", old)
    pr = hub.add_repo(
        "org/model", {"model.safetensors": b"pr" * 500, "a.txt": b"pr"}, revision="refs/pr/1"
    )
    dev = hub.add_repo(
        "org/model", {"model.safetensors": b"dev" * 500, "a.txt": b"dev"}, revision="dev"
    )
    revision, word, commit = {
        "branch": ("dev", b"dev", dev),
        "tag": ("v1", b"old", old),
        "commit": (old, b"old", old),
        "pr": ("refs/pr/1", b"pr", pr),
    }[form]
    kwargs: dict[str, Any] = {"endpoint": hub.url, "token": False, "revision": revision}
    weights = hf_hub_download("org/model", "model.safetensors", cache_dir=tmp_path / "a", **kwargs)
    small = hf_hub_download("org/model", "a.txt", cache_dir=tmp_path / "a", **kwargs)
    assert Path(weights).read_bytes() == word * 500 and Path(small).read_bytes() == word
    snapshot = Path(snapshot_download("org/model", cache_dir=tmp_path / "b", **kwargs))
    assert snapshot.name == commit and _tree(snapshot) == {
        "model.safetensors": word * 500,
        "a.txt": word,
    }
    if form == "pr":  # the client quotes the ref into one path segment
        assert hub.count(path_contains="/revision/refs%2Fpr%2F1") == 1
        # a HEAD per file, and the GET of the regular one (the LFS one comes from the CDN)
        assert hub.count(path_contains="/resolve/refs%2Fpr%2F1/") == 3


def test_a_new_commit_moves_main_and_the_old_one_stays(hub: HubServer, tmp_path: Path) -> None:
    first = hub.add_repo("org/model", MODEL_FILES)
    kwargs: dict[str, Any] = {"endpoint": hub.url, "token": False}
    before = hf_hub_download("org/model", "model.safetensors", cache_dir=tmp_path / "a", **kwargs)
    changed = {**MODEL_FILES, "model.safetensors": _weights(9, 4000)}
    second = hub.add_repo("org/model", changed)
    assert second != first
    after = hf_hub_download("org/model", "model.safetensors", cache_dir=tmp_path / "a", **kwargs)
    assert Path(after).read_bytes() == changed["model.safetensors"]
    assert Path(after).parent.name == second and Path(before).parent.name == first
    assert (tmp_path / "a" / "models--org--model" / "refs" / "main").read_text() == second
    old = hf_hub_download(
        "org/model", "model.safetensors", revision=first, cache_dir=tmp_path / "b", **kwargs
    )
    assert Path(old).read_bytes() == MODEL_FILES["model.safetensors"]
    api = HfApi(endpoint=hub.url, token=False)
    assert api.repo_info("org/model").sha == second
    assert api.repo_info("org/model", revision=first).sha == first
    assert [c.commit_id for c in api.list_repo_commits("org/model")] == [second, first]


# -- HfApi ---------------------------------------------------------------------------------


def test_repo_info_files_metadata_is_what_git_and_lfs_say(hub: HubServer, tmp_path: Path) -> None:
    commit = hub.add_repo("org/model", MODEL_FILES)
    api = HfApi(endpoint=hub.url, token=False)
    info = api.repo_info("org/model", files_metadata=True)
    assert isinstance(info, ModelInfo)
    assert info.id == "org/model" and info.sha == commit
    assert info.private is False and info.gated is False and info.last_modified is not None
    git = _git_ids(tmp_path, MODEL_FILES, LFS)
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert set(siblings) == set(MODEL_FILES)
    for path, data in MODEL_FILES.items():
        sibling = siblings[path]
        assert sibling.size == len(data) and sibling.blob_id == git[path]
        if path in LFS:
            assert sibling.lfs is not None
            assert sibling.lfs.sha256 == hashlib.sha256(data).hexdigest()
            assert sibling.lfs.size == len(data)
            pointer = lfs_pointer(sibling.lfs.sha256, len(data))
            assert sibling.lfs.pointer_size == len(pointer)
        else:
            assert sibling.lfs is None
    assert hub.count(path_contains="?blobs=true") == 1
    # without files_metadata the Hub sends only the names
    plain = api.repo_info("org/model")
    assert isinstance(plain, ModelInfo)
    assert {s.rfilename for s in plain.siblings or []} == set(MODEL_FILES)
    assert all(s.size is None and s.lfs is None for s in plain.siblings or [])


def test_list_repo_tree_and_paths_info(hub: HubServer, tmp_path: Path) -> None:
    commit = hub.add_repo("org/model", MODEL_FILES)
    git = _git_ids(tmp_path, MODEL_FILES, LFS)
    api = HfApi(endpoint=hub.url, token=False)
    everything = list(api.list_repo_tree("org/model", recursive=True))
    kinds = {e.path: type(e).__name__ for e in everything}
    assert kinds == {
        **dict.fromkeys(MODEL_FILES, "RepoFile"),
        **dict.fromkeys(FOLDERS, "RepoFolder"),
    }
    for entry in everything:
        assert (entry.blob_id if hasattr(entry, "blob_id") else entry.tree_id) == git[entry.path]
    # no xet hash anywhere: with hf_xet installed, snapshot_download would otherwise skip the
    # HEAD calls and download through xet
    assert all(getattr(e, "xet_hash", None) is None for e in everything)
    top = {e.path for e in api.list_repo_tree("org/model")}
    assert top == {"config.json", "model.safetensors", "tokenizer", "weights", "data"}
    assert [e.path for e in api.list_repo_tree("org/model", "data")] == ["data/big"]
    with pytest.raises(RemoteEntryNotFoundError):
        list(api.list_repo_tree("org/model", "nope"))
    # expand: the last commit that touched each path
    hub.add_repo("org/model", {**MODEL_FILES, "config.json": b"{}"})
    expanded = {e.path: e for e in api.list_repo_tree("org/model", expand=True)}
    assert expanded["config.json"].last_commit.oid != commit  # type: ignore[union-attr]
    assert expanded["model.safetensors"].last_commit.oid == commit  # type: ignore[union-attr]
    # pages through the Link header
    hub.tree_page_size = 2
    hub.reset()
    paged = list(api.list_repo_tree("org/model", recursive=True, revision=commit))
    assert [e.path for e in paged] == [e.path for e in everything]
    assert hub.count(path_contains="/tree/") == -(-len(everything) // 2)
    info = api.get_paths_info("org/model", ["model.safetensors", "data/big", "missing"])
    assert [(type(e).__name__, e.path) for e in info] == [
        ("RepoFile", "model.safetensors"),
        ("RepoFolder", "data/big"),
    ]
    assert info[0].lfs is not None and info[0].lfs.size == 3000  # type: ignore[union-attr]


def test_refs_and_auth_check(hub: HubServer) -> None:
    main = hub.add_repo("org/model", {"a.txt": b"a"})
    pr = hub.add_repo("org/model", {"a.txt": b"pr"}, revision="refs/pr/1")
    hub.tag("org/model", "v1", main)
    api = HfApi(endpoint=hub.url, token=False)
    refs = api.list_repo_refs("org/model", include_pull_requests=True)
    assert [(b.name, b.ref, b.target_commit) for b in refs.branches] == [
        ("main", "refs/heads/main", main)
    ]
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1", main)]
    assert [(p.ref, p.target_commit) for p in refs.pull_requests or []] == [("refs/pr/1", pr)]
    api.auth_check("org/model")
    assert api.revision_exists("org/model", "v1") and not api.revision_exists("org/model", "v2")
    assert api.file_exists("org/model", "a.txt") and not api.file_exists("org/model", "b.txt")


# -- HfFileSystem --------------------------------------------------------------------------


def test_hf_file_system(hub: HubServer, tmp_path: Path) -> None:
    commit = hub.add_repo("org/model", MODEL_FILES)
    hub.add_repo("org/model", {"only-in-pr.txt": b"pr"}, revision="refs/pr/1")
    hub.add_repo("org/data", {"train/a.jsonl": b"{}\n", "b.jsonl": b"[]\n"}, repo_type="dataset")
    fs = HfFileSystem(endpoint=hub.url, token=hub.token, skip_instance_cache=True)
    assert sorted(fs.ls("hf://org/model", detail=False)) == [
        "org/model/config.json",
        "org/model/data",
        "org/model/model.safetensors",
        "org/model/tokenizer",
        "org/model/weights",
    ]
    info = fs.info("hf://org/model/data/big/table.csv")
    assert info["type"] == "file" and info["size"] == len(MODEL_FILES["data/big/table.csv"])
    assert fs.info("hf://org/model/data")["type"] == "directory"
    assert fs.read_bytes("hf://org/model/data/big/table.csv") == MODEL_FILES["data/big/table.csv"]
    assert fs.cat("hf://org/model/config.json") == MODEL_FILES["config.json"]
    with fs.open("hf://org/model/model.safetensors", block_size=512) as f:
        f.seek(1000)
        assert f.read(100) == MODEL_FILES["model.safetensors"][1000:1100]
    ranged = [r for r in _cdn(hub) if r.range is not None]
    assert ranged and all(r.status == 206 for r in ranged)
    assert sorted(fs.glob("hf://org/model/**/*.csv")) == ["org/model/data/big/table.csv"]
    assert sorted(fs.glob("hf://org/model/*.json")) == ["org/model/config.json"]
    assert fs.read_bytes("hf://org/model@refs/pr/1/only-in-pr.txt") == b"pr"
    assert not fs.exists("hf://org/model/missing.txt")
    assert sorted(fs.ls("hf://datasets/org/data", detail=False)) == [
        "datasets/org/data/b.jsonl",
        "datasets/org/data/train",
    ]
    assert fs.read_text("hf://datasets/org/data/train/a.jsonl") == "{}\n"
    assert fs.glob("hf://datasets/org/data/**/*.jsonl") == [
        "datasets/org/data/b.jsonl",
        "datasets/org/data/train/a.jsonl",
    ]
    target = tmp_path / "copy.bin"
    fs.get_file("hf://org/model/weights/part-1.bin", str(target))
    assert target.read_bytes() == MODEL_FILES["weights/part-1.bin"]
    # HfFileSystem GETs resolve URLs and lets httpx follow the redirect: the token stays home
    _no_token_reached_the_cdn(hub)
    assert hub.count(host="hub", method="GET", path_contains="/resolve/") >= 2
    expanded = HfFileSystem(
        endpoint=hub.url, token=hub.token, expand_info=True, skip_instance_cache=True
    )
    assert expanded.info("hf://org/model/config.json")["last_commit"].oid == commit
    assert expanded.info("hf://org/model")["last_commit"].oid == commit


# -- auth ----------------------------------------------------------------------------------


def test_a_private_repo_needs_the_token(hub: HubServer, tmp_path: Path) -> None:
    hub.add_repo("org/private", MODEL_FILES, private=True)
    anonymous = HfApi(endpoint=hub.url, token=False)
    with pytest.raises(RepositoryNotFoundError) as info:
        anonymous.repo_info("org/private")
    assert info.value.response.status_code == 401
    kwargs: dict[str, Any] = {"endpoint": hub.url, "cache_dir": tmp_path}
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("org/private", "config.json", token=False, **kwargs)
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("org/private", token=False, **kwargs)
    fs = HfFileSystem(endpoint=hub.url, token=False, skip_instance_cache=True)
    with pytest.raises(FileNotFoundError):
        fs.ls("hf://org/private")
    assert _tree(snapshot_download("org/private", token=hub.token, **kwargs)) == MODEL_FILES
    _no_token_reached_the_cdn(hub)
    # a wrong token is not "not found": the Hub says the credentials are invalid
    with pytest.raises(HfHubHTTPError) as wrong:
        HfApi(endpoint=hub.url, token="hf_wrong").repo_info("org/private")
    assert not isinstance(wrong.value, RepositoryNotFoundError)
    assert wrong.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError) as unknown:
        HfApi(endpoint=hub.url, token=hub.token).repo_info("org/unknown")
    assert unknown.value.response.status_code == 404


def test_a_gated_repo_needs_a_grant(hub: HubServer, tmp_path: Path) -> None:
    hub.add_repo("meta/gated", MODEL_FILES, gated=True)
    anonymous = HfApi(endpoint=hub.url, token=False)
    assert anonymous.repo_info("meta/gated").gated == "auto"
    assert {e.path for e in anonymous.list_repo_tree("meta/gated")} >= {"config.json"}
    kwargs: dict[str, Any] = {"endpoint": hub.url, "cache_dir": tmp_path}
    with pytest.raises(GatedRepoError) as without_token:
        hf_hub_download("meta/gated", "config.json", token=False, **kwargs)
    assert without_token.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as not_granted:
        hf_hub_download("meta/gated", "model.safetensors", token=hub.token, **kwargs)
    assert not_granted.value.response.status_code == 403
    assert "ask for access" in str(not_granted.value)
    assert f"{hub.url}/meta/gated" in str(not_granted.value)
    with pytest.raises(GatedRepoError):
        HfApi(endpoint=hub.url, token=hub.token).auth_check("meta/gated")
    assert hub.count(host="cdn") == 0
    hub.grant("meta/gated")
    HfApi(endpoint=hub.url, token=hub.token).auth_check("meta/gated")
    path = hf_hub_download("meta/gated", "model.safetensors", token=hub.token, **kwargs)
    assert Path(path).read_bytes() == MODEL_FILES["model.safetensors"]
    _no_token_reached_the_cdn(hub)


def test_missing_files_and_revisions(hub: HubServer, tmp_path: Path) -> None:
    commit = hub.add_repo("org/model", MODEL_FILES)
    kwargs: dict[str, Any] = {"endpoint": hub.url, "cache_dir": tmp_path, "token": False}
    with pytest.raises(RemoteEntryNotFoundError) as missing:
        hf_hub_download("org/model", "nope.txt", **kwargs)
    assert isinstance(missing.value, EntryNotFoundError)
    # the 404 carries X-Repo-Commit, so the client remembers the file is absent at that commit
    assert (tmp_path / "models--org--model" / ".no_exist" / commit / "nope.txt").exists()
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("org/model", "config.json", revision="nope", **kwargs)
    with pytest.raises(RevisionNotFoundError):
        HfApi(endpoint=hub.url, token=False).repo_info("org/model", revision="nope")
    with pytest.raises(RevisionNotFoundError):
        snapshot_download("org/model", revision="nope", **kwargs)


# -- the wire ------------------------------------------------------------------------------


def test_the_cdn_serves_only_signed_urls_without_a_token(hub: HubServer) -> None:
    hub.add_repo("org/model", MODEL_FILES)
    data = MODEL_FILES["model.safetensors"]
    sha256 = hashlib.sha256(data).hexdigest()
    status, headers, _ = _http("HEAD", f"{hub.url}/org/model/resolve/main/model.safetensors")
    assert status == 302
    assert headers["X-Linked-Etag"] == f'"{sha256}"' and headers["X-Linked-Size"] == str(len(data))
    assert headers["X-Repo-Commit"] and not any(k.lower().startswith("x-xet") for k in headers)
    location = headers["Location"]
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}" == hub.cdn_url != hub.url
    query = dict(parse_qsl(parts.query))
    assert query["X-Amz-Expires"] == "3600" and query["X-Amz-Signature"]
    status, headers, body = _http("GET", location)
    assert (status, body, headers["ETag"]) == (200, data, f'"{sha256}"')
    unsigned = f"{hub.cdn_url}{parts.path}"
    assert _http("GET", unsigned)[0] == 403
    assert _http("GET", location.replace(query["X-Amz-Signature"], "0" * 64))[0] == 403
    other = hashlib.sha256(MODEL_FILES["weights/part-1.bin"]).hexdigest()
    assert _http("GET", location.replace(sha256, other))[0] == 403  # signed for another blob
    assert _http("GET", location, Authorization=f"Bearer {hub.token}")[0] == 400
    status, headers, body = _http("GET", location, Range="bytes=10-19")
    assert (status, body, headers["Content-Range"]) == (
        206,
        data[10:20],
        f"bytes 10-19/{len(data)}",
    )
    status, headers, _ = _http("GET", location, Range=f"bytes={len(data)}-")
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"
    assert [r.status for r in _cdn(hub)] == [200, 403, 403, 403, 400, 206, 416]
    assert hub.bytes_served(host="cdn") == len(data) + 10


def test_regular_files_come_from_the_hub_with_ranges(hub: HubServer) -> None:
    data = b"0123456789" * 10
    commit = hub.add_repo("org/model", {"notes.txt": data})
    url = f"{hub.url}/org/model/resolve/main/notes.txt"
    status, headers, body = _http("HEAD", url)
    assert (status, body) == (200, b"")
    assert headers["ETag"] == f'"{git_blob_sha(data)}"' and headers["X-Repo-Commit"] == commit
    assert headers["Content-Length"] == "100" and headers["Accept-Ranges"] == "bytes"
    assert "X-Linked-Etag" not in headers
    status, headers, body = _http("GET", url, Range="bytes=-5")
    assert (status, body, headers["Content-Range"]) == (206, data[-5:], "bytes 95-99/100")
    assert _http("GET", url, Range="bytes=90-")[2] == data[90:]
    status, headers, _ = _http("GET", url, Range="bytes=100-200")
    assert status == 416 and headers["Content-Range"] == "bytes */100"
    status, headers, body = _http("GET", f"{hub.url}/org/model/resolve/main/nope.txt")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound" and b"error" in body
    assert hub.bytes_served(host="hub") == 5 + 10
    assert hub.count(host="hub", method="GET") == 4 and hub.count(method="HEAD") == 1


def test_requests_are_recorded_as_received(hub: HubServer) -> None:
    hub.add_repo("org/model", {"a.txt": b"a"})
    _http("GET", f"{hub.url}/api/models/org/model/revision/refs%2Fpr%2F9?x=1", authorization="t")
    (record,) = hub.requests
    assert record.host == "hub" and record.method == "GET" and record.status == 401
    assert record.path == "/api/models/org/model/revision/refs%2Fpr%2F9?x=1"
    assert isinstance(record.headers, RequestHeaders)
    assert record.headers["AUTHORIZATION"] == "t" and "Authorization" in record.headers
    assert hub.count(path_contains="refs%2Fpr%2F9") == 1 and hub.count(host="cdn") == 0
    hub.reset()
    assert hub.requests == [] and hub.count() == 0 and hub.bytes_served() == 0


def test_lifecycle(monkeypatch: pytest.MonkeyPatch) -> None:
    quiet_huggingface_hub(monkeypatch)  # what the fixture does; without it: huggingface.co
    server = HubServer()
    server.stop()  # never started: nothing to do
    with server as same:
        assert same is server and server.url != server.cdn_url
        assert server.token.startswith("hf_test_") and server.token != HubServer().token
        commit = server.add_repo("org/m", {})
        assert HfApi(endpoint=server.url, token=False).repo_info("org/m").sha == commit
        with pytest.raises(RuntimeError):
            server.start()
    server.stop()  # already stopped: nothing to do
    with pytest.raises(ValueError):
        server.add_repo("org/../m", {"a": b""})
    with pytest.raises(ValueError):
        server.add_repo("org/m", {"a/../b": b""})
    with pytest.raises(KeyError):
        server.tag("org/m", "v1", "0" * 40)
