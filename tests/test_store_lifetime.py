"""Races and lifetime: however callers interleave, the store serves every loaded provider's
cards, strict stores refuse every caller, cancellation never poisons a load, and nothing
but an AssetError leaves the store. Runs on asyncio and trio (but the subprocess tests,
which use asyncio.run by nature)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from conftest import both_backends as anyio_backend  # noqa: F401  (runs on asyncio and trio)
from conftest import put_s3_objects, unique_bucket
from loop_lag import loop_gaps

from asyncassets import (
    AssetError,
    AssetMetadataError,
    AssetStore,
    FileAssetMetadataProvider,
    InMemoryAssetMetadataProvider,
)
from asyncassets.providers.base import SnapshotProvider
from asyncassets.snapshot import FileRecord

# -- helpers -------------------------------------------------------------------------------


class GatedProvider(InMemoryAssetMetadataProvider):
    """In-memory cards whose load waits until the test opens the gate: a load in flight
    the test can hold (no I/O is faked; the cards are real)."""

    def __init__(self, cards: list[dict[str, Any]], *, source: str) -> None:
        super().__init__(cards, source=source)
        self.started = anyio.Event()
        self.gate = anyio.Event()
        self.loads = 0

    async def _read_all(self) -> list[FileRecord]:
        self.loads += 1
        self.started.set()
        await self.gate.wait()
        return await super()._read_all()

    def reset(self) -> None:
        self.started, self.gate = anyio.Event(), anyio.Event()


class FailingProvider(SnapshotProvider):
    """A provider of someone else's making whose reads raise a plain exception."""

    def __init__(self, exc: Exception) -> None:
        super().__init__("custom://broken")
        self.exc = exc

    async def _read_all(self) -> list[FileRecord]:
        raise self.exc


class ClosingProvider(InMemoryAssetMetadataProvider):
    """Counts aclose calls; optionally fails them."""

    def __init__(self, source: str, *, fail: bool = False) -> None:
        super().__init__([{"name": source}], source=source)
        self.fail = fail
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1
        if self.fail:
            raise RuntimeError(f"{self.source} refuses to close")


def card(name: str) -> dict[str, Any]:
    return {"name": name, "model_family": "toy"}


async def load_held(store: AssetStore, gated: GatedProvider, tg: Any) -> None:
    """Start a first call in ``tg`` and return once its load is in flight."""
    tg.start_soon(store.load)
    await gated.started.wait()


# -- providers changed while a load is in flight -------------------------------------------


ListChange = Callable[[AssetStore, InMemoryAssetMetadataProvider], None]


def plus_equals(store: AssetStore, provider: InMemoryAssetMetadataProvider) -> None:
    store.metadata_providers += [provider]  # the getter, list.__iadd__, then the setter


def user_plus_equals(store: AssetStore, provider: InMemoryAssetMetadataProvider) -> None:
    store.user_metadata_providers += [provider]


CHANGES: dict[str, ListChange] = {
    "append": lambda s, p: s.metadata_providers.append(p),
    "insert": lambda s, p: s.metadata_providers.insert(0, p),
    "extend": lambda s, p: s.metadata_providers.extend([p]),
    "iadd": lambda s, p: s.metadata_providers.__iadd__([p]),
    "plus_equals": plus_equals,
    "user_plus_equals": user_plus_equals,
    "setitem_slice": lambda s, p: s.metadata_providers.__setitem__(
        slice(len(s.metadata_providers), None), [p]
    ),
    "assign_list": lambda s, p: setattr(s, "metadata_providers", [*s.metadata_providers, p]),
    "user_append": lambda s, p: s.user_metadata_providers.append(p),
    "assign_user_list": lambda s, p: setattr(s, "user_metadata_providers", [p]),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
async def test_provider_added_during_a_load_is_served_by_the_next_call(change: ListChange) -> None:
    gated = GatedProvider([card("old")], source="memory:gated")
    store = AssetStore([gated])
    async with anyio.create_task_group() as tg:
        await load_held(store, gated, tg)
        change(store, InMemoryAssetMetadataProvider([card("new")], source="memory:new"))
        gated.gate.set()
    assert (await store.retrieve_card("new")).name == "new"
    assert (await store.retrieve_card("old")).name == "old"


async def test_a_call_made_during_a_load_waits_for_the_provider_added_meanwhile() -> None:
    gated = GatedProvider([card("old")], source="memory:gated")
    store = AssetStore([gated])
    found: list[str] = []
    async with anyio.create_task_group() as tg:
        await load_held(store, gated, tg)
        store.metadata_providers.append(
            InMemoryAssetMetadataProvider([card("new")], source="memory:new")
        )

        async def ask() -> None:
            found.append((await store.retrieve_card("new")).name)

        tg.start_soon(ask)
        await anyio.sleep(0.01)
        gated.gate.set()
    assert found == ["new"]


async def test_the_index_never_misses_a_provider_that_is_still_loading() -> None:
    first = InMemoryAssetMetadataProvider([card("first")], source="memory:first")
    store = AssetStore([first])
    await store.load()
    slow = GatedProvider([card("slow")], source="memory:slow")
    store.metadata_providers.append(slow)
    async with anyio.create_task_group() as tg:
        results: list[str] = []

        async def ask() -> None:
            results.append((await store.retrieve_card("slow")).name)

        tg.start_soon(ask)
        await slow.started.wait()
        assert results == []  # the call waits for the provider instead of missing its cards
        slow.gate.set()
    assert results == ["slow"]


Removal = Callable[[AssetStore, InMemoryAssetMetadataProvider], None]


def del_item(store: AssetStore, provider: InMemoryAssetMetadataProvider) -> None:
    del store.metadata_providers[store.metadata_providers.index(provider)]


REMOVALS: dict[str, Removal] = {
    "remove": lambda s, p: s.metadata_providers.remove(p),
    "del": del_item,
    "pop": lambda s, p: s.metadata_providers.pop(s.metadata_providers.index(p)),
    "assign_list": lambda s, p: setattr(
        s, "metadata_providers", [q for q in s.metadata_providers if q is not p]
    ),
}


@pytest.mark.parametrize("removal", REMOVALS.values(), ids=REMOVALS.keys())
async def test_removing_a_provider_during_a_load_stops_serving_its_cards(
    removal: Removal,
) -> None:
    gated = GatedProvider([card("kept")], source="memory:gated")
    doomed = InMemoryAssetMetadataProvider([card("doomed")], source="memory:doomed")
    store = AssetStore([gated, doomed])
    async with anyio.create_task_group() as tg:
        await load_held(store, gated, tg)
        removal(store, doomed)
        gated.gate.set()
    assert await store.maybe_retrieve_card("doomed") is None
    assert (await store.retrieve_card("kept")).name == "kept"


async def test_replacing_the_loading_provider_by_item_assignment_serves_the_new_one() -> None:
    gated = GatedProvider([card("old")], source="memory:gated")
    store = AssetStore([gated])
    async with anyio.create_task_group() as tg:
        await load_held(store, gated, tg)
        store.metadata_providers[0] = InMemoryAssetMetadataProvider(
            [card("new")], source="memory:new"
        )
        gated.gate.set()
    assert (await store.retrieve_card("new")).name == "new"
    assert await store.maybe_retrieve_card("old") is None


@pytest.mark.parametrize("reorder", ["sort", "reverse"])
async def test_reordering_providers_during_a_load_changes_which_one_wins(reorder: str) -> None:
    low = GatedProvider([{"name": "x", "winner": "a"}], source="memory:a")
    high = InMemoryAssetMetadataProvider([{"name": "x", "winner": "b"}], source="memory:b")
    store = AssetStore([low, high])  # the later-added provider wins: b
    async with anyio.create_task_group() as tg:
        await load_held(store, low, tg)
        if reorder == "sort":
            store.metadata_providers.sort(key=lambda p: p.source, reverse=True)
        else:
            store.metadata_providers.reverse()
        low.gate.set()
    assert (await store.retrieve_card("x")).field("winner").value == "a"


async def test_reordering_after_a_load_takes_effect_at_once() -> None:
    a = InMemoryAssetMetadataProvider([{"name": "x", "winner": "a"}], source="memory:a")
    b = InMemoryAssetMetadataProvider([{"name": "x", "winner": "b"}], source="memory:b")
    store = AssetStore([a, b])
    assert (await store.retrieve_card("x")).field("winner").value == "b"
    store.metadata_providers.reverse()
    assert (await store.retrieve_card("x")).field("winner").value == "a"
    del store.metadata_providers[1]
    assert (await store.retrieve_card("x")).field("winner").value == "b"


# -- strict --------------------------------------------------------------------------------


async def test_strict_store_refuses_every_concurrent_and_later_caller(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("name: good\n")
    (tmp_path / "bad.yaml").write_text("name: bad\nx: [\n")
    provider = FileAssetMetadataProvider(tmp_path)
    store = AssetStore([provider], strict=True)
    outcomes: list[BaseException | str] = []

    async def ask() -> None:
        try:
            outcomes.append((await store.retrieve_card("good")).name)
        except Exception as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(ask)
    assert len(outcomes) == 10
    assert all(isinstance(o, AssetMetadataError) and "bad.yaml" in str(o) for o in outcomes)
    for _ in range(3):
        with pytest.raises(AssetMetadataError, match=r"bad\.yaml"):
            await store.retrieve_card("good")
    with pytest.raises(AssetMetadataError):
        await store.asset_names()


async def test_strict_store_serves_again_once_the_file_is_fixed(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("name: good\n")
    (tmp_path / "bad.yaml").write_text("name: bad\nx: [\n")
    provider = FileAssetMetadataProvider(tmp_path)
    store = AssetStore([provider], strict=True)
    with pytest.raises(AssetMetadataError):
        await store.load()
    (tmp_path / "bad.yaml").write_text("name: bad\nx: []\n")
    await provider.refresh()
    assert (await store.retrieve_card("bad")).name == "bad"
    assert (await store.retrieve_card("good")).name == "good"


async def test_check_lists_the_problems_a_strict_store_refuses_for(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: bad\nx: [\n")
    store = AssetStore([FileAssetMetadataProvider(tmp_path)], strict=True)
    problems = await store.check()
    assert [p.kind for p in problems] == ["yaml"]


async def test_turning_strict_on_applies_to_the_next_call(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("name: good\n")
    (tmp_path / "bad.yaml").write_text("x: [\n")
    store = AssetStore([FileAssetMetadataProvider(tmp_path)])
    assert (await store.retrieve_card("good")).name == "good"
    store.strict = True
    with pytest.raises(AssetMetadataError):
        await store.retrieve_card("good")


# -- cancellation --------------------------------------------------------------------------


async def test_cancelling_the_first_caller_never_poisons_the_next_load() -> None:
    gated = GatedProvider([card("a")], source="memory:gated")
    store = AssetStore([gated])
    with anyio.move_on_after(0.05) as scope:
        await store.retrieve_card("a")
    assert scope.cancelled_caught
    assert not gated.loaded
    gated.gate.set()
    assert (await store.retrieve_card("a")).name == "a"
    assert gated.loads == 2


async def test_cancelling_one_of_several_first_callers_leaves_the_others_their_card() -> None:
    gated = GatedProvider([card("a")], source="memory:gated")
    store = AssetStore([gated])
    results: list[str] = []

    async def ask() -> None:
        results.append((await store.retrieve_card("a")).name)

    async with anyio.create_task_group() as tg:
        victim = anyio.CancelScope()

        async def cancelled_caller() -> None:
            with victim:
                await store.retrieve_card("a")

        tg.start_soon(cancelled_caller)
        await gated.started.wait()
        for _ in range(5):
            tg.start_soon(ask)
        await anyio.sleep(0.01)
        victim.cancel()  # the caller whose task runs the load goes away
        await anyio.sleep(0.01)
        gated.gate.set()
    assert results == ["a"] * 5


async def test_cancelling_a_task_group_while_a_provider_loads_never_poisons_the_next_load() -> None:
    gated = GatedProvider([card("a")], source="memory:gated")
    store = AssetStore([gated])
    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(store.retrieve_card, "a")
        await gated.started.wait()
        tg.cancel_scope.cancel()
    assert not gated.loaded
    gated.gate.set()
    assert (await store.retrieve_card("a")).name == "a"
    assert gated.loads == 2


async def test_cancelling_a_task_group_during_the_first_load_then_loading_again(
    tmp_path: Path,
) -> None:
    for i in range(300):
        (tmp_path / f"c{i}.yaml").write_text(f"name: c{i}\n")
    store = AssetStore([FileAssetMetadataProvider(tmp_path)])
    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(store.retrieve_card, f"c{i}")
        await anyio.lowlevel.checkpoint()
        tg.cancel_scope.cancel()
    assert len(await store.asset_names()) == 300


# -- refresh before load, aclose -------------------------------------------------------------


@pytest.mark.parametrize("paths", [["a.yaml"], None], ids=["one_file", "everything"])
async def test_refresh_before_a_load_still_serves_every_card_of_the_folder(
    tmp_path: Path, paths: list[str] | None
) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.yaml").write_text(f"name: {name}\n")
    provider = FileAssetMetadataProvider(tmp_path)
    await provider.refresh(None if paths is None else [str(tmp_path / p) for p in paths])
    store = AssetStore([provider])
    assert await store.asset_names() == {"a@", "b@", "c@"}
    assert [(await store.retrieve_card(n)).name for n in "abc"] == ["a", "b", "c"]


async def test_full_refresh_before_a_load_reports_every_card_as_added(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(f"name: {name}\n")
    provider = FileAssetMetadataProvider(tmp_path)
    diff = await provider.refresh()
    assert diff.added == {"a@", "b@"}
    assert provider.asset_names == {"a@", "b@"}


async def test_aclose_closes_every_provider_even_when_one_fails() -> None:
    providers = [
        ClosingProvider("memory:first"),
        ClosingProvider("memory:broken", fail=True),
        ClosingProvider("memory:last"),
    ]
    store = AssetStore(providers)
    await store.load()
    with pytest.raises(AssetError, match="memory:broken"):
        await store.aclose()
    assert [p.closed for p in providers] == [1, 1, 1]


async def test_a_closed_store_serves_again(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\n")
    store = AssetStore([FileAssetMetadataProvider(tmp_path)])
    async with store:
        await store.retrieve_card("a")
    (tmp_path / "b.yaml").write_text("name: b\n")
    await store.metadata_providers[0].refresh()
    assert (await store.retrieve_card("b")).name == "b"


# -- nothing but AssetError ----------------------------------------------------------------


@pytest.mark.parametrize(
    "exc", [RuntimeError("boom"), TypeError("bad type"), KeyError("k")], ids=type
)
async def test_a_provider_raising_a_plain_exception_is_an_asset_error_naming_it(
    exc: Exception,
) -> None:
    good = InMemoryAssetMetadataProvider([card("good")], source="memory:good")
    store = AssetStore([good, FailingProvider(exc)])

    async def find() -> None:
        async for _ in store.find_cards("model_family", "toy"):
            pass

    calls = (
        store.load,
        lambda: store.retrieve_card("good"),
        lambda: store.maybe_retrieve_card("good"),
        find,
        store.asset_names,
        store.check,
    )
    for call in calls:
        with pytest.raises(AssetMetadataError, match="custom://broken"):
            await call()


async def test_a_provider_refresh_raising_a_plain_exception_is_an_asset_error() -> None:
    provider = FailingProvider(RuntimeError("boom"))
    with pytest.raises(AssetMetadataError, match=r"custom://broken.*boom"):
        await provider.refresh()


@pytest.mark.parametrize("name", [123, None, b"bytes", "", "a@b@c", "@x"], ids=repr)
async def test_a_bad_card_name_is_an_asset_error(name: Any) -> None:
    store = AssetStore([InMemoryAssetMetadataProvider([card("a")])])
    with pytest.raises(AssetError):
        await store.retrieve_card(name)


@pytest.mark.parametrize("name", [123, None, b"bytes"], ids=repr)
async def test_maybe_retrieve_card_of_a_name_that_is_not_a_string_is_an_asset_error(
    name: Any,
) -> None:
    store = AssetStore([InMemoryAssetMetadataProvider([card("a")])])
    with pytest.raises(AssetError, match="string"):
        await store.maybe_retrieve_card(name)


@pytest.mark.parametrize("name", ["", "a@b@c", "@x"])
async def test_maybe_retrieve_card_of_a_malformed_name_is_none(name: str) -> None:
    store = AssetStore([InMemoryAssetMetadataProvider([card("a")])])
    assert await store.maybe_retrieve_card(name) is None


@pytest.mark.parametrize("value", [[1, 2], {"a": 1}, {1, 2}, object()], ids=repr)
async def test_find_cards_with_any_value_never_raises_a_type_error(value: Any) -> None:
    store = AssetStore([InMemoryAssetMetadataProvider([{"name": "a", "l": [1, 2], "m": {"a": 1}}])])
    found = [c.name async for c in store.find_cards("l", value)]
    assert found == (["a"] if value == [1, 2] else [])


async def test_find_cards_with_a_field_that_is_not_a_string_is_an_asset_error() -> None:
    store = AssetStore([InMemoryAssetMetadataProvider([card("a")])])
    with pytest.raises(AssetError):
        async for _ in store.find_cards(123, "x"):  # type: ignore[arg-type]
            pass


# -- blocking ------------------------------------------------------------------------------


async def test_loading_hundreds_of_files_never_blocks_the_event_loop(tmp_path: Path) -> None:
    """A ticker task sleeps 5 ms in a loop while 500 card files load: a gap far above that
    means something blocked the loop (a file walk, a read or a parse on the loop's thread).
    The bound is generous; the point is to catch blocking calls, not to time the load."""
    for i in range(500):
        (tmp_path / f"c{i:03}.yaml").write_text(
            "".join(f"name: c{i:03}_{j}\nmodel_family: toy\n---\n" for j in range(20))
        )
    store = AssetStore([FileAssetMetadataProvider(tmp_path)])
    async with loop_gaps() as gaps:
        started = anyio.current_time()
        await store.load()
        took = anyio.current_time() - started
    assert len(await store.asset_names()) == 10_000
    # A load on the loop's thread blocks it for about the whole load; a busy machine
    # stretches both the load and the gaps, so the bound follows the load's own time.
    bound = max(0.3, took / 2)
    assert max(gaps) < bound, f"the loop was blocked {max(gaps):.3f} s of a {took:.3f} s load"


# -- the default store across loops and with bad variables (subprocesses) --------------------


def run_python(
    code: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def isolated_env(tmp_path: Path) -> dict[str, str]:
    return {
        "ASYNCASSETS_ASSET_DIR": "",
        "ASYNCASSETS_USER_ASSET_DIR": "",
        "FAIRSEQ2_ASSET_DIR": "",
        "FAIRSEQ2_USER_ASSET_DIR": "",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "ASYNCASSETS_CACHE_DIR": str(tmp_path / "cache"),
    }


def test_default_store_on_s3_works_across_two_asyncio_runs(
    moto_server: str, tmp_path: Path
) -> None:
    bucket = unique_bucket()
    put_s3_objects(moto_server, bucket, {"cards/a.yaml": "name: a\n"})
    code = """
        import asyncio
        import boto3
        from asyncassets import asset_store

        async def first():
            return (await asset_store.retrieve_card("a")).name

        async def second():
            s3 = boto3.client("s3", endpoint_url=ENDPOINT, aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
            s3.put_object(Bucket=BUCKET, Key="cards/b.yaml", Body=b"name: b\\n")
            for provider in asset_store.metadata_providers:
                await provider.refresh()
            return (await asset_store.retrieve_card("b")).name

        print(asyncio.run(first()), asyncio.run(second()))
        asyncio.run(asset_store.aclose())
    """.replace("ENDPOINT", repr(moto_server)).replace("BUCKET", repr(bucket))
    env = {
        **isolated_env(tmp_path),
        "ASYNCASSETS_ASSET_DIR": f"s3://{bucket}/cards",
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["a", "b"]
    assert "different loop" not in result.stderr and "Event loop is closed" not in result.stderr


#: Bad values for a store variable: (value, extra environment).
BAD_STORE_VARIABLES = {
    "unknown_protocol": ("nosuch://x", {}),
    "unreachable_endpoint": ("s3://bucket/cards", {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}),
}

#: (the variable that is bad, the variable that names the good store).
WHICH_STORE = {
    "system": ("ASYNCASSETS_ASSET_DIR", "ASYNCASSETS_USER_ASSET_DIR"),
    "user": ("ASYNCASSETS_USER_ASSET_DIR", "ASYNCASSETS_ASSET_DIR"),
}


@pytest.mark.parametrize("bad", BAD_STORE_VARIABLES.values(), ids=BAD_STORE_VARIABLES.keys())
@pytest.mark.parametrize("which", WHICH_STORE.values(), ids=WHICH_STORE.keys())
def test_a_bad_store_variable_is_a_warning_naming_it_and_the_other_store_still_serves(
    tmp_path: Path, which: tuple[str, str], bad: tuple[str, dict[str, str]]
) -> None:
    bad_variable, good_variable = which
    bad_url, extra_env = bad
    good = tmp_path / "good-cards"
    good.mkdir()
    (good / "mine.yaml").write_text("name: mine\n")
    code = """
        import asyncio, logging
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        from asyncassets import asset_store

        async def main():
            return (await asset_store.retrieve_card("mine")).name

        print(asyncio.run(main()))
    """
    env = {
        **isolated_env(tmp_path),
        bad_variable: bad_url,
        good_variable: str(good),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        **extra_env,
    }
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "mine"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert any(bad_url in line for line in warnings), result.stderr


@pytest.mark.parametrize("bad", BAD_STORE_VARIABLES.values(), ids=BAD_STORE_VARIABLES.keys())
def test_importing_asyncassets_with_bad_store_variables_never_fails(
    tmp_path: Path, bad: tuple[str, dict[str, str]]
) -> None:
    bad_url, extra_env = bad
    env = {
        **isolated_env(tmp_path),
        "ASYNCASSETS_ASSET_DIR": bad_url,
        "ASYNCASSETS_USER_ASSET_DIR": bad_url,
        **extra_env,
    }
    result = run_python("import asyncassets; print('ok')", env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
