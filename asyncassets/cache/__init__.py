"""The checkpoint cache: the only part of asyncassets that downloads.

``CheckpointCache.fetch(uri)`` brings a file or folder from any fsspec URL into a local cache
folder, atomically, once per host, with parallel ranged reads, resumption and verification.
"""

from __future__ import annotations

from asyncassets.retrying import RetryPolicy

from .cache import CacheStats, CheckpointCache, ProgressCallback
from .layout import CacheEntry, default_cache_root

__all__ = [
    "CacheEntry",
    "CacheStats",
    "CheckpointCache",
    "ProgressCallback",
    "RetryPolicy",
    "default_cache_root",
]
