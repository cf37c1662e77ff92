"""Hot reload of a remote card folder: the poller against a real moto S3 server.

Objects are added, overwritten and deleted with boto3 while the store watches; the server is
stopped and restarted under a watching store (a private server, so no other test sees it).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from conftest import put_s3_objects
from servers import free_port, moto_process, s3_storage_options
from test_watch_local import EventLog, card, wait_for_names, wait_for_value

from asyncassets import AssetCardNotFoundError, AssetStore, FileAssetMetadataProvider

#: Seconds between two listings while watched: short, so that tests are quick.
POLL_INTERVAL = 0.2


def delete_s3_object(endpoint: str, bucket: str, key: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    try:
        client.delete_object(Bucket=bucket, Key=key)
    finally:
        client.close()


@asynccontextmanager
async def watched_bucket(
    endpoint: str, bucket: str, prefix: str = "cards"
) -> AsyncIterator[tuple[AssetStore, EventLog]]:
    provider = FileAssetMetadataProvider(
        f"s3://{bucket}/{prefix}",
        storage_options=s3_storage_options(endpoint),
        poll_interval=POLL_INTERVAL,
    )
    store = AssetStore([provider])
    log = EventLog()
    async with store, store.watching(), anyio.create_task_group() as tg:
        await tg.start(log.run, store)
        yield store, log
        tg.cancel_scope.cancel()


@pytest.fixture
def bucket(moto_server: str) -> str:
    """A fresh bucket on the session's moto server with one card under ``cards/``."""
    name = f"asyncassets-{uuid.uuid4().hex[:20]}"
    put_s3_objects(moto_server, name, {"cards/foo.yaml": card("foo", 1)})
    return name


async def test_added_object_is_served(moto_server: str, bucket: str) -> None:
    async with watched_bucket(moto_server, bucket) as (store, log):
        put_s3_objects(moto_server, bucket, {"cards/sub/bar.yaml": card("bar", 1)}, create=False)
        await wait_for_value(store, "bar", 1)
        event = await log.wait_for(lambda e: "bar@" in e.added)
        assert event.source == f"s3://{bucket}/cards"
        assert (await store.retrieve_card("bar")).source == f"s3://{bucket}/cards/sub/bar.yaml"


async def test_overwritten_object_serves_new_value(moto_server: str, bucket: str) -> None:
    async with watched_bucket(moto_server, bucket) as (store, log):
        put_s3_objects(moto_server, bucket, {"cards/foo.yaml": card("foo", 2)}, create=False)
        await wait_for_value(store, "foo", 2)
        await log.wait_for(lambda e: "foo@" in e.modified)


async def test_deleted_object_removes_its_cards(moto_server: str, bucket: str) -> None:
    put_s3_objects(moto_server, bucket, {"cards/bar.yaml": card("bar", 1)}, create=False)
    async with watched_bucket(moto_server, bucket) as (store, log):
        delete_s3_object(moto_server, bucket, "cards/foo.yaml")
        event = await log.wait_for(lambda e: bool(e.removed))
        assert event.removed == {"foo@"}
        with pytest.raises(AssetCardNotFoundError):
            await store.retrieve_card("foo")
        assert await store.asset_names() == {"bar@"}


async def test_bad_object_keeps_last_good_cards_and_reports_problem(
    moto_server: str, bucket: str
) -> None:
    async with watched_bucket(moto_server, bucket) as (store, log):
        bad = b"name: foo\nvalue: [1, 2\n"
        put_s3_objects(moto_server, bucket, {"cards/foo.yaml": bad}, create=False)
        event = await log.wait_for(lambda e: bool(e.problems))
        (problem,) = event.problems
        assert problem.file == f"s3://{bucket}/cards/foo.yaml"
        assert problem.line is not None
        assert (await store.retrieve_card("foo")).field("value").value == 1
        put_s3_objects(moto_server, bucket, {"cards/foo.yaml": card("foo", 3)}, create=False)
        await wait_for_value(store, "foo", 3)


async def test_only_changed_objects_are_read_again(moto_server: str, bucket: str) -> None:
    others = {f"cards/other{i}.yaml": card(f"other{i}", i) for i in range(5)}
    put_s3_objects(moto_server, bucket, others, create=False)
    async with watched_bucket(moto_server, bucket) as (store, _log):
        provider = store.metadata_providers[0]
        before = dict(provider.snapshot.files)
        put_s3_objects(moto_server, bucket, {"cards/foo.yaml": card("foo", 2)}, create=False)
        await wait_for_value(store, "foo", 2)
        after = provider.snapshot.files
    changed = f"s3://{bucket}/cards/foo.yaml"
    assert after.keys() == before.keys()
    assert after[changed] is not before[changed]
    for url, record in before.items():
        if url != changed:
            assert after[url] is record, f"{url} was read again although it did not change"


# -- a server that goes away -----------------------------------------------------------------


@pytest.fixture
def private_moto() -> Iterator[dict[str, Any]]:
    """A moto server of this test's own on a fixed port; ``restart()`` brings up a new
    (empty: moto keeps nothing) server on the same port."""
    port = free_port()
    state = {"server": moto_process(port).start()}

    def restart() -> None:
        state["server"].stop()
        state["server"] = moto_process(port).start()

    try:
        yield {"url": state["server"].url, "state": state, "restart": restart}
    finally:
        state["server"].stop()


async def test_polling_survives_server_restart(
    private_moto: dict[str, Any], botocore_does_not_retry: None
) -> None:
    endpoint = private_moto["url"]
    put_s3_objects(endpoint, "cards", {"cards/foo.yaml": card("foo", 1)})
    async with watched_bucket(endpoint, "cards") as (store, log):
        private_moto["state"]["server"].stop()
        event = await log.wait_for(lambda e: bool(e.problems))
        assert "s3://cards/cards" in str(event.problems[0])
        # The store keeps serving the last good cards while the server is away.
        assert (await store.retrieve_card("foo")).field("value").value == 1
        await anyio.to_thread.run_sync(private_moto["restart"])
        # moto lost everything: put the bucket back, with one card changed and one new.
        files = {"cards/foo.yaml": card("foo", 2), "cards/bar.yaml": card("bar", 1)}
        put_s3_objects(endpoint, "cards", files)
        # The poller backed off while the server was away: allow for a few of its waits.
        await wait_for_names(store, {"foo@", "bar@"}, within=60)
        await wait_for_value(store, "foo", 2)
