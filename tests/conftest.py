"""Shared fixtures: card folders written by the tests, the fairseq2 corpus, and the backends
(local folder, fsspec memory, S3 on moto, GCS on gcp-storage-emulator) that every
store-level test runs against.

A test that takes ``make_provider`` runs once per backend in ``BACKENDS``:

    async def test_x(make_provider):
        provider = make_provider({"models.yaml": "name: tiny\\n"})
        store = AssetStore([provider])

To add a backend, append its name to ``BACKENDS`` and define a fixture ``upload_<name>``
that returns a function ``(files) -> CardRoot`` (see ``upload_memory``).
"""

from __future__ import annotations

import json
import os
import textwrap
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import pytest
from servers import *  # noqa: F403  (re-exports the server fixtures)
from servers import gcs_storage_options, s3_storage_options

from asyncassets.cache import CheckpointCache
from asyncassets.providers.file import FileAssetMetadataProvider

#: The async backends a module opts into with ``anyio_backend = both_backends``.
ASYNC_BACKENDS = ["asyncio", "trio"]


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: Any, name: str, obj: Any) -> None:
    """Every ``async def test_*`` runs through anyio's pytest plugin (asyncio by default);
    a module that assigns ``anyio_backend = both_backends`` runs its tests on trio too."""
    if collector.istestfunction(obj, name) and _is_coroutine_function(obj):
        pytest.mark.anyio(obj)


def _is_coroutine_function(obj: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(getattr(obj, "__func__", obj))


@pytest.fixture
def anyio_backend() -> str:
    """Tests run on asyncio unless their module opts into both backends."""
    return "asyncio"


@pytest.fixture(params=ASYNC_BACKENDS)
def both_backends(request: pytest.FixtureRequest) -> str:
    """Assign to ``anyio_backend`` in a module to run its tests on asyncio and trio."""
    return str(request.param)


#: Every backend the store tests run against: the one place to add one.
BACKENDS = ["local", "memory", "s3", "gcs"]

#: ``{relative path: YAML text or bytes}``; text is dedented before it is written.
CardFiles = Mapping[str, str | bytes]


@dataclass(frozen=True)
class CardRoot:
    """Where a backend put the card files: a URL or path, and fsspec options to read it."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)


def _as_bytes(content: str | bytes) -> bytes:
    return content if isinstance(content, bytes) else textwrap.dedent(content).encode()


#: Variables that choose envs and default folders; no test sees the caller's values.
ISOLATED_VARIABLES = (
    "ASYNCASSETS_ENV",
    "SLURM_CLUSTER_NAME",
    "ASYNCASSETS_ASSET_DIR",
    "ASYNCASSETS_USER_ASSET_DIR",
    "FAIRSEQ2_ASSET_DIR",
    "FAIRSEQ2_USER_ASSET_DIR",
)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Unset the variables that pick envs and default stores; tests set what they need.
    The cache root (checkpoints, the card stores' indexes) is a fresh folder per test."""
    for name in ISOLATED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ASYNCASSETS_NO_INDEX", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("ASYNCASSETS_CACHE_DIR", str(tmp_path_factory.mktemp("cache-root")))


# -- card folders ----------------------------------------------------------------------------


@pytest.fixture
def card_dir(tmp_path: Path) -> Path:
    """An empty local folder for card files."""
    path = tmp_path / "cards"
    path.mkdir()
    return path


@pytest.fixture
def write_cards(card_dir: Path) -> Callable[..., Path]:
    """``write_cards({"a.yaml": "name: a"}, root=None) -> root``: writes (dedented) files
    under ``root`` (default: ``card_dir``), creating sub-folders."""

    def write(files: CardFiles, root: Path | None = None) -> Path:
        root = root or card_dir
        for relative, content in files.items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_as_bytes(content))
        return root

    return write


# -- the checkpoint cache --------------------------------------------------------------------


@pytest.fixture
def make_cache(tmp_path: Path) -> Callable[..., CheckpointCache]:
    """``make_cache(folder="cache", **settings) -> CheckpointCache`` in ``tmp_path / folder``
    (``settings``: ``part_size``, ``concurrency``, ``retry``... as ``CheckpointCache`` takes)."""

    def make(folder: str = "cache", **settings: Any) -> CheckpointCache:
        return CheckpointCache(tmp_path / folder, **settings)

    return make


@pytest.fixture
def cache_settings() -> dict[str, Any]:
    """The keywords of the ``cache`` fixture (none: the defaults). A module that tests other
    part sizes, concurrency or retries overrides this fixture, or a test parametrizes it."""
    return {}


@pytest.fixture
def cache(
    make_cache: Callable[..., CheckpointCache], cache_settings: dict[str, Any]
) -> CheckpointCache:
    """A ``CheckpointCache`` in ``tmp_path / "cache"`` with ``cache_settings``."""
    return make_cache(**cache_settings)


# -- backends --------------------------------------------------------------------------------


@pytest.fixture
def upload_local(tmp_path: Path) -> Callable[[CardFiles], CardRoot]:
    """Writes the files into a fresh local folder."""
    counter = iter(range(1_000_000))

    def upload(files: CardFiles) -> CardRoot:
        root = tmp_path / f"local-store-{next(counter)}"
        root.mkdir()
        for relative, content in files.items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_as_bytes(content))
        return CardRoot(str(root))

    return upload


@pytest.fixture
def upload_memory() -> Iterator[Callable[[CardFiles], CardRoot]]:
    """Puts the files into fsspec's ``memory://`` filesystem under a unique prefix."""
    fs = fsspec.filesystem("memory")
    prefixes: list[str] = []

    def upload(files: CardFiles) -> CardRoot:
        prefix = f"/asyncassets-test-{uuid.uuid4().hex}"
        prefixes.append(prefix)
        fs.mkdir(prefix)
        fs.pipe({f"{prefix}/{relative}": _as_bytes(c) for relative, c in files.items()})
        return CardRoot(f"memory://{prefix}")

    yield upload
    for prefix in prefixes:
        if fs.exists(prefix):
            fs.rm(prefix, recursive=True)


def unique_bucket() -> str:
    """A bucket name no other test uses (S3 and GCS naming rules)."""
    return f"asyncassets-{uuid.uuid4().hex[:20]}"


def put_s3_objects(endpoint: str, bucket: str, files: CardFiles, *, create: bool = True) -> None:
    """Create ``bucket`` on the moto server (no region: see ``s3_storage_options``) and put
    ``files`` as objects. boto3 is synchronous, so no aiohttp session outlives the call."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    try:
        if create:
            client.create_bucket(Bucket=bucket)
        for relative, content in files.items():
            client.put_object(Bucket=bucket, Key=relative, Body=_as_bytes(content))
    finally:
        client.close()


def _gcs_request(url: str, data: bytes, content_type: str) -> None:
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def put_gcs_objects(endpoint: str, bucket: str, files: CardFiles, *, create: bool = True) -> None:
    """Create ``bucket`` on the GCS emulator and upload ``files`` through its JSON API."""
    if create:
        body = json.dumps({"name": bucket}).encode()
        _gcs_request(f"{endpoint}/storage/v1/b?project=test", body, "application/json")
    for relative, content in files.items():
        name = urllib.parse.quote(relative, safe="")
        url = f"{endpoint}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}"
        _gcs_request(url, _as_bytes(content), "application/octet-stream")


@pytest.fixture
def upload_s3(moto_server: str) -> Callable[[CardFiles], CardRoot]:
    """Puts the files into a fresh bucket on the session's moto server."""

    def upload(files: CardFiles) -> CardRoot:
        bucket = unique_bucket()
        put_s3_objects(moto_server, bucket, files)
        return CardRoot(f"s3://{bucket}", s3_storage_options(moto_server))

    return upload


@pytest.fixture
def upload_gcs(gcs_emulator: str) -> Callable[[CardFiles], CardRoot]:
    """Puts the files into a fresh bucket on the session's GCS emulator."""

    def upload(files: CardFiles) -> CardRoot:
        bucket = unique_bucket()
        put_gcs_objects(gcs_emulator, bucket, files)
        return CardRoot(f"gs://{bucket}", gcs_storage_options(gcs_emulator))

    return upload


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend this test runs against."""
    return str(request.param)


@pytest.fixture
def upload(backend: str, request: pytest.FixtureRequest) -> Callable[[CardFiles], CardRoot]:
    """``upload(files) -> CardRoot`` for the current backend."""
    uploader: Callable[[CardFiles], CardRoot] = request.getfixturevalue(f"upload_{backend}")
    return uploader


@pytest.fixture
async def make_provider(
    upload: Callable[[CardFiles], CardRoot],
) -> AsyncIterator[Callable[[CardFiles], FileAssetMetadataProvider]]:
    """``make_provider(files) -> FileAssetMetadataProvider`` on the current backend.

    Every call makes a new, separate card folder. The providers are closed after the test
    (remote sessions included), whether or not the test closed its store.
    """
    providers: list[FileAssetMetadataProvider] = []

    def make(files: CardFiles) -> FileAssetMetadataProvider:
        root = upload(files)
        provider = FileAssetMetadataProvider(root.url, storage_options=root.storage_options)
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        await provider.aclose()


# -- the fairseq2 corpus ---------------------------------------------------------------------


def _corpus_candidates() -> list[Path]:
    here = Path(__file__).resolve()
    candidates = []
    if env := os.environ.get("ASYNCASSETS_CORPUS_DIR"):
        candidates.append(Path(env))
    candidates.append(here.parents[2] / "shared" / "corpus")  # <repo>/../shared/corpus
    candidates.append(Path.cwd().parent / "shared" / "corpus")  # run from a repo worktree
    return list(dict.fromkeys(candidates))


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The card corpus (``$ASYNCASSETS_CORPUS_DIR`` or ``../shared/corpus``), read in place.

    The cards are fairseq2's, not ours, so they are never copied into the repository; tests
    that need them skip when the folder is absent (CI always has it).
    """
    for candidate in _corpus_candidates():
        if (candidate / "fairseq2-cards").is_dir():
            return candidate
    tried = ", ".join(str(c) for c in _corpus_candidates())
    pytest.skip(
        f"fairseq2 card corpus not found (tried {tried}); set ASYNCASSETS_CORPUS_DIR to the "
        "folder holding fairseq2-cards/ to run these tests"
    )


@pytest.fixture
def hub(hub_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The Hub server as ``$HF_ENDPOINT``, no token anywhere, an empty Hugging Face cache
    (for a module that imports ``hub_server``; a ``HubServer``)."""
    monkeypatch.setenv("HF_ENDPOINT", hub_server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "ASYNCASSETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    return hub_server


# -- real servers (S3, GCS, HTTP) for the backends and the cache tests ------------------------

from servers import *  # noqa: E402, F403
