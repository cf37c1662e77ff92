"""SingleFlight on anyio: followers share the leader's result or exception, a follower takes
over from a cancelled leader, and each event loop has flights of its own."""

from __future__ import annotations

import threading

import anyio
import pytest
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)

from asyncassets.cache.locking import SingleFlight


async def test_followers_share_the_result_of_one_run() -> None:
    flights = SingleFlight()
    calls = 0
    release = anyio.Event()

    async def work() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "done"

    results: list[str] = []

    async def caller() -> None:
        results.append(await flights.run("k", work))

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(caller)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert calls == 1 and results == ["done"] * 8


async def test_followers_share_the_exception_of_one_run() -> None:
    flights = SingleFlight()
    calls = 0
    release = anyio.Event()

    async def work() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        raise KeyError("boom")

    errors: list[BaseException] = []

    async def caller() -> None:
        try:
            await flights.run("k", work)
        except KeyError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(caller)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert calls == 1 and len(errors) == 4 and all(e is errors[0] for e in errors)


async def test_a_follower_takes_over_from_a_cancelled_leader() -> None:
    flights = SingleFlight()
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            await anyio.sleep_forever()  # the leader: cancelled below
        return calls

    results: list[int] = []
    leader_scope = anyio.CancelScope()

    async def leader() -> None:
        with leader_scope:
            await flights.run("k", work)

    async def follower() -> None:
        results.append(await flights.run("k", work))

    async with anyio.create_task_group() as tg:
        tg.start_soon(leader)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(follower)
        await anyio.wait_all_tasks_blocked()
        leader_scope.cancel()
    assert results == [2] and calls == 2


async def test_a_cancelled_follower_leaves_the_leader_alone() -> None:
    flights = SingleFlight()
    release = anyio.Event()

    async def work() -> str:
        await release.wait()
        return "leader's"

    results: list[str] = []

    async def leader() -> None:
        results.append(await flights.run("k", work))

    async with anyio.create_task_group() as tg:
        tg.start_soon(leader)
        await anyio.wait_all_tasks_blocked()
        with anyio.move_on_after(0.01):
            await flights.run("k", work)
        release.set()
    assert results == ["leader's"]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_each_event_loop_has_its_own_flights(backend: str) -> None:
    """A key in flight on one loop (thread) neither blocks nor serves another loop."""
    flights = SingleFlight()
    started = threading.Event()
    finish = threading.Event()

    async def slow() -> str:
        started.set()
        await anyio.to_thread.run_sync(finish.wait)
        return "first loop"

    async def fast() -> str:
        return "second loop"

    first: list[str] = []
    thread = threading.Thread(
        target=lambda: first.append(anyio.run(flights.run, "k", slow, backend=backend))
    )
    thread.start()
    try:
        assert started.wait(10)
        assert anyio.run(flights.run, "k", fast, backend=backend) == "second loop"
    finally:
        finish.set()
        thread.join(10)
    assert first == ["first loop"]
