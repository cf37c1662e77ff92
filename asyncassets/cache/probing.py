"""Whether a reference exists, asked the way a fetch would ask, without fetching it: one
metadata request (HEAD for HTTP, fsspec's ``info`` for object stores, the Hub's
``repo_info`` and file list), through the same transports, with the same choice of files.
What ``asyncassets check --reachable`` asks of every URI a card names."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread

from asyncassets.errors import AssetDownloadError, PermanentError, TransientError
from asyncassets.retrying import RetryPolicy, call_with_retries
from asyncassets.transient import describe, is_transient
from asyncassets.urls import scrub

from .job import FetchJob
from .layout import CacheLayout
from .transports import open_source

__all__ = ["PROBE_RETRY", "ProbeResult", "probe"]

#: Retries of one metadata request that failed in a way a later attempt may not.
PROBE_RETRY = RetryPolicy(attempts=3, initial=0.2, maximum=2.0)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """``status``: ``ok``, ``missing`` (the object, repo, revision or file is not there, or
    the reference is wrong) or ``unknown`` (the question could not be answered: the
    network failed after retries); ``reason`` says why, with no secret."""

    uri: str
    status: Literal["ok", "missing", "unknown"]
    reason: str = ""


async def probe(
    uri: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    include: Sequence[str] | None = None,
    retry: RetryPolicy = PROBE_RETRY,
) -> ProbeResult:
    """Whether ``uri`` (with the files ``include`` chooses of a folder) can be fetched.
    Never raises for what the answer is; a local path is looked at on disk."""
    try:
        # The layout only names entries here: nothing is read or written under its root.
        job = FetchJob.plan(
            uri, CacheLayout(Path(".")), include=include, storage_options=storage_options
        )
    except AssetDownloadError as exc:
        return ProbeResult(exc.uri or scrub(os.fspath(uri)), "missing", str(exc))
    shown = job.uri.public
    if job.uri.local is not None:
        local = job.uri.local
        if await anyio.to_thread.run_sync(local.exists):
            return ProbeResult(shown, "ok")
        return ProbeResult(shown, "missing", "no such file or folder")
    try:
        source = open_source(job.uri, storage_options, concurrency=1)
    except Exception as exc:
        return ProbeResult(shown, "missing", _reason(exc, job))
    try:
        listing = await call_with_retries(retry, lambda: source.describe(None))
        job.chosen(listing)
    except Exception as exc:
        status: Literal["missing", "unknown"] = "unknown" if is_transient(exc) else "missing"
        return ProbeResult(shown, status, _reason(exc, job))
    finally:
        with contextlib.suppress(Exception):
            await source.aclose()
    return ProbeResult(shown, "ok")


def _reason(exc: BaseException, job: FetchJob) -> str:
    """The error's line, with the reference as shown (never its credentials)."""
    if isinstance(exc, FileNotFoundError):
        return "no such object"
    text = str(exc) if isinstance(exc, PermanentError | TransientError) else describe(exc)
    text = text.replace(job.uri.raw, job.uri.public)
    return scrub(text)
