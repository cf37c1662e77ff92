"""Every network call has a finite timeout: a peer that accepts a connection and never
answers is an error after a while (and then retried), never a wait for ever.

gcsfs sends its requests with no timeout at all, and fsspec's HTTP client has only a
5-minute total; asyncassets gives both a connect and a read timeout
(:mod:`asyncassets.storage_options`). Each test puts a TCP proxy in front of a real server
whose first connection is a stalled peer (the request is read, nothing is answered), with
the read timeout shortened to half a second: the load or fetch must get past it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import fsspec
import pytest
from aiohttp import web
from conftest import both_backends, put_gcs_objects, unique_bucket
from servers import CountingProxy, ThreadedApp, gcs_storage_options

from asyncassets import AssetStore, FileAssetMetadataProvider
from asyncassets import storage_options as options_module
from asyncassets.cache import CheckpointCache
from asyncassets.errors import AssetMetadataError
from asyncassets.storage_options import default_storage_options, with_timeouts

anyio_backend = both_backends

CARDS = {"a.yaml": b"name: stalled_a\nmodel_family: llama\n", "b.yaml": b"name: stalled_b\n"}
SUB_CARDS = {"c.yaml": b"name: in_sub\n"}
#: gcsfs retries a timed-out request after 1 to 2 s (then 2 to 3 s): 20 s is far past a
#: load that gets over one stalled connection, and far short of for ever.
DEADLINE = 20


@pytest.fixture(autouse=True)
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(options_module, "READ_TIMEOUT", 0.5)
    monkeypatch.setattr(options_module, "CONNECT_TIMEOUT", 0.5)


#: ``{folder: {name: bytes}}`` served by :class:`IndexServer`; a name ending in ``/`` is a
#: folder link
FOLDERS: dict[str, dict[str, bytes]] = {
    "cards": {**CARDS, "sub/": b""},
    "cards/sub": SUB_CARDS,
}


class IndexServer:
    """Card folders with HTML indexes, as http.server serves a folder (``/cards``
    redirects to ``/cards/``)."""

    def __init__(self) -> None:
        #: the next this many listings of ``/cards/sub/`` stall (past the read timeout)
        self.stalled_sub_listings = 0
        app = web.Application()
        app.router.add_get("/{path:.*}", self._get)
        self._app = ThreadedApp(app)

    async def _get(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        if path in FOLDERS:
            raise web.HTTPMovedPermanently(request.path + "/")
        if path.endswith("/") and path[:-1] in FOLDERS:
            if path == "cards/sub/" and self.stalled_sub_listings > 0:
                self.stalled_sub_listings -= 1
                await asyncio.sleep(3)
            links = "".join(f'<a href="{name}">{name}</a>\n' for name in FOLDERS[path[:-1]])
            return web.Response(text=f"<html><body>{links}</body></html>", content_type="text/html")
        folder, _, name = path.rpartition("/")
        data = FOLDERS.get(folder, {}).get(name)
        if data is None or name.endswith("/"):
            raise web.HTTPNotFound()
        return web.Response(body=data, headers={"Content-Length": str(len(data))})

    @property
    def url(self) -> str:
        return self._app.url


@pytest.fixture
def index_server() -> Iterator[IndexServer]:
    server = IndexServer()
    server._app.start()
    try:
        yield server
    finally:
        server._app.stop()


async def _names_within_deadline(url: str, options: dict[str, object] | None) -> set[str]:
    store = AssetStore(
        [FileAssetMetadataProvider(url, storage_options=options or {})], env_resolvers=[]
    )
    try:
        with anyio.fail_after(DEADLINE):
            return set(await store.asset_names())
    finally:
        await store.aclose()


async def test_a_gcs_store_gets_past_a_server_that_never_answers(
    gcs_emulator: str, counting_proxy: Callable[..., CountingProxy]
) -> None:
    bucket = unique_bucket()
    put_gcs_objects(gcs_emulator, bucket, CARDS)
    proxy = counting_proxy(gcs_emulator, stall=1)
    names = await _names_within_deadline(f"gs://{bucket}", gcs_storage_options(proxy.url))
    assert names == {"stalled_a@", "stalled_b@"}
    assert proxy.connections >= 2, "the stalled connection was given up and another made"


async def test_an_http_store_gets_past_a_server_that_never_answers(
    index_server: IndexServer, counting_proxy: Callable[..., CountingProxy]
) -> None:
    proxy = counting_proxy(index_server.url, stall=1)
    names = await _names_within_deadline(f"{proxy.url}/cards/", None)
    assert names == {"stalled_a@", "stalled_b@", "in_sub@"}
    assert proxy.connections >= 2


async def test_a_folder_that_cannot_be_listed_keeps_its_cards(index_server: IndexServer) -> None:
    """fsspec's walk leaves out a folder it cannot list for a timeout or a connection
    error: a refresh during an outage of one folder read as "its cards were deleted". It is
    a failed listing, retried, then a failed refresh that keeps every card."""
    provider = FileAssetMetadataProvider(f"{index_server.url}/cards/")
    store = AssetStore([provider], env_resolvers=[])
    try:
        assert "in_sub@" in await store.asset_names()
        index_server.stalled_sub_listings = 1  # one stall: the retry lists it
        await provider.refresh()
        assert "in_sub@" in await store.asset_names()
        index_server.stalled_sub_listings = 1000  # an outage: the refresh fails
        with pytest.raises(AssetMetadataError, match=r"[Tt]imeout"):
            await provider.refresh()
        assert await store.asset_names() == {"stalled_a@", "stalled_b@", "in_sub@"}
    finally:
        index_server.stalled_sub_listings = 0
        await store.aclose()


async def test_a_gcs_fetch_gets_past_a_server_that_never_answers(
    tmp_path: Path, gcs_emulator: str, counting_proxy: Callable[..., CountingProxy]
) -> None:
    bucket = unique_bucket()
    payload = bytes(range(256)) * 4096
    gcs = fsspec.filesystem("gcs", skip_instance_cache=True, **gcs_storage_options(gcs_emulator))
    gcs.mkdir(bucket)
    gcs.pipe(f"{bucket}/m.bin", payload)
    proxy = counting_proxy(gcs_emulator, stall=1)
    cache = CheckpointCache(tmp_path / "cache")
    with anyio.fail_after(DEADLINE):
        path = await cache.fetch(
            f"gs://{bucket}/m.bin", storage_options=gcs_storage_options(proxy.url), progress=False
        )
    assert path.read_bytes() == payload
    assert proxy.connections >= 2


def test_timeouts_are_added_where_the_client_has_none_and_kept_where_set() -> None:
    import aiohttp

    gcs = with_timeouts("gs", {"token": "anon"})
    assert isinstance(gcs["requests_timeout"], aiohttp.ClientTimeout)
    assert gcs["requests_timeout"].sock_read == options_module.READ_TIMEOUT
    assert with_timeouts("gcs", {"requests_timeout": 5})["requests_timeout"] == 5
    http = with_timeouts("https", {"client_kwargs": {"trust_env": True}})
    assert http["client_kwargs"]["trust_env"] is True
    assert http["client_kwargs"]["timeout"].sock_connect == options_module.CONNECT_TIMEOUT
    own = aiohttp.ClientTimeout(total=3)
    assert (
        with_timeouts("http", {"client_kwargs": {"timeout": own}})["client_kwargs"]["timeout"]
        is own
    )
    # s3fs has botocore's timeouts; memory and file need none.
    assert with_timeouts("s3", {"anon": True}) == {"anon": True}
    assert with_timeouts("memory", {}) == {}
    # A card store's options get them too, after the environment's defaults.
    merged = default_storage_options("gs", {"project": "p"}, 8)
    assert "requests_timeout" in merged and merged["project"] == "p"
