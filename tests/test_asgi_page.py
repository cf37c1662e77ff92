"""The live page in Debian's headless Chromium against the real app under uvicorn, beyond
``test_live_page.py``: a card file edited into invalid YAML (its last good cards stay, its
problem shows, a fix clears it), the open card re-resolved when its base changes on disk,
changed rows highlighted, a removed open card, card data shown as text and never as markup,
a failed prefetch on the readiness badge, and the live badge across a server restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgi_server import serving
from chromium import browser, page  # noqa: F401
from servers import free_port

from asyncassets import AssetStore, FileAssetMetadataProvider
from asyncassets.asgi import create_app
from asyncassets.cache import CheckpointCache

WAIT_MS = 20_000

MODELS = """\
name: llama_base
model_family: llama
model_config:
  dim: 4096
---
name: llama3_8b
base: llama_base
checkpoint: /models/llama3_8b.pt
"""

DATA = """\
name: wiki_en
dataset_family: jsonl
data: /data/wiki
---
name: llama3_tokenizer
tokenizer_family: tiktoken
tokenizer: /models/tokenizer.model
"""

ALL = ["llama3_8b", "llama3_tokenizer", "llama_base", "wiki_en"]


def _store(folder: Path) -> AssetStore:
    return AssetStore([FileAssetMetadataProvider(folder)], env_resolvers=[])


@pytest.fixture
def cards(tmp_path: Path) -> Path:
    folder = tmp_path / "cards"
    folder.mkdir()
    (folder / "models.yaml").write_text(MODELS)
    (folder / "data.yaml").write_text(DATA)
    return folder


@pytest.fixture
def site(cards: Path) -> Iterator[str]:
    """The app on ``cards``; asked for before ``page`` so that the tab closes first."""
    with serving(create_app(_store(cards))) as url:
        yield url


def _names(tab: Any) -> list[str]:
    names: list[str] = tab.eval_on_selector_all(
        "#cards tbody tr", "rows => rows.map(row => row.dataset.name)"
    )
    return names


def _open(tab: Any, url: str) -> None:
    tab.goto(url + "/")
    tab.wait_for_selector('#cards tbody tr[data-name="llama3_8b"]', timeout=WAIT_MS)
    _wait_text(tab, "#live", "live")


def _wait_text(tab: Any, selector: str, text: str) -> None:
    tab.wait_for_function(
        "([selector, text]) => document.querySelector(selector).textContent === text",
        arg=[selector, text],
        timeout=WAIT_MS,
    )


def _wait_names(tab: Any, names: list[str]) -> None:
    tab.wait_for_function(
        """names => JSON.stringify([...document.querySelectorAll('#cards tbody tr')]
                     .map(row => row.dataset.name)) === JSON.stringify(names)""",
        arg=names,
        timeout=WAIT_MS,
    )


def _select(tab: Any, name: str) -> None:
    tab.click(f'#cards tbody tr[data-name="{name}"]')
    tab.wait_for_selector(f'#detail[data-name="{name}"][data-state="resolved"]', timeout=WAIT_MS)


# Records the names of the rows that were put into the table highlighted (the highlight
# fades within a second, so it is caught as the rows are inserted).
RECORD_FLASHES = """() => {
  window.__flashed = [];
  new MutationObserver((records) => {
    for (const record of records)
      for (const node of record.addedNodes)
        if (node.classList && node.classList.contains('flash'))
          window.__flashed.push(node.dataset.name);
  }).observe(document.querySelector('#cards tbody'), { childList: true });
}"""


def test_a_card_file_edited_into_invalid_yaml(site: str, page: Any, cards: Path) -> None:  # noqa: F811
    _open(page, site)
    page.evaluate("window.__same_document = true")
    assert page.text_content("#problem-count") == "0"
    (cards / "models.yaml").write_text(MODELS.replace("dim: 4096", "dim: [4096"))
    page.wait_for_selector("#problems li", timeout=WAIT_MS)
    problems = page.eval_on_selector_all("#problems li", "items => items.map(i => i.textContent)")
    assert len(problems) == 1
    assert "models.yaml:" in problems[0] and "invalid YAML" in problems[0]
    assert page.text_content("#problem-count") == "1"
    assert "bad" in page.get_attribute("#problem-count", "class")
    # Every card stays: the other file's, and the broken file's last good ones.
    assert _names(page) == ALL
    _select(page, "llama3_8b")
    assert '"dim": 4096' in page.text_content("#detail pre")
    # The fix clears the problem and its new content shows.
    (cards / "models.yaml").write_text(MODELS.replace("dim: 4096", "dim: 8192"))
    page.wait_for_function(
        "() => document.querySelectorAll('#problems li').length === 0", timeout=WAIT_MS
    )
    _wait_text(page, "#problem-count", "0")
    page.wait_for_function(
        "() => document.querySelector('#detail pre').textContent.includes('\"dim\": 8192')",
        timeout=WAIT_MS,
    )
    assert page.evaluate("window.__same_document") is True  # all of it without a reload


def test_the_open_card_follows_an_edit_of_its_base(site: str, page: Any, cards: Path) -> None:  # noqa: F811
    _open(page, site)
    _select(page, "llama3_8b")
    chain = page.eval_on_selector_all(
        "#detail ol.chain > li", "items => items.map(item => item.dataset.name)"
    )
    assert chain == ["llama3_8b", "llama_base"]
    assert '"model_family": "llama"' in page.text_content("#detail pre")
    page.evaluate(RECORD_FLASHES)
    (cards / "models.yaml").write_text(MODELS.replace("model_family: llama", "model_family: qwen"))
    # The resolved fields follow (the card itself did not change, its base did) ...
    page.wait_for_function(
        "() => document.querySelector('#detail pre')"
        '.textContent.includes(\'"model_family": "qwen"\')',
        timeout=WAIT_MS,
    )
    # ... and so does the base's own fields in the chain, and the table's family column.
    base = page.text_content('#detail ol.chain > li[data-name="llama_base"] pre')
    assert '"model_family": "qwen"' in base
    _wait_text(page, '#cards tbody tr[data-name="llama_base"] td:nth-child(3)', "qwen")
    assert "llama_base" in page.evaluate("window.__flashed")
    assert "wiki_en" not in page.evaluate("window.__flashed")  # only changed rows light up
    assert page.get_attribute('#cards tbody tr[data-name="llama3_8b"]', "class") == "selected"


def test_an_added_card_is_highlighted(site: str, page: Any, cards: Path) -> None:  # noqa: F811
    _open(page, site)
    page.evaluate(RECORD_FLASHES)
    (cards / "more.yaml").write_text("name: mistral_7b\nmodel_family: mistral\n")
    page.wait_for_selector('#cards tbody tr[data-name="mistral_7b"]', timeout=WAIT_MS)
    assert page.evaluate("window.__flashed") == ["mistral_7b"]
    _wait_text(page, "#count", "5 of 5 cards")


def test_a_removed_open_card_says_it_is_gone(site: str, page: Any, cards: Path) -> None:  # noqa: F811
    _open(page, site)
    _select(page, "wiki_en")
    (cards / "data.yaml").write_text(DATA.split("---\n")[1])  # wiki_en removed
    page.wait_for_selector('#detail[data-name="wiki_en"][data-state="missing"]', timeout=WAIT_MS)
    # The 404's error says which card (the app's wording is its own).
    assert "'wiki_en'" in page.text_content("#detail .error")
    assert _names(page) == ["llama3_8b", "llama3_tokenizer", "llama_base"]


def test_the_filter_matches_family_kind_and_file(site: str, page: Any) -> None:  # noqa: F811
    _open(page, site)
    page.fill("#filter", "tiktoken")
    assert _names(page) == ["llama3_tokenizer"]
    page.fill("#filter", "dataset")
    assert _names(page) == ["wiki_en"]
    page.fill("#filter", "models.yaml")
    assert _names(page) == ["llama3_8b", "llama_base"]
    page.fill("#filter", "LLAMA BASE")  # case-insensitive; every word must match
    assert _names(page) == ["llama_base"]
    assert page.text_content("#count") == "1 of 4 cards"
    page.fill("#filter", "")
    page.select_option("#kind", "model")
    assert _names(page) == ["llama3_8b", "llama_base"]
    assert not page.is_visible("#empty")


MARKUP = '<img src=x onerror="window.__injected=1">'


def test_card_data_is_shown_as_text_never_as_markup(tmp_path: Path, page: Any) -> None:  # noqa: F811
    folder = tmp_path / "cards"
    folder.mkdir()
    (folder / "odd.yaml").write_text(
        f"name: odd\nmodel_family: '{MARKUP}'\nnote: '<script>window.__injected=2</script>'\n"
    )
    # A problem whose text carries markup too: the file's name is in it.
    (folder / "<b onmouseover=x>bad.yaml").write_text("name: bad\nfield: [unclosed\n")
    with serving(create_app(_store(folder))) as url:
        page.goto(url + "/")
        page.wait_for_selector('#cards tbody tr[data-name="odd"]', timeout=WAIT_MS)
        page.wait_for_selector("#problems li", timeout=WAIT_MS)
        _select(page, "odd")
        assert page.text_content('#cards tbody tr[data-name="odd"] td:nth-child(3)') == MARKUP
        assert "<b onmouseover=x>bad.yaml" in page.text_content("#problems li")
        assert "<script>window.__injected=2</script>" in page.text_content("#detail pre")
        assert (
            page.eval_on_selector_all("main img, main script, main b", "nodes => nodes.length") == 0
        )
        assert page.evaluate("window.__injected") is None
        page.close()  # before the server stops (its /events stream)


def test_a_failed_prefetch_shows_on_the_readiness_badge(tmp_path: Path, page: Any) -> None:  # noqa: F811
    folder = tmp_path / "cards"
    folder.mkdir()
    missing = tmp_path / "nowhere" / "gone.pt"
    (folder / "gone.yaml").write_text(f"name: gone\nmodel_family: llama\ncheckpoint: {missing}\n")
    store = _store(folder)
    store.cache = CheckpointCache(tmp_path / "cache")
    with serving(create_app(store, prefetch=["gone"], watch=False)) as url:
        page.goto(url + "/")
        _wait_text(page, "#ready", "prefetch failed")
        assert page.get_attribute("#ready", "class") == "badge bad"
        page.wait_for_selector('#cards tbody tr[data-name="gone"]', timeout=WAIT_MS)
        page.close()


def test_the_live_badge_follows_a_server_restart(tmp_path: Path, cards: Path, page: Any) -> None:  # noqa: F811
    port = free_port()
    with serving(create_app(_store(cards)), port=port) as url:
        _open(page, url)
        page.evaluate("window.__same_document = true")
        _wait_text(page, "#ready", "ready")
    _wait_text(page, "#live", "reconnecting…")
    assert page.get_attribute("#live", "class") == "badge off"
    # The same address comes back serving other cards: the tab reconnects by itself and
    # shows them (EventSource's reconnection, the page's reload of everything on open).
    other = tmp_path / "other"
    other.mkdir()
    (other / "new.yaml").write_text("name: after_restart\ntokenizer_family: sp\n")
    with serving(create_app(_store(other)), port=port):
        _wait_names(page, ["after_restart"])
        _wait_text(page, "#live", "live")
        _wait_text(page, "#ready", "ready")
        assert page.evaluate("window.__same_document") is True
        page.close()
