"""The one classification of failures that providers and the cache retry
(asyncassets.transient): pure, no loop, no network."""

from __future__ import annotations

import errno
from typing import Any

import anyio
import pytest
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)

from asyncassets.errors import (
    PermanentError,
    RangeNotHonouredError,
    RemoteChangedError,
    TransientError,
)
from asyncassets.transient import describe, is_transient, status_of


class _StatusError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class _BotocoreLikeError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__("An error occurred")
        self.response: dict[str, Any] = {"ResponseMetadata": {"HTTPStatusCode": status}}


class NoCredentialsError(Exception):
    """Named like botocore's: no retry will find credentials."""


class ServerDisconnectedError(Exception):
    """Named like aiohttp's, without importing it."""


@pytest.mark.parametrize(
    "exc",
    [
        TransientError("flaky"),
        TimeoutError(),
        ConnectionResetError(errno.ECONNRESET, "reset"),
        OSError(errno.EIO, "I/O error"),
        _StatusError(503),
        _StatusError(500),
        _StatusError(429),
        _StatusError(408),
        _BotocoreLikeError(502),
        ServerDisconnectedError(),
    ],
    ids=repr,
)
def test_network_failures_and_server_errors_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        PermanentError("gone", status=404),
        RangeNotHonouredError("200 to a ranged read"),
        RemoteChangedError("changed"),
        FileNotFoundError("nope"),
        PermissionError("denied"),
        IsADirectoryError("a folder"),
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        OSError(errno.EROFS, "Read-only file system"),
        _StatusError(404),
        _StatusError(403),
        _StatusError(400),
        _BotocoreLikeError(403),
        NoCredentialsError("Unable to locate credentials"),
        ValueError("a bug, not the network"),
    ],
    ids=repr,
)
def test_missing_denied_bad_and_full_disk_are_permanent(exc: BaseException) -> None:
    assert not is_transient(exc)


async def test_cancellation_is_never_retried() -> None:
    """Retrying a cancellation would swallow it (tenacity sees BaseExceptions too)."""
    caught: list[BaseException] = []
    with anyio.CancelScope() as scope:
        scope.cancel()
        try:
            await anyio.sleep(1)
        except anyio.get_cancelled_exc_class() as exc:
            caught.append(exc)
            raise
    assert caught and not is_transient(caught[0])


def test_status_of_reads_the_attributes_of_the_http_libraries() -> None:
    assert status_of(_StatusError(503)) == 503
    assert status_of(_BotocoreLikeError(404)) == 404
    assert status_of(ValueError("no status")) is None
    odd = _StatusError(503)
    odd.status = 7  # not an HTTP status
    assert status_of(odd) is None


def test_describe_is_one_line_with_the_type() -> None:
    assert describe(ValueError("first line\nsecond line")) == "ValueError: first line"
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(PermanentError("not found: s3://b/k", status=404)) == (
        "PermanentError: not found: s3://b/k"
    )
