"""``asyncassets check --reachable`` and ``--format text|json|github`` (issue 21), against
real servers on 127.0.0.1 only, never mocks of the network:

- aiohttp's static server (``http_static_server``): HEAD 200 for a file it has, 404 else;
- a scripted HTTP server that answers 503 to everything (a transient failure that lasts);
- moto, in front of which a reverse proxy records every request (method and path), so
  that the requests for one object can be told from the card store's own reads;
- the Hub-protocol server of ``hub_server.py`` (``HF_ENDPOINT``), which records requests;
- ``CountingProxy`` in front of moto for S3 clients without options (``AWS_ENDPOINT_URL``),
  and an aiohttp app whose slow HEADs count the requests in flight at once.

Every problem is asserted with its file and line (the field that names the reference, in
the card that defines it), its kind, card and URI; the requests are counted on the server
side: one metadata request per distinct reference however many cards share it, and none at
all without ``--reachable``.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest import ASYNC_BACKENDS, put_s3_objects, unique_bucket
from hub_server import HubServer, hub_server  # noqa: F401
from servers import (
    CountingProxy,
    OverlongProxy,
    Script,
    ScriptedServer,
    StaticServer,
    ThreadedApp,
)

from asyncassets import AssetStore, FileAssetMetadataProvider
from asyncassets.cache.probing import PROBE_RETRY
from asyncassets.cli import main
from asyncassets.reachability import DEFAULT_CONCURRENCY

WriteCards = Callable[..., Path]


# -- helpers ---------------------------------------------------------------------------------


@dataclass
class Run:
    """One run of the command line: exit status, stdout, stderr."""

    code: int
    out: str
    err: str

    @property
    def problems(self) -> list[dict[str, Any]]:
        """stdout read as ``--format json`` prints it."""
        data: list[dict[str, Any]] = json.loads(self.out)
        return data

    def problem(self, card: str, field: str = "checkpoint") -> dict[str, Any]:
        """The one JSON problem about ``field`` of ``card``."""
        (found,) = [p for p in self.problems if p["card"] == card and p["field"] == field]
        return found


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    """``asyncassets ARGV`` in this process (the servers run in threads of their own)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the one line of ``text`` that contains ``needle``."""
    (line,) = [n for n, each in enumerate(text.splitlines(), 1) if needle in each]
    return line


def file_line(path: Path, needle: str) -> int:
    return line_of(path.read_text(), needle)


class RecordingProxy(OverlongProxy):
    """An HTTP reverse proxy to ``target`` that records each request as ``(method, path
    with query)``: what a probe asked of moto, told apart from the card store's reads."""

    def __init__(self, target_url: str) -> None:
        super().__init__(target_url, overlong=0)
        self.seen: list[tuple[str, str]] = []

    async def _forward(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, request.path_qs))
        return await super()._forward(request)

    def asked(self, key: str) -> list[tuple[str, str]]:
        """The requests about object ``key`` (by path, or as a listing's prefix)."""
        return [
            (method, path)
            for method, path in self.seen
            if path.split("?")[0].endswith(f"/{key}")
            or f"prefix={urllib.parse.quote(key, safe='')}" in path
        ]


@pytest.fixture
def recording_proxy(moto_server: str) -> Iterator[RecordingProxy]:
    proxy = RecordingProxy(moto_server).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def api_requests(hub: HubServer, repo_id: str, repo_type: str = "models") -> list[str]:
    """The API requests about repo ``repo_id`` (not a repo whose id merely starts alike)."""
    prefix = f"/api/{repo_type}/{repo_id}"
    return [
        r.path
        for r in hub.requests
        if r.host == "hub" and r.path.startswith(prefix) and r.path[len(prefix) :][:1] in "/?"
    ]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory is ``tmp_path``, which holds ``cards/``: GitHub annotations
    name the card files ``cards/...``."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


MODEL_REPO = {
    "config.json": b'{"model_type": "toy"}',
    "model.safetensors": b"weights" * 300,
    "tokenizer.json": b'{"version": "1.0"}',
    "tokenizer_config.json": b"{}",
    "original/consolidated.pt": b"pt" * 700,
}


# -- HTTP: HEAD 200 / 404 ---------------------------------------------------------------------


def test_http_head_404_is_a_problem_at_the_field_and_each_url_is_asked_once(
    http_static_server: StaticServer,
    write_cards: WriteCards,
    card_dir: Path,
    in_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = http_static_server
    present, absent = f"present-{uuid.uuid4().hex}.pt", f"absent-{uuid.uuid4().hex}.pt"
    (server.folder / present).write_bytes(b"weights")
    write_cards(
        {
            "base.yaml": f"""\
                name: family
                model_family: toy
                checkpoint: {server.url(present)}
                """,
            "models.yaml": f"""\
                name: small
                base: family
                ---
                name: large
                base: family
                ---
                name: own_copy
                model_family: toy
                checkpoint: {server.url(present)}
                ---
                name: broken
                model_family: toy
                checkpoint: {server.url(absent)}
                """,
        }
    )
    models = card_dir / "models.yaml"
    line = file_line(models, absent)

    run = cli(capsys, "--store", "cards", "check", "--reachable")
    assert run.code == 1
    assert run.out.splitlines() == [
        f"{models}:{line}: card 'broken': checkpoint {server.url(absent)} is unreachable: "
        f"not found (HTTP 404 Not Found for {server.url(absent)})"
    ]
    assert "5 cards, 1 problem(s); 2 distinct URIs checked, 0 gated card(s)" in run.err
    # four cards name the present file (two through their base): one HEAD for all of them
    assert server.stats.count(f"/{present}") == 1
    assert server.stats.count(f"/{present}", method="HEAD") == 1
    assert server.stats.count(f"/{absent}", method="HEAD") == 1
    assert server.stats.bytes_for(f"/{present}") == 0  # a metadata request, no body

    run = cli(capsys, "--store", "cards", "check", "--reachable", "--format", "json")
    assert run.code == 1
    assert run.problem("broken") == {
        "kind": "unreachable",
        "message": f"card 'broken': checkpoint {server.url(absent)} is unreachable: "
        f"not found (HTTP 404 Not Found for {server.url(absent)})",
        "source": f"file://{card_dir}",
        "file": f"file://{models}",
        "line": line,
        "card": "broken",
        "field": "checkpoint",
        "where": f"{models}:{line}: card 'broken': checkpoint {server.url(absent)} is "
        f"unreachable: not found (HTTP 404 Not Found for {server.url(absent)})",
        "uri": server.url(absent),
    }
    assert len(run.problems) == 1

    run = cli(capsys, "--store", "cards", "check", "--reachable", "--format", "github")
    assert run.code == 1
    assert run.out.splitlines() == [
        f"::error file=cards/models.yaml,line={line},title=unreachable%3A broken::"
        f"card 'broken': checkpoint {server.url(absent)} is unreachable: "
        f"not found (HTTP 404 Not Found for {server.url(absent)})"
    ]
    assert server.stats.count(f"/{present}") == 3  # one per run


# -- S3 on moto: the card store lends its storage options -----------------------------------


def test_s3_objects_are_asked_with_the_card_store_storage_options(
    moto_server: str,
    recording_proxy: RecordingProxy,
    in_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = unique_bucket()
    secret = "s3cr3t-" + uuid.uuid4().hex  # moto takes any secret; it must never be printed
    cards = f"""\
        name: s3_present
        model_family: toy
        checkpoint: s3://{bucket}/ckpt/present.pt
        ---
        name: s3_relative
        model_family: toy
        checkpoint: ../ckpt/present.pt
        ---
        name: s3_inherits
        base: s3_present
        ---
        name: s3_absent
        model_family: toy
        checkpoint: s3://{bucket}/ckpt/absent.pt
        """
    put_s3_objects(moto_server, bucket, {"cards/models.yaml": cards, "ckpt/present.pt": b"weights"})
    line = line_of(textwrap.dedent(cards), "ckpt/absent.pt")
    store = [
        "--store",
        f"s3://{bucket}/cards",
        "--storage-option",
        "key=testing",
        "--storage-option",
        f"secret={secret}",
        "--storage-option",
        f"client_kwargs.endpoint_url={recording_proxy.url}",
    ]

    absent = f"s3://{bucket}/ckpt/absent.pt"
    message = f"card 's3_absent': checkpoint {absent} is unreachable: not found: {absent}"
    where = f"s3://{bucket}/cards/models.yaml:{line}"

    recording_proxy.seen.clear()
    run = cli(capsys, *store, "check", "--reachable", "--format", "json")
    assert run.code == 1, run.err
    assert run.problems == [
        {
            "kind": "unreachable",
            "message": message,
            "source": f"s3://{bucket}/cards",
            "file": f"s3://{bucket}/cards/models.yaml",
            "line": line,
            "card": "s3_absent",
            "field": "checkpoint",
            "where": f"{where}: {message}",
            "uri": absent,
        }
    ]
    # three cards (one by a relative path, one through its base) name one object: one HEAD
    assert recording_proxy.asked("ckpt/present.pt") == [("HEAD", f"/{bucket}/ckpt/present.pt")]
    # one fsspec ``info`` for the absent one: s3fs heads the key, then lists it as a prefix
    # (a folder?) before it says there is nothing
    asked = recording_proxy.asked("ckpt/absent.pt")
    assert [method for method, _ in asked] == ["HEAD", "GET"]
    assert asked[0][1] == f"/{bucket}/ckpt/absent.pt"
    assert "list-type=2" in asked[1][1]
    assert secret not in run.out + run.err

    # A remote card file has no file= in an annotation: where it is goes into the message.
    run = cli(capsys, *store, "check", "--reachable", "--format", "github")
    assert run.code == 1
    assert run.out.splitlines() == [f"::error title=unreachable%3A s3_absent::{where}: {message}"]
    assert secret not in run.out + run.err


# -- the Hub: repos, revisions, files -------------------------------------------------------

HUB_CARDS = """\
    name: present
    model_family: toy
    checkpoint: hg://org/model
    ---
    name: inherits
    base: present
    ---
    name: shares
    model_family: toy
    checkpoint: hg://org/model
    ---
    name: tagged
    model_family: toy
    checkpoint: hg://org/model@v1
    ---
    name: one_file
    model_family: toy
    checkpoint: hg://org/model/original/consolidated.pt
    ---
    name: gated_repo
    model_family: toy
    checkpoint: hg://org/gated-model
    ---
    name: dataset
    dataset_family: jsonl
    data: hf://datasets/org/data
    ---
    name: no_repo
    model_family: toy
    checkpoint: hg://org/absent
    ---
    name: no_revision
    model_family: toy
    checkpoint: hg://org/model@v9
    ---
    name: no_file
    model_family: toy
    checkpoint: hg://org/model/original/missing.pt
    ---
    name: no_tokenizer_files
    tokenizer_family: toy
    tokenizer: hg://org/weights-only
    """


def add_hub_repos(hub: HubServer) -> None:
    commit = hub.add_repo("org/model", MODEL_REPO)
    hub.tag("org/model", "v1", commit)
    hub.add_repo("org/gated-model", {"model.safetensors": b"w" * 2000}, gated=True)
    hub.add_repo("org/weights-only", {"model.safetensors": b"w" * 2000, "config.json": b"{}"})
    hub.add_repo("org/data", {"train.jsonl": b"{}\n"}, repo_type="dataset")


def test_hub_repos_revisions_and_files(
    hub: HubServer,
    write_cards: WriteCards,
    card_dir: Path,
    in_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_hub_repos(hub)
    write_cards({"hub.yaml": HUB_CARDS})
    path = card_dir / "hub.yaml"
    hub.reset()

    run = cli(capsys, "--store", "cards", "check", "--reachable", "--format", "json")
    assert run.code == 1, run.err
    expected = {
        # card: (uri, what the reason says)
        "no_repo": ("hg://org/absent", "model repo org/absent was not found on"),
        "no_revision": (
            "hg://org/model@v9",
            "model repo org/model at revision v9: revision not found",
        ),
        "no_file": (
            "hg://org/model/original/missing.pt",
            "no file or folder 'original/missing.pt' in model repo org/model",
        ),
        "no_tokenizer_files": ("hg://org/weights-only", "tokenizer*.json"),
    }
    assert sorted(p["card"] for p in run.problems) == sorted(expected)
    for card, (uri, reason) in expected.items():
        field = "tokenizer" if card == "no_tokenizer_files" else "checkpoint"
        problem = run.problem(card, field)
        assert problem["kind"] == "unreachable"
        assert problem["file"] == f"file://{path}"
        assert problem["line"] == file_line(path, f"{field}: {uri}"), card
        assert problem["uri"] == uri
        assert problem["message"].startswith(f"card '{card}': {field} {uri} is unreachable: ")
        assert reason in problem["message"], problem["message"]
        assert hub.token not in problem["message"]
    assert "(used by" not in run.out  # each missing reference is named by one card

    # One metadata request per distinct reference: org/model is named by five cards in
    # five ways (three the same), the gated repo's metadata is public; no file is read.
    distinct = [
        "hg://org/model",
        "hg://org/model@v1",
        "hg://org/model/original/consolidated.pt",
        "hg://org/gated-model",
        "hf://datasets/org/data",
        "hg://org/absent",
        "hg://org/model@v9",
        "hg://org/model/original/missing.pt",
        "hg://org/weights-only",
    ]
    assert len(api_requests(hub, "org/model")) == 5
    for repo in ("org/gated-model", "org/absent", "org/weights-only"):
        assert len(api_requests(hub, repo)) == 1, hub.requests
    assert len(api_requests(hub, "org/data", "datasets")) == 1
    assert hub.count(host="hub") == len(distinct)
    assert hub.count(host="cdn") == 0 and hub.bytes_served() == 0

    run = cli(capsys, "--store", "cards", "check", "--reachable")
    assert run.code == 1
    assert len(run.out.splitlines()) == 4
    assert run.err.splitlines()[-1] == (
        f"11 cards, 4 problem(s); {len(distinct)} distinct URIs checked, 0 gated card(s)"
    )
    for card, (uri, _) in expected.items():
        field = "tokenizer" if card == "no_tokenizer_files" else "checkpoint"
        line = file_line(path, f"{field}: {uri}")
        assert f"{path}:{line}: card '{card}': {field} {uri} is unreachable: " in run.out

    run = cli(capsys, "--store", "cards", "check", "--reachable", "--format", "github")
    assert run.code == 1
    lines = run.out.splitlines()
    assert len(lines) == 4
    for card, (uri, _) in expected.items():
        field = "tokenizer" if card == "no_tokenizer_files" else "checkpoint"
        line = file_line(path, f"{field}: {uri}")
        head = (
            f"::error file=cards/hub.yaml,line={line},title=unreachable%3A {card}::"
            f"card '{card}': {field} {uri} is unreachable: "
        )
        assert sum(each.startswith(head) for each in lines) == 1, (head, lines)


def test_a_repo_named_by_checkpoint_and_tokenizer_is_asked_once(
    hub: HubServer, write_cards: WriteCards, card_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """fairseq2's cards name one Hub repo as both checkpoint and tokenizer (the main corpus:
    68 fields, 34 repos). Each field chooses other files of it (``*.safetensors*``/``*.pt``
    and ``tokenizer*.json``), but one listing of the repo answers both: one request per
    distinct URI, as the issue counts them."""
    hub.add_repo("org/model", MODEL_REPO)
    hub.add_repo("org/weights-only", {"model.safetensors": b"w" * 2000})
    write_cards(
        {
            "models.yaml": """\
                name: both
                model_family: toy
                checkpoint: hg://org/model
                tokenizer: hg://org/model
                ---
                name: no_tokenizer
                model_family: toy
                checkpoint: hg://org/weights-only
                tokenizer: hg://org/weights-only
                """
        }
    )
    hub.reset()
    run = cli(capsys, "--store", str(card_dir), "check", "--reachable", "--format", "json")
    assert run.code == 1
    problem = run.problem("no_tokenizer", "tokenizer")
    assert problem["line"] == file_line(card_dir / "models.yaml", "tokenizer: hg://org/weights")
    assert "tokenizer*.json" in problem["message"]
    assert len(run.problems) == 1  # its weights are there
    assert len(api_requests(hub, "org/model")) == 1, api_requests(hub, "org/model")
    assert len(api_requests(hub, "org/weights-only")) == 1


# -- where a problem is: env overrides, bases --------------------------------------------------


def test_an_env_override_missing_only_in_its_env_is_a_problem_of_name_at_env(
    hub: HubServer,
    write_cards: WriteCards,
    card_dir: Path,
    in_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hub.add_repo("org/model", MODEL_REPO)
    write_cards(
        {
            "models.yaml": """\
                name: tiny
                model_family: toy
                checkpoint: hg://org/model
                tokenizer: hg://org/model
                """,
            "envs/aws.yaml": """\
                # the copy in the aws account
                name: tiny@aws
                checkpoint: hg://org/model-aws
                """,
        }
    )
    override = card_dir / "envs" / "aws.yaml"
    line = file_line(override, "checkpoint:")
    assert line == 3

    run = cli(capsys, "--store", "cards", "check", "--reachable", "--format", "json")
    assert run.code == 1
    (problem,) = run.problems  # the plain card's checkpoint and both tokenizers are there
    assert (problem["card"], problem["field"], problem["kind"]) == (
        "tiny@aws",
        "checkpoint",
        "unreachable",
    )
    assert (problem["file"], problem["line"]) == (f"file://{override}", line)
    assert problem["uri"] == "hg://org/model-aws"
    assert problem["message"].startswith(
        "card 'tiny@aws': checkpoint hg://org/model-aws is unreachable: model repo "
        "org/model-aws was not found on"
    )

    run = cli(capsys, "--store", "cards", "check", "--reachable", "--format", "github")
    assert run.out.startswith(
        f"::error file=cards/envs/aws.yaml,line={line},title=unreachable%3A tiny@aws::"
        "card 'tiny@aws': checkpoint hg://org/model-aws is unreachable: "
    )
    assert len(run.out.splitlines()) == 1


def test_an_env_override_in_the_plain_cards_file_is_reported_at_its_own_line(
    write_cards: WriteCards, card_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "present.pt").write_bytes(b"weights")
    write_cards(
        {
            "models.yaml": f"""\
                name: tiny
                model_family: toy
                checkpoint: {tmp_path}/present.pt
                ---
                name: tiny@aws
                checkpoint: {tmp_path}/missing-in-aws.pt
                """
        }
    )
    run = cli(capsys, "--store", str(card_dir), "check", "--reachable", "--format", "json")
    assert run.code == 1
    (problem,) = run.problems
    assert (problem["card"], problem["uri"]) == ("tiny@aws", f"{tmp_path}/missing-in-aws.pt")
    assert problem["line"] == file_line(card_dir / "models.yaml", "missing-in-aws.pt")  # 6, not 3


def test_a_missing_relative_path_inherited_from_a_base_is_a_problem_at_the_base(
    write_cards: WriteCards,
    card_dir: Path,
    in_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (card_dir / "weights").mkdir(parents=True)
    (card_dir / "weights" / "present.pt").write_bytes(b"weights")
    write_cards(
        {
            "base.yaml": """\
                # a family's defaults
                name: family
                model_family: toy
                checkpoint: weights/missing.pt
                tokenizer: weights/present.pt
                """,
            "models/tiny.yaml": """\
                name: tiny
                base: family
                ---
                name: small
                base: family
                model_config: {dim: 8}
                """,
        }
    )
    base = card_dir / "base.yaml"
    missing = card_dir / "weights" / "missing.pt"  # against the base's folder, not models/

    run = cli(capsys, "--store", "cards", "check", "--reachable", "--format", "json")
    assert run.code == 1
    (problem,) = run.problems  # one place names it: one problem for the three cards
    assert problem == {
        "kind": "unreachable",
        "message": f"card 'family': checkpoint {missing} is unreachable: no such file or "
        "folder (used by family, small, tiny)",
        "source": f"file://{card_dir}",
        "file": f"file://{base}",
        "line": 4,
        "card": "family",
        "field": "checkpoint",
        "where": f"{base}:4: card 'family': checkpoint {missing} is unreachable: no such "
        "file or folder (used by family, small, tiny)",
        "uri": str(missing),
    }

    run = cli(capsys, "--store", "cards", "check", "--reachable")
    assert run.code == 1
    assert run.out == f"{problem['where']}\n"
    assert run.err.splitlines()[-1] == (
        "3 cards, 1 problem(s); 2 distinct URIs checked, 0 gated card(s)"
    )

    run = cli(capsys, "--store", "cards", "check", "--reachable", "--format", "github")
    assert run.out == (
        f"::error file=cards/base.yaml,line=4,title=unreachable%3A family::{problem['message']}\n"
    )


# -- gated cards -------------------------------------------------------------------------------


def test_a_gated_card_is_a_note_and_alone_exits_0(
    http_static_server: StaticServer,
    write_cards: WriteCards,
    card_dir: Path,
    in_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    request_page = f"request-{uuid.uuid4().hex}"
    url = http_static_server.url(request_page)
    write_cards(
        {
            "models.yaml": f"""\
                name: gated
                model_family: toy
                url: {url}
                """
        }
    )
    models = card_dir / "models.yaml"
    note = (
        f"card 'gated' is gated: it sets no 'checkpoint', only a url; request access at {url}, "
        "then add the checkpoint to the card (a 'gated@user' card in your user store "
        "setting 'checkpoint: <path or URI>')"
    )

    run = cli(capsys, "--store", "cards", "check", "--reachable")
    assert run.code == 0
    assert run.out == f"note: {models}:3: {note}\n"
    assert (
        run.err.splitlines()[-1]
        == "1 cards, 0 problem(s); 0 distinct URIs checked, 1 gated card(s)"
    )

    run = cli(capsys, "--store", "cards", "check", "--reachable", "--format", "json")
    assert run.code == 0
    assert run.problems == []
    assert run.err == f"note: {models}:3: {note}\n"

    run = cli(capsys, "--store", "cards", "check", "--reachable", "--format", "github")
    assert run.code == 0
    assert run.out == f"::notice file=cards/models.yaml,line=3,title=gated%3A gated::{note}\n"
    assert http_static_server.stats.count(f"/{request_page}") == 0  # a page for people


# -- no request without --reachable -----------------------------------------------------------


@pytest.fixture
def s3_through_counting_proxy(
    moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, CountingProxy]]:
    """A bucket on moto holding ``ckpt/present.pt``, and S3 through a counting proxy for
    every client without options of its own (``$AWS_ENDPOINT_URL``, moto's credentials)."""
    bucket = unique_bucket()
    put_s3_objects(moto_server, bucket, {"ckpt/present.pt": b"weights"})
    with CountingProxy(moto_server) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        yield bucket, proxy


def test_check_without_reachable_makes_no_request(
    hub: HubServer,
    http_static_server: StaticServer,
    s3_through_counting_proxy: tuple[str, CountingProxy],
    write_cards: WriteCards,
    card_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket, s3 = s3_through_counting_proxy
    hub.add_repo("org/model", MODEL_REPO)
    name = f"weights-{uuid.uuid4().hex}.pt"
    (http_static_server.folder / name).write_bytes(b"weights")
    write_cards(
        {
            "models.yaml": f"""\
                name: on_http
                model_family: toy
                checkpoint: {http_static_server.url(name)}
                ---
                name: on_the_hub
                model_family: toy
                checkpoint: hg://org/model
                tokenizer: hg://org/absent
                ---
                name: on_s3
                model_family: toy
                checkpoint: s3://{bucket}/ckpt/present.pt
                ---
                name: on_s3@aws
                checkpoint: s3://{bucket}/ckpt/absent.pt
                """
        }
    )
    hub.reset()
    s3.reset()
    for output in ("text", "json", "github"):
        run = cli(capsys, "--store", str(card_dir), "check", "--format", output)
        assert run.code == 0, run
    assert hub.requests == []
    assert http_static_server.stats.count(f"/{name}") == 0
    assert (s3.connections, s3.requests) == (0, 0)

    # the same cards with --reachable: each server is asked (so the zeros above mean it)
    run = cli(capsys, "--store", str(card_dir), "check", "--reachable", "--format", "json")
    assert run.code == 1
    assert sorted((p["card"], p["field"]) for p in run.problems) == [
        ("on_s3@aws", "checkpoint"),
        ("on_the_hub", "tokenizer"),
    ]
    assert len(api_requests(hub, "org/model")) == 1
    assert len(api_requests(hub, "org/absent")) == 1
    assert http_static_server.stats.count(f"/{name}", method="HEAD") == 1
    assert s3.requests >= 2  # a HEAD of each object (and the absent one's listing)


# -- transient failures, secrets ----------------------------------------------------------------


def test_a_server_that_keeps_answering_503_is_unknown_after_retries(
    scripted_http_server: ScriptedServer,
    write_cards: WriteCards,
    card_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = scripted_http_server.put("flaky.pt", b"weights", Script(status=503))
    write_cards({"models.yaml": f"name: tiny\nmodel_family: toy\ncheckpoint: {url}\n"})

    run = cli(capsys, "--store", str(card_dir), "check", "--reachable", "--format", "json")
    assert run.code == 1
    (problem,) = run.problems
    assert (problem["kind"], problem["card"], problem["line"], problem["uri"]) == (
        "unknown",
        "tiny",
        3,
        url,
    )
    assert problem["message"] == (
        f"card 'tiny': cannot tell whether checkpoint {url} exists: "
        f"HTTP 503 Service Unavailable for {url}"
    )
    # retried under the probe's policy, then given up: no more than its attempts
    assert scripted_http_server.stats.count("/flaky.pt", method="HEAD") == PROBE_RETRY.attempts
    assert scripted_http_server.stats.count("/flaky.pt", method="GET") == 0


def test_secrets_never_appear_in_any_format(
    http_static_server: StaticServer,
    scripted_http_server: ScriptedServer,
    write_cards: WriteCards,
    card_dir: Path,
    in_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    password, signature = "hunter2-" + uuid.uuid4().hex, uuid.uuid4().hex * 2
    static = http_static_server.base_url.removeprefix("http://")
    scripted = scripted_http_server.url("flaky.pt")
    scripted_http_server.put("flaky.pt", b"weights", Script(status=503))
    with_password = f"http://reader:{password}@{static}/absent-{uuid.uuid4().hex}.pt"
    signed = (
        f"http://{static}/signed-{uuid.uuid4().hex}.pt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential=AKIAEXAMPLE%2F20260101&X-Amz-Signature={signature}"
    )
    flaky = scripted.replace("http://", f"http://reader:{password}@") + f"?sig={signature}"
    write_cards(
        {
            "models.yaml": f"""\
                name: with_password
                model_family: toy
                checkpoint: "{with_password}"
                ---
                name: signed
                model_family: toy
                checkpoint: "{signed}"
                ---
                name: flaky
                model_family: toy
                checkpoint: "{flaky}"
                """
        }
    )
    for output in ("text", "json", "github"):
        run = cli(capsys, "--store", "cards", "check", "--reachable", "--format", output)
        assert run.code == 1
        count = len(run.problems) if output == "json" else len(run.out.splitlines())
        assert count == 3, run.out
        assert password not in run.out + run.err
        assert signature not in run.out + run.err
        assert "AKIAEXAMPLE" not in run.out + run.err
    run = cli(capsys, "--store", "cards", "check", "--reachable", "--format", "json")
    uris = {p["card"]: p["uri"] for p in run.problems}
    assert uris["with_password"] == with_password.replace(f"reader:{password}@", "")
    assert uris["signed"].split("?")[0] == signed.split("?")[0]
    assert uris["flaky"].split("?")[0] == scripted
    assert run.problem("flaky")["kind"] == "unknown"
    # the password went to the server all the same: the probe asked what a fetch would ask
    assert scripted_http_server.stats.count("/flaky.pt", method="HEAD") >= 1


# -- GitHub annotations ------------------------------------------------------------------------


def test_annotations_name_files_outside_the_working_directory_by_their_path_and_escape_text(
    write_cards: WriteCards,
    card_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # a value whose text would start a command of its own if it were printed as it is
    write_cards(
        {
            "models.yaml": """\
                name: tiny
                model_family: toy
                checkpoint: "/nonexistent/100%\\n::error file=evil.yaml::pwned"
                """
        }
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run = cli(capsys, "--store", str(card_dir), "check", "--reachable", "--format", "github")
    assert run.code == 1
    (line,) = run.out.splitlines()  # the newline in the value is escaped, as is the %
    assert line.startswith(
        f"::error file={card_dir}/models.yaml,line=3,title=unreachable%3A tiny::card 'tiny': "
        "checkpoint /nonexistent/100%25%0A::error file=evil.yaml::pwned is unreachable: "
    )


# -- from Python ---------------------------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ASYNC_BACKENDS)
async def test_store_check_reachable_from_python(
    anyio_backend: str,
    hub: HubServer,
    http_static_server: StaticServer,
    write_cards: WriteCards,
    card_dir: Path,
) -> None:
    """``AssetStore.check(reachable=True)``: the problems of ``check()`` and the unreachable
    references, on asyncio (aiohttp) and on trio (urllib in threads) alike."""
    hub.add_repo("org/model", MODEL_REPO)
    server = http_static_server
    present, absent = f"present-{uuid.uuid4().hex}.pt", f"absent-{uuid.uuid4().hex}.pt"
    (server.folder / present).write_bytes(b"weights")
    write_cards(
        {
            "models.yaml": f"""\
                name: on_http
                model_family: toy
                checkpoint: {server.url(present)}
                tokenizer: {server.url(absent)}
                ---
                name: on_the_hub
                model_family: toy
                checkpoint: hg://org/model
                tokenizer: hg://org/model@v9
                ---
                name: orphan
                base: nowhere
                ---
                name: local
                model_family: toy
                checkpoint: weights/missing.pt
                """
        }
    )
    models = card_dir / "models.yaml"
    hub.reset()
    async with AssetStore([FileAssetMetadataProvider(card_dir)]) as store:
        assert [p.kind for p in await store.check()] == ["missing-base"]
        assert hub.requests == [] and server.stats.count(f"/{present}") == 0

        problems = await store.check(reachable=True)
    assert [(p.kind, p.card, p.field, p.line, p.uri) for p in problems] == [
        ("missing-base", "orphan@", "base", file_line(models, "base: nowhere"), None),
        ("unreachable", "on_http", "tokenizer", 4, server.url(absent)),
        ("unreachable", "on_the_hub", "tokenizer", 9, "hg://org/model@v9"),
        ("unreachable", "local", "checkpoint", 16, str(card_dir / "weights" / "missing.pt")),
    ]
    assert all(p.file == f"file://{models}" for p in problems)
    assert "uri" not in problems[0].to_dict() and problems[1].to_dict()["uri"] == server.url(absent)
    assert server.stats.count(f"/{present}", method="HEAD") == 1
    assert len(api_requests(hub, "org/model")) == 2  # the default branch and v9


# -- concurrently, and bounded --------------------------------------------------------------


class SlowHeadServer:
    """Answers HEAD of any path with 200 after ``delay`` seconds, counting the requests in
    flight at once."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.in_flight = self.most = self.total = 0
        app = web.Application()
        app.router.add_route("HEAD", "/{name}", self._head)
        self._app = ThreadedApp(app)

    async def _head(self, request: web.Request) -> web.Response:
        self.in_flight += 1  # one event loop: no lock needed
        self.total += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        return web.Response(headers={"Content-Length": "7", "ETag": '"x"'})

    def url(self, name: str) -> str:
        return f"{self._app.url}/{name}"

    def __enter__(self) -> SlowHeadServer:
        self._app.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._app.stop()


def test_references_are_asked_concurrently_at_most_16_at_once(
    write_cards: WriteCards, card_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SlowHeadServer(delay=0.1) as server:
        cards = [
            f"name: card{n}\nmodel_family: toy\ncheckpoint: {server.url(f'w{n}.pt')}\n"
            for n in range(40)
        ]
        write_cards({"models.yaml": "---\n".join(cards)})
        run = cli(capsys, "--store", str(card_dir), "check", "--reachable")
    assert run.code == 0, run.out
    assert server.total == 40
    assert server.most == DEFAULT_CONCURRENCY  # 16
