"""The live page (``GET /``) in a real headless Chromium (Debian's), against the real app
under uvicorn: the cards render, the filter narrows them, a card opens resolved with its
base chain, and edits on disk show up without a reload."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgi_server import serving
from chromium import browser, page  # noqa: F401

from asyncassets import AssetStore, FileAssetMetadataProvider
from asyncassets.asgi import create_app

WAIT_MS = 20_000

CARDS = """\
name: llama_base
model_family: llama
model_config:
  dim: 4096
  n_layers: 32
---
name: llama3_8b
base: llama_base
model_arch: llama3_8b
checkpoint: /models/llama3_8b.pt
---
name: llama3_8b_instruct
base: llama3_8b
model_config:
  _set_:
    vocab_size: 128256
---
name: wiki_en
dataset_family: jsonl
data: /data/wiki
---
name: llama3_tokenizer
tokenizer_family: tiktoken
tokenizer: /models/tokenizer.model
"""


@pytest.fixture
def cards(tmp_path: Path) -> Path:
    folder = tmp_path / "cards"
    folder.mkdir()
    (folder / "models.yaml").write_text(CARDS)
    return folder


@pytest.fixture
def site(cards: Path) -> Iterator[str]:
    """The app on the cards. Tests ask for it before ``page``, so that the tab (and its
    /events stream) closes before the server stops."""
    store = AssetStore([FileAssetMetadataProvider(cards)], env_resolvers=[])
    with serving(create_app(store)) as url:
        yield url


def _names(page: Any) -> list[str]:  # noqa: F811
    return page.eval_on_selector_all("#cards tbody tr", "rows => rows.map(row => row.dataset.name)")


def _open(page: Any, url: str) -> None:  # noqa: F811
    page.goto(url + "/")
    page.wait_for_selector('#cards tbody tr[data-name="llama3_8b"]', timeout=WAIT_MS)
    page.wait_for_function(
        "() => document.getElementById('live').textContent === 'live'", timeout=WAIT_MS
    )


def test_the_cards_render_with_kind_family_and_source(site: str, page: Any) -> None:  # noqa: F811
    _open(page, site)
    assert _names(page) == [
        "llama3_8b",
        "llama3_8b_instruct",
        "llama3_tokenizer",
        "llama_base",
        "wiki_en",
    ]
    row = page.locator('#cards tbody tr[data-name="wiki_en"] td')
    assert row.all_text_contents()[1:3] == ["dataset", "jsonl"]
    assert row.nth(3).text_content().endswith("cards/models.yaml")
    page.wait_for_function(
        "() => document.getElementById('ready').textContent === 'ready'", timeout=WAIT_MS
    )


def test_the_filter_and_the_kind_narrow_the_rows(site: str, page: Any) -> None:  # noqa: F811
    _open(page, site)
    page.fill("#filter", "instruct")
    assert _names(page) == ["llama3_8b_instruct"]
    page.fill("#filter", "llama")
    page.select_option("#kind", "tokenizer")
    assert _names(page) == ["llama3_tokenizer"]
    page.fill("#filter", "no such card")
    page.select_option("#kind", "")
    assert _names(page) == []
    assert page.is_visible("#empty")


def test_a_card_opens_resolved_with_its_base_chain(site: str, page: Any) -> None:  # noqa: F811
    _open(page, site)
    page.click('#cards tbody tr[data-name="llama3_8b_instruct"]')
    page.wait_for_selector('#detail[data-name="llama3_8b_instruct"]', timeout=WAIT_MS)
    chain = page.eval_on_selector_all(
        "#detail ol.chain > li", "items => items.map(item => item.dataset.name)"
    )
    assert chain == ["llama3_8b_instruct", "llama3_8b", "llama_base"]
    resolved = page.text_content("#detail pre")
    # The _set_ override is the card's own field; the merged config is card.config's job.
    assert '"checkpoint": "/models/llama3_8b.pt"' in resolved
    assert '"model_family": "llama"' in resolved


def test_a_card_added_on_disk_appears_without_a_reload(
    site: str,
    page: Any,  # noqa: F811
    cards: Path,
) -> None:
    _open(page, site)
    page.evaluate("window.__same_document = true")
    (cards / "more.yaml").write_text("name: mistral_7b\nmodel_family: mistral\n")
    page.wait_for_selector('#cards tbody tr[data-name="mistral_7b"]', timeout=WAIT_MS)
    assert page.evaluate("window.__same_document") is True  # no navigation happened


def test_a_broken_edit_shows_its_problem_and_the_other_cards_stay(
    site: str,
    page: Any,  # noqa: F811
    cards: Path,
) -> None:
    _open(page, site)
    (cards / "broken.yaml").write_text("name: broken\nmodel_family: [unclosed\n")
    page.wait_for_selector("#problems li", timeout=WAIT_MS)
    problem = page.text_content("#problems li")
    assert "broken.yaml:2" in problem or "broken.yaml:3" in problem
    assert page.text_content("#problem-count") == "1"
    assert len(_names(page)) == 5
    # A fix clears it, live too.
    (cards / "broken.yaml").write_text("name: fixed\nmodel_family: llama\n")
    page.wait_for_selector('#cards tbody tr[data-name="fixed"]', timeout=WAIT_MS)
    page.wait_for_function(
        "() => document.querySelectorAll('#problems li').length === 0", timeout=WAIT_MS
    )
    if os.environ.get("ASYNCASSETS_SCREENSHOT"):
        page.click('#cards tbody tr[data-name="llama3_8b_instruct"]')
        page.wait_for_selector('#detail[data-name="llama3_8b_instruct"]', timeout=WAIT_MS)
        (cards / "broken.yaml").write_text("name: fixed\nmodel_family: [oops\n")
        page.wait_for_selector("#problems li", timeout=WAIT_MS)
        page.screenshot(path=os.environ["ASYNCASSETS_SCREENSHOT"])
