"""The Prometheus metrics of :mod:`asyncassets.asgi` (``GET /metrics``). Internal to it."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import anyio
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from asyncassets.asgi_state import AppState
from asyncassets.errors import AssetError
from asyncassets.events import ChangeEvent
from asyncassets.store import AssetStore
from asyncassets.urls import local_path


class Metrics:
    """The app's Prometheus metrics, in a registry of its own (two apps never clash)."""

    def __init__(self, state: AppState) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.reloads = Counter(
            "asyncassets_reloads",
            "Refreshes that changed cards or problems",
            registry=self.registry,
        )
        self.reload_latency = Histogram(
            "asyncassets_reload_latency_seconds",
            "From a card file's modification to the store serving it",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.load_seconds = Histogram(
            "asyncassets_load_seconds",
            "Time of the store's first load",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60),
            registry=self.registry,
        )
        self.registry.register(LiveMetrics(state))


class LiveMetrics:
    """Values read at scrape time: never stale, no bookkeeping."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        state = self.state
        cards, problems = counts(state)
        yield GaugeMetricFamily("asyncassets_cards", "Cards (plain names)", cards)
        yield GaugeMetricFamily("asyncassets_problems", "Problems the store reports", problems)
        yield GaugeMetricFamily(
            "asyncassets_ready", "1 when loaded and prefetched", 1 if state.ready else 0
        )
        yield GaugeMetricFamily(
            "asyncassets_event_subscribers", "Open /events streams", len(state.subscribers)
        )
        stats = state.store.cache.stats
        for name, value, text in (
            ("hits", stats.hits, "Fetches answered from the cache"),
            ("misses", stats.misses, "Fetches that downloaded"),
            ("bytes_downloaded", stats.bytes_downloaded, "Bytes written by downloads"),
        ):
            yield CounterMetricFamily(f"asyncassets_cache_{name}", text, value)
        done = GaugeMetricFamily(
            "asyncassets_prefetch_bytes", "Bytes prefetched so far", labels=["card"]
        )
        total = GaugeMetricFamily(
            "asyncassets_prefetch_total_bytes", "Bytes to prefetch", labels=["card"]
        )
        finished = GaugeMetricFamily(
            "asyncassets_prefetch_done", "1 when the card's prefetch is done", labels=["card"]
        )
        for card, progress in state.prefetch.items():
            done.add_metric([card], progress.done)
            if progress.total is not None:
                total.add_metric([card], progress.total)
            finished.add_metric([card], 1 if progress.state == "done" else 0)
        yield done
        yield total
        yield finished


def counts(state: AppState) -> tuple[int, int]:
    """Cards and problems of the store's current index, computed once per index (a scrape
    never loads the store nor walks 10,000 cards twice)."""
    from asyncassets.checks import index_problems

    store = state.store
    index = store._index
    if index is None:
        return 0, 0
    if state.counted is None or state.counted[0] is not index:
        cards = len({n.partition("@")[0] for n in index.names})
        problems = sum(len(p.snapshot.problems) for p in store.providers_by_precedence())
        problems += len(index_problems(index))
        state.counted = (index, cards, problems)
    return state.counted[1], state.counted[2]


async def edit_latency(store: AssetStore, event: ChangeEvent) -> float | None:
    """Seconds from the newest modification of the changed cards' files to the event."""
    newest = -math.inf
    for name in sorted(event.added | event.modified)[:64]:
        plain, _, env = name.partition("@")
        if env:
            continue
        try:
            card = await store.maybe_retrieve_card(plain)
        except AssetError:
            continue
        if card is None:
            continue
        path = local_path(card.source)
        if path is None:
            continue
        try:
            mtime = (await anyio.to_thread.run_sync(os.stat, path)).st_mtime
        except OSError:
            continue
        newest = max(newest, mtime)
    if newest == -math.inf:
        return None
    latency = event.time.timestamp() - newest
    return latency if 0 <= latency < 3600 else None
