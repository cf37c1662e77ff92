"""Prefetch once per *cache domain* in a job of many ranks, with torch.distributed as the
engine (extra ``distributed``).

A job of 8 nodes x 8 GPUs that loads a 70B checkpoint must not ask the object store for
140 GB sixty-four times; "rank 0 downloads, then a barrier" assumes one shared file system,
and with node-local caches the other nodes then find nothing. Here the ranks find out at run
time which of them see the same cache folder (a *domain*): each rank writes a marker file
into its cache folder, the markers' names are exchanged with ``all_gather_object``, and each
rank reports which markers it can see. Ranks that see each other's markers share a folder.
Each item is then downloaded by one rank of each domain (items are spread over the ranks of
a domain), and the others wait: one download per job on a shared file system, one per node
with node-local disks. Then every rank returns its local paths, in the order of the input.

Nobody waits forever: while the downloads run, the ranks exchange their state every
``interval`` seconds (a small ``all_gather_object``), so a failed download makes every rank
raise the same :class:`~asyncassets.errors.AssetError` within about one interval, and a rank
that stops answering for ``step_timeout`` seconds (it died, or hangs) makes the others raise a
clear :class:`DistributedPrefetchError` instead of hanging in a collective.

The group is anything with torch.distributed's ``barrier`` and ``all_gather_object``: a
``torch.distributed`` process group (``None``: the default one, which must be initialised),
or an object with ``get_rank()``, ``get_world_size()``, ``barrier()`` and
``all_gather_object(object_list, obj)``.

Example (a training script under ``torchrun``)::

    import torch.distributed as dist
    from asyncassets import asset_store
    from asyncassets.distributed import prefetch_distributed_sync

    dist.init_process_group("gloo")
    checkpoint, tokenizer = prefetch_distributed_sync(
        asset_store, ["qwen3_1.7b", "hg://qwen/qwen3-1.7b"]
    )
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.to_thread

from asyncassets import errors as _errors
from asyncassets.cache import CheckpointCache
from asyncassets.errors import AssetError, first_error
from asyncassets.store import AssetStore

__all__ = [
    "Collective",
    "DistributedPrefetchError",
    "TorchCollective",
    "find_domains",
    "init_from_environment",
    "prefetch_distributed",
    "prefetch_distributed_sync",
]

logger = logging.getLogger("asyncassets.distributed")

#: Seconds between two exchanges of state while downloads run.
DEFAULT_INTERVAL = 1.0
#: Seconds a rank waits for the others at any one step before it gives up.
DEFAULT_TIMEOUT = 300.0
_MARKERS = ".ranks"


class DistributedPrefetchError(AssetError):
    """The ranks of a distributed prefetch could not agree: a rank stopped answering, or
    the ranks were given different items."""


class Collective(Protocol):
    """What a distributed prefetch needs of a group of processes."""

    def get_rank(self) -> int: ...

    def get_world_size(self) -> int: ...

    def barrier(self) -> None: ...

    def all_gather_object(self, object_list: list[Any], obj: Any) -> None: ...


class TorchCollective:
    """A ``torch.distributed`` process group (``None``: the default group) as a
    :class:`Collective`."""

    def __init__(self, group: Any = None) -> None:
        try:
            import torch.distributed as dist
        except ImportError as exc:  # pragma: no cover - the extra is missing
            raise DistributedPrefetchError(
                "torch is missing: pip install 'asyncassets[distributed]'"
            ) from exc
        if not dist.is_available() or not dist.is_initialized():
            raise DistributedPrefetchError(
                "torch.distributed is not initialised: call "
                "torch.distributed.init_process_group() first (or run under torchrun with "
                "`asyncassets prefetch --distributed`)"
            )
        self._dist = dist
        self._group = group

    def get_rank(self) -> int:
        return int(self._dist.get_rank(self._group))

    def get_world_size(self) -> int:
        return int(self._dist.get_world_size(self._group))

    def barrier(self) -> None:
        self._dist.barrier(group=self._group)

    def all_gather_object(self, object_list: list[Any], obj: Any) -> None:
        self._dist.all_gather_object(object_list, obj, group=self._group)


def _collective(group: Any) -> Collective:
    if group is not None and all(
        callable(getattr(group, name, None))
        for name in ("get_rank", "get_world_size", "barrier", "all_gather_object")
    ):
        return group  # type: ignore[no-any-return]
    return TorchCollective(group)


class _Rounds:
    """Collectives run one at a time in a worker thread, each bounded by ``timeout``."""

    def __init__(self, group: Collective, timeout: float) -> None:
        self.group = group
        self.timeout = timeout
        self.rank = group.get_rank()
        self.size = group.get_world_size()

    async def gather(self, obj: Any, what: str) -> list[Any]:
        def run() -> list[Any]:
            found: list[Any] = [None] * self.size
            self.group.all_gather_object(found, obj)
            return found

        with anyio.move_on_after(self.timeout) as scope:
            try:
                return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
            except AssetError:
                raise
            except Exception as exc:
                raise DistributedPrefetchError(
                    f"rank {self.rank}: the exchange of {what} failed: {type(exc).__name__}: {exc}"
                ) from exc
        assert scope.cancelled_caught
        raise DistributedPrefetchError(
            f"rank {self.rank}: not every rank answered within {self.timeout:g} s during the "
            f"exchange of {what} (a rank died, hangs, or runs other code); gave up"
        )


# -- cache domains ---------------------------------------------------------------------------


def find_domains(seen: Sequence[Sequence[int]]) -> list[int]:
    """The domain of each rank (named by its smallest rank) from what each rank saw:
    ``seen[r]`` lists the ranks whose marker rank ``r`` found in its cache folder. Ranks
    linked by any sighting share a domain (a marker that one side of a slow network file
    system does not see yet still joins them)."""
    parent = list(range(len(seen)))

    def root(rank: int) -> int:
        while parent[rank] != rank:
            parent[rank] = parent[parent[rank]]
            rank = parent[rank]
        return rank

    for rank, others in enumerate(seen):
        for other in others:
            a, b = root(rank), root(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [root(rank) for rank in range(len(seen))]


def _write_marker(folder: Path, token: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / token
    with open(marker, "w", encoding="utf-8") as handle:
        handle.write(f"{socket.gethostname()} {os.getpid()}\n")
        handle.flush()
        os.fsync(handle.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return marker


def _visible(folder: Path, tokens: list[str]) -> list[int]:
    return [rank for rank, token in enumerate(tokens) if (folder / token).exists()]


async def _discover(rounds: _Rounds, root: Path) -> list[int]:
    folder = root / _MARKERS
    token = f"{uuid.uuid4().hex}.marker"
    marker = await anyio.to_thread.run_sync(_write_marker, folder, token)
    try:
        tokens = await rounds.gather(token, "cache-folder markers")
        seen = await anyio.to_thread.run_sync(_visible, folder, tokens)
        everyone = await rounds.gather(seen, "what each rank's cache folder holds")
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(functools.partial(marker.unlink, missing_ok=True))
    return find_domains(everyone)


# -- the prefetch ------------------------------------------------------------------------------


@dataclass
class _State:
    """What one rank tells the others each round."""

    done: bool = False
    failure: dict[str, Any] | None = None


def _describe_error(exc: BaseException, rank: int, item: str) -> dict[str, Any]:
    error = exc if isinstance(exc, AssetError) else None
    attributes = {
        k: v
        for k, v in vars(exc).items()
        if isinstance(v, (str, int, float, bool, type(None))) and not k.startswith("_")
    }
    return {
        "type": type(error).__name__ if error is not None else "AssetDownloadError",
        "message": str(exc) or type(exc).__name__,
        "attributes": attributes,
        "rank": rank,
        "host": socket.gethostname(),
        "item": item,
    }


def _rebuild_error(info: dict[str, Any]) -> AssetError:
    """The same error on every rank: the failing rank's class, message and attributes."""
    cls = getattr(_errors, str(info.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, AssetError)):
        cls = _errors.AssetDownloadError
    message = (
        f"rank {info['rank']} (host {info['host']}) could not fetch {info['item']}: "
        f"{info['message']}"
    )
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    for name, value in info.get("attributes", {}).items():
        setattr(error, name, value)
    return error


async def prefetch_distributed(
    store_or_cache: AssetStore | CheckpointCache,
    names_or_uris: Sequence[str],
    group: Any = None,
    *,
    field: str = "checkpoint",
    include: Sequence[str] | None = None,
    step_timeout: float = DEFAULT_TIMEOUT,
    interval: float = DEFAULT_INTERVAL,
    progress: bool = True,
) -> list[Path]:
    """Fetch each of ``names_or_uris`` once per cache domain and return, on every rank,
    the local paths in the order of the input.

    With an :class:`~asyncassets.AssetStore`, items are card names (their ``field``) or
    URIs; with a :class:`~asyncassets.CheckpointCache`, URIs. ``include`` chooses files of
    folders and Hub repos as in ``prefetch``. Every rank must pass the same items.
    ``step_timeout`` bounds each wait for the other ranks; ``interval`` is how often the
    ranks exchange their state while downloads run.
    """
    items = list(names_or_uris)
    rounds = _Rounds(_collective(group), step_timeout)
    cache = store_or_cache.cache if isinstance(store_or_cache, AssetStore) else store_or_cache
    fetch = _fetcher(store_or_cache, field, include)

    digest = hashlib.sha256(json.dumps(items).encode()).hexdigest()
    lists = await rounds.gather(digest, "the items to fetch")
    if len(set(lists)) != 1:
        differ = [r for r, d in enumerate(lists) if d != lists[0]]
        raise DistributedPrefetchError(
            f"the ranks were given different items to fetch (ranks {differ} differ from "
            "rank 0); every rank must pass the same list"
        )
    if not items:
        return []
    domains = await _discover(rounds, cache.root)
    members = [r for r, d in enumerate(domains) if d == domains[rounds.rank]]
    mine = [i for i in range(len(items)) if members[i % len(members)] == rounds.rank]
    logger.info(
        "rank %d: cache domain of ranks %s (%d domains in the job); fetching %d of %d items",
        rounds.rank,
        members,
        len(set(domains)),
        len(mine),
        len(items),
    )
    paths: dict[int, Path] = {}
    state = _State()
    changed = anyio.Event()

    async def download() -> None:
        nonlocal changed
        limiter = anyio.Semaphore(4)

        async def one(index: int) -> None:
            async with limiter:
                try:
                    paths[index] = await fetch(items[index], False, progress)
                except Exception as exc:
                    if state.failure is None:
                        state.failure = _describe_error(exc, rounds.rank, items[index])
                        changed.set()
                    return

        async with anyio.create_task_group() as tg:
            for index in mine:
                tg.start_soon(one, index)
        state.done = True
        changed.set()

    failed: dict[str, Any] | None = None
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(download)
            while True:
                with anyio.move_on_after(interval):
                    await changed.wait()
                changed = anyio.Event() if not (state.done or state.failure) else changed
                snapshot = {"done": state.done, "failure": state.failure}
                everyone = await rounds.gather(snapshot, "download progress")
                failures = [s["failure"] for s in everyone if s["failure"] is not None]
                if failures:
                    failed = min(failures, key=lambda f: (f["rank"], f["item"]))
                    tg.cancel_scope.cancel()
                    break
                if all(s["done"] for s in everyone):
                    break
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    if failed is not None:
        raise _rebuild_error(failed)

    for index in range(len(items)):
        if index not in paths:  # fetched by another rank of this domain
            paths[index] = await fetch(items[index], True, False)
    return [paths[index] for index in range(len(items))]


def _fetcher(
    store_or_cache: AssetStore | CheckpointCache, field: str, include: Sequence[str] | None
) -> Callable[[str, bool, bool], Awaitable[Path]]:
    async def fetch(item: str, local_only: bool, progress: bool) -> Path:
        if isinstance(store_or_cache, CheckpointCache):
            cache = store_or_cache
        elif "://" in item or item.startswith(("/", "./", "~")):
            cache = store_or_cache.cache
        else:
            return await store_or_cache.prefetch(
                item, field=field, local_only=local_only, progress=progress, include=include
            )
        return await cache.fetch(item, local_only=local_only, progress=progress, include=include)

    return fetch


def prefetch_distributed_sync(
    store_or_cache: AssetStore | CheckpointCache,
    names_or_uris: Sequence[str],
    group: Any = None,
    **kwargs: Any,
) -> list[Path]:
    """:func:`prefetch_distributed` for synchronous code (a training script): runs its
    own event loop."""
    return anyio.run(
        functools.partial(prefetch_distributed, store_or_cache, names_or_uris, group, **kwargs)
    )


# -- torchrun and SLURM ------------------------------------------------------------------------

_TORCHRUN = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def init_from_environment(environ: dict[str, str] | None = None, *, timeout: float = 1800) -> None:
    """Initialise torch.distributed (gloo) from ``torchrun``'s variables (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) or SLURM's (``SLURM_PROCID``,
    ``SLURM_NTASKS``; ``MASTER_ADDR`` / ``MASTER_PORT`` still name the rendezvous, the first
    host of ``SLURM_JOB_NODELIST`` and 29500 by default). Does nothing when already
    initialised. Raises :class:`DistributedPrefetchError` saying what is missing."""
    import datetime

    env = dict(os.environ if environ is None else environ)
    if "RANK" not in env and "SLURM_PROCID" in env:
        env["RANK"] = env["SLURM_PROCID"]
        if "SLURM_NTASKS" in env:
            env.setdefault("WORLD_SIZE", env["SLURM_NTASKS"])
        if "SLURM_LOCALID" in env:
            env.setdefault("LOCAL_RANK", env["SLURM_LOCALID"])
        if "MASTER_ADDR" not in env and env.get("SLURM_JOB_NODELIST"):
            first = _first_slurm_host(env["SLURM_JOB_NODELIST"])
            if first:
                env["MASTER_ADDR"] = first
        env.setdefault("MASTER_PORT", "29500")
    missing = [name for name in _TORCHRUN if not env.get(name)]
    if missing:
        raise DistributedPrefetchError(
            "--distributed needs the variables torchrun sets (RANK, WORLD_SIZE, MASTER_ADDR, "
            "MASTER_PORT) or SLURM's (SLURM_PROCID, SLURM_NTASKS, with MASTER_ADDR or "
            f"SLURM_JOB_NODELIST); missing: {', '.join(missing)}. Run it as: torchrun "
            "--nnodes N --nproc-per-node 1 ... -m asyncassets prefetch --distributed NAME"
        )
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        int(env["MASTER_PORT"])
    except ValueError as exc:
        raise DistributedPrefetchError(f"--distributed: {exc}") from None
    import torch.distributed as dist

    if dist.is_initialized():
        return
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        os.environ[name] = env[name]
    dist.init_process_group(
        "gloo",
        init_method="env://",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=timeout),
    )


def _first_slurm_host(nodelist: str) -> str | None:
    """The first host of a SLURM node list (``node[01-04,07],gpu3`` -> ``node01``)."""
    depth, end = 0, len(nodelist)
    for index, char in enumerate(nodelist):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            end = index
            break
    first = nodelist[:end].strip()
    name, bracket, rest = first.partition("[")
    if not bracket:
        return name or None
    number = rest.split("]", 1)[0].split(",", 1)[0].split("-", 1)[0]
    return f"{name}{number}"


def local_rank(environ: dict[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    value = env.get("LOCAL_RANK") or env.get("SLURM_LOCALID") or "0"
    try:
        return int(value)
    except ValueError:
        return 0
