"""The persistent index of card stores (issue 20, DESIGN.md "Persistent index"), against real
servers: S3 on moto and GCS on gcp-storage-emulator, each behind a TCP proxy that logs the
request line of every HTTP request, so a test knows exactly which objects a load read.

What is proven here:

- A restart (a new provider, same URL and options) against an unchanged store makes no
  object GET, only the listing, and serves exactly what a load with ``index=False`` serves:
  every card resolved (fields with their YAML types, sources, base chains), every entry's
  key lines, every problem with its file:line.
- Objects overwritten at the same size, deleted and added while no process ran: the
  restart reads exactly the overwritten and added ones. A prefix or bucket that disappeared
  loads (or fails) exactly as without an index.
- Problems of unchanged files are kept, and reported as before.
- An index that is empty, truncated, random, corrupt, of another version or reader or store,
  a pickle (which would write a file if unpickled), or whose entries break the card rules,
  is never used: a warning on ``asyncassets.index``, a cold load with the right cards, no
  code run, and a valid index written in its place.
- Processes loading and writing one index at once leave one valid index and no temporary
  file.
- A local folder opted in (``index=True``): an edit at the same size whose mtime was
  restored is seen (ctime), and entries recorded within 2 s of a file's mtime are not
  trusted (the racy rule, seen in the index's debug log).
- ``$ASYNCASSETS_NO_INDEX=1`` and ``index=False`` turn it off; local folders have none by
  default. Refreshes keep it current. No secret in its name or its bytes.

The CLI (``cache ls`` / ``cache prune``) is tested in ``test_index_cli.py``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import itertools
import json
import logging
import os
import pickle
import random
import shlex
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import CardFiles, put_gcs_objects, put_s3_objects, unique_bucket
from servers import _HTTP_METHOD, CountingProxy, gcs_storage_options, s3_storage_options

from asyncassets import (
    AssetError,
    AssetSourceNotFoundError,
    AssetStore,
    FileAssetMetadataProvider,
)
from asyncassets.object_stores import content_md5
from asyncassets.providers.index import FORMAT_VERSION, INDEX_SUFFIX

INDEX_LOGGER = "asyncassets.index"
REPO = Path(__file__).resolve().parents[1]


# -- a proxy that logs request lines -----------------------------------------------------------


class _Tap:
    """A stream reader that hands every chunk opening an HTTP request to ``seen``."""

    def __init__(self, reader: asyncio.StreamReader, seen: Callable[[str], None]) -> None:
        self._reader = reader
        self._seen = seen

    async def read(self, n: int = -1) -> bytes:
        data = await self._reader.read(n)
        if _HTTP_METHOD.match(data):
            self._seen(data.split(b"\r\n", 1)[0].decode("latin-1"))
        return data


class RequestLog(CountingProxy):
    """A :class:`CountingProxy` that also keeps the request line (``GET /b/k HTTP/1.1``)
    of every request, in order. ``on_request(line)``, when set, runs in the proxy's thread
    before the request is forwarded (a writer racing a load)."""

    def __init__(self, target_url: str, *, delay: float = 0.0) -> None:
        super().__init__(target_url, delay=delay)
        self.lines: list[str] = []
        self.on_request: Callable[[str], None] | None = None

    def _seen(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)
        if self.on_request is not None:
            self.on_request(line)

    async def _upstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await super()._upstream(_Tap(reader, self._seen), writer)  # type: ignore[arg-type]

    def taken(self) -> list[str]:
        """The request lines logged since the last call, and forget them."""
        with self._lock:
            lines, self.lines = self.lines, []
        return lines


@pytest.fixture
def request_log() -> Iterator[Callable[..., RequestLog]]:
    """``factory(target_url, delay=0) -> RequestLog`` (started; stopped after the test)."""
    proxies: list[RequestLog] = []

    def make(target_url: str, delay: float = 0.0) -> RequestLog:
        proxy = RequestLog(target_url, delay=delay).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()


# -- a bucket on moto or the emulator, read through the proxy ----------------------------------


@dataclass
class Bucket:
    """A fresh bucket on moto (``kind="s3"``) or the GCS emulator (``"gcs"``), its card
    folder ``prefix``: written directly, read through ``proxy`` (the URL and storage
    options a provider gets, hence the index's key, name the proxy)."""

    kind: str
    endpoint: str
    proxy: RequestLog
    name: str = field(default_factory=unique_bucket)
    prefix: str = "cards"
    extra_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._put({}, create=True)

    @property
    def url(self) -> str:
        return f"{'s3' if self.kind == 's3' else 'gs'}://{self.name}/{self.prefix}"

    @property
    def options(self) -> dict[str, Any]:
        if self.kind == "s3":
            options = s3_storage_options(self.proxy.url)
        else:
            options = gcs_storage_options(self.proxy.url)
        return {**options, **self.extra_options}

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}"

    def _put(self, files: CardFiles, *, create: bool = False) -> None:
        put = put_s3_objects if self.kind == "s3" else put_gcs_objects
        put(self.endpoint, self.name, files, create=create)

    def put(self, files: CardFiles) -> None:
        """Write (or overwrite) ``files`` under the prefix."""
        self._put({self.key(k): v for k, v in files.items()})

    def delete(self, relatives: list[str]) -> None:
        """Delete objects under the prefix."""
        if self.kind == "s3":
            with _s3_client(self.endpoint) as client:
                for relative in relatives:
                    client.delete_object(Bucket=self.name, Key=self.key(relative))
            return
        for relative in relatives:
            quoted = urllib.parse.quote(self.key(relative), safe="")
            _gcs_call("DELETE", f"{self.endpoint}/storage/v1/b/{self.name}/o/{quoted}")

    def drop(self) -> None:
        """Delete the (emptied) bucket itself."""
        if self.kind == "s3":
            with _s3_client(self.endpoint) as client:
                client.delete_bucket(Bucket=self.name)
        else:
            _gcs_call("DELETE", f"{self.endpoint}/storage/v1/b/{self.name}")

    def recreate(self) -> None:
        self._put({}, create=True)

    def provider(self, **options: Any) -> FileAssetMetadataProvider:
        """A new provider of the card folder (a process starting), through the proxy."""
        return FileAssetMetadataProvider(self.url, storage_options=self.options, **options)

    def reads(self) -> list[str]:
        """The objects (paths under the prefix) read since the last call, sorted; every
        request line since the last call is forgotten."""
        return sorted(
            object_key[len(self.prefix) + 1 :]
            for line in self.proxy.taken()
            if (object_key := self._object_read(line)) is not None
        )

    def requests(self) -> list[str]:
        """Every request line since the last call (and forget them)."""
        return self.proxy.taken()

    def is_listing(self, line: str) -> bool:
        method, target, _ = line.split(" ", 2)
        if self.kind == "s3":
            return method == "GET" and "list-type=2" in target
        return method == "GET" and target.startswith(f"/storage/v1/b/{self.name}/o?")

    def _object_read(self, line: str) -> str | None:
        """The object key a GET reads, None for any other request (a listing)."""
        method, target, _ = line.split(" ", 2)
        path, _, query = target.partition("?")
        if method != "GET":
            return None
        if self.kind == "s3":
            bucket, _, key = path.lstrip("/").partition("/")
            return urllib.parse.unquote(key) if bucket == self.name and key else None
        download = f"/download/storage/v1/b/{self.name}/o/"
        if path.startswith(download) and "alt=media" in query:
            return urllib.parse.unquote(path[len(download) :])
        return None


class _s3_client:
    """A boto3 client of the moto server, closed on exit."""

    def __init__(self, endpoint: str) -> None:
        import boto3

        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def __enter__(self) -> Any:
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()


def _gcs_call(method: str, url: str) -> None:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as r:
        r.read()


@pytest.fixture(params=["s3", "gcs"])
def bucket_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_bucket(
    request: pytest.FixtureRequest, request_log: Callable[..., RequestLog]
) -> Callable[..., Bucket]:
    """``make_bucket(kind, delay=0, **options) -> Bucket``: a fresh bucket behind a new
    logging proxy (``options`` are added to the storage options)."""

    def make(kind: str, delay: float = 0.0, **options: Any) -> Bucket:
        endpoint = request.getfixturevalue("moto_server" if kind == "s3" else "gcs_emulator")
        return Bucket(kind, endpoint, request_log(endpoint, delay), extra_options=options)

    return make


@pytest.fixture
def bucket(bucket_kind: str, make_bucket: Callable[..., Bucket]) -> Bucket:
    """A fresh bucket, once on moto and once on the GCS emulator."""
    return make_bucket(bucket_kind)


@pytest.fixture
def s3_bucket(make_bucket: Callable[..., Bucket]) -> Bucket:
    """A fresh bucket on moto (for what does not depend on the object store)."""
    return make_bucket("s3")


# -- what a store serves -------------------------------------------------------------------


def typed(value: Any) -> Any:
    """``value`` with every type spelled out and key order kept, so that ``==`` tells
    ``1`` from ``True`` and ``1.0``, a date from its string, and ``nan`` equals itself."""
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [typed(v) for v in value])
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, sorted(repr(typed(v)) for v in value))
    return (type(value).__name__, repr(value))


@dataclass(frozen=True)
class Served:
    """Everything a loaded store serves, comparable with ``==``."""

    #: canonical name -> (source, base chain, typed to_dict(), field sources), or the
    #: error retrieving it raises
    cards: dict[str, Any]
    #: every problem of ``store.check()``, as ``to_dict()`` (``where`` is ``str(p)``)
    problems: list[dict[str, Any]]
    #: every definition of every name: (file, line, index, typed metadata, key lines)
    entries: dict[str, Any]

    def field(self, name: str, key: str) -> Any:
        """A field of a served card, typed."""
        fields = dict(self.cards[name][2][1])
        return fields[typed(key)]


async def served(provider: FileAssetMetadataProvider) -> Served:
    """Load ``provider`` in a store of its own, take what it serves, close it."""
    async with AssetStore([provider]) as store:
        cards: dict[str, Any] = {}
        for name in sorted(await store.asset_names()):
            try:
                card = await store.retrieve_card(name)
            except AssetError as exc:
                cards[name] = f"{type(exc).__name__}: {exc}"
                continue
            fields = card.to_dict()
            cards[name] = (
                card.source,
                [c.name for c in card.chain()],
                typed(fields),
                {key: card.field_source(key) for key in fields},
            )
        problems = [p.to_dict() for p in await store.check()]
        snapshot = provider.snapshot
        entries = {
            name: [
                (
                    e.file,
                    e.line,
                    e.index,
                    typed(dict(e.metadata)),
                    {key: e.field_line(key) for key in e.metadata},
                )
                for e in snapshot.definitions(name)
            ]
            for name in sorted(snapshot.names)
        }
    return Served(cards, problems, entries)


def problem_lines(view: Served) -> list[str]:
    return [p["where"] for p in view.problems]


# -- the index files -----------------------------------------------------------------------


def index_folder() -> Path:
    return Path(os.environ["ASYNCASSETS_CACHE_DIR"]) / "index"


def index_files() -> list[Path]:
    folder = index_folder()
    return sorted(folder.glob(f"*{INDEX_SUFFIX}")) if folder.is_dir() else []


def the_index() -> Path:
    (path,) = index_files()
    return path


def temporary_files() -> list[str]:
    folder = index_folder()
    return (
        sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))
        if folder.is_dir()
        else []
    )


def assert_valid_index(path: Path) -> None:
    """The trailer counts the lines and hashes everything before it."""
    data = path.read_bytes()
    body, _, trailer_line = data[:-1].rpartition(b"\n")
    body += b"\n"
    trailer = json.loads(trailer_line)
    assert trailer["sha256"] == hashlib.sha256(body).hexdigest()
    assert trailer["lines"] == body.count(b"\n")


def with_trailer(lines: list[bytes]) -> bytes:
    """Index bytes made of ``lines`` (header first) and a trailer that matches them: what a
    writer that knows the format would make (the checksum is no signature)."""
    body = b"".join(line + b"\n" for line in lines)
    trailer = {"lines": len(lines), "sha256": hashlib.sha256(body).hexdigest()}
    return body + json.dumps(trailer).encode() + b"\n"


def index_parts(data: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and the file records of a valid index."""
    lines = data.split(b"\n")[:-2]  # the trailer and the empty end
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:]]


def edited(data: bytes, edit: Callable[[dict[str, Any], list[dict[str, Any]]], Any]) -> bytes:
    """``data`` (a valid index) with ``edit(header, records)`` applied in place (it may
    return a list of raw lines instead), and a matching trailer."""
    header, records = index_parts(data)
    raw = edit(header, records)
    if raw is None:
        raw = [json.dumps(header).encode()] + [json.dumps(r).encode() for r in records]
    return with_trailer(raw)


def logged(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == INDEX_LOGGER and r.levelno == level]


def index_debug_counts(caplog: pytest.LogCaptureFixture) -> list[tuple[int, int]]:
    """(files from the index, files to read) of every load logged so far."""
    counts = []
    for message in logged(caplog, logging.DEBUG):
        if " files from the index " in message:
            from_index = int(message.split(": ", 1)[1].split(" ", 1)[0])
            to_read = int(message.rsplit(", ", 1)[1].split(" ", 1)[0])
            counts.append((from_index, to_read))
    return counts


# -- cards ---------------------------------------------------------------------------------


def card_file(i: int, flavour: str = "v1") -> str:
    """A card file: card ``cNNN`` on ``cNNN-1`` (a base chain across files), YAML types
    a JSON index must keep, and an env override. Flavours of one length give one size."""
    base = f"base: c{i - 1:03d}\n" if i else ""
    return (
        f"name: c{i:03d}\n{base}model_family: toy\nreleased: 2024-01-{1 + i % 28:02d}\n"
        f"lr: 1e-4\nlayers: {i}\ntags: [a, {i}]\nflavour: {flavour}\n"
        f"config: {{dim: {64 + i}, when: 2024-02-03T04:05:06Z, ratio: .inf}}\n"
        f"---\nname: c{i:03d}@clusterA\ncheckpoint: /fsx/c{i:03d}.pt\n"
    )


def catalog(count: int, flavour: str = "v1") -> dict[str, str]:
    return {f"m/c{i:03d}.yaml": card_file(i, flavour) for i in range(count)}


#: Values a JSON index must give back with their YAML types, and files that are not plain
#: UTF-8 text with LF line ends.
TRICKY = {
    "values.yaml": (
        "name: values\nd: 2024-01-02\ndt: 2024-01-02T03:04:05.123456+05:30\n"
        "naive: 2024-01-02 03:04:05\nnegz: -0.0\nnan: .nan\nninf: -.inf\n"
        "big: 123456789012345678901234567890\nhex: 0x1F\nb: true\nn: null\n"
        's: "caf\\u00e9 \\U0001F600"\nkeys: {1: a, 2.5: b, false: c, null: d, 2024-01-01: e}\n'
        "bin: !!binary aGVsbG8=\nst: !!set {a, b}\nnested: [[1, 2], {a: [x, {b: 2024-02-03}]}]\n"
        "empty: {}\n"
    ),
    "crlf.yaml": b"name: crlf\r\nmodel_family: toy\r\nbase: values\r\n",
    "bom.yaml": b"\xef\xbb\xbfname: bom\nfamily: x\n",
    "latin1.yaml": b"name: latin\ncomment: caf\xe9\n",
}

#: One problem of every kind a card file can have, on known lines.
PROBLEMS = {
    "bad.yaml": "name: broken\nvalue: [unclosed\n",
    "orphan.yaml": "name: orphan\nfamily: x\nbase: nowhere\n",
    "dupe1.yaml": "name: twice\nwho: first\n",
    "dupe2.yaml": "family: x\n---\nname: twice\nwho: second\n",
    "nomap.yaml": "- just\n- a list\n",
    "badname.yaml": "name: '@bad'\n",
    "basetype.yaml": "name: bt\nfamily: x\nbase: [not, a, name]\n",
    "cycle.yaml": "name: cy1\nbase: cy2\n---\nname: cy2\nbase: cy1\n",
    "good.yaml": "name: good\nfamily: x\n",
}


# == 1. A restart against an unchanged store ==================================================


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_unchanged_store_restarts_with_no_object_read(bucket: Bucket) -> None:
    files = {**catalog(12), **TRICKY}
    bucket.put(files)
    reference = await served(bucket.provider(index=False))
    assert len(bucket.reads()) == len(files)
    assert reference.field("values@", "d") == typed(datetime.date(2024, 1, 2))

    first = await served(bucket.provider())  # cold: no index yet; writes it
    assert bucket.reads() == sorted(files)
    assert first == reference
    index = the_index()
    assert_valid_index(index)

    for _ in range(2):  # restarts
        warm = await served(bucket.provider())
        requests = bucket.requests()
        assert [line for line in requests if not bucket.is_listing(line)] == []
        assert len(requests) == 1, "one listing, nothing else"
        assert warm == reference


# == 2. Overwritten at the same size, deleted, added ==========================================


async def test_restart_reads_exactly_the_changed_and_added_objects(bucket: Bucket) -> None:
    files = catalog(20)
    bucket.put(files)
    await served(bucket.provider())
    bucket.reads()

    # While no provider runs: 5 overwritten at the same size, 2 deleted, 3 added.
    overwritten = [f"m/c{i:03d}.yaml" for i in (1, 4, 7, 10, 19)]
    rewritten = {path: card_file(int(path[3:6]), "v2") for path in overwritten}
    assert all(len(rewritten[p]) == len(files[p]) for p in overwritten)
    bucket.put(rewritten)
    deleted = ["m/c005.yaml", "m/c012.yaml"]
    bucket.delete(deleted)
    added = {f"n/c{i:03d}.yaml": card_file(i) for i in (30, 31, 32)}
    bucket.put(added)

    warm = await served(bucket.provider())
    assert bucket.reads() == sorted([*overwritten, *added])
    cold = await served(bucket.provider(index=False))
    assert warm == cold
    assert warm.field("c004@", "flavour") == typed("v2")
    assert warm.field("c003@", "flavour") == typed("v1")
    assert "c005@" not in warm.cards and "c030@" in warm.cards
    # c006's base c005 is gone: the same error as without the index
    assert warm.cards["c006@"] == cold.cards["c006@"]
    assert isinstance(warm.cards["c006@"], str)

    # The index was brought up to date: the next restart reads nothing.
    bucket.reads()
    again = await served(bucket.provider())
    assert bucket.reads() == []
    assert again == cold
    for path in deleted:
        assert f"{bucket.url}/{path}".encode() not in the_index().read_bytes()

    # Only a deletion: nothing to read, and the index forgets the object all the same.
    bucket.delete(["m/c000.yaml"])
    warm = await served(bucket.provider())
    assert bucket.reads() == []
    assert warm == await served(bucket.provider(index=False))
    assert f"{bucket.url}/m/c000.yaml".encode() not in the_index().read_bytes()
    assert_valid_index(the_index())


# == 3. A prefix or bucket that disappeared ===================================================


@pytest.mark.parametrize("gone", ["prefix", "bucket"])
async def test_vanished_folder_loads_as_without_an_index(bucket: Bucket, gone: str) -> None:
    files = catalog(4)
    bucket.put(files)
    await served(bucket.provider())
    assert the_index().exists()
    bucket.reads()

    bucket.delete(list(files))
    if gone == "bucket":
        bucket.drop()

    with pytest.raises(AssetSourceNotFoundError) as cold:
        await served(bucket.provider(index=False))
    with pytest.raises(AssetSourceNotFoundError) as warm:
        await served(bucket.provider())
    assert str(warm.value) == str(cold.value)
    assert bucket.reads() == []

    # missing_ok: no cards, exactly as without the index
    cold_view = await served(bucket.provider(index=False, missing_ok=True))
    warm_view = await served(bucket.provider(missing_ok=True))
    assert warm_view == cold_view
    assert warm_view.cards == {}
    assert index_parts(the_index().read_bytes())[1] == [], "the index forgot the files"

    # The folder comes back with other content under the same keys: read, not remembered.
    if gone == "bucket":
        bucket.recreate()
    bucket.put(catalog(4, "v9"))
    bucket.reads()
    back = await served(bucket.provider())
    assert bucket.reads() == sorted(files)
    assert back == await served(bucket.provider(index=False))
    assert back.field("c002@", "flavour") == typed("v9")


# == 4. Problems of unchanged files ===========================================================


async def test_problems_of_unchanged_files_are_reported_as_before(bucket: Bucket) -> None:
    bucket.put(PROBLEMS)
    cold = await served(bucket.provider(index=False))
    where = problem_lines(cold)
    # The problems are the ones meant, at their file:line (sanity of the fixture).
    expected = {
        "bad.yaml:3": "invalid YAML",
        "orphan.yaml:3": "nowhere",
        "dupe2.yaml:3": "defined again",
        "nomap.yaml:1": "not a mapping",
        "badname.yaml:1": "@bad",
        "basetype.yaml:3": "'base' must be",
    }
    for place, text in expected.items():
        assert any(place in w and text in w for w in where), (place, where)
    assert any("cy1" in w or "cy2" in w for w in where if "cycle.yaml" in w)

    await served(bucket.provider())  # writes the index
    bucket.reads()
    warm = await served(bucket.provider())
    assert bucket.reads() == []
    assert warm == cold
    assert problem_lines(warm) == where

    # Another file changes: the problems of the unchanged ones still come from the index.
    bucket.put({"good.yaml": "name: good\nfamily: y\n"})
    warm = await served(bucket.provider())
    assert bucket.reads() == ["good.yaml"]
    assert warm == await served(bucket.provider(index=False))
    assert problem_lines(warm) == where


# == 5. An index that cannot be used ==========================================================


class _Opens:
    """Unpickled, creates ``marker`` (pickle calls ``open(marker, "w")``)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


class _Runs:
    """Unpickled, runs a shell command that creates ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def pickles(marker: Path) -> list[bytes]:
    """Pickles that create ``marker`` when loaded: text (protocol 0) and binary."""
    return [
        pickle.dumps(armed(str(marker)), protocol=protocol)
        for armed in (_Opens, _Runs)
        for protocol in (0, pickle.HIGHEST_PROTOCOL)
    ]


def _first_plain(records: list[dict[str, Any]]) -> list[Any]:
    """The first entry whose metadata is plain JSON (not tagged) of the records."""
    for record in records:
        for entry in record["entries"]:
            if entry[4] is False:
                return entry
    raise AssertionError("no plain entry in the index")


def _bad_name(header: dict[str, Any], records: list[dict[str, Any]]) -> None:
    entry = _first_plain(records)
    entry[0] = "@bad"
    entry[3]["name"] = "@bad"


def _other_name(header: dict[str, Any], records: list[dict[str, Any]]) -> None:
    _first_plain(records)[0] = "not-its-name"


def _bad_base(header: dict[str, Any], records: list[dict[str, Any]]) -> None:
    _first_plain(records)[3]["base"] = "x@env"


def _foreign_problem(header: dict[str, Any], records: list[dict[str, Any]]) -> None:
    records[0]["problems"].append(
        {"kind": "yaml", "message": "planted", "source": "s3://elsewhere", "file": None}
    )


def _pickled_value(payload: bytes) -> Callable[..., None]:
    def edit(header: dict[str, Any], records: list[dict[str, Any]]) -> None:
        entry = _first_plain(records)
        entry[3] = [
            "map",
            [["name", entry[0]], ["x", ["pickle", base64.b64encode(payload).decode()]]],
        ]
        entry[4] = True

    return edit


def _pickle_line(payload: bytes) -> Callable[..., list[bytes]]:
    def edit(header: dict[str, Any], records: list[dict[str, Any]]) -> list[bytes]:
        lines = [json.dumps(header).encode()] + [json.dumps(r).encode() for r in records]
        lines[1] = payload.replace(b"\n", b" ")
        return lines

    return edit


def _too_deep(header: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """A value nested 900 deep: no card file can hold one (MAX_DEPTH is 100)."""
    deep: Any = "bottom"
    for _ in range(900):
        deep = [deep]
    _first_plain(records)[3]["deep"] = deep


def _header(**changes: Any) -> Callable[..., None]:
    def edit(header: dict[str, Any], records: list[dict[str, Any]]) -> None:
        header.update(changes)

    return edit


def corruptions(marker: Path) -> dict[str, Callable[[bytes], bytes]]:
    """``{case: good index bytes -> bad index bytes}``."""
    armed = pickles(marker)
    rng = random.Random(20)
    cases: dict[str, Callable[[bytes], bytes]] = {
        "empty": lambda data: b"",
        "truncated-half": lambda data: data[: len(data) // 2],
        "truncated-in-trailer": lambda data: data[:-10],
        "no-trailer": lambda data: data[: data.rstrip(b"\n").rfind(b"\n") + 1],
        "random-bytes": lambda data: rng.randbytes(4096),
        "nul-bytes": lambda data: b"\0" * len(data),
        "flipped-byte": lambda data: data[:50] + bytes([data[50] ^ 1]) + data[51:],
        "future-version": lambda data: edited(
            data, _header(version=FORMAT_VERSION + 1, reader="f" * 32)
        ),
        "other-reader": lambda data: edited(data, _header(reader="0" * 32)),
        "version-only": lambda data: edited(data, _header(version=FORMAT_VERSION + 1)),
        "other-format": lambda data: edited(data, _header(format="something-else")),
        "other-store": lambda data: edited(data, _header(source="s3://another-bucket/cards")),
        "line-not-an-object": lambda data: edited(
            data, lambda h, r: [json.dumps(h).encode(), b"[]"]
        ),
        "deep-json": lambda data: edited(
            data, lambda h, r: [json.dumps(h).encode(), b"[" * 100_000 + b"]" * 100_000]
        ),
        "huge-number": lambda data: edited(
            data, lambda h, r: [json.dumps(h).encode(), b'{"file": 1' + b"0" * 5000 + b"}"]
        ),
        "entry-bad-name": lambda data: edited(data, _bad_name),
        "entry-not-its-name": lambda data: edited(data, _other_name),
        "entry-bad-base": lambda data: edited(data, _bad_base),
        "problem-of-another-store": lambda data: edited(data, _foreign_problem),
        "entry-too-deep": lambda data: edited(data, _too_deep),
    }
    for n, payload in enumerate(armed):
        cases[f"pickle-{n}"] = lambda data, p=payload: p
        cases[f"pickle-{n}-in-a-line"] = lambda data, p=payload: edited(data, _pickle_line(p))
        cases[f"pickle-{n}-tagged"] = lambda data, p=payload: edited(data, _pickled_value(p))
    return cases


#: Cases that fail because of a bug in the library (see the xfail reasons).
KNOWN_BUGS: dict[str, str] = {}

CORRUPTION_CASES = [
    pytest.param(case, marks=pytest.mark.xfail(reason=KNOWN_BUGS[case], strict=True))
    if case in KNOWN_BUGS
    else case
    for case in corruptions(Path("/nonexistent"))
]


def test_the_pickles_are_armed(tmp_path: Path) -> None:
    """The payloads the index tests plant do create their marker when unpickled."""
    for n, payload in enumerate(pickles(tmp_path / "armed")):
        (tmp_path / "armed").unlink(missing_ok=True)
        result = pickle.loads(payload)  # our own payload, to prove it is live
        if hasattr(result, "close"):
            result.close()
        assert (tmp_path / "armed").exists(), n


HOSTILE_CARDS = {
    "a.yaml": "name: a\nmodel_family: toy\nlayers: 3\n",
    "b.yaml": "name: b\nbase: a\nreleased: 2024-05-06\n---\nname: b@clusterA\nlayers: 4\n",
    "c.yaml": "name: c\nvalue: [unclosed\n",
    "d.yaml": "name: d\nbase: a\n",
}


@pytest.mark.parametrize("case", CORRUPTION_CASES)
async def test_unusable_index_is_a_warning_and_a_cold_load(
    s3_bucket: Bucket, case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = s3_bucket
    bucket.put(HOSTILE_CARDS)
    cold = await served(bucket.provider(index=False))
    await served(bucket.provider())
    index = the_index()
    marker = tmp_path / "pwned"
    bad = corruptions(marker)[case](index.read_bytes())
    index.write_bytes(bad)
    bucket.reads()

    caplog.set_level(logging.DEBUG, logger=INDEX_LOGGER)
    warm = await served(bucket.provider())
    assert warm == cold
    assert not marker.exists(), "the index ran code"
    warnings = logged(caplog, logging.WARNING)
    assert len(warnings) == 1 and str(index) in warnings[0], warnings
    assert bucket.reads() == sorted(HOSTILE_CARDS), "a cold load"

    # ... and the index was written again, valid: the next start reads nothing.
    assert index.read_bytes() != bad
    assert_valid_index(index)
    caplog.clear()
    assert await served(bucket.provider()) == cold
    assert bucket.reads() == []
    assert logged(caplog, logging.WARNING) == []
    assert not marker.exists()
    assert temporary_files() == []


async def test_index_path_that_is_no_regular_file(
    s3_bucket: Bucket, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A folder, a symlink out of the cache, a FIFO where the index goes: right cards, a
    warning, nothing outside the cache changed, no load that hangs."""
    bucket = s3_bucket
    bucket.put(HOSTILE_CARDS)
    cold = await served(bucket.provider(index=False))
    await served(bucket.provider())
    index = the_index()
    caplog.set_level(logging.WARNING, logger=INDEX_LOGGER)

    # A folder: cannot be read nor replaced; every load is right and says so.
    index.unlink()
    index.mkdir()
    assert await served(bucket.provider()) == cold
    assert any("cannot read" in w for w in logged(caplog, logging.WARNING))
    assert any("cannot write" in w for w in logged(caplog, logging.WARNING))
    index.rmdir()

    # A symlink to a file outside the cache: read (and refused), never written through.
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not an index\n")
    before = outside.stat()
    index.symlink_to(outside)
    caplog.clear()
    assert await served(bucket.provider()) == cold
    assert len(logged(caplog, logging.WARNING)) == 1
    assert outside.read_bytes() == b"not an index\n"
    assert outside.stat().st_mtime_ns == before.st_mtime_ns
    assert not index.is_symlink()
    assert_valid_index(index)


async def test_fifo_at_the_index_path_does_not_hang_the_load(
    s3_bucket: Bucket, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = s3_bucket
    bucket.put(HOSTILE_CARDS)
    cold = await served(bucket.provider(index=False))
    await served(bucket.provider())
    index = the_index()
    index.unlink()
    os.mkfifo(index)
    # A timer opens the other end after 3 s, so that a load that waits for a writer ends
    # (and the test fails) instead of hanging the suite.
    unblock = threading.Timer(3, lambda: open(index, "wb").close())
    unblock.start()
    caplog.set_level(logging.WARNING, logger=INDEX_LOGGER)
    try:
        started = time.monotonic()
        assert await served(bucket.provider()) == cold
        elapsed = time.monotonic() - started
    finally:
        unblock.cancel()
        unblock.join()
    assert elapsed < 2, f"the load waited {elapsed:.1f}s on a FIFO at the index path"
    assert len(logged(caplog, logging.WARNING)) >= 1


# == 6. Processes writing one index at once ====================================================

CHILD = """\
import asyncio, json, os, sys, time
from pathlib import Path
from asyncassets import AssetStore, FileAssetMetadataProvider

url, options, barrier, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]

async def main():
    provider = FileAssetMetadataProvider(url, storage_options=options, max_concurrency=4)
    Path(out + ".ready").touch()
    while not os.path.exists(barrier):
        time.sleep(0.002)
    started = time.time()
    async with AssetStore([provider]) as store:
        names = sorted(await store.asset_names())
    ended = time.time()
    Path(out).write_text(json.dumps({"names": names, "started": started, "ended": ended}))

asyncio.run(main())
"""


def run_together(script: Path, bucket: Bucket, count: int, folder: Path) -> list[dict[str, Any]]:
    """``count`` processes that load the bucket's cards at once (released together by a
    barrier file once they have started); their results."""
    folder.mkdir()
    barrier = folder / "go"
    outs = [folder / f"out-{n}.json" for n in range(count)]
    argv = [sys.executable, str(script), bucket.url, json.dumps(bucket.options), str(barrier)]
    children = [subprocess.Popen([*argv, str(out)], cwd=REPO, env=dict(os.environ)) for out in outs]
    try:
        deadline = time.monotonic() + 60
        while not all(Path(f"{out}.ready").exists() for out in outs):  # imports done
            assert all(child.poll() is None for child in children), "a process failed"
            assert time.monotonic() < deadline, "the processes did not start"
            time.sleep(0.01)
        barrier.touch()
        for child in children:
            assert child.wait(timeout=120) == 0
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    return [json.loads(out.read_text()) for out in outs]


async def test_processes_loading_and_writing_at_once_leave_a_valid_index(
    make_bucket: Callable[..., Bucket], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = make_bucket("s3", delay=0.01)  # ~10 ms per request: the loads overlap
    files = catalog(120)
    bucket.put(files)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    caplog.set_level(logging.WARNING, logger=INDEX_LOGGER)
    overlapped = 0
    # round: (processes, what changes before it)
    rounds: list[tuple[int, Callable[[], None]]] = [
        (2, lambda: None),  # no index yet: both cold, both write
        (2, lambda: bucket.put({p: card_file(int(p[3:6]), "v2") for p in list(files)[:30]})),
        (2, lambda: the_index().unlink()),
        (3, lambda: bucket.put({f"n/c{i:03d}.yaml": card_file(i) for i in range(200, 210)})),
        (3, lambda: bucket.put({p: card_file(int(p[3:6]), "v3") for p in list(files)[::2]})),
    ]
    for n, (count, change) in enumerate(rounds):
        change()
        cold = await served(bucket.provider(index=False))
        results = run_together(script, bucket, count, tmp_path / f"round-{n}")
        for result in results:
            assert result["names"] == sorted(cold.cards)
        spans = sorted((r["started"], r["ended"]) for r in results)
        overlapped += all(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))

        assert temporary_files() == []
        assert_valid_index(the_index())
        bucket.reads()
        caplog.clear()
        assert await served(bucket.provider()) == cold
        assert bucket.reads() == [], f"round {n}: the index written last is complete"
        assert logged(caplog, logging.WARNING) == []
    assert overlapped >= len(rounds) - 1, "the loads ran at the same time"


# == 7. A local folder opted in ==============================================================


def backdate(path: Path, seconds: float = 3600) -> None:
    """Set ``path``'s mtime ``seconds`` in the past (its ctime becomes now)."""
    then = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(then, then))


async def test_local_same_size_edit_with_restored_mtime_is_seen(
    card_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = {**catalog(6), **TRICKY}
    for relative, content in files.items():
        target = card_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        backdate(target)
    caplog.set_level(logging.DEBUG, logger=INDEX_LOGGER)

    first = await served(FileAssetMetadataProvider(card_dir, index=True))
    assert first == await served(FileAssetMetadataProvider(card_dir, index=False))
    assert the_index().exists()
    assert await served(FileAssetMetadataProvider(card_dir, index=True)) == first
    assert index_debug_counts(caplog)[-1] == (len(files), 0)

    # Same size, new content, the mtime put back as it was: only ctime tells.
    edited_file = card_dir / "m/c002.yaml"
    before = edited_file.stat()
    content = card_file(2, "v2").encode()
    assert len(content) == before.st_size
    edited_file.write_bytes(content)
    os.utime(edited_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = edited_file.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    warm = await served(FileAssetMetadataProvider(card_dir, index=True))
    assert index_debug_counts(caplog)[-1] == (len(files) - 1, 1)
    assert warm == await served(FileAssetMetadataProvider(card_dir, index=False))
    assert warm.field("c002@", "flavour") == typed("v2")

    # Replaced by a new file (another inode) of the same size and mtime: seen too.
    replacement = card_dir / "m/.c002.new"
    replacement.write_bytes(card_file(2, "v3").encode())
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, edited_file)
    warm = await served(FileAssetMetadataProvider(card_dir, index=True))
    assert index_debug_counts(caplog)[-1] == (len(files) - 1, 1)
    assert warm.field("c002@", "flavour") == typed("v3")
    assert warm == await served(FileAssetMetadataProvider(card_dir, index=False))


async def test_local_racy_entries_are_read_again(
    card_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An entry recorded within 2 s of its file's mtime is not trusted at the next load,
    even though nothing about the file changed; an entry recorded later is."""
    old = card_dir / "old.yaml"
    old.write_text("name: old\n")
    backdate(old)
    fresh = card_dir / "fresh.yaml"
    fresh.write_text("name: fresh\n")  # mtime: now, so the record is racy
    caplog.set_level(logging.DEBUG, logger=INDEX_LOGGER)

    await served(FileAssetMetadataProvider(card_dir, index=True))
    assert index_debug_counts(caplog)[-1] == (0, 2)
    stat = fresh.stat()
    assert time.time_ns() - stat.st_mtime_ns < 2_000_000_000, "the test ran too slowly"
    for _ in range(2):
        view = await served(FileAssetMetadataProvider(card_dir, index=True))
        # Same size, mtime, ctime and inode: still read again, the old file is not.
        now = fresh.stat()
        assert (now.st_size, now.st_mtime_ns, now.st_ctime_ns, now.st_ino) == (
            stat.st_size,
            stat.st_mtime_ns,
            stat.st_ctime_ns,
            stat.st_ino,
        )
        assert index_debug_counts(caplog)[-1] == (1, 1)
        assert sorted(view.cards) == ["fresh@", "old@"]

    # Once a load has recorded it 2 s after its mtime, it is trusted.
    await anyio.sleep(max(0.0, 2.05 - (time.time_ns() - stat.st_mtime_ns) / 1e9))
    await served(FileAssetMetadataProvider(card_dir, index=True))
    assert index_debug_counts(caplog)[-1] == (1, 1)
    await served(FileAssetMetadataProvider(card_dir, index=True))
    assert index_debug_counts(caplog)[-1] == (2, 0)


# == 8. The index turned off ==================================================================


@pytest.mark.parametrize("how", ["env-1", "env-yes", "argument"])
async def test_index_off(s3_bucket: Bucket, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = s3_bucket
    files = catalog(5)
    bucket.put(files)
    options: dict[str, Any] = {}
    if how.startswith("env"):
        monkeypatch.setenv("ASYNCASSETS_NO_INDEX", how.split("-")[1])
    else:
        options["index"] = False
    for _ in range(2):
        await served(bucket.provider(**options))
        assert bucket.reads() == sorted(files)
    assert not index_folder().exists()


async def test_index_on_when_the_variable_says_no(
    s3_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control of the test above: ``ASYNCASSETS_NO_INDEX=0`` leaves it on."""
    bucket = s3_bucket
    monkeypatch.setenv("ASYNCASSETS_NO_INDEX", "0")
    bucket.put(catalog(5))
    await served(bucket.provider())
    bucket.reads()
    await served(bucket.provider())
    assert bucket.reads() == []
    assert len(index_files()) == 1


async def test_local_folders_have_no_index_by_default(card_dir: Path) -> None:
    (card_dir / "a.yaml").write_text("name: a\n")
    backdate(card_dir / "a.yaml")
    for _ in range(2):
        view = await served(FileAssetMetadataProvider(card_dir))
        assert list(view.cards) == ["a@"]
    assert not index_folder().exists()


# == 9. Refreshes keep the index current ======================================================


async def test_refresh_keeps_the_index_current(bucket: Bucket) -> None:
    bucket.put({**catalog(6), "broken.yaml": "name: broken\n"})
    provider = bucket.provider()
    async with AssetStore([provider]) as store:
        await store.load()
        bucket.put({"m/c001.yaml": card_file(1, "v2").replace("---", "extra: 1\n---")})
        bucket.put({"m/c002.yaml": card_file(2, "v3")})  # same size
        bucket.delete(["m/c003.yaml"])
        bucket.put({"n/new.yaml": "name: new\nbase: c000\n", "broken.yaml": "name: [x\n"})
        diff = await provider.refresh()
        assert diff
        assert (await store.retrieve_card("c001")).field("flavour").value == "v2"
        assert (await store.retrieve_card("c002")).field("flavour").value == "v3"
    bucket.reads()

    restarted = await served(bucket.provider())
    assert bucket.reads() == []
    assert restarted == await served(bucket.provider(index=False))
    assert restarted.field("c001@", "extra") == typed(1)
    assert restarted.field("c002@", "flavour") == typed("v3")
    assert "c003@" not in restarted.cards and "new@" in restarted.cards
    assert any("broken.yaml" in w for w in problem_lines(restarted))


async def test_local_refresh_of_paths_keeps_the_index_current(
    card_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What a local watcher does (``refresh(paths)``) is kept in the index too."""
    for i in range(3):
        (card_dir / f"c{i}.yaml").write_text(card_file(i))
        backdate(card_dir / f"c{i}.yaml")
    caplog.set_level(logging.DEBUG, logger=INDEX_LOGGER)
    provider = FileAssetMetadataProvider(card_dir, index=True)
    async with AssetStore([provider]) as store:
        await store.load()
        changed = card_dir / "c1.yaml"
        changed.write_text(card_file(1, "v2").replace("---", "extra: true\n---"))
        backdate(changed)
        (card_dir / "c2.yaml").unlink()
        await provider.refresh([str(changed), str(card_dir / "c2.yaml")])
        assert (await store.retrieve_card("c001")).field("extra").value is True

    restarted = await served(FileAssetMetadataProvider(card_dir, index=True))
    assert index_debug_counts(caplog)[-1] == (2, 0)
    assert restarted == await served(FileAssetMetadataProvider(card_dir, index=False))
    assert restarted.field("c001@", "extra") == typed(True)


# == 10. No secret in the index ===============================================================

SECRET_KEY_ID = "AKIA-sEcReT-id-4c1d9e"
SECRET = "sEcReT-asyncassets-index-5b2e7a"
SECRET_TOKEN = "sEcReT-session-token-93f0c2"


async def test_no_secret_in_the_index(make_bucket: Callable[..., Bucket]) -> None:
    bucket = make_bucket("s3", key=SECRET_KEY_ID, secret=SECRET, token=SECRET_TOKEN)
    bucket.put({**catalog(3), "bad.yaml": "name: [x\n"})
    provider = bucket.provider()
    async with AssetStore([provider]) as store:
        await store.load()
        bucket.put({"m/c001.yaml": card_file(1, "v2")})
        await provider.refresh()
    await served(bucket.provider())
    assert index_files(), "an index was written"
    for path in index_folder().rglob("*"):
        for secret in (SECRET_KEY_ID, SECRET, SECRET_TOKEN):
            assert secret not in path.name
            if path.is_file():
                data = path.read_bytes()
                assert secret.encode() not in data
                assert base64.b64encode(secret.encode())[:16] not in data


# == A store that changes while a load reads it ================================================


async def test_object_changed_between_listing_and_read_is_not_remembered_wrong(
    s3_bucket: Bucket,
) -> None:
    """Listed as A, overwritten with B before its GET, then A again: the index must not
    hold B's cards under A's ETag, and a refresh of the running store must read the object
    again rather than take B for A. (On GCS every write renews the generation, the
    identity there, so A again is never taken for the A listed; the emulator serves one
    connection at a time, so a write from inside the proxy would wait for its timeout.)"""
    bucket = s3_bucket
    original = "name: flip\nvalue: original\n"
    bucket.put({"flip.yaml": original, "other.yaml": "name: other\n"})
    flip = bucket.key("flip.yaml")

    def overwrite_before_the_get(line: str) -> None:
        if bucket._object_read(line) == flip:
            bucket.proxy.on_request = None
            bucket.put({"flip.yaml": "name: flip\nvalue: replaced\n"})

    bucket.proxy.on_request = overwrite_before_the_get
    provider = bucket.provider()
    async with AssetStore([provider]) as store:
        await store.load()  # lists A, reads B
        assert bucket.proxy.on_request is None, "the object was overwritten before its GET"
        assert (await store.retrieve_card("flip")).field("value").value == "replaced"
        bucket.put({"flip.yaml": original})  # A again (on S3, the ETag the listing saw)
        await provider.refresh()
        assert (await store.retrieve_card("flip")).field("value").value == "original"

    cold = await served(bucket.provider(index=False))
    assert cold.field("flip@", "value") == typed("original")
    assert await served(bucket.provider()) == cold


#: The MD5 of b"The quick brown fox jumps over the lazy dog".
FOX_MD5 = "9e107d9d372bb6826bd81d3542a419d6"


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"ETag": '"9E107D9D372BB6826BD81D3542A419D6"'}, FOX_MD5),
        ({"ETag": '"9e107d9d372bb6826bd81d3542a419d6-3"'}, None),  # multipart: not the MD5
        ({"ETag": "W/abc"}, None),
        ({"md5Hash": "nhB9nTcrtoJr2B01QqQZ1g==", "etag": "CJ/x"}, FOX_MD5),
        ({"md5Hash": "not base64!"}, None),
        ({"md5Hash": "AAAA"}, None),  # base64, but not 16 bytes
        ({"size": 3}, None),
    ],
)
def test_the_content_md5_is_taken_only_from_what_states_it(
    info: dict[str, Any], expected: str | None
) -> None:
    assert content_md5(info) == expected
