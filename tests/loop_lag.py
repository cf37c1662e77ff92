"""Measuring how long the event loop was blocked while some work ran."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio


@asynccontextmanager
async def loop_gaps(interval: float = 0.005) -> AsyncIterator[list[float]]:
    """Yield a list that fills, while the block runs, with the time between the wake-ups
    of a task sleeping ``interval`` in a loop: a gap far above ``interval`` means
    something blocked the loop's thread.

    The objects alive before the block (a whole test session's worth) are frozen out of
    the garbage collector meanwhile: a full collection over them is a pause of the test
    process, not a blocking call of the code measured."""
    gc.collect()
    gc.freeze()
    try:
        async with _measured(interval) as gaps:
            yield gaps
    finally:
        gc.unfreeze()


@asynccontextmanager
async def _measured(interval: float) -> AsyncIterator[list[float]]:
    gaps: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        last = anyio.current_time()
        while not done.is_set():
            await anyio.sleep(interval)
            now = anyio.current_time()
            gaps.append(now - last)
            last = now

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(4 * interval)
        try:
            yield gaps
        finally:
            done.set()
