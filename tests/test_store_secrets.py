"""A card store addressed with a password (``https://user:pass@host/cards/``) never shows it:
not in ``card.source``, problems, ``list --json``, ``check``, errors or log lines. The
password still reaches the store's own host, as HTTP basic auth."""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from servers import ThreadedApp

from asyncassets import AssetStore, FileAssetMetadataProvider
from asyncassets.cli import main as cli_main

USER, PASSWORD = "reader", "s3cret-Pa55"
FILES = {
    "models.yaml": b"name: small\nmodel_family: llama\ncheckpoint: ../ckpt/small.pt\n",
    "broken.yaml": b"name: broken\nx: [unclosed\n",
}


class CardServer:
    """Card files behind HTTP basic auth, with an HTML index as http.server makes one."""

    def __init__(self) -> None:
        self.authorized: list[bool] = []
        app = web.Application()
        app.router.add_get("/cards", self._redirect)  # as http.server and nginx do
        app.router.add_get("/cards/", self._index)
        app.router.add_get("/cards/{name}", self._file)
        self._app = ThreadedApp(app)

    def _check(self, request: web.Request) -> None:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        ok = request.headers.get("Authorization") == expected
        self.authorized.append(ok)
        if not ok:
            raise web.HTTPUnauthorized()

    async def _redirect(self, request: web.Request) -> web.Response:
        self._check(request)
        raise web.HTTPMovedPermanently("/cards/")

    async def _index(self, request: web.Request) -> web.Response:
        self._check(request)
        links = "".join(f'<a href="{name}">{name}</a>\n' for name in FILES)
        return web.Response(text=f"<html><body>{links}</body></html>", content_type="text/html")

    async def _file(self, request: web.Request) -> web.Response:
        self._check(request)
        data = FILES.get(request.match_info["name"])
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, headers={"Content-Length": str(len(data))})

    @property
    def url(self) -> str:
        host = self._app.url.removeprefix("http://")
        return f"http://{USER}:{PASSWORD}@{host}/cards/"

    def __enter__(self) -> CardServer:
        self._app.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._app.stop()


@pytest.fixture
def card_server() -> Iterator[CardServer]:
    with CardServer() as server:
        yield server


def _no_secret(text: str) -> None:
    assert PASSWORD not in text
    assert f"{USER}:" not in text
    assert "http://http" not in text and "https://https" not in text


async def test_sources_problems_and_logs_carry_no_password(
    card_server: CardServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncassets")
    provider = FileAssetMetadataProvider(card_server.url)
    store = AssetStore([provider], env_resolvers=[])
    card = await store.retrieve_card("small")
    assert card.field("model_family").value == "llama"
    assert all(card_server.authorized), "the password reached the store's host"
    assert card.source.startswith("http://127.0.0.1:") and card.source.endswith(
        "/cards/models.yaml"
    )
    _no_secret(card.source)
    _no_secret(provider.source)
    _no_secret(str(card.field("checkpoint").as_uri()))
    problems = await store.check()
    assert any("unclosed" in p.message or "flow" in p.message for p in problems)
    for problem in problems:
        _no_secret(json.dumps(problem.to_dict()))
    _no_secret(caplog.text)
    await store.aclose()


def test_list_and_check_print_no_password(
    card_server: CardServer, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_main(["--store", card_server.url, "list", "--json"])
    out, err = capsys.readouterr()
    assert "small" in out
    _no_secret(out + err)
    assert cli_main(["--store", card_server.url, "check"]) == 1
    out, err = capsys.readouterr()
    assert "broken.yaml" in out + err
    _no_secret(out + err)


def test_an_unreachable_store_with_a_password_says_so_without_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:9/cards/"  # nothing listens on port 9
    code = cli_main(["--store", url, "list"])
    out, err = capsys.readouterr()
    assert code != 0
    _no_secret(out + err)
    assert os.fspath(tmp_path)  # the store is remote: nothing was written locally


@pytest.mark.parametrize(
    ("uri", "same"),
    [
        ("s3://cards-bucket/ckpt/m.pt", True),
        ("s3://other-bucket/ckpt/m.pt", False),
        ("https://cards.example.com/m.pt", True),
        ("https://cards.example.com:443/m.pt", False),  # another port is another origin
        ("https://evil.example?@cards.example.com/x", False),  # the client reads evil.example
        ("https://evil.example#@cards.example.com/x", False),
        ("https://cards.example.com.evil.example/x", False),
        ("https://user:pw@cards.example.com/m.pt", True),
        ("http://cards.example.com/m.pt", False),  # another scheme
        ("https://[::1/x", False),  # unparsable
    ],
)
def test_a_stores_options_go_only_to_its_own_origin(uri: str, same: bool) -> None:
    from asyncassets.planning import _same_bucket

    source = "s3://cards-bucket/cards" if uri.startswith("s3") else "https://cards.example.com/c"
    assert _same_bucket(source, uri) is same


async def test_an_http_store_with_a_query_token_says_why_it_lists_nothing(
    card_server: CardServer,
) -> None:
    from asyncassets.errors import AssetMetadataError

    url = card_server.url + "?token=abc123secret"
    store = AssetStore([FileAssetMetadataProvider(url)], env_resolvers=[])
    with pytest.raises(AssetMetadataError) as info:
        await store.retrieve_card("small")
    message = str(info.value)
    assert "query string" in message and "header" in message
    assert "abc123secret" not in message
    _no_secret(message)
    await store.aclose()
