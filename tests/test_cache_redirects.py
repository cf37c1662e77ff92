"""Headers configured for one host (tokens, cookies) are sent only to that host: a
redirect to another host (a CDN) gets the request without them, and the redirect's signed
URL is neither stored nor shown."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)
from servers import ThreadedApp

from asyncassets.cache import CheckpointCache


class Hosts:
    """An origin that redirects every file to a second host (the CDN), both recording the
    headers of every request they see."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen: dict[str, list[dict[str, str]]] = {"origin": [], "cdn": []}
        self.cdn = ThreadedApp(self._cdn_app()).start()
        self.origin = ThreadedApp(self._origin_app()).start()

    def _origin_app(self) -> web.Application:
        async def redirect(request: web.Request) -> web.StreamResponse:
            self.seen["origin"].append(dict(request.headers))
            name = request.match_info["name"]
            raise web.HTTPFound(f"{self.cdn.url}/{name}?X-Amz-Signature=cdnsecret")

        app = web.Application()
        app.router.add_route("*", "/{name}", redirect)
        return app

    def _cdn_app(self) -> web.Application:
        async def serve(request: web.Request) -> web.StreamResponse:
            self.seen["cdn"].append(dict(request.headers))
            return web.FileResponse(self.folder / request.match_info["name"])

        app = web.Application()
        app.router.add_route("*", "/{name}", serve)
        return app

    def stop(self) -> None:
        self.origin.stop()
        self.cdn.stop()


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    served = tmp_path / "served"
    served.mkdir()
    hosts = Hosts(served)
    try:
        yield hosts
    finally:
        hosts.stop()


async def test_configured_headers_never_reach_the_host_a_redirect_names(
    hosts: Hosts, tmp_path: Path
) -> None:
    name = f"m-{uuid.uuid4().hex[:6]}.bin"
    payload = os.urandom(3 * 2**20 + 7)
    (hosts.folder / name).write_bytes(payload)
    cache = CheckpointCache(tmp_path / "cache", part_size=2**20, concurrency=4)
    secret = {"Authorization": "Bearer hf_origin_token", "X-Api-Key": "origin-only"}
    path = await cache.fetch(
        f"{hosts.origin.url}/{name}", storage_options={"headers": secret}, progress=False
    )
    assert path.read_bytes() == payload
    assert hosts.seen["origin"] and hosts.seen["cdn"]
    for headers in hosts.seen["origin"]:
        assert headers.get("Authorization") == "Bearer hf_origin_token"
        assert headers.get("X-Api-Key") == "origin-only"
    for headers in hosts.seen["cdn"]:
        assert "Authorization" not in headers and "X-Api-Key" not in headers
    stored = b"".join(p.read_bytes() for p in cache.root.rglob("*") if p.is_file())
    assert b"cdnsecret" not in stored and b"hf_origin_token" not in stored
