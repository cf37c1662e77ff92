"""How long to wait between tries of a transient failure (tenacity), for card stores and the
checkpoint cache alike; which failures are transient is :mod:`asyncassets.transient`'s
call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from asyncassets.transient import is_transient

__all__ = ["RetryPolicy", "call_with_retries"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried.

    ``attempts`` counts the first try; waits grow exponentially from ``initial`` seconds up
    to ``maximum`` with jitter. Each part of a ranged download has its own budget and resumes
    where the failed attempt stopped.
    """

    attempts: int = 6
    initial: float = 0.5
    maximum: float = 10.0


async def call_with_retries(
    policy: RetryPolicy,
    func: Callable[[], Awaitable[T]],
    *,
    on_retry: Callable[[BaseException, int], None] | None = None,
) -> T:
    """Await ``func()`` and retry it on transient errors according to ``policy``."""

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            exc = state.outcome.exception()
            if exc is not None:
                on_retry(exc, state.attempt_number)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential(multiplier=policy.initial, max=policy.maximum)
        + wait_random(0, policy.initial),
        retry=retry_if_exception(is_transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await func()
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover
