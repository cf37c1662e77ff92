"""Remote card stores (issue 3): S3 on moto and GCS on gcp-storage-emulator, real servers.

The resolution and corpus suites already run on both through the ``backend`` fixture in
``conftest.py``; this file holds what is specific to object stores: object URLs, relative
paths against an object's folder, missing buckets and prefixes, broken objects, a server
that goes away, credentials, sessions, the CLI, the default store's variables, concurrency.
"""

from __future__ import annotations

import gc
import traceback
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from conftest import CardFiles, CardRoot, put_s3_objects
from servers import HOST, ServerProcess, free_port, s3_storage_options

from asyncassets import (
    AssetMetadataError,
    AssetSourceNotFoundError,
    AssetStore,
    FileAssetMetadataProvider,
)
from asyncassets.cli import main as cli_main
from asyncassets.defaults import create_default_store

Upload = Callable[[CardFiles], CardRoot]

#: A secret no message may ever show.
SECRET = "sEcReT-asyncassets-7f3c9e1d"

TINY = """\
name: tiny
model_family: toy
checkpoint: ../ckpt/tiny.pt
"""


@pytest.fixture(params=["s3", "gcs"])
def upload_remote(request: pytest.FixtureRequest) -> Upload:
    """``upload(files) -> CardRoot`` on a fresh bucket, once on S3 and once on GCS."""
    uploader: Upload = request.getfixturevalue(f"upload_{request.param}")
    return uploader


def provider_at(root: CardRoot, prefix: str = "", **options: object) -> FileAssetMetadataProvider:
    url = f"{root.url}/{prefix}" if prefix else root.url
    return FileAssetMetadataProvider(url, storage_options=root.storage_options, **options)  # type: ignore[arg-type]


def missing_bucket_url(root: CardRoot) -> str:
    protocol = root.url.partition("://")[0]
    return f"{protocol}://asyncassets-missing-{uuid.uuid4().hex[:16]}/cards"


# -- object URLs ------------------------------------------------------------------------------


async def test_card_source_is_the_object_url(upload_remote: Upload) -> None:
    root = upload_remote({"cards/m/tiny.yaml": TINY})
    async with AssetStore([provider_at(root, "cards")]) as store:
        card = await store.retrieve_card("tiny")
    assert card.source == f"{root.url}/cards/m/tiny.yaml"


async def test_relative_path_resolves_against_the_object_folder(upload_remote: Upload) -> None:
    root = upload_remote({"cards/m/x.yaml": "name: x\ncheckpoint: ../../ckpt/m.pt\n"})
    async with AssetStore([provider_at(root, "cards")]) as store:
        card = await store.retrieve_card("x")
    assert card.field("checkpoint").as_uri() == f"{root.url}/ckpt/m.pt"


async def test_yml_objects_load_and_other_objects_are_ignored(upload_remote: Upload) -> None:
    root = upload_remote(
        {
            "cards/a.yaml": "name: a\n",
            "cards/deep/b.yml": "name: b\n",
            "cards/README.md": "name: not-a-card\n",
            "cards/c.yaml.bak": "name: not-a-card-either\n",
        }
    )
    async with AssetStore([provider_at(root, "cards")]) as store:
        assert await store.asset_names() == {"a@", "b@"}


async def test_bucket_root_is_a_card_folder(upload_remote: Upload) -> None:
    root = upload_remote({"a.yaml": "name: a\n", "sub/b.yaml": "name: b\n"})
    async with AssetStore([provider_at(root)]) as store:
        assert await store.asset_names() == {"a@", "b@"}


# -- a local user folder over an S3 system folder ---------------------------------------------

SYSTEM_CARDS = {
    "cards/models/tiny.yaml": """\
        name: tiny
        model_family: toy
        checkpoint: ../ckpt/tiny.pt
        who: system
        ---
        name: tiny@clusterA
        checkpoint: /fsx/clusterA/tiny.pt
        who: system-clusterA
        """,
}

USER_CARDS = {
    "tiny.yaml": """\
        name: tiny@user
        who: user
        ---
        name: small
        base: tiny
        ---
        name: small@clusterA
        batch_size: 4
        """,
}


@pytest.fixture
def s3_system(upload_s3: Upload) -> CardRoot:
    """The system cards in a fresh S3 bucket."""
    return upload_s3(SYSTEM_CARDS)


@pytest.fixture
def mixed_store(s3_system: CardRoot, write_cards: Callable[..., Path]) -> Callable[[], AssetStore]:
    """``make() -> AssetStore``: a local user folder over an S3 system folder, with env
    overrides in each; the detected env is ``clusterA``."""
    system = s3_system
    user = write_cards(USER_CARDS)

    def make() -> AssetStore:
        return AssetStore(
            [provider_at(system, "cards")],
            user_providers=[FileAssetMetadataProvider(user)],
            default_env="clusterA",
        )

    return make


async def test_local_user_override_wins_over_s3_system_card(
    mixed_store: Callable[[], AssetStore],
) -> None:
    async with mixed_store() as store:
        card = await store.retrieve_card("tiny")
    assert card.field("who").value == "user"


async def test_s3_env_override_applies_under_local_user_override(
    mixed_store: Callable[[], AssetStore],
) -> None:
    async with mixed_store() as store:
        card = await store.retrieve_card("tiny")
    assert card.field("checkpoint").value == "/fsx/clusterA/tiny.pt"


async def test_local_card_inherits_from_s3_card_with_paths_relative_to_the_object(
    mixed_store: Callable[[], AssetStore], s3_system: CardRoot
) -> None:
    async with mixed_store() as store:
        card = await store.retrieve_card("small@")
    assert card.field("checkpoint").as_uri() == f"{s3_system.url}/cards/ckpt/tiny.pt"


async def test_local_env_override_applies_to_card_with_s3_base(
    mixed_store: Callable[[], AssetStore],
) -> None:
    async with mixed_store() as store:
        card = await store.retrieve_card("small")
    assert card.field("batch_size").value == 4
    assert card.field("model_family").value == "toy"


# -- missing and broken sources ---------------------------------------------------------------


async def test_missing_bucket_raises_source_not_found_naming_the_url(
    upload_remote: Upload,
) -> None:
    root = upload_remote({"cards/a.yaml": "name: a\n"})
    url = missing_bucket_url(root)
    provider = FileAssetMetadataProvider(url, storage_options=root.storage_options)
    try:
        with pytest.raises(AssetSourceNotFoundError) as info:
            await provider.load()
    finally:
        await provider.aclose()
    assert url in str(info.value)


async def test_missing_prefix_raises_source_not_found_naming_the_url(
    upload_remote: Upload,
) -> None:
    root = upload_remote({"cards/a.yaml": "name: a\n"})
    provider = provider_at(root, "no-such-prefix")
    try:
        with pytest.raises(AssetSourceNotFoundError) as info:
            await provider.load()
    finally:
        await provider.aclose()
    assert f"{root.url}/no-such-prefix" in str(info.value)


BAD_YAML = b"name: bad\nfield: ok\nnested:\n  a: 1\n b: 2\n"  # line 5 breaks the mapping


async def test_invalid_yaml_object_is_a_problem_with_its_url_and_line(
    upload_remote: Upload,
) -> None:
    root = upload_remote({"cards/good.yaml": "name: good\n", "cards/bad.yaml": BAD_YAML})
    async with AssetStore([provider_at(root, "cards")]) as store:
        problems = await store.check()
    assert [(p.kind, p.file, p.line) for p in problems] == [
        ("yaml", f"{root.url}/cards/bad.yaml", 5)
    ]
    assert str(problems[0]).startswith(f"{root.url}/cards/bad.yaml:5: ")


async def test_other_objects_load_next_to_an_invalid_yaml_object(upload_remote: Upload) -> None:
    root = upload_remote(
        {"cards/good.yaml": "name: good\n", "cards/bad.yaml": BAD_YAML, "cards/z.yaml": TINY}
    )
    async with AssetStore([provider_at(root, "cards")]) as store:
        assert await store.asset_names() == {"good@", "tiny@"}


async def test_stopped_server_raises_metadata_error_naming_url_and_cause(
    private_moto_server: ServerProcess, botocore_does_not_retry: None
) -> None:
    put_s3_objects(private_moto_server.url, "cards", {"a.yaml": "name: a\n"})
    options = s3_storage_options(private_moto_server.url)
    provider = FileAssetMetadataProvider("s3://cards", storage_options=options)
    try:
        await provider.load()
        private_moto_server.stop()
        with pytest.raises(AssetMetadataError) as info:
            await provider.refresh()
    finally:
        await provider.aclose()
    message = str(info.value)
    assert "s3://cards" in message
    assert "EndpointConnectionError" in message
    assert not isinstance(info.value, AssetSourceNotFoundError)


async def test_store_keeps_serving_after_the_server_stops(
    private_moto_server: ServerProcess, botocore_does_not_retry: None
) -> None:
    put_s3_objects(private_moto_server.url, "cards", {"a.yaml": "name: a\nsize: 1\n"})
    options = s3_storage_options(private_moto_server.url)
    async with AssetStore(
        [FileAssetMetadataProvider("s3://cards", storage_options=options)]
    ) as store:
        await store.load()
        private_moto_server.stop()
        with pytest.raises(AssetMetadataError):
            await store.metadata_providers[0].refresh()
        card = await store.retrieve_card("a")
    assert card.field("size").value == 1


async def test_credentials_never_appear_in_errors_or_logs(
    private_moto_server: ServerProcess,
    botocore_does_not_retry: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    put_s3_objects(private_moto_server.url, "cards", {"a.yaml": "name: a\n"})
    errors: list[BaseException] = []
    for url in ("s3://no-such-bucket-here/cards", "s3://cards/no-such-prefix", "s3://cards"):
        if url == "s3://cards":
            private_moto_server.stop()
        options = {**s3_storage_options(private_moto_server.url), "secret": SECRET}
        provider = FileAssetMetadataProvider(url, storage_options=options)
        try:
            with pytest.raises(AssetMetadataError) as info:
                await provider.load()
            errors.append(info.value)
        finally:
            await provider.aclose()
    for exc in errors:
        assert SECRET not in str(exc)
        assert SECRET not in repr(exc)
        assert SECRET not in "".join(traceback.format_exception(exc))
    assert SECRET not in caplog.text


# -- sessions ---------------------------------------------------------------------------------


def open_client_sessions() -> set[int]:
    """Ids of the aiohttp sessions alive and not closed (s3fs and gcsfs both use aiohttp)."""
    gc.collect()
    return {
        id(o) for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession) and not o.closed
    }


async def test_async_with_store_closes_remote_sessions(
    upload_s3: Upload, upload_gcs: Upload, caplog: pytest.LogCaptureFixture
) -> None:
    s3 = upload_s3({"a.yaml": "name: a\n"})
    gcs = upload_gcs({"b.yaml": "name: b\n"})
    before = open_client_sessions()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with AssetStore([provider_at(s3), provider_at(gcs)]) as store:
            assert await store.asset_names() == {"a@", "b@"}
            assert open_client_sessions() - before  # the check below can see sessions
        del store
        left_open = open_client_sessions() - before
    messages = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert left_open == set()
    assert [m for m in messages if "Unclosed" in m] == []


# -- the command line and the default store ---------------------------------------------------


def test_cli_store_url_with_storage_options(
    upload_s3: Upload, moto_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = upload_s3({"cards/tiny.yaml": TINY})
    code = cli_main(
        [
            "--store",
            f"{root.url}/cards",
            "--storage-option",
            "key=testing",
            "--storage-option",
            "secret=testing",
            "--storage-option",
            f"client_kwargs.endpoint_url={moto_server}",
            "show",
            "tiny",
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert f'"source": "{root.url}/cards/tiny.yaml"' in out


def test_cli_missing_bucket_prints_one_line_naming_the_url(
    moto_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"s3://asyncassets-missing-{uuid.uuid4().hex[:16]}/cards"
    code = cli_main(
        [
            "--store",
            url,
            "--storage-option",
            "key=testing",
            "--storage-option",
            f"secret={SECRET}",
            "--storage-option",
            f"client_kwargs.endpoint_url={moto_server}",
            "list",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert url in err
    assert SECRET not in err


@pytest.mark.parametrize("variable", ["ASYNCASSETS_ASSET_DIR", "ASYNCASSETS_USER_ASSET_DIR"])
async def test_default_store_folder_variable_may_be_an_s3_url(
    variable: str,
    upload_s3: Upload,
    moto_server: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    root = upload_s3({"cards/tiny.yaml": TINY})
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv(variable, f"{root.url}/cards")
    async with create_default_store() as store:
        card = await store.retrieve_card("tiny")
    assert card.source == f"{root.url}/cards/tiny.yaml"


async def test_aws_endpoint_url_from_the_environment_is_used(
    upload_s3: Upload, moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = upload_s3({"tiny.yaml": TINY})
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    options = {"key": "testing", "secret": "testing"}
    async with AssetStore([FileAssetMetadataProvider(root.url, storage_options=options)]) as store:
        assert await store.asset_names() == {"tiny@"}


async def test_storage_emulator_host_from_the_environment_is_used(
    upload_gcs: Upload, gcs_emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = upload_gcs({"tiny.yaml": TINY})
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.removeprefix("http://"))
    async with AssetStore([FileAssetMetadataProvider(root.url)]) as store:
        assert await store.asset_names() == {"tiny@"}


async def test_explicit_endpoint_wins_over_the_environment(
    upload_s3: Upload, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = upload_s3({"tiny.yaml": TINY})
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{HOST}:{free_port()}")  # nothing there
    async with AssetStore([provider_at(root)]) as store:
        assert await store.asset_names() == {"tiny@"}


# -- concurrency ------------------------------------------------------------------------------

OBJECTS = 200
CARDS_PER_OBJECT = 10


def many_objects() -> dict[str, str]:
    files = {}
    for i in range(OBJECTS):
        documents = [
            f"name: card_{i:03d}_{j}\nmodel_family: toy\ncheckpoint: ../ckpt/{i}_{j}.pt\n"
            for j in range(CARDS_PER_OBJECT)
        ]
        files[f"cards/group{i % 10}/cards_{i:03d}.yaml"] = "---\n".join(documents)
    return files


@pytest.mark.parametrize("max_concurrency", [1, 64])
async def test_loads_200_objects(upload_remote: Upload, max_concurrency: int) -> None:
    root = upload_remote(many_objects())
    provider = provider_at(root, "cards", max_concurrency=max_concurrency)
    async with AssetStore([provider]) as store:
        names = await store.asset_names()
        problems = await store.check()
        card = await store.retrieve_card("card_199_9")
    assert len(names) == OBJECTS * CARDS_PER_OBJECT
    assert problems == []
    assert card.field("checkpoint").as_uri() == f"{root.url}/cards/ckpt/199_9.pt"
