"""The ASGI app against untrusted clients, under a real uvicorn: DNS rebinding, sniffing,
framing, and memory that a query string could grow."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from asgi_server import DEADLINE, serving

from asyncassets import AssetStore, FileAssetMetadataProvider
from asyncassets.asgi import create_app
from asyncassets.cli import make_parser

CARDS = """\
name: small
model_family: llama
---
name: small@cluster
checkpoint: /data/small.pt
"""


@pytest.fixture
def cards(tmp_path: Path) -> Path:
    folder = tmp_path / "cards"
    folder.mkdir()
    (folder / "models.yaml").write_text(CARDS)
    return folder


def _store(folder: Path) -> AssetStore:
    return AssetStore([FileAssetMetadataProvider(folder)], env_resolvers=[])


async def _status(url: str, host: str | None = None) -> tuple[int, dict[str, str]]:
    headers = {"Host": host} if host is not None else {}
    timeout = aiohttp.ClientTimeout(total=DEADLINE)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, headers=headers) as resp,
    ):
        await resp.read()
        return resp.status, dict(resp.headers)


async def test_a_rebound_host_name_is_refused(cards: Path) -> None:
    with serving(create_app(_store(cards), watch=False)) as url:
        port = url.rsplit(":", 1)[1]
        assert (await _status(f"{url}/cards/small"))[0] == 200  # Host: 127.0.0.1:PORT
        assert (await _status(f"{url}/cards/small", f"localhost:{port}"))[0] == 200
        for evil in (f"attacker.example:{port}", "attacker.example", "127.0.0.1.nip.io"):
            status, _ = await _status(f"{url}/cards/small", evil)
            assert status == 400, evil
        assert (await _status(f"{url}/", "attacker.example"))[0] == 400
        assert (await _status(f"{url}/events", "attacker.example"))[0] == 400


async def test_allowed_hosts_are_a_setting(cards: Path) -> None:
    app = create_app(_store(cards), watch=False, allowed_hosts=["cards.example", "*.corp"])
    with serving(app) as url:
        assert (await _status(f"{url}/cards/small", "cards.example"))[0] == 200
        assert (await _status(f"{url}/cards/small", "a.b.corp:8000"))[0] == 200
        assert (await _status(f"{url}/cards/small", "127.0.0.1"))[0] == 400
    with serving(create_app(_store(cards), watch=False, allowed_hosts=["*"])) as url:
        assert (await _status(f"{url}/cards/small", "anything.example"))[0] == 200


def test_serve_allows_its_own_host_and_what_it_is_told() -> None:
    args = make_parser().parse_args(["serve", "--allowed-host", "cards.example"])
    assert args.allowed_host == ["cards.example"]
    assert make_parser().parse_args(["serve"]).allowed_host is None


async def test_every_response_says_nosniff_and_the_page_forbids_foreign_content(
    cards: Path,
) -> None:
    with serving(create_app(_store(cards), watch=False)) as url:
        for path in ("/", "/cards", "/cards/small", "/problems", "/healthz", "/web/app.js"):
            status, headers = await _status(f"{url}{path}")
            assert status == 200, path
            assert headers["X-Content-Type-Options"] == "nosniff", path
        _, headers = await _status(f"{url}/")
        policy = headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "object-src 'none'" in policy


async def test_envs_no_card_defines_are_not_remembered(cards: Path) -> None:
    store = _store(cards)
    with serving(create_app(store, watch=False)) as url:
        timeout = aiohttp.ClientTimeout(total=DEADLINE)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for i in range(300):
                async with session.get(f"{url}/cards/small?env=fresh{i}") as resp:
                    assert resp.status == 200
                    assert (await resp.json())["metadata"]["model_family"] == "llama"
            async with session.get(f"{url}/cards/small?env=cluster") as resp:
                assert (await resp.json())["metadata"]["checkpoint"] == "/data/small.pt"
            async with session.get(f"{url}/cards?env=fresh-list") as resp:
                assert resp.status == 200
    # What the store remembers does not grow with the envs asked for.
    assert len(store._resolved) <= 3
    assert len(store._by_envs) <= 3


async def test_a_store_remembers_the_envs_cards_define(cards: Path) -> None:
    store = _store(cards)
    first = await store.retrieve_card("small@cluster")
    assert await store.retrieve_card("small@cluster") is first  # remembered
    assert (await store.retrieve_card("small")).field("model_family").value == "llama"
    for i in range(100):
        await store.retrieve_card(f"small@nowhere{i}")
    assert "small@nowhere0" not in store._resolved
    assert len(store._resolved) == 2
