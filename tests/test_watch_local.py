"""Hot reload of a local card folder: real files, real watchfiles, no mocked events.

Every test edits files the way an editor or a person does, then waits (with a generous
timeout, never a timing assert) until the store serves the new state or publishes the
expected :class:`ChangeEvent`.
"""

# Tests edit files from async functions on purpose: the edits are the test.
# ruff: noqa: ASYNC240

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import TaskStatus

from asyncassets import (
    AssetCardNotFoundError,
    AssetStore,
    ChangeEvent,
    FileAssetMetadataProvider,
)

#: Seconds to wait for a change to reach the store; generous for a loaded 2-core machine.
TIMEOUT = 10
#: How often a waiting test looks again.
POLL = 0.02


def card(name: str, value: object, **fields: object) -> str:
    extra = "".join(f"{key}: {val}\n" for key, val in fields.items())
    return f"name: {name}\nvalue: {value}\n{extra}"


class EventLog:
    """Collects every event of one ``store.changes()`` subscription."""

    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []

    async def run(self, store: AssetStore, *, task_status: TaskStatus[None]) -> None:
        changes = store.changes()
        task_status.started()
        # The subscription exists once the generator runs up to its first wait, which
        # happens before the task that started us resumes.
        async for event in changes:
            self.events.append(event)

    async def wait_for(self, predicate: Callable[[ChangeEvent], bool]) -> ChangeEvent:
        with anyio.fail_after(TIMEOUT):
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                await anyio.sleep(POLL)


@asynccontextmanager
async def watched(
    root: Path, *, missing_ok: bool = False, **watch_options: Any
) -> AsyncIterator[tuple[AssetStore, EventLog]]:
    """A store on ``root`` inside ``watching()``, with one subscriber logging events."""
    provider = FileAssetMetadataProvider(root, missing_ok=missing_ok)
    store = AssetStore([provider])
    log = EventLog()
    async with store, store.watching(**watch_options), anyio.create_task_group() as tg:
        await tg.start(log.run, store)
        yield store, log
        tg.cancel_scope.cancel()


async def wait_until(condition: Callable[[], Awaitable[bool]], within: float = TIMEOUT) -> None:
    """Until ``condition()`` holds; a change arrives through a watcher, not an event we
    could wait on, so look again every few milliseconds."""
    with anyio.fail_after(within):
        while not await condition():  # noqa: ASYNC110
            await anyio.sleep(POLL)


async def wait_for_value(store: AssetStore, name: str, expected: object) -> None:
    """Until ``retrieve_card(name)`` returns a card whose ``value`` is ``expected``."""

    async def served() -> bool:
        found = await store.maybe_retrieve_card(name)
        return found is not None and found.field("value").value == expected

    await wait_until(served)


async def wait_for_names(store: AssetStore, names: set[str], within: float = TIMEOUT) -> None:
    async def listed() -> bool:
        return await store.asset_names() == names

    await wait_until(listed, within)


async def wait_for_source(store: AssetStore, name: str, path: Path) -> None:
    async def moved() -> bool:
        found = await store.maybe_retrieve_card(name)
        return found is not None and found.source == f"file://{path}"

    await wait_until(moved)


# -- editors' save patterns ------------------------------------------------------------------


async def test_in_place_write_serves_new_value(card_dir: Path) -> None:
    target = card_dir / "foo.yaml"
    target.write_text(card("foo", 1))
    async with watched(card_dir) as (store, log):
        target.write_text(card("foo", 2))
        await wait_for_value(store, "foo", 2)
        event = await log.wait_for(lambda e: "foo@" in e.modified)
        assert not event.problems


async def test_write_to_temp_then_rename_serves_new_value(card_dir: Path) -> None:
    target = card_dir / "foo.yaml"
    target.write_text(card("foo", 1))
    async with watched(card_dir) as (store, log):
        temp = card_dir / "foo.yaml.tmp1234"
        temp.write_text(card("foo", 2))
        os.replace(temp, target)
        await wait_for_value(store, "foo", 2)
        await log.wait_for(lambda e: "foo@" in e.modified)


async def test_write_to_temp_yaml_then_rename_serves_new_value(card_dir: Path) -> None:
    # Some editors keep the suffix on the temporary file: it is a card file for a moment.
    target = card_dir / "foo.yaml"
    target.write_text(card("foo", 1))
    async with watched(card_dir) as (store, _log):
        temp = card_dir / "foo.tmp.yaml"
        temp.write_text(card("foo", 2))
        os.replace(temp, target)
        await wait_for_value(store, "foo", 2)
        provider = store.metadata_providers[0]

        async def temp_gone() -> bool:
            return list(provider.snapshot.files) == [f"file://{target}"]

        await wait_until(temp_gone)
        assert (await store.check()) == []


async def test_delete_then_create_serves_new_value(card_dir: Path) -> None:
    target = card_dir / "foo.yaml"
    target.write_text(card("foo", 1))
    async with watched(card_dir) as (store, _log):
        target.unlink()
        target.write_text(card("foo", 2))
        await wait_for_value(store, "foo", 2)


async def test_vim_backup_dance_serves_new_value(card_dir: Path) -> None:
    target = card_dir / "foo.yaml"
    backup = card_dir / "foo.yaml~"
    target.write_text(card("foo", 1))
    async with watched(card_dir) as (store, _log):
        os.rename(target, backup)
        target.write_text(card("foo", 2))
        backup.unlink()
        await wait_for_value(store, "foo", 2)
        assert (await store.retrieve_card("foo")).source.endswith("/foo.yaml")


async def test_renamed_folder_serves_cards_from_new_path(card_dir: Path) -> None:
    (card_dir / "old").mkdir()
    (card_dir / "old" / "foo.yaml").write_text(card("foo", 1))
    async with watched(card_dir) as (store, _log):
        os.rename(card_dir / "old", card_dir / "new")
        await wait_for_source(store, "foo", card_dir / "new" / "foo.yaml")
        assert (await store.retrieve_card("foo")).field("value").value == 1


async def test_folder_renamed_out_of_the_store_removes_its_cards(
    card_dir: Path, tmp_path: Path
) -> None:
    (card_dir / "sub").mkdir()
    (card_dir / "sub" / "foo.yaml").write_text(card("foo", 1))
    (card_dir / "bar.yaml").write_text(card("bar", 1))
    async with watched(card_dir) as (store, log):
        os.rename(card_dir / "sub", tmp_path / "elsewhere")
        await log.wait_for(lambda e: "foo@" in e.removed)
        with pytest.raises(AssetCardNotFoundError):
            await store.retrieve_card("foo")
        assert await store.asset_names() == {"bar@"}


async def test_removed_folder_removes_its_cards(card_dir: Path) -> None:
    (card_dir / "sub" / "deep").mkdir(parents=True)
    (card_dir / "sub" / "foo.yaml").write_text(card("foo", 1))
    (card_dir / "sub" / "deep" / "baz.yaml").write_text(card("baz", 1))
    (card_dir / "bar.yaml").write_text(card("bar", 1))
    async with watched(card_dir) as (store, log):
        shutil.rmtree(card_dir / "sub")
        await log.wait_for(lambda e: {"foo@", "baz@"} <= e.removed)
        await wait_for_names(store, {"bar@"})


async def test_file_moved_between_subfolders_keeps_its_cards(card_dir: Path) -> None:
    (card_dir / "a").mkdir()
    (card_dir / "b").mkdir()
    (card_dir / "a" / "foo.yaml").write_text(card("foo", 1))
    async with watched(card_dir) as (store, _log):
        os.replace(card_dir / "a" / "foo.yaml", card_dir / "b" / "foo.yaml")
        await wait_for_source(store, "foo", card_dir / "b" / "foo.yaml")
        assert (await store.retrieve_card("foo")).field("value").value == 1
        assert len(store.metadata_providers[0].snapshot.files) == 1


async def test_force_polling_sees_edits(card_dir: Path) -> None:
    target = card_dir / "foo.yaml"
    target.write_text(card("foo", 1))
    async with watched(card_dir, force_polling=True) as (store, _log):
        target.write_text(card("foo", 2))
        # notify's poller compares mtimes to the second only: an edit within the second of
        # the previous write goes unseen. Date this one a few seconds later, as an edit made
        # by a person would be.
        stat = target.stat()
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
        await wait_for_value(store, "foo", 2)


async def test_folder_created_after_watching_starts_is_picked_up(tmp_path: Path) -> None:
    root = tmp_path / "later" / "cards"
    async with watched(root, missing_ok=True) as (store, log):
        assert await store.asset_names() == frozenset()
        root.mkdir(parents=True)
        (root / "foo.yaml").write_text(card("foo", 1))
        await wait_for_value(store, "foo", 1)
        # Once found, the folder is watched like any other.
        (root / "foo.yaml").write_text(card("foo", 2))
        await wait_for_value(store, "foo", 2)
        await log.wait_for(lambda e: "foo@" in e.added)


async def test_removed_root_folder_empties_store_until_recreated(card_dir: Path) -> None:
    (card_dir / "foo.yaml").write_text(card("foo", 1))
    async with watched(card_dir, missing_ok=True) as (store, log):
        shutil.rmtree(card_dir)
        await log.wait_for(lambda e: "foo@" in e.removed)
        assert await store.asset_names() == frozenset()
        card_dir.mkdir()
        (card_dir / "foo.yaml").write_text(card("foo", 2))
        await wait_for_value(store, "foo", 2)


# -- bad edits, bases, deletions -------------------------------------------------------------


async def test_bad_edit_keeps_last_good_cards_and_reports_problem(card_dir: Path) -> None:
    target = card_dir / "foo.yaml"
    target.write_text(card("foo", 1))
    async with watched(card_dir) as (store, log):
        target.write_text("name: foo\nvalue: [1, 2\nother: 3\n")
        event = await log.wait_for(lambda e: bool(e.problems))
        (problem,) = event.problems
        assert problem.file == f"file://{target}"
        assert problem.line is not None and problem.line >= 2
        assert "YAML" in problem.message
        assert str(problem).startswith(f"{target}:{problem.line}: ")
        assert not event.removed
        assert (await store.retrieve_card("foo")).field("value").value == 1


async def test_fix_after_bad_edit_publishes_event_and_serves_new_value(card_dir: Path) -> None:
    target = card_dir / "foo.yaml"
    target.write_text(card("foo", 1))
    async with watched(card_dir) as (store, log):
        target.write_text("name: foo\nvalue: [1, 2\n")
        await log.wait_for(lambda e: bool(e.problems))
        seen = len(log.events)
        target.write_text(card("foo", 3))
        await wait_for_value(store, "foo", 3)
        fixed = await log.wait_for(lambda e: e in log.events[seen:] and not e.problems)
        assert "foo@" in fixed.modified
        assert await store.check() == []


async def test_fix_restoring_the_last_good_text_still_publishes_event(card_dir: Path) -> None:
    target = card_dir / "foo.yaml"
    target.write_text(card("foo", 1))
    async with watched(card_dir) as (store, log):
        target.write_text("name: foo\nvalue: [1, 2\n")
        await log.wait_for(lambda e: bool(e.problems))
        seen = len(log.events)
        target.write_text(card("foo", 1))
        await log.wait_for(lambda e: e in log.events[seen:] and not e.problems)
        assert await store.check() == []


async def test_base_card_edit_reaches_children(card_dir: Path) -> None:
    (card_dir / "base.yaml").write_text("name: parent\nvalue: 1\nfamily: llama\n")
    (card_dir / "child.yaml").write_text("name: child\nbase: parent\n")
    async with watched(card_dir) as (store, _log):
        assert (await store.retrieve_card("child")).field("family").value == "llama"
        (card_dir / "base.yaml").write_text("name: parent\nvalue: 1\nfamily: mistral\n")

        async def inherited() -> bool:
            child = await store.retrieve_card("child")
            return bool(child.field("family").value == "mistral")

        await wait_until(inherited)
        assert (await store.retrieve_card("child")).to_dict()["family"] == "mistral"


async def test_deleted_file_removes_its_cards(card_dir: Path) -> None:
    (card_dir / "foo.yaml").write_text(card("foo", 1) + "---\n" + card("foo2", 1))
    (card_dir / "bar.yaml").write_text(card("bar", 1))
    async with watched(card_dir) as (store, log):
        (card_dir / "foo.yaml").unlink()
        event = await log.wait_for(lambda e: bool(e.removed))
        assert event.removed == {"foo@", "foo2@"}
        with pytest.raises(AssetCardNotFoundError):
            await store.retrieve_card("foo")
        assert await store.asset_names() == {"bar@"}


# -- subscribers and lifetime ----------------------------------------------------------------


async def test_every_subscriber_gets_every_event(card_dir: Path) -> None:
    target = card_dir / "foo.yaml"
    target.write_text(card("foo", 0))
    others = [EventLog(), EventLog()]
    async with watched(card_dir) as (store, log), anyio.create_task_group() as tg:
        for other in others:
            await tg.start(other.run, store)
        for value in (1, 2, 3):
            target.write_text(card("foo", value))
            await wait_for_value(store, "foo", value)
        (card_dir / "bar.yaml").write_text(card("bar", 1))
        await log.wait_for(lambda e: "bar@" in e.added)
        for other in others:
            await other.wait_for(lambda e: "bar@" in e.added)
        tg.cancel_scope.cancel()

    def summary(events: list[ChangeEvent]) -> list[tuple[Any, ...]]:
        return [(e.added, e.modified, e.removed, e.problems) for e in events]

    assert len(log.events) >= 4
    for other in others:
        assert summary(other.events) == summary(log.events)


async def _grow_thread_pool(workers: int) -> None:
    """Start ``workers`` idle worker threads, so that watching reuses them instead of
    starting threads that would linger (idle) after the test."""
    barrier = threading.Barrier(workers, timeout=TIMEOUT)
    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(anyio.to_thread.run_sync, barrier.wait)


async def test_leaving_watching_stops_threads_and_refreshes(card_dir: Path) -> None:
    target = card_dir / "foo.yaml"
    target.write_text(card("foo", 1))
    provider = FileAssetMetadataProvider(card_dir)
    store = AssetStore([provider])
    await store.load()
    await _grow_thread_pool(12)
    threads_before = threading.active_count()
    log = EventLog()
    async with anyio.create_task_group() as tg:
        await tg.start(log.run, store)
        async with store.watching():
            target.write_text(card("foo", 2))
            await wait_for_value(store, "foo", 2)

        async def threads_back() -> bool:
            return threading.active_count() <= threads_before

        await wait_until(threads_back)
        events, snapshot = len(log.events), provider.snapshot
        target.write_text(card("foo", 3))
        (card_dir / "bar.yaml").write_text(card("bar", 1))
        await anyio.sleep(1)  # several debounce periods: a leaked watcher would have refreshed
        assert provider.snapshot is snapshot
        assert len(log.events) == events
        tg.cancel_scope.cancel()
    assert (await store.retrieve_card("foo")).field("value").value == 2


async def test_cancelling_a_task_inside_watching_stops_its_watchers(card_dir: Path) -> None:
    target = card_dir / "foo.yaml"
    target.write_text(card("foo", 1))
    provider = FileAssetMetadataProvider(card_dir)
    store = AssetStore([provider])
    inside = anyio.Event()
    left = anyio.Event()

    async def serve() -> None:
        try:
            async with store.watching():
                inside.set()
                await anyio.sleep_forever()
        finally:
            left.set()

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            await inside.wait()
            target.write_text(card("foo", 2))
            await wait_for_value(store, "foo", 2)
            tg.cancel_scope.cancel()
    assert left.is_set()
    snapshot = provider.snapshot
    target.write_text(card("foo", 3))
    await anyio.sleep(1)  # several debounce periods: a leaked watcher would have refreshed
    assert provider.snapshot is snapshot
    # The store is still usable and can watch again.
    async with store.watching():
        await wait_for_value(store, "foo", 3)


async def test_error_inside_watching_is_raised_as_itself(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\n")
    store = AssetStore([FileAssetMetadataProvider(tmp_path)])
    with pytest.raises(AssetCardNotFoundError):
        async with store.watching():
            await store.retrieve_card("nope")


async def test_watching_can_be_left_promptly_many_times(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\n")
    store = AssetStore([FileAssetMetadataProvider(tmp_path)])
    with anyio.fail_after(20):  # a hang, not a timing claim: 5 exits would take 25 s
        for _ in range(5):
            async with store.watching():
                pass
