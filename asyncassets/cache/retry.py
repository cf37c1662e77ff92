"""Which failures are worth another try, and how long to wait between tries (tenacity)."""

from __future__ import annotations

import asyncio
import errno
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

__all__ = [
    "PermanentError",
    "RangeNotHonouredError",
    "RemoteChangedError",
    "RetryPolicy",
    "TransientError",
    "call_with_retries",
    "is_transient",
]

T = TypeVar("T")


class TransientError(Exception):
    """A failure that another try may not see: 5xx, 429, a truncated body, a reset."""


class PermanentError(Exception):
    """A failure that retrying will not fix: 404, 403, a bad URL. ``status`` when HTTP."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RangeNotHonouredError(Exception):
    """The server answered a ranged read without a matching ``206 Content-Range``."""


class RemoteChangedError(Exception):
    """The remote object changed while it was being downloaded (412, a size change)."""


_PERMANENT_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR}


def is_transient(exc: BaseException) -> bool:
    """True for errors that a later attempt may not hit (network, 5xx, timeouts)."""
    if isinstance(exc, TransientError | TimeoutError | asyncio.TimeoutError):
        return True
    if isinstance(
        exc, PermanentError | RangeNotHonouredError | RemoteChangedError | asyncio.CancelledError
    ):
        return False
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return False
    status = _status_of(exc)
    if status is not None:
        return status >= 500 or status in (408, 429)
    if isinstance(exc, ConnectionError):
        return True
    if isinstance(exc, OSError):
        return exc.errno not in _PERMANENT_ERRNOS
    if "Credentials" in type(exc).__name__:
        return False  # botocore's NoCredentialsError & co: no retry will find credentials
    # aiohttp's ClientError family and botocore's connection errors are not OSError subclasses
    # in every version: match them by module name instead of importing optional packages.
    module = type(exc).__module__
    return module.startswith(("aiohttp", "botocore", "aiobotocore", "urllib3"))


def _status_of(exc: BaseException) -> int | None:
    for attr in ("status", "code", "status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        meta = response.get("ResponseMetadata", {})
        value = meta.get("HTTPStatusCode") if isinstance(meta, dict) else None
        if isinstance(value, int):
            return value
    return None


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
