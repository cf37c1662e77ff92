"""The ASGI app through real uvicorn on 127.0.0.1 and a real HTTP client (aiohttp)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from asgi_server import DEADLINE, serving
from servers import Script, ScriptedServer, free_port, scripted_http_server  # noqa: F401

from asyncassets import AssetStore, FileAssetMetadataProvider
from asyncassets.asgi import create_app
from asyncassets.cache import CheckpointCache

CARDS = """\
name: base_model
model_family: llama
model_config:
  dim: 16
---
name: small
base: base_model
model_arch: small
---
name: small@cluster
checkpoint: /data/small.pt
---
name: wiki
dataset_family: text
data: /data/wiki
---
name: tok
tokenizer_family: sp
tokenizer: /data/tok.model
"""


def _store(folder: Path, cache: Path | None = None) -> AssetStore:
    store = AssetStore([FileAssetMetadataProvider(folder)], env_resolvers=[])
    if cache is not None:
        store.cache = CheckpointCache(cache)
    return store


@pytest.fixture
def cards(tmp_path: Path) -> Path:
    folder = tmp_path / "cards"
    folder.mkdir()
    (folder / "models.yaml").write_text(CARDS)
    return folder


@asynccontextmanager
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEADLINE)) as session:
        yield session


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as resp:
        text = await resp.text()
        kind = resp.headers.get("Content-Type", "")
        return resp.status, json.loads(text) if "json" in kind else text


async def _eventually(check: Any, what: str) -> Any:
    with anyio.fail_after(DEADLINE):
        while True:
            result = await check()
            if result:
                return result
            await anyio.sleep(0.05)
    raise AssertionError(what)  # pragma: no cover


# -- JSON API --------------------------------------------------------------------------------


async def test_cards_and_one_card(cards: Path) -> None:
    with serving(create_app(_store(cards), watch=False)) as url:
        async with client() as session:
            status, body = await _get(session, f"{url}/cards")
            assert status == 200 and body["count"] == 4
            rows = {row["name"]: row for row in body["cards"]}
            assert sorted(rows) == ["base_model", "small", "tok", "wiki"]
            assert rows["small"] == {
                "name": "small",
                "kind": "model",
                "family": "llama",
                "source": (cards / "models.yaml").as_uri(),
                "line": None,
            }
            assert {rows[n]["kind"] for n in ("wiki", "tok")} == {"dataset", "tokenizer"}
            status, body = await _get(session, f"{url}/cards?kind=dataset")
            assert [row["name"] for row in body["cards"]] == ["wiki"]
            status, body = await _get(session, f"{url}/cards?kind=bogus")
            assert status == 400 and "bogus" in body["error"]

            status, body = await _get(session, f"{url}/cards/small")
            assert status == 200
            assert body["metadata"]["model_config"] == {"dim": 16}
            assert "checkpoint" not in body["metadata"]
            assert [link["name"] for link in body["chain"]] == ["small", "base_model"]
            assert body["chain"][0]["fields"] == {
                "name": "small",
                "base": "base_model",
                "model_arch": "small",
            }
            status, body = await _get(session, f"{url}/cards/small?env=cluster")
            assert body["metadata"]["checkpoint"] == "/data/small.pt"

            status, body = await _get(session, f"{url}/cards/smal")
            assert status == 404
            assert body["name"] == "smal" and "small" in body["close_matches"]


async def test_problems_name_file_and_line(cards: Path) -> None:
    (cards / "broken.yaml").write_text("name: broken\nmodel_family: [unclosed\n")
    with serving(create_app(_store(cards), watch=False)) as url:
        async with client() as session:
            status, body = await _get(session, f"{url}/problems")
    assert status == 200 and body["count"] == 1
    (problem,) = body["problems"]
    assert problem["file"].endswith("broken.yaml") and isinstance(problem["line"], int)
    assert f"broken.yaml:{problem['line']}: invalid YAML" in problem["text"]


async def test_healthz_and_readyz_flip_only_after_the_prefetch(
    cards: Path,
    tmp_path: Path,
    scripted_http_server: ScriptedServer,  # noqa: F811
) -> None:
    size = 3 * 2**20
    url_of = scripted_http_server.put("ckpt.pt", os.urandom(size), Script(rate=2e6))
    (cards / "big.yaml").write_text(f"name: big\nmodel_family: llama\ncheckpoint: {url_of}\n")
    app = create_app(_store(cards, tmp_path / "cache"), prefetch=["big"], watch=False)
    with serving(app) as url:
        async with client() as session:
            assert (await _get(session, f"{url}/healthz")) == (200, {"status": "ok"})
            seen: list[dict[str, Any]] = []

            async def ready() -> bool:
                status, body = await _get(session, f"{url}/readyz")
                seen.append({"status": status, **body})
                return status == 200

            await _eventually(ready, "readyz never said ready")
    waiting = [s for s in seen if s["status"] == 503]
    assert waiting, "ready before the 3 MiB prefetch at 2 MB/s finished"
    assert all(not s["ready"] for s in waiting)
    assert any(0 < s["prefetch"]["big"]["done"] < size for s in waiting)
    assert all(s["prefetch"]["big"]["state"] in ("pending", "running") for s in waiting)
    final = seen[-1]
    assert final["ready"] and final["prefetch"]["big"] == {
        "state": "done",
        "done": size,
        "total": size,
        "error": None,
    }


async def test_a_failed_prefetch_keeps_readyz_503_and_says_why(
    cards: Path,
    tmp_path: Path,
    scripted_http_server: ScriptedServer,  # noqa: F811
) -> None:
    missing = scripted_http_server.url("missing.pt")
    (cards / "gone.yaml").write_text(f"name: gone\nmodel_family: llama\ncheckpoint: {missing}\n")
    app = create_app(_store(cards, tmp_path / "cache"), prefetch=["gone"], watch=False)
    with serving(app) as url:
        async with client() as session:

            async def failed() -> dict[str, Any] | None:
                status, body = await _get(session, f"{url}/readyz")
                assert status == 503
                return body if body["prefetch"]["gone"]["state"] == "failed" else None

            body = await _eventually(failed, "the prefetch never failed")
    assert "missing.pt" in body["prefetch"]["gone"]["error"]


# -- events ----------------------------------------------------------------------------------


async def _events(
    session: aiohttp.ClientSession, url: str, into: list[dict[str, Any]], opened: anyio.Event
) -> None:
    async with session.get(f"{url}/events", timeout=aiohttp.ClientTimeout(total=None)) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        opened.set()
        kind = None
        async for raw in resp.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: ") and kind == "change":
                into.append(json.loads(line[len("data: ") :]))


@pytest.mark.parametrize("how", ["atomic replace", "in place"])
async def test_events_arrive_after_an_edit(cards: Path, how: str) -> None:
    with serving(create_app(_store(cards))) as url:
        async with client() as session, anyio.create_task_group() as tg:
            received: list[dict[str, Any]] = []
            opened = anyio.Event()
            tg.start_soon(_events, session, url, received, opened)
            await opened.wait()
            await anyio.sleep(0.3)  # the watcher is up (it starts with the app)
            _, body = await _get(session, f"{url}/cards/small")  # its JSON is now cached
            assert body["metadata"]["model_arch"] == "small"
            text = CARDS.replace("model_arch: small", "model_arch: smaller")
            target = cards / "models.yaml"
            if how == "atomic replace":
                (cards / ".models.yaml.tmp").write_text(text)
                os.replace(cards / ".models.yaml.tmp", target)
            else:

                def overwrite() -> None:
                    with open(target, "r+") as handle:  # same inode, rewritten in place
                        handle.write(text)
                        handle.truncate()

                await anyio.to_thread.run_sync(overwrite)

            async def arrived() -> bool:
                return any("small@" in e["modified"] for e in received)

            await _eventually(arrived, "no change event")
            _, body = await _get(session, f"{url}/cards/small")  # not the cached old JSON
            assert body["metadata"]["model_arch"] == "smaller"
            tg.cancel_scope.cancel()
        event = next(e for e in received if "small@" in e["modified"])
        assert set(event) >= {"added", "modified", "removed", "problems", "source", "time"}


async def test_many_subscribers_each_get_every_event(cards: Path) -> None:
    with serving(create_app(_store(cards))) as url:
        async with client() as session, anyio.create_task_group() as tg:
            inboxes: list[list[dict[str, Any]]] = [[] for _ in range(16)]
            for inbox in inboxes:
                opened = anyio.Event()
                tg.start_soon(_events, session, url, inbox, opened)
                await opened.wait()
            await anyio.sleep(0.3)
            (cards / "new.yaml").write_text("name: fresh\nmodel_family: llama\n")

            async def everyone() -> bool:
                return all(any("fresh@" in e["added"] for e in inbox) for inbox in inboxes)

            await _eventually(everyone, "a subscriber missed the event")
            tg.cancel_scope.cancel()


async def test_a_stalled_subscriber_is_dropped_and_never_slows_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncassets.asgi as asgi

    monkeypatch.setattr(asgi, "SUBSCRIBER_QUEUE", 4)
    folder = tmp_path / "cards"
    folder.mkdir()
    # 4,000 cards, all modified by each edit: events of ~90 KB, so that the stalled client's
    # socket buffers (the kernel's: a few MB on loopback) fill after a few dozen events.
    many = "".join(f"---\nname: card_{i:04d}\nmodel_family: llama\nv: 0\n" for i in range(4000))
    (folder / "many.yaml").write_text(many)
    with serving(create_app(_store(folder))) as url:
        host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect((host, port))
        stalled.sendall(f"GET /events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        try:
            async with client() as session, anyio.create_task_group() as tg:
                received: list[dict[str, Any]] = []
                opened = anyio.Event()
                tg.start_soon(_events, session, url, received, opened)
                await opened.wait()

                async def subscribers() -> float:
                    _, text = await _get(session, f"{url}/metrics")
                    return _sample(text, "asyncassets_event_subscribers")

                await _eventually(lambda: _equals(subscribers, 2), "two subscribers")
                await anyio.sleep(0.3)  # the watcher is up
                edits = 0

                async def caught_up() -> bool:
                    return len(received) >= edits

                with anyio.fail_after(3 * DEADLINE):
                    while await subscribers() == 2:
                        edits += 1
                        edited = many.replace("v: 0", f"v: {edits}")
                        await anyio.Path(folder / "many.yaml").write_text(edited)
                        await _eventually(caught_up, "the live subscriber fell behind")
                # The stalled one was dropped; the live one got every event all along.
                assert len(received) == edits
                tg.cancel_scope.cancel()
        finally:
            stalled.close()
    assert edits > asgi.SUBSCRIBER_QUEUE
    assert all(len(event["modified"]) == 4000 for event in received)


async def _equals(value: Any, expected: float) -> bool:
    return bool((await value() if callable(value) else await value) == expected)


def _sample(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and (labels is None or sample.labels == labels):
                return float(sample.value)
    raise AssertionError(f"no sample {name} {labels or ''}")


# -- metrics ---------------------------------------------------------------------------------


async def test_metrics_parse_and_count(
    cards: Path,
    tmp_path: Path,
    scripted_http_server: ScriptedServer,  # noqa: F811
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    size = 2**20
    ckpt = scripted_http_server.put("m.pt", os.urandom(size))
    (cards / "m.yaml").write_text(f"name: m\nmodel_family: llama\ncheckpoint: {ckpt}\n")
    (cards / "bad.yaml").write_text("name: [\n")
    app = create_app(_store(cards, tmp_path / "cache"), prefetch=["m"])
    with serving(app) as url:
        async with client() as session:

            async def ready() -> bool:
                return (await _get(session, f"{url}/readyz"))[0] == 200

            await _eventually(ready, "never ready")
            await anyio.sleep(0.3)
            (cards / "extra.yaml").write_text("name: extra\nmodel_family: llama\n")

            async def reloaded() -> str | None:
                status, text = await _get(session, f"{url}/metrics")
                assert status == 200
                return text if _sample(text, "asyncassets_reloads_total") >= 1 else None

            text = await _eventually(reloaded, "no reload counted")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"asyncassets_cards", "asyncassets_problems", "asyncassets_reloads"} <= set(families)
    assert _sample(text, "asyncassets_cards") == 6  # 4 + m + extra; bad.yaml holds none
    assert _sample(text, "asyncassets_problems") == 1
    assert _sample(text, "asyncassets_cache_misses_total") == 1
    assert _sample(text, "asyncassets_cache_bytes_downloaded_total") == size
    assert _sample(text, "asyncassets_prefetch_bytes", {"card": "m"}) == size
    assert _sample(text, "asyncassets_prefetch_done", {"card": "m"}) == 1
    assert _sample(text, "asyncassets_ready") == 1
    assert _sample(text, "asyncassets_reload_latency_seconds_count") >= 1
    assert _sample(text, "asyncassets_load_seconds_count") == 1


async def test_the_page_and_its_files_are_served_by_the_app(cards: Path) -> None:
    with serving(create_app(_store(cards), watch=False)) as url:
        async with client() as session:
            status, html = await _get(session, f"{url}/")
            assert status == 200 and "<title>asyncassets</title>" in html
            assert 'src="web/app.js"' in html and "http" not in html.split("<body>")[0]
            for name, kind in (("app.js", "javascript"), ("app.css", "css")):
                async with session.get(f"{url}/web/{name}") as resp:
                    assert resp.status == 200 and kind in resp.headers["Content-Type"]
                    assert "https://" not in await resp.text()  # nothing from a CDN


# -- embedding and the command line -----------------------------------------------------------


async def test_mounted_in_a_starlette_app_with_its_lifespan(cards: Path) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    inner = create_app(_store(cards), watch=False)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with inner.router.lifespan_context(inner):
            yield

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("host app")

    outer = Starlette(routes=[Route("/", home), Mount("/assets", inner)], lifespan=lifespan)
    with serving(outer) as url:
        async with client() as session:
            assert (await _get(session, f"{url}/"))[1] == "host app"

            async def ready() -> bool:
                return (await _get(session, f"{url}/assets/readyz"))[0] == 200

            await _eventually(ready, "the mounted app never got ready")
            status, body = await _get(session, f"{url}/assets/cards/small")
            assert status == 200 and body["name"] == "small"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_a_signal(cards: Path, tmp_path: Path, sig: int) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "asyncassets",
            "--store",
            str(cards),
            "--cache-dir",
            str(tmp_path / "c"),
            "serve",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        import urllib.request

        deadline = time.monotonic() + DEADLINE
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "serve never got ready"
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/cards", timeout=5) as r:
            assert json.loads(r.read())["count"] == 4
        # A browser tab left open: its /events stream must not hold the shutdown.
        tab = socket.create_connection(("127.0.0.1", port))
        tab.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        assert tab.recv(1024).startswith(b"HTTP/1.1 200")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=DEADLINE)
        tab.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
