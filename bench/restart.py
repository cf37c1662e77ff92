"""Restart benchmark: a process that starts against a remote card store, with and without
its persistent index (issue 20), against the floor of any warm start, a bare listing.

S3 on ``moto_server`` and GCS on gcp-storage-emulator, each behind the delay proxy of
``bench/_harness.py`` (``CountingProxy``: each request held ``--delay-ms``, default 20 ms,
50 MB/s per connection; a thread of this process, which only waits while a contender runs,
and which records every request line so that object reads are counted where they are
served). The store: ``--objects`` objects (default 1,000) holding ``--cards`` cards (default
10,000, plus the env overrides ``bench/lookup.py``'s generator adds), generated from the
fairseq2 card corpus, 20 sub-folders.

Contenders, each a fresh ``python`` process with an environment of its own (``PYTHONPATH``,
a scratch ``HOME``, no AWS config, proxies off, ``$ASYNCASSETS_CACHE_DIR`` a temporary folder
shared by the priming and the warm runs; network to 127.0.0.1 only):

- listing (the floor): ``fs.find(prefix, detail=True)`` with s3fs / gcsfs;
- cold: ``await AssetStore([FileAssetMetadataProvider(url, storage_options=...,
  index=False)]).load()`` and ``asset_names()`` (every card parsed and merged);
- warm: the same with the index on (the default for a remote store), after one priming
  load ("prime": a cold load that writes the index), the index unchanged since.

"work s", the figure compared, is timed inside the child the same way for all three: from
before ``import s3fs`` / ``gcsfs`` (and ``asyncassets``) to the listing done / the cards
loaded; "import s" is the part of it spent importing. "wall s" is the whole process seen
from here (interpreter start-up and shut-down included), less the time the child spent
digesting the cards after the load. The contenders run in alternating rounds (``--rounds``,
at least 3: listing, cold, warm, then warm, cold, listing, ...) and their medians are
compared. Requests are classed by the proxy: listings, object reads (S3: ``GET`` of a key;
GCS: ``alt=media``) and other.

Then the change scenario, while no process runs: ``5`` objects overwritten (same size, new
content), ``2`` deleted and ``3`` added. A warm start must read exactly those 8 objects and
serve exactly what a start with the index off serves: each child hashes every card's
``to_dict()``, own fields, source and field sources (by canonical name, types kept) and the
problems of ``store.check()``. A second warm start after it must read nothing.

Goals (issue 20): on S3, warm at most 1.5x the listing, at least 5x less than cold, 0 object
reads when nothing changed; after the change, 8 objects read and the same cards and problems
as with the index off. GCS the same with generations (its timing ratios are shown as
information: the goal's figures are S3's). ``--profile`` adds where the time goes: warm
starts (``--rounds`` of them, the median shown) and one cold start with wall-clock timers
around the steps of a load (imports, listing, reading the index file, reading objects,
building the snapshot and the merged card index; worker threads included), and one warm
start under cProfile (main thread only).

Run: ``python bench/restart.py [--objects 1000] [--cards 10000] [--delay-ms 20] [--rounds 3]
[--skip-gcs] [--profile] [--json]``. The exit code is 0 whatever the figures: benchmarks
report, they do not gate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    HOST,
    REPO,
    CountingProxy,
    alternating,
    byte_compile,
    free_port,
    machine_info,
    moto_server,
    print_columns,
    server_process,
)

BUCKET = "bench-restart"
PREFIX = "cards"
MIN_ROUNDS = 3
LISTING, COLD, PRIME, WARM = "listing", "cold", "prime", "warm"
#: The change scenario: objects overwritten (same size), deleted, added.
OVERWRITE, DELETE, ADD = 5, 2, 3
WARM_VS_LISTING = 1.5  # goal: warm <= 1.5x the listing
COLD_VS_WARM = 5.0  # goal: cold >= 5x warm
_REQUEST_LINE = re.compile(rb"([A-Z]+) (\S+) HTTP/1\.[01]\r\n")
_REMOTE = "asyncassets.providers.remote"
#: ``--profile``: the steps of a load timed in the child, ``(label, module, class, method)``;
#: indented labels run inside the one above them.
PHASE_POINTS = [
    ("store.load(): AssetStore._ready", "asyncassets.store", "AssetStore", "_ready"),
    ("  providers loaded: _load_pending", "asyncassets.store", "AssetStore", "_load_pending"),
    ("    provider.load()", "asyncassets.providers.base", "SnapshotProvider", "load"),
    ("      listing: list_files", _REMOTE, "RemoteCardFolder", "list_files"),
    ("        open the filesystem", _REMOTE, "RemoteCardFolder", "filesystem"),
    ("      index: split", "asyncassets.providers.indexing", "ProviderIndex", "split"),
    ("        index: read the file", "asyncassets.providers.index", "CardIndex", "load"),
    ("      read objects", _REMOTE, "RemoteCardFolder", "read"),
    ("      index: update", "asyncassets.providers.indexing", "ProviderIndex", "update"),
    ("      Snapshot.build", "asyncassets.snapshot", "Snapshot", "build"),
]


# -- the contender, in a fresh process ---------------------------------------------------------

# argv: kind ("listing" or "load") and its arguments as JSON. Prints one JSON line.
CHILD = r"""
import json, logging, sys, time
started = time.perf_counter()
kind, args = sys.argv[1], json.loads(sys.argv[2])
profile = None
if args.get("profile") == "cprofile":
    import cProfile
    profile = cProfile.Profile()
    profile.enable()
out = {}
if args["protocol"] == "s3":
    import s3fs
else:
    import gcsfs
out["import_fs_s"] = time.perf_counter() - started
if kind == "listing":
    import fsspec
    out["import_s"] = time.perf_counter() - started
    fs = fsspec.filesystem(args["protocol"], skip_instance_cache=True, **args["options"])
    found = fs.find(args["root"], detail=True)
    out["work_s"] = time.perf_counter() - started
    out["objects"] = len(found)
    out["digest_s"] = 0.0
else:
    import asyncio, hashlib
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(f"{record.levelname} {record.name}: {record.getMessage()}")

    logging.getLogger().addHandler(Collect(logging.DEBUG))
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("asyncassets.index").setLevel(logging.DEBUG)
    from asyncassets import AssetError, AssetStore, FileAssetMetadataProvider
    if args.get("profile") == "phases":
        # Wall-clock timers around the steps of a load (worker threads included, which
        # cProfile does not see). Internal names: a step that is not found is left out.
        import functools, importlib, inspect
        phases = out["phases"] = {}

        def timed(label, func):
            def add(t):
                phases[label] = phases.get(label, 0.0) + time.perf_counter() - t

            if inspect.iscoroutinefunction(func):
                async def wrapper(*a, **k):
                    t = time.perf_counter()
                    try:
                        return await func(*a, **k)
                    finally:
                        add(t)
            else:
                def wrapper(*a, **k):
                    t = time.perf_counter()
                    try:
                        return func(*a, **k)
                    finally:
                        add(t)
            return functools.wraps(func)(wrapper)

        for label, module, owner, name in args["phase_points"]:
            try:
                cls = getattr(importlib.import_module(module), owner)
                raw = cls.__dict__[name]
            except (ImportError, AttributeError, KeyError):
                continue
            if isinstance(raw, classmethod):
                setattr(cls, name, classmethod(timed(label, raw.__func__)))
            else:
                setattr(cls, name, timed(label, raw))
    out["import_s"] = time.perf_counter() - started

    def typed(value):
        return [type(value).__name__, repr(value)]

    def dumps(value):
        return json.dumps(value, sort_keys=True, default=typed).encode()

    async def load():
        provider = FileAssetMetadataProvider(
            args["url"], storage_options=args["options"], index=args["index"]
        )
        store = AssetStore([provider])
        try:
            await store.load()
            names = await store.asset_names()
            out["work_s"] = time.perf_counter() - started
            if profile is not None:
                profile.disable()
            digest_started = time.perf_counter()
            out["names"] = len(names)
            out["plain"] = sum(1 for n in names if n.endswith("@"))
            cards = hashlib.sha256()
            for name in sorted(names):
                try:
                    card = await store.retrieve_card(name)
                    item = {
                        "name": name,
                        "source": card.source,
                        "fields": card.to_dict(),
                        "own": dict(card.raw_metadata),
                        "origins": {k: card.field_source(k) for k in card.raw_metadata},
                    }
                except AssetError as exc:
                    item = {"name": name, "error": f"{type(exc).__name__}: {exc}"}
                cards.update(dumps(item) + b"\n")
            problems = [dumps(p.to_dict()) for p in await store.check()]
            out["cards_digest"] = cards.hexdigest()
            out["problems"] = len(problems)
            out["problems_digest"] = hashlib.sha256(b"\n".join(sorted(problems))).hexdigest()
            out["problems_order_digest"] = hashlib.sha256(b"\n".join(problems)).hexdigest()
            out["digest_s"] = time.perf_counter() - digest_started
        finally:
            await store.aclose()

    asyncio.run(load())
    out["log"] = records
if profile is not None:
    import io, pstats
    profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(40)
    out["profile"] = text.getvalue()
print(json.dumps(out))
"""


def child_env(work: Path, cache: Path) -> dict[str, str]:
    """The environment of every contender: nothing of this shell's but ``PATH``."""
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO),
        "ASYNCASSETS_CACHE_DIR": str(cache),
        "XDG_CACHE_HOME": str(work / "xdg"),
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",  # the emulator knows no HNS probe
        "NO_PROXY": f"{HOST},localhost",
        "no_proxy": f"{HOST},localhost",
    }


# -- the proxy that counts object reads --------------------------------------------------------


class _RecordingReader:
    """A stream reader that notes the request line of every chunk opening a request."""

    def __init__(self, reader: asyncio.StreamReader, proxy: RecordingProxy) -> None:
        self._reader = reader
        self._proxy = proxy

    async def read(self, n: int = -1) -> bytes:
        data = await self._reader.read(n)
        match = _REQUEST_LINE.match(data)
        if match:
            with self._proxy.lines_lock:
                self._proxy.lines.append((match[1].decode(), match[2].decode()))
        return data


def _quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The proxy's loop, without "Task was destroyed but it is pending!" for the piping
    tasks of connections a contender dropped as it exited (its requests were answered and
    counted: noise on stderr); anything else as asyncio reports it."""
    if not str(context.get("message", "")).startswith("Task was destroyed"):
        loop.default_exception_handler(context)


class RecordingProxy(CountingProxy):
    """``CountingProxy`` (delay, bandwidth, counters) that also keeps ``(method, target)`` of
    every request, as ``CountingProxy`` counts them (a chunk that opens a request)."""

    def __init__(self, target_url: str, **kwargs: Any) -> None:
        super().__init__(target_url, **kwargs)
        self.lines: list[tuple[str, str]] = []
        self.lines_lock = threading.Lock()
        self._loop.set_exception_handler(_quiet)

    async def _upstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await super()._upstream(_RecordingReader(reader, self), writer)

    def take(self) -> list[tuple[str, str]]:
        with self.lines_lock:
            lines, self.lines = self.lines, []
        self.reset()
        return lines


# -- the object stores -------------------------------------------------------------------------


class Backend:
    """One object store: its server, how to put and delete objects directly (not through
    the proxy), the storage options of a client going through the proxy, and how its
    requests read."""

    name = ""
    protocol = ""
    #: The issue's timing goals are measured on S3; elsewhere the ratios are information.
    timing_goals = False

    def server(self) -> contextlib.AbstractContextManager[str]:
        raise NotImplementedError

    def create(self, origin: str, files: dict[str, bytes]) -> None:
        raise NotImplementedError

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def options(self, endpoint: str) -> dict[str, Any]:
        raise NotImplementedError

    def classify(self, method: str, target: str) -> tuple[str, str | None]:
        """``("list" | "read" | "other", key of an object read or None)``."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"{self.protocol}://{BUCKET}/{PREFIX}"


class S3(Backend):
    name = "S3 (moto)"
    protocol = "s3"
    timing_goals = True

    def server(self) -> contextlib.AbstractContextManager[str]:
        return moto_server()

    def create(self, origin: str, files: dict[str, bytes]) -> None:
        import boto3

        self.client = boto3.client(
            "s3",
            endpoint_url=origin,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        self.client.create_bucket(Bucket=BUCKET)  # no LocationConstraint: moto refuses one
        for key, data in files.items():
            self.put(key, data)

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=data)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=BUCKET, Key=key)

    def options(self, endpoint: str) -> dict[str, Any]:
        return {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint}}

    def classify(self, method: str, target: str) -> tuple[str, str | None]:
        path, _, query = target.partition("?")
        bucket, _, key = urllib.parse.unquote(path).lstrip("/").partition("/")
        if method == "GET" and bucket == BUCKET and key:
            return "read", key
        if method == "GET" and not key and "list-type" in query:
            return "list", None
        return "other", None


class GCS(Backend):
    name = "GCS (emulator)"
    protocol = "gs"

    def server(self) -> contextlib.AbstractContextManager[str]:
        port = free_port()
        launcher = REPO / "tests" / "gcs_emulator_launcher.py"
        return server_process([sys.executable, str(launcher), HOST, str(port)], port)

    def _request(self, method: str, url: str, data: bytes | None, kind: str) -> None:
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": kind}
        )
        with self.opener.open(request, timeout=30) as response:
            response.read()

    def create(self, origin: str, files: dict[str, bytes]) -> None:
        self.origin = origin
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        body = json.dumps({"name": BUCKET}).encode()
        self._request("POST", f"{origin}/storage/v1/b?project=test", body, "application/json")
        for key, data in files.items():
            self.put(key, data)

    def put(self, key: str, data: bytes) -> None:
        name = urllib.parse.quote(key, safe="")
        url = f"{self.origin}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={name}"
        self._request("POST", url, data, "application/octet-stream")

    def delete(self, key: str) -> None:
        name = urllib.parse.quote(key, safe="")
        self._request("DELETE", f"{self.origin}/storage/v1/b/{BUCKET}/o/{name}", None, "text/plain")

    def options(self, endpoint: str) -> dict[str, Any]:
        return {"endpoint_url": endpoint, "token": "anon", "project": "test"}

    def classify(self, method: str, target: str) -> tuple[str, str | None]:
        path, _, query = target.partition("?")
        params = urllib.parse.parse_qs(query)
        _, sep, name = path.partition(f"/b/{BUCKET}/o")
        if method == "GET" and sep and params.get("alt") == ["media"]:
            return "read", urllib.parse.unquote(name.lstrip("/"))
        if method == "GET" and sep and not name.strip("/"):
            return "list", None
        return "other", None


# -- the cards ---------------------------------------------------------------------------------


def generate(objects: int, cards: int) -> tuple[dict[str, bytes], dict[str, bytes], int]:
    """``({key: YAML} of the store, {key: YAML} of the objects the change adds, documents)``
    from bench/lookup.py's generator (the fairseq2 corpus, base chains, env overrides)."""
    from lookup import card_files, generate_store

    with tempfile.TemporaryDirectory(prefix="restart-cards-") as tmp:
        store = generate_store(Path(tmp, "store"), files=objects, cards=cards, seed=0)
        files = {
            f"{PREFIX}/{path.relative_to(store.root).as_posix()}": path.read_bytes()
            for path in card_files(store.root)
        }
        # The added objects: cards of their own (names renamed so as not to clash), with
        # their bases among themselves.
        extra = generate_store(Path(tmp, "extra"), files=ADD, cards=10 * ADD, seed=1)
        added = {
            f"{PREFIX}/added/cards_{k:03d}.yaml": re.sub(
                rb"_(\d{5})\b", rb"_new\1", path.read_bytes()
            )
            for k, path in enumerate(card_files(extra.root))
        }
    return files, added, store.documents


def overwritten(data: bytes) -> bytes:
    """Same size, new content: every digit of the ``checkpoint`` and ``tokenizer`` values
    moved on by one."""

    def shift(match: re.Match[bytes]) -> bytes:
        value = bytes((b - 48 + 1) % 10 + 48 if 48 <= b <= 57 else b for b in match[2])
        return match[1] + value

    new = re.sub(rb"(?m)^((?:checkpoint|tokenizer): )(.*)$", shift, data)
    if new == data or len(new) != len(data):
        raise SystemExit("error: cannot overwrite an object at the same size")
    return new


@dataclass
class Change:
    overwritten: list[str]
    deleted: list[str]
    added: list[str]

    @property
    def expected_reads(self) -> list[str]:
        return sorted(self.overwritten + self.added)


def apply_change(backend: Backend, files: dict[str, bytes], added: dict[str, bytes]) -> Change:
    keys = sorted(files)
    step = len(keys) // (OVERWRITE + DELETE + 1)
    picked = [keys[step * (i + 1)] for i in range(OVERWRITE + DELETE)]
    change = Change(picked[:OVERWRITE], picked[OVERWRITE:], sorted(added))
    for key in change.overwritten:
        backend.put(key, overwritten(files[key]))
    for key in change.deleted:
        backend.delete(key)
    for key in change.added:
        backend.put(key, added[key])
    return change


# -- runs --------------------------------------------------------------------------------------


@dataclass
class Run:
    contender: str
    work_s: float
    import_s: float
    wall_s: float
    requests: int
    lists: int
    reads: list[str]
    other: int
    load_avg: float  # the 1-minute load average as the run started: what else ran
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def index_log(self) -> list[str]:
        return [line for line in self.result.get("log", []) if "asyncassets.index" in line]

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data["reads"] = len(self.reads)
        data["read_keys"] = self.reads if len(self.reads) <= 20 else self.reads[:20]
        data["result"] = {k: v for k, v in self.result.items() if k != "profile"}
        data["import_fs_s"] = self.result.get("import_fs_s")
        return data


class Bench:
    """The contenders of one object store, through one proxy, with one index folder."""

    def __init__(
        self, backend: Backend, proxy: RecordingProxy, work: Path, log: Callable[[str], None]
    ) -> None:
        self.backend = backend
        self.proxy = proxy
        self.log = log
        folder = work / backend.protocol
        self.env = child_env(folder, folder / "cache")
        self.options = backend.options(proxy.url)

    def args(self, index: bool | None, profile: str | None) -> dict[str, Any]:
        return {
            "protocol": self.backend.protocol,
            "options": self.options,
            "root": f"{BUCKET}/{PREFIX}",
            "url": self.backend.url,
            "index": index,
            "profile": profile,
            "phase_points": PHASE_POINTS,
        }

    def run(self, contender: str, *, profile: str | None = None) -> Run:
        """One run of ``contender`` in a fresh process; ``profile``: "phases" (timers around
        the steps of the load) or "cprofile"."""
        kind = LISTING if contender == LISTING else "load"
        index = False if contender == COLD else None  # None: the default, on for a remote store
        argv = [sys.executable, "-c", CHILD, kind, json.dumps(self.args(index, profile))]
        self.proxy.take()
        load_avg = os.getloadavg()[0]
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=self.env, check=False)
        elapsed = time.perf_counter() - started
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise SystemExit(f"{contender} failed ({done.returncode}):\n{done.stderr[-4000:]}")
        result = json.loads(lines[-1])
        requests = self.proxy.take()
        classes = [self.backend.classify(method, target) for method, target in requests]
        run = Run(
            contender=contender,
            work_s=result["work_s"],
            import_s=result["import_s"],
            wall_s=elapsed - result["digest_s"],
            requests=len(requests),
            lists=sum(1 for kind, _ in classes if kind == "list"),
            reads=sorted(key for kind, key in classes if kind == "read" and key is not None),
            other=sum(1 for kind, _ in classes if kind == "other"),
            load_avg=load_avg,
            result=result,
        )
        self.log(
            f"  {contender:<16} work {run.work_s:6.3f} s  wall {run.wall_s:6.3f} s  "
            f"{run.requests} requests, {len(run.reads)} object reads, load {load_avg:.2f}"
        )
        return run


def median_of(runs: list[Run], attribute: str) -> float:
    return statistics.median(getattr(r, attribute) for r in runs)


def measure(
    backend: Backend,
    files: dict[str, bytes],
    added: dict[str, bytes],
    opts: argparse.Namespace,
    work: Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    log(f"{backend.name}: starting the server, uploading {len(files)} objects")
    with backend.server() as origin:
        backend.create(origin, files)
        proxy = RecordingProxy(
            origin, delay=opts.delay_ms / 1000, bandwidth=opts.bandwidth_mb * 1e6
        )
        with proxy:
            bench = Bench(backend, proxy, work, log)
            log(f"{backend.name}: warm-up (untimed: byte-code and page cache)")
            bench.run(LISTING)
            bench.run(COLD)
            log(f"{backend.name}: priming the index")
            prime = bench.run(PRIME)
            runs: dict[str, list[Run]] = {LISTING: [], COLD: [], WARM: []}
            for round_, contender in alternating([LISTING, COLD, WARM], opts.rounds):
                if contender == LISTING:
                    log(f"{backend.name}: round {round_ + 1} of {opts.rounds}")
                runs[contender].append(bench.run(contender))
            profile: dict[str, Any] | None = None
            if opts.profile:
                log(f"{backend.name}: profiling warm starts")
                profile = {
                    "phases": [bench.run(WARM, profile="phases") for _ in range(opts.rounds)],
                    "cold_phases": bench.run(COLD, profile="phases"),
                    "cprofile": bench.run(WARM, profile="cprofile"),
                }

            log(
                f"{backend.name}: change: {OVERWRITE} overwritten, {DELETE} deleted, "
                f"{ADD} added; no process runs"
            )
            change = apply_change(backend, files, added)
            after = bench.run(WARM)
            off = bench.run(COLD)
            again = bench.run(WARM)
    return {
        "backend": backend,
        "prime": prime,
        "runs": runs,
        "profile": profile,
        "change": change,
        "after": after,
        "off": off,
        "again": again,
    }


# -- report ------------------------------------------------------------------------------------


def same_cards(a: Run, b: Run) -> bool:
    keys = ("names", "cards_digest", "problems", "problems_digest")
    return all(a.result.get(k) == b.result.get(k) for k in keys)


def verdicts(m: dict[str, Any]) -> dict[str, Any]:
    """The ratios and checks of one store; ``goals``: each goal met or not (the timing goals
    only where they are set, on S3)."""
    runs: dict[str, list[Run]] = m["runs"]
    listing, cold, warm = (median_of(runs[c], "work_s") for c in (LISTING, COLD, WARM))
    w_listing, w_cold, w_warm = (median_of(runs[c], "wall_s") for c in (LISTING, COLD, WARM))
    change: Change = m["change"]
    after, off, again = m["after"], m["off"], m["again"]
    loads = runs[COLD] + runs[WARM] + [m["prime"]]
    warm_reads = max(len(r.reads) for r in runs[WARM])
    return {
        "warm_vs_listing": warm / listing,
        "warm_vs_listing_wall": w_warm / w_listing,
        "cold_vs_warm": cold / warm,
        "cold_vs_warm_wall": w_cold / w_warm,
        "warm_object_reads": warm_reads,
        "unchanged_same_cards": all(same_cards(r, loads[0]) for r in loads),
        "after_change_reads": after.reads,
        "after_change_reads_expected": change.expected_reads,
        "after_change_same_cards": same_cards(after, off),
        "after_change_problems_same_order": after.result.get("problems_order_digest")
        == off.result.get("problems_order_digest"),
        "second_warm_reads": len(again.reads),
        "second_warm_same_cards": same_cards(again, off),
        "goals": {
            **(
                {
                    "warm_vs_listing": warm / listing <= WARM_VS_LISTING,
                    "cold_vs_warm": cold / warm >= COLD_VS_WARM,
                }
                if m["backend"].timing_goals
                else {}
            ),
            "warm_object_reads": warm_reads == 0,
            "after_change_reads": after.reads == change.expected_reads,
            "after_change_same_cards": same_cards(after, off),
        },
    }


def table_rows(m: dict[str, Any]) -> list[tuple[str, ...]]:
    runs: dict[str, list[Run]] = m["runs"]
    listing = median_of(runs[LISTING], "work_s")

    def row(label: str, group: list[Run]) -> tuple[str, ...]:
        work = median_of(group, "work_s")
        each = ", ".join(f"{r.work_s:.2f}" for r in group) if len(group) > 1 else "-"
        pick = sorted(group, key=lambda r: r.work_s)[len(group) // 2]
        return (
            label,
            f"{work:.3f}",
            f"{median_of(group, 'import_s'):.3f}",
            f"{median_of(group, 'wall_s'):.3f}",
            f"{work / listing:.2f}x",
            each,
            str(pick.requests),
            str(pick.lists),
            str(len(pick.reads)),
            str(pick.other),
            str(pick.result.get("names", pick.result.get("objects", ""))),
            f"{max(r.load_avg for r in group):.1f}",
        )

    return [
        row("listing: fs.find(detail=True)", runs[LISTING]),
        row("cold: index=False", runs[COLD]),
        row("prime: first load, index written", [m["prime"]]),
        row("warm: index unchanged", runs[WARM]),
        row(f"after change: warm ({OVERWRITE}~ {DELETE}- {ADD}+)", [m["after"]]),
        row("after change: index=False", [m["off"]]),
        row("after change: warm again", [m["again"]]),
    ]


HEADER = (
    "contender",
    "work s",
    "import s",
    "wall s",
    "x listing",
    "runs (work s)",
    "requests",
    "lists",
    "obj reads",
    "other",
    "names/objs",
    "load",
)


def print_report(
    results: list[dict[str, Any]], opts: argparse.Namespace, meta: dict[str, Any]
) -> None:
    info = meta["machine"]
    print(
        f"restart: {meta['cards']:,} cards ({meta['documents']:,} documents with env overrides) "
        f"in {meta['objects']:,} objects ({meta['bytes'] / 1e6:.1f} MB); delay proxy "
        f"{opts.delay_ms:g} ms/request, {opts.bandwidth_mb:g} MB/s per connection; medians of "
        f"{opts.rounds} alternating rounds; each run a fresh process; {info['python']}, "
        f"{info['usable_cores']} usable cores"
    )
    for m in results:
        backend: Backend = m["backend"]
        v = verdicts(m)
        print()
        print(f"{backend.name}: {backend.url}")
        print_columns(HEADER, table_rows(m))
        print(
            "  work s: in the child, imports included; wall s: the whole process; medians. "
            "load: the highest 1-min load average as a run began"
        )
        print()

        def line(ok: bool | None, text: str) -> None:
            print(f"  [{'info' if ok is None else 'met' if ok else 'MISSED'}] {text}")

        line(
            v["goals"].get("warm_vs_listing"),
            f"warm / listing = {v['warm_vs_listing']:.2f}x (goal <= {WARM_VS_LISTING:g}x); "
            f"whole process: {v['warm_vs_listing_wall']:.2f}x",
        )
        line(
            v["goals"].get("cold_vs_warm"),
            f"cold / warm = {v['cold_vs_warm']:.1f}x (goal >= {COLD_VS_WARM:g}x); "
            f"whole process: {v['cold_vs_warm_wall']:.1f}x",
        )
        line(
            v["goals"]["warm_object_reads"],
            f"object reads of a warm start, nothing changed: {v['warm_object_reads']} (goal 0)",
        )
        reads = v["after_change_reads"]
        line(
            v["goals"]["after_change_reads"],
            f"after the change a warm start read {len(reads)} objects "
            f"(goal: exactly the {OVERWRITE} overwritten and {ADD} added)"
            + ("" if v["goals"]["after_change_reads"] else f": {reads}"),
        )
        line(
            v["goals"]["after_change_same_cards"],
            "after the change it serves what index=False serves (every card, every problem"
            + (")" if v["after_change_problems_same_order"] else "; problems in another order)"),
        )
        print(
            f"  warm and cold serve the same cards, nothing changed: "
            f"{'yes' if v['unchanged_same_cards'] else 'NO'}; the next warm start after the "
            f"change read {v['second_warm_reads']} objects, same cards: "
            f"{'yes' if v['second_warm_same_cards'] else 'NO'}"
        )
        for label, run in (("warm", m["runs"][WARM][0]), ("after change", m["after"])):
            for text in run.index_log:
                print(f"  {label} log: {text}")
        warnings = {t for r in (m["after"], m["runs"][WARM][0]) for t in r.result.get("log", [])}
        for text in sorted(w for w in warnings if not w.startswith("DEBUG")):
            print(f"  warning: {text}")
        if m["profile"] is not None:
            print_profile(backend, m["profile"])


def phase_rows(run: Run) -> list[tuple[str, str]]:
    """Where the time of one run went: imports, then the timed steps of the load."""
    phases = run.result.get("phases", {})
    fs_import = run.result["import_fs_s"]
    rows = [
        ("import s3fs / gcsfs (+ fsspec, aiobotocore...)", fs_import),
        ("import asyncassets (after it)", run.import_s - fs_import),
    ]
    rows += [(label, phases[label]) for label, *_ in PHASE_POINTS if label in phases]
    ready = phases.get(PHASE_POINTS[0][0])
    pending = phases.get(PHASE_POINTS[1][0])
    if ready is not None and pending is not None:
        rows.append(("  merged card index (_ready - _load_pending)", ready - pending))
    rows.append(("total (work s)", run.work_s))
    return [(label, f"{seconds:.3f}") for label, seconds in rows]


def print_profile(backend: Backend, profile: dict[str, Any]) -> None:
    warm: list[Run] = profile["phases"]
    pick = sorted(warm, key=lambda r: r.work_s)[len(warm) // 2]
    cold: Run = profile["cold_phases"]
    print()
    print(
        f"{backend.name}: where the time goes (timers around the steps, seconds; warm: the "
        f"median of {len(warm)} timed warm starts; one cold start)"
    )
    warm_rows, cold_rows = phase_rows(pick), dict(phase_rows(cold))
    print_columns(
        ("step", "warm", "cold"),
        [(label, value, cold_rows.get(label, "-")) for label, value in warm_rows],
    )
    print()
    print(f"{backend.name}: one warm start under cProfile (main thread only, imports included):")
    print(profile["cprofile"].result["profile"])


def as_json(results: list[dict[str, Any]], opts: argparse.Namespace, meta: dict[str, Any]) -> None:
    out: dict[str, Any] = {**meta, "delay_ms": opts.delay_ms, "rounds": opts.rounds, "stores": {}}
    for m in results:
        backend: Backend = m["backend"]
        out["stores"][backend.protocol] = {
            "name": backend.name,
            "url": backend.url,
            "medians_s": {
                c: {"work": median_of(r, "work_s"), "wall": median_of(r, "wall_s")}
                for c, r in m["runs"].items()
            },
            "runs": {c: [r.summary() for r in runs] for c, runs in m["runs"].items()},
            "prime": m["prime"].summary(),
            "change": asdict(m["change"]),
            "after_change": m["after"].summary(),
            "index_off_after_change": m["off"].summary(),
            "warm_again": m["again"].summary(),
            "verdicts": verdicts(m),
            "profile": None
            if m["profile"] is None
            else {
                "warm_phases": [
                    {k.strip(): v for k, v in r.result["phases"].items()}
                    for r in m["profile"]["phases"]
                ],
                "warm_work_s": [r.work_s for r in m["profile"]["phases"]],
                "cold_phases": {
                    k.strip(): v for k, v in m["profile"]["cold_phases"].result["phases"].items()
                },
                "cprofile": m["profile"]["cprofile"].result["profile"],
            },
        }
    print(json.dumps(out, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--cards", type=int, default=10000)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--bandwidth-mb", type=float, default=50.0, help="MB/s per connection")
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS, help="at least 3")
    parser.add_argument("--skip-gcs", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="where a warm start's time goes (timers, cProfile)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    opts = parser.parse_args()
    if opts.rounds < MIN_ROUNDS:
        parser.error(f"--rounds: medians of at least {MIN_ROUNDS} alternating rounds")

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    byte_compile()
    started = time.perf_counter()
    files, added, documents = generate(opts.objects, opts.cards)
    log(
        f"generated {opts.cards:,} cards ({documents:,} documents) in {len(files)} objects "
        f"({time.perf_counter() - started:.1f} s)"
    )
    meta = {
        "objects": len(files),
        "cards": opts.cards,
        "documents": documents,
        "bytes": sum(map(len, files.values())),
        "machine": machine_info(),
    }
    backends: list[Backend] = [S3()] if opts.skip_gcs else [S3(), GCS()]
    work = Path(tempfile.mkdtemp(prefix="restart-bench-"))
    try:
        results = [measure(b, files, added, opts, work, log) for b in backends]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if opts.json:
        as_json(results, opts, meta)
    else:
        print_report(results, opts, meta)


if __name__ == "__main__":
    main()
