"""Storage options for fsspec filesystems, shared by card stores and the cache: what the
usual environment says, what concurrency needs, and finite network timeouts. Pure: it
reads the environment and builds dicts; nothing here opens a connection."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from typing import Any

__all__ = [
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "default_storage_options",
    "options_key",
    "with_timeouts",
]

#: Seconds to open a connection, and seconds a read may wait for the next bytes, for every
#: request of an fsspec filesystem whose client would otherwise wait for ever (gcsfs sends
#: its requests with no timeout at all; fsspec's HTTP client only has a 5-minute total).
#: s3fs has its own (botocore's connect 5 s, read 15 s).
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 60.0


def default_storage_options(
    protocol: str, options: Mapping[str, Any], max_concurrency: int
) -> dict[str, Any]:
    """``options`` plus what the usual environment says and what concurrency needs.

    S3: ``$AWS_ENDPOINT_URL`` as the endpoint, and a connection pool as large as the
    concurrency (aiobotocore's default pool holds 10). GCS: ``$STORAGE_EMULATOR_HOST``
    as the endpoint (with anonymous access).
    """
    merged = copy.deepcopy(dict(options))
    if protocol in ("s3", "s3a"):
        client_kwargs = dict(merged.get("client_kwargs") or {})
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint and "endpoint_url" not in client_kwargs and "endpoint_url" not in merged:
            client_kwargs["endpoint_url"] = endpoint
        if client_kwargs:
            merged["client_kwargs"] = client_kwargs
        config_kwargs = dict(merged.get("config_kwargs") or {})
        config_kwargs.setdefault("max_pool_connections", max(max_concurrency, 10))
        # We retry with backoff ourselves; botocore's own 5 attempts on top of ours would
        # keep a dead endpoint waiting for half a minute.
        config_kwargs.setdefault("retries", {"max_attempts": 1, "mode": "standard"})
        merged["config_kwargs"] = config_kwargs
    elif protocol in ("gs", "gcs"):
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        if emulator and "endpoint_url" not in merged:
            if "://" not in emulator:
                emulator = f"http://{emulator}"
            merged["endpoint_url"] = emulator
            merged.setdefault("token", "anon")
    return with_timeouts(protocol, merged)


def with_timeouts(protocol: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with finite network timeouts where the filesystem's client has none
    (see :data:`READ_TIMEOUT`): a server that accepts a connection and never answers is an
    error after a minute, not a wait for ever. Timeouts the options set are kept."""
    merged = dict(options)
    if protocol not in ("gs", "gcs", "http", "https"):
        return merged
    try:
        import aiohttp
    except ImportError:  # the filesystem cannot be opened anyway; it says so
        return merged
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT
    )
    if protocol in ("gs", "gcs"):
        # gcsfs passes it to every request (None there means no timeout at all).
        if merged.get("requests_timeout") is None:
            merged["requests_timeout"] = timeout
    else:
        client_kwargs = dict(merged.get("client_kwargs") or {})
        client_kwargs.setdefault("timeout", timeout)
        merged["client_kwargs"] = client_kwargs
    return merged


def options_key(options: Any) -> str:
    """A key that tells storage options (and what comes with them) apart within this
    process: equal options, equal keys. An option JSON has no form for is keyed by its
    ``repr``, so two credential objects are two keys. Never written anywhere (a ``repr``
    may show a secret): the persistent index names its files another way."""
    return json.dumps(options, sort_keys=True, default=repr)
