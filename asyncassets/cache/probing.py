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
from .transports import RemoteListing, open_source

__all__ = ["PROBE_RETRY", "PROBE_TIMEOUT", "ProbeResult", "probe", "probe_choices"]

#: Retries of one metadata request that failed in a way a later attempt may not.
PROBE_RETRY = RetryPolicy(attempts=3, initial=0.2, maximum=2.0)
#: Seconds a reference may take to answer, retries included, before it is ``unknown``
#: (a server that stalls would otherwise hold the check for each attempt's read timeout).
PROBE_TIMEOUT = 30.0


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
    give_up_after: float = PROBE_TIMEOUT,
) -> ProbeResult:
    """Whether ``uri`` (with the files ``include`` chooses of a folder) can be fetched.
    Never raises for what the answer is; a local path is looked at on disk."""
    (result,) = await probe_choices(
        uri,
        storage_options=storage_options,
        includes=[include],
        retry=retry,
        give_up_after=give_up_after,
    )
    return result


async def probe_choices(
    uri: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    includes: Sequence[Sequence[str] | None],
    retry: RetryPolicy = PROBE_RETRY,
    give_up_after: float = PROBE_TIMEOUT,
) -> list[ProbeResult]:
    """:func:`probe` for several choices of files of one reference (a Hub repo named as a
    checkpoint and as a tokenizer): one metadata request answers them all. A reference
    that gives no answer within ``give_up_after`` seconds, retries included, is ``unknown``."""
    try:
        # The layout only names entries here: nothing is read or written under its root.
        layout = CacheLayout(Path("."))
        jobs = [
            FetchJob.plan(uri, layout, include=include, storage_options=storage_options)
            for include in includes
        ]
    except AssetDownloadError as exc:
        missing = ProbeResult(exc.uri or scrub(os.fspath(uri)), "missing", str(exc))
        return [missing for _ in includes]
    first = jobs[0]
    shown = first.uri.public
    if first.uri.local is not None:
        exists = await anyio.to_thread.run_sync(first.uri.local.exists)
        answer = ProbeResult(
            shown, "ok" if exists else "missing", "" if exists else "no such file or folder"
        )
        return [answer for _ in jobs]
    try:
        source = open_source(first.uri, storage_options, concurrency=1)
    except Exception as exc:
        return [ProbeResult(shown, "missing", _reason(exc, first)) for _ in jobs]
    try:
        listing: RemoteListing | None = None
        with anyio.move_on_after(give_up_after):
            listing = await call_with_retries(retry, lambda: source.describe(None))
        if listing is None:
            return [
                ProbeResult(shown, "unknown", f"no answer within {give_up_after:g} s") for _ in jobs
            ]
    except Exception as exc:
        status: Literal["missing", "unknown"] = "unknown" if is_transient(exc) else "missing"
        return [ProbeResult(shown, status, _reason(exc, first)) for _ in jobs]
    finally:
        with contextlib.suppress(Exception):
            await source.aclose()
    results = []
    for job in jobs:
        try:
            job.chosen(listing)
        except Exception as exc:
            results.append(ProbeResult(shown, "missing", _reason(exc, job)))
        else:
            results.append(ProbeResult(shown, "ok"))
    return results


def _reason(exc: BaseException, job: FetchJob) -> str:
    """The error's line, with the reference as shown (never its credentials)."""
    if isinstance(exc, FileNotFoundError):
        return "no such object"
    text = str(exc) if isinstance(exc, PermanentError | TransientError) else describe(exc)
    text = text.replace(job.uri.raw, job.uri.public)
    return scrub(text)
