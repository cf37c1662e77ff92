"""A Hugging Face Hub-protocol server on 127.0.0.1 that the real ``huggingface_hub`` client
accepts (``test_hub_server.py`` proves it against huggingface_hub's own code paths).

Two aiohttp apps in background threads (``servers.ThreadedApp``):

- the Hub (``HubServer.url``): the repo API (``/api/{models,datasets}/{repo_id}``,
  ``.../revision/{rev}``, ``.../tree/{rev}[/{path}]``, ``.../paths-info/{rev}``, ``.../refs``,
  ``.../commits/{rev}``, ``.../auth-check``, ``/api/whoami-v2``) and file downloads
  (``[/datasets]/{repo_id}/resolve/{rev}/{path}``, GET and HEAD). Regular files are served
  from there (``Range`` -> 206, 416 when unsatisfiable); LFS files answer ``302`` to a signed
  URL on the CDN, carrying ``X-Linked-Etag`` / ``X-Linked-Size`` as the Hub does.
- the LFS CDN (``HubServer.cdn_url``, another port, so another origin): ``/blobs/{sha256}``
  with an S3-style signature (``X-Amz-Signature``, an HMAC under a per-server secret). A
  missing or wrong signature is ``403``; a request that also carries ``Authorization`` is
  ``400``, as S3 answers a presigned URL sent with a second auth mechanism.

Nothing here sends xet headers (``X-Xet-Hash``, ``X-Xet-Refresh-Route``, a ``Link`` with
``rel="xet-auth"``) nor ``xetHash`` in tree entries, so huggingface_hub (even with ``hf_xet``
installed) takes its plain HTTP path: HEAD on ``resolve``, then GET of the redirect target.

Repos are git-like: blob ids are git blob sha1s (of the LFS pointer for LFS files), folder
ids are git tree sha1s and commit shas are sha1s of real git commit objects, so
``git hash-object`` / ``git write-tree`` agree with them.

Auth is the Hub's: ``Authorization: Bearer <token>`` with ``HubServer.token`` (any other
token is ``401 Invalid credentials in Authorization header``). A private repo is visible
only with the token (else ``401 RepoNotFound``, like a repo that does not exist; an unknown
repo with the token is ``404 RepoNotFound``). A gated repo's metadata and listings are
public; its files need the token and ``grant()``: ``401 GatedRepo`` without a token,
``403 GatedRepo`` with a token that was not granted (the real Hub's two answers).

Use the ``hub_server`` fixture (``from hub_server import hub_server  # noqa: F401``); it
also keeps huggingface_hub from phoning huggingface.co while it builds its user agent
(see ``quiet_huggingface_hub``).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote, urlencode

import pytest
from aiohttp import web
from servers import ThreadedApp

__all__ = [
    "LFS_SUFFIXES",
    "HubRequest",
    "HubServer",
    "RequestHeaders",
    "default_lfs",
    "git_blob_sha",
    "hub_server",
    "lfs_pointer",
    "quiet_huggingface_hub",
]

KiB = 1024
#: file names that are LFS whatever their size (the Hub's default .gitattributes has more)
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
CHUNK = 64 * KiB
#: the Hub caps tree pages at 1000 entries, 50 with ``expand``
TREE_PAGE_SIZE = 1000
EXPANDED_TREE_PAGE_SIZE = 50
SIGNED_URL_EXPIRES = 3600

_PLURAL = {"model": "models", "dataset": "datasets"}
_TYPES = {plural: kind for kind, plural in _PLURAL.items()}
_URL_PREFIX = {"model": "", "dataset": "datasets/"}
_SHA1 = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")
# Words that follow a repo id in API paths, to tell ``/api/models/a/tree`` (repo ``a``) from
# ``/api/models/a/b`` (repo ``a/b``) when neither repo exists.
_SUBPATHS = {"revision", "tree", "paths-info", "refs", "commits", "auth-check", "resolve"}
_INVALID_TOKEN = "Invalid credentials in Authorization header"


def default_lfs(path: str, data: bytes) -> bool:
    """The default LFS rule: larger than 1 KiB, or a weights file name."""
    return len(data) > KiB or path.endswith(LFS_SUFFIXES)


def git_blob_sha(data: bytes) -> str:
    """The git blob id of ``data`` (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file git stores in place of an LFS file."""
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parent_dir(path: str) -> str:
    return path.rpartition("/")[0]


class RequestHeaders(dict[str, str]):
    """Request headers as received (names spelled as the client sent them); ``in``, ``[]``
    and ``get`` ignore case, as HTTP does."""

    def _find(self, name: object) -> str | None:
        if not isinstance(name, str):
            return None
        lower = name.lower()
        return next((key for key in dict.keys(self) if key.lower() == lower), None)

    def __contains__(self, name: object) -> bool:
        return self._find(name) is not None

    def __getitem__(self, name: str) -> str:
        key = self._find(name)
        if key is None:
            raise KeyError(name)
        return dict.__getitem__(self, key)

    def get(self, name: str, default: Any = None) -> Any:
        key = self._find(name)
        return default if key is None else dict.__getitem__(self, key)


@dataclass
class HubRequest:
    """One request to the Hub (``host="hub"``) or the CDN (``host="cdn"``)."""

    host: str
    method: str
    #: path and query as received (still percent-encoded)
    path: str
    headers: RequestHeaders
    #: 0 until the response starts
    status: int = 0
    range: str | None = None


_RECORD = web.RequestKey("hub_request", HubRequest)


# -- the data: blobs, commits, repos --------------------------------------------------------


@dataclass(frozen=True)
class _Blob:
    data: bytes
    #: the git blob id: of the data, or of the LFS pointer for an LFS file
    blob_id: str
    #: LFS only
    sha256: str | None = None
    pointer_size: int | None = None

    @classmethod
    def make(cls, data: bytes, lfs: bool) -> _Blob:
        if not lfs:
            return cls(data, git_blob_sha(data))
        sha256 = hashlib.sha256(data).hexdigest()
        pointer = lfs_pointer(sha256, len(data))
        return cls(data, git_blob_sha(pointer), sha256, len(pointer))

    @property
    def size(self) -> int:
        return len(self.data)


def _git_trees(files: dict[str, _Blob]) -> dict[str, str]:
    """Git tree id of every folder (``""`` is the root)."""
    folders = {""}
    for path in files:
        parts = path.split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
    trees: dict[str, str] = {}
    deepest_first = sorted(folders, key=lambda f: f.count("/") + 1 if f else 0, reverse=True)
    for folder in deepest_first:
        entries: list[tuple[bytes, bytes, str]] = []
        for path, blob in files.items():
            if _parent_dir(path) == folder:
                entries.append((path.rpartition("/")[2].encode(), b"100644", blob.blob_id))
        for sub in folders:
            if sub and _parent_dir(sub) == folder:
                entries.append((sub.rpartition("/")[2].encode(), b"40000", trees[sub]))
        # git orders a tree's entries by name, a folder's name taken with a trailing "/"
        entries.sort(key=lambda e: e[0] + (b"/" if e[1] == b"40000" else b""))
        body = b"".join(
            mode + b" " + name + b"\0" + bytes.fromhex(oid) for name, mode, oid in entries
        )
        trees[folder] = hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()
    return trees


@dataclass
class _Commit:
    sha: str
    parent: str | None
    files: dict[str, _Blob]
    trees: dict[str, str]
    date: datetime
    title: str

    def oid(self, path: str) -> str | None:
        blob = self.files.get(path)
        return blob.blob_id if blob is not None else self.trees.get(path)


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool
    gated: Literal["auto", "manual", False]
    created: datetime
    granted: bool = False
    commits: dict[str, _Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    #: refs/pr/N and refs/convert/X, by full name
    special: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> _Commit | None:
        sha: str | None
        if revision in self.branches:
            sha = self.branches[revision]
        elif revision in self.tags:
            sha = self.tags[revision]
        elif revision in self.special:
            sha = self.special[revision]
        elif revision.startswith("refs/heads/"):
            sha = self.branches.get(revision.removeprefix("refs/heads/"))
        elif revision.startswith("refs/tags/"):
            sha = self.tags.get(revision.removeprefix("refs/tags/"))
        else:
            sha = revision if _SHA1.fullmatch(revision) else None
        return self.commits.get(sha) if sha is not None else None

    def ref_table(self, name: str) -> tuple[dict[str, str], str]:
        """Where ref ``name`` lives (branches, tags or special refs) and its key there."""
        if name.startswith("refs/heads/"):
            return self.branches, name.removeprefix("refs/heads/")
        if name.startswith("refs/tags/"):
            return self.tags, name.removeprefix("refs/tags/")
        if name.startswith("refs/"):
            return self.special, name
        return self.branches, name

    def last_commit(self, commit: _Commit, path: str) -> _Commit:
        """The newest ancestor of ``commit`` (itself included) that changed ``path``."""
        oid = commit.oid(path)
        current = commit
        while current.parent is not None:
            parent = self.commits[current.parent]
            if parent.oid(path) != oid:
                break
            current = parent
        return current

    def history(self, commit: _Commit) -> list[_Commit]:
        out = [commit]
        while out[-1].parent is not None:
            out.append(self.commits[out[-1].parent])
        return out


def _byte_range(header: str, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """``(start, end)`` of a ``Range`` header, ``"unsatisfiable"``, or None to ignore it
    (malformed or multi-range: answered with the whole body, as RFC 9110 allows)."""
    match = _RANGE.fullmatch(header)
    if match is None or not (match[1] or match[2]):
        return None
    if not match[1]:  # suffix: the last N bytes
        count = int(match[2])
        return (max(0, size - count), size) if count > 0 and size > 0 else "unsatisfiable"
    start = int(match[1])
    if match[2] and int(match[2]) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    end = min(size, int(match[2]) + 1) if match[2] else size
    return start, end


def _error(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    """An error as the Hub sends it: ``X-Error-Code``, ``X-Error-Message``, JSON body."""
    all_headers = {"X-Error-Message": message, **(headers or {})}
    if code is not None:
        all_headers["X-Error-Code"] = code
    return web.json_response({"error": message}, status=status, headers=all_headers)


def _s3_error(status: int, code: str, message: str) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


def _truthy(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes"}


# -- the server ------------------------------------------------------------------------------


class HubServer:
    """A Hub and its LFS CDN on two ports of 127.0.0.1. See the module docstring."""

    def __init__(self, *, tree_page_size: int = TREE_PAGE_SIZE) -> None:
        self.token = "hf_test_" + secrets.token_hex(12)
        #: entries per page of ``tree`` listings (later pages through a ``Link`` header)
        self.tree_page_size = tree_page_size
        self.requests: list[HubRequest] = []
        self._bytes = {"hub": 0, "cdn": 0}
        #: A hostile CDN: this many ranged answers carry the right Content-Range and a body
        #: longer than the range (chunked, so the client reads all of it).
        self.cdn_overlong = 0
        self._secret = secrets.token_bytes(32)
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._lfs: dict[str, bytes] = {}
        self._counter = itertools.count(1)
        self._started = self._stopped = False
        self._hub = ThreadedApp(self._app(self._handle_hub))
        self._cdn = ThreadedApp(self._app(self._handle_cdn))

    def _app(self, handler: Callable[[web.Request], Any]) -> web.Application:
        app = web.Application()
        app.on_response_prepare.append(self._on_prepare)
        app.router.add_route("*", "/{tail:.*}", handler)
        return app

    # -- lifecycle

    @property
    def url(self) -> str:
        return self._hub.url

    @property
    def cdn_url(self) -> str:
        return self._cdn.url

    def start(self) -> HubServer:
        """Start both servers (once)."""
        if self._started:
            raise RuntimeError("HubServer.start() was already called")
        self._started = True
        self._hub.start()
        try:
            self._cdn.start()
        except BaseException:
            self._hub.stop()
            self._stopped = True
            raise
        return self

    def stop(self) -> None:
        """Stop both servers; a no-op if they never started or already stopped."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        try:
            self._hub.stop()
        finally:
            self._cdn.stop()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- content

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        repo_type: str = "model",
        revision: str = "main",
        lfs: Callable[[str, bytes], bool] | None = None,
        gated: bool | Literal["auto", "manual"] = False,
        private: bool = False,
    ) -> str:
        """Create the repo if new, and commit ``files`` (the whole tree of the new commit) on
        branch ``revision``; return the commit sha.

        ``revision`` may also be a special ref (``refs/pr/1``, ``refs/convert/parquet``). A
        new branch or ref starts from ``main``'s head. Calling again makes a new commit on
        that branch; old commits stay readable by their sha. ``lfs(path, data)`` says which
        files are LFS (default: larger than 1 KiB, or a .safetensors/.bin/.pt/.pth name).
        ``private`` and ``gated`` (True means ``"auto"``) apply when the repo is created.
        """
        if repo_type not in _PLURAL:
            raise ValueError(f"repo_type must be one of {sorted(_PLURAL)}, not {repo_type!r}")
        if not repo_id or repo_id.count("/") > 1 or any(not p for p in repo_id.split("/")):
            raise ValueError(f"bad repo id {repo_id!r}: 'namespace/name' (or one 'name')")
        for path in files:
            parts = path.split("/")
            if not path or any(p in ("", ".", "..") for p in parts):
                raise ValueError(f"bad file path {path!r} in {repo_id}")
        rule = lfs or default_lfs
        blobs = {path: _Blob.make(data, rule(path, data)) for path, data in sorted(files.items())}
        now = datetime.now(UTC)
        with self._lock:
            key = (repo_type, repo_id)
            repo = self._repos.get(key)
            if repo is None:
                gate: Literal["auto", "manual", False] = (
                    "auto" if gated is True else (gated or False)
                )
                repo = self._repos[key] = _Repo(repo_type, repo_id, private, gate, now)
            table, name = repo.ref_table(revision)
            parent = table.get(name, repo.branches.get("main"))
            trees = _git_trees(blobs)
            number = next(self._counter)
            title = f"Commit {number} to {revision} of {repo_id}"
            stamp = int(now.timestamp())
            text = f"tree {trees['']}\n"
            if parent is not None:
                text += f"parent {parent}\n"
            text += (
                f"author hub-test <hub-test@127.0.0.1> {stamp} +0000\n"
                f"committer hub-test <hub-test@127.0.0.1> {stamp} +0000\n\n{title}\n"
            )
            raw = text.encode()
            sha = hashlib.sha1(b"commit %d\0" % len(raw) + raw).hexdigest()
            repo.commits[sha] = _Commit(sha, parent, blobs, trees, now, title)
            table[name] = sha
            for blob in blobs.values():
                if blob.sha256 is not None:
                    self._lfs[blob.sha256] = blob.data
        return sha

    def tag(self, repo_id: str, tag: str, commit: str, *, repo_type: str = "model") -> None:
        """Point ref ``tag`` at ``commit`` (a sha, or any revision of the repo). ``tag`` is a
        tag name, or a full ref: ``refs/pr/1``, ``refs/convert/parquet``, ``refs/heads/x``."""
        with self._lock:
            repo = self._repo(repo_id, repo_type)
            target = repo.resolve(commit)
            if target is None:
                raise KeyError(f"{commit!r} is not a revision of {repo_type} {repo_id}")
            if tag.startswith("refs/"):
                table, name = repo.ref_table(tag)
            else:
                table, name = repo.tags, tag
            table[name] = target.sha

    def grant(self, repo_id: str, *, repo_type: str = "model") -> None:
        """The token gets access to gated repo ``repo_id``."""
        with self._lock:
            self._repo(repo_id, repo_type).granted = True

    def _repo(self, repo_id: str, repo_type: str) -> _Repo:
        repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            raise KeyError(f"no {repo_type} repo {repo_id!r}; add_repo() first")
        return repo

    # -- what was asked

    def reset(self) -> None:
        """Forget the requests and byte counts so far."""
        with self._lock:
            self.requests.clear()
            self._bytes = {"hub": 0, "cdn": 0}

    def count(
        self,
        *,
        host: str | None = None,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> int:
        """Requests so far, to ``host`` ("hub"/"cdn"), with ``method``, whose path and query
        (as received, percent-encoded) contain ``path_contains``; None matches any."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (host is None or r.host == host)
                and (method is None or r.method == method)
                and (path_contains is None or path_contains in r.path)
            )

    def bytes_served(self, *, host: str | None = None) -> int:
        """File body bytes sent (by both servers, or by ``host``), counted as they are
        handed to the socket."""
        with self._lock:
            return self._bytes[host] if host is not None else sum(self._bytes.values())

    def _record(self, host: str, request: web.Request) -> HubRequest:
        record = HubRequest(
            host=host,
            method=request.method,
            path=request.raw_path,
            headers=RequestHeaders(request.headers.items()),
            range=request.headers.get("Range"),
        )
        with self._lock:
            self.requests.append(record)
        request[_RECORD] = record
        return record

    async def _on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        record = request.get(_RECORD)
        if record is not None:
            record.status = response.status

    def _add_bytes(self, host: str, count: int) -> None:
        with self._lock:
            self._bytes[host] += count

    # -- serving bytes (both hosts)

    async def _send(
        self, request: web.Request, host: str, data: bytes, headers: dict[str, str]
    ) -> web.StreamResponse:
        headers = {"Accept-Ranges": "bytes", **headers}
        start, end, status = 0, len(data), 200
        header = request.headers.get("Range")
        span = _byte_range(header, len(data)) if header is not None else None
        if span == "unsatisfiable":
            headers["Content-Range"] = f"bytes */{len(data)}"
            return web.Response(status=416, headers=headers, text="Range Not Satisfiable")
        if span is not None:
            start, end = span
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        body = bytes(memoryview(data)[start:end])
        if host == "cdn" and status == 206 and self.cdn_overlong > 0 and request.method == "GET":
            with self._lock:
                self.cdn_overlong -= 1
            body += b"\x00ATTACKER-TAIL" * 1000
        else:
            headers["Content-Length"] = str(end - start)
        if request.method == "HEAD":
            return web.Response(status=status, headers=headers)
        response = web.StreamResponse(status=status, headers=headers)
        if "Content-Length" not in headers:
            response.enable_chunked_encoding()
        await response.prepare(request)
        view = memoryview(body)
        for offset in range(0, len(view), CHUNK):
            piece = view[offset : offset + CHUNK]
            self._add_bytes(host, len(piece))
            try:
                await response.write(piece)
            except BaseException:
                self._add_bytes(host, -len(piece))
                raise
        await response.write_eof()
        return response

    # -- the CDN

    def _signed_url(self, sha256: str) -> str:
        date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        params = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"HUBTEST/{date[:8]}/us-east-1/s3/aws4_request",
            "X-Amz-Date": date,
            "X-Amz-Expires": str(SIGNED_URL_EXPIRES),
            "X-Amz-SignedHeaders": "host",
        }
        params["X-Amz-Signature"] = self._signature(sha256, date, params["X-Amz-Expires"])
        return f"{self.cdn_url}/blobs/{sha256}?{urlencode(params)}"

    def _signature(self, sha256: str, date: str, expires: str) -> str:
        message = f"{sha256}\n{date}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _signature_ok(self, sha256: str, query: Any) -> bool:
        date, expires = query.get("X-Amz-Date", ""), query.get("X-Amz-Expires", "")
        given = query.get("X-Amz-Signature", "")
        if not (date and expires.isdigit() and given):
            return False
        if not hmac.compare_digest(given, self._signature(sha256, date, expires)):
            return False
        try:
            signed = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            return False
        return time.time() <= signed + int(expires)

    async def _handle_cdn(self, request: web.Request) -> web.StreamResponse:
        self._record("cdn", request)
        if request.method not in ("GET", "HEAD"):
            return _s3_error(405, "MethodNotAllowed", "The method is not allowed.")
        match = re.fullmatch(r"/blobs/([0-9a-f]{64})", request.path)
        if match is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        sha256 = match[1]
        if "Authorization" in request.headers:
            return _s3_error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                "Signature query string parameter or the Authorization header should be specified",
            )
        if not self._signature_ok(sha256, request.query):
            return _s3_error(403, "AccessDenied", "Request has expired or signature is invalid.")
        with self._lock:
            data = self._lfs.get(sha256)
        if data is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        headers = {
            "ETag": f'"{sha256}"',
            "Content-Type": "application/octet-stream",
            "Cache-Control": "public, max-age=604800, immutable",
        }
        return await self._send(request, "cdn", data, headers)

    # -- the Hub

    async def _handle_hub(self, request: web.Request) -> web.StreamResponse:
        self._record("hub", request)
        authed = False
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or token.strip() != self.token:
                return _error(401, _INVALID_TOKEN)
            authed = True
        segments = request.raw_path.split("?", 1)[0].split("/")[1:]
        if segments[:1] == ["api"]:
            return await self._api(request, segments[1:], authed)
        return await self._resolve(request, segments, authed)

    def _split_repo(self, repo_type: str, rest: list[str]) -> tuple[str, list[str]] | None:
        """Repo id and what follows it, in ``rest`` (raw path segments)."""
        names = [unquote(s) for s in rest]
        with self._lock:
            if len(names) >= 2 and (repo_type, f"{names[0]}/{names[1]}") in self._repos:
                return f"{names[0]}/{names[1]}", rest[2:]
            if names and (repo_type, names[0]) in self._repos:
                return names[0], rest[1:]
        if len(names) >= 2 and names[1] not in _SUBPATHS:
            return f"{names[0]}/{names[1]}", rest[2:]
        if names and names[0]:
            return names[0], rest[1:]
        return None

    def _access(
        self, repo_type: str, repo_id: str, authed: bool, *, files: bool
    ) -> _Repo | web.Response:
        """The repo, or the Hub's answer to someone who may not see it (or its files)."""
        with self._lock:
            repo = self._repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not authed):
            return _error(401 if not authed else 404, "Repository not found", "RepoNotFound")
        if files and repo.gated and not (authed and repo.granted):
            what = f"{repo_type} {repo_id}"
            if not authed:
                message = (
                    f"Access to {what} is restricted. You must have access to it and be "
                    "authenticated to access it. Please log in."
                )
                return _error(401, message, "GatedRepo")
            page = f"{self.url}/{_URL_PREFIX[repo_type]}{repo_id}"
            message = (
                f"Access to {what} is restricted and you are not in the authorized list. "
                f"Visit {page} to ask for access."
            )
            return _error(403, message, "GatedRepo")
        return repo

    @staticmethod
    def _revision_not_found(revision: str) -> web.Response:
        return _error(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    async def _resolve(
        self, request: web.Request, segments: list[str], authed: bool
    ) -> web.StreamResponse:
        repo_type = "model"
        if segments[:1] == ["datasets"]:
            repo_type, segments = "dataset", segments[1:]
        split = self._split_repo(repo_type, segments)
        if split is None or split[1][:1] != ["resolve"] or len(split[1]) < 3:
            return web.Response(status=404, text="Not Found")
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="Method Not Allowed")
        repo_id, rest = split
        revision, path_segments = _split_revision(rest[1:])
        path = "/".join(unquote(s) for s in path_segments)
        repo = self._access(repo_type, repo_id, authed, files=True)
        if isinstance(repo, web.Response):
            return repo
        with self._lock:
            commit = repo.resolve(revision)
        if commit is None:
            return self._revision_not_found(revision)
        blob = commit.files.get(path)
        if blob is None:
            return _error(
                404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": commit.sha}
            )
        headers = {"X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes"}
        if blob.sha256 is None:
            headers["ETag"] = f'"{blob.blob_id}"'
            headers["Content-Type"] = "application/octet-stream"
            return await self._send(request, "hub", blob.data, headers)
        location = self._signed_url(blob.sha256)
        headers.update(
            {
                "ETag": f'"{blob.sha256}"',
                "X-Linked-Etag": f'"{blob.sha256}"',
                "X-Linked-Size": str(blob.size),
                "Location": location,
            }
        )
        return web.Response(status=302, headers=headers, text=f"Found. Redirecting to {location}")

    async def _api(
        self, request: web.Request, segments: list[str], authed: bool
    ) -> web.StreamResponse:
        if segments == ["whoami-v2"]:
            if not authed:
                return _error(401, "Invalid username or password.")
            return web.json_response(
                {
                    "type": "user",
                    "id": "hub-test-user",
                    "name": "hub-test",
                    "fullname": "Hub Test",
                    "orgs": [],
                    "auth": {
                        "type": "access_token",
                        "accessToken": {"displayName": "hub-test", "role": "read"},
                    },
                }
            )
        repo_type = _TYPES.get(segments[0]) if segments else None
        split = self._split_repo(repo_type, segments[1:]) if repo_type else None
        if repo_type is None or split is None:
            return _error(404, "Not Found")
        repo_id, rest = split
        action = rest[0] if rest else ""
        method = "POST" if action == "paths-info" else "GET"
        if request.method != method:
            return _error(405, "Method Not Allowed")
        repo = self._access(repo_type, repo_id, authed, files=action == "auth-check")
        if isinstance(repo, web.Response):
            return repo
        if action == "auth-check" and len(rest) == 1:
            return web.json_response({})
        if action == "refs" and len(rest) == 1:
            return self._refs(repo, _truthy(request.query.get("include_prs", "")))
        if action == "":
            return self._info(request, repo, "main")
        if action in ("revision", "commits", "paths-info") and len(rest) >= 2:
            revision = unquote("/".join(rest[1:]))
            if action == "revision":
                return self._info(request, repo, revision)
            if action == "commits":
                return self._commits(repo, revision)
            return await self._paths_info(request, repo, revision)
        if action == "tree" and len(rest) >= 2:
            revision, path_segments = _split_revision(rest[1:])
            path = "/".join(unquote(s) for s in path_segments)
            return self._tree(request, repo, revision, path)
        return _error(404, "Not Found")

    def _info(self, request: web.Request, repo: _Repo, revision: str) -> web.Response:
        with self._lock:
            commit = repo.resolve(revision)
        if commit is None:
            return self._revision_not_found(revision)
        blobs = _truthy(request.query.get("blobs", ""))
        siblings: list[dict[str, Any]] = []
        for path, blob in commit.files.items():
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling["blobId"] = blob.blob_id
                sibling["size"] = blob.size
                if blob.sha256 is not None:
                    sibling["lfs"] = {
                        "sha256": blob.sha256,
                        "size": blob.size,
                        "pointerSize": blob.pointer_size,
                    }
            siblings.append(sibling)
        data: dict[str, Any] = {
            "_id": hashlib.sha1(f"{repo.repo_type}/{repo.repo_id}".encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
            "sha": commit.sha,
            "lastModified": _iso(commit.date),
            "createdAt": _iso(repo.created),
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(b.size for b in commit.files.values()),
        }
        if repo.repo_type == "model":
            data["modelId"] = repo.repo_id
        expand = request.query.getall("expand", []) + request.query.getall("expand[]", [])
        if expand:
            data = {k: v for k, v in data.items() if k in ("_id", "id") or k in expand}
        return web.json_response(data)

    def _entry(
        self, repo: _Repo, commit: _Commit, path: str, expand: bool
    ) -> dict[str, Any] | None:
        blob = commit.files.get(path)
        entry: dict[str, Any]
        if blob is not None:
            entry = {"type": "file", "oid": blob.blob_id, "size": blob.size, "path": path}
            if blob.sha256 is not None:
                entry["lfs"] = {
                    "oid": blob.sha256,
                    "size": blob.size,
                    "pointerSize": blob.pointer_size,
                }
        elif path and path in commit.trees:
            entry = {"type": "directory", "oid": commit.trees[path], "size": 0, "path": path}
        else:
            return None
        if expand:
            last = repo.last_commit(commit, path)
            entry["lastCommit"] = {"id": last.sha, "title": last.title, "date": _iso(last.date)}
            if blob is not None:
                entry["securityFileStatus"] = {
                    "status": "safe",
                    "avScan": {"virusFound": False, "virusNames": None},
                    "pickleImportScan": None,
                }
        return entry

    def _tree(self, request: web.Request, repo: _Repo, revision: str, path: str) -> web.Response:
        with self._lock:
            commit = repo.resolve(revision)
        if commit is None:
            return self._revision_not_found(revision)
        path = path.strip("/")
        if path not in commit.trees:
            return _error(
                404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.sha}
            )
        recursive = _truthy(request.query.get("recursive", ""))
        expand = _truthy(request.query.get("expand", ""))
        prefix = f"{path}/" if path else ""
        folders = [f for f in commit.trees if f]
        names = [
            (name, name in commit.trees)
            for name in [*folders, *commit.files]
            if name.startswith(prefix) and (recursive or "/" not in name[len(prefix) :])
        ]
        # folders first, then files, by path (the Hub lists a folder's subfolders first)
        names.sort(key=lambda item: (not item[1], item[0]) if not recursive else (item[0],))
        try:
            offset = max(0, int(request.query.get("cursor", "0")))
        except ValueError:
            return _error(400, "Invalid cursor")
        size = (
            self.tree_page_size if not expand else min(self.tree_page_size, EXPANDED_TREE_PAGE_SIZE)
        )
        size = max(1, size)
        page = names[offset : offset + size]
        entries = [self._entry(repo, commit, name, expand) for name, _ in page]
        headers = {"X-Repo-Commit": commit.sha}
        if offset + size < len(names):
            query = [(k, v) for k, v in request.query.items() if k != "cursor"]
            query.append(("cursor", str(offset + size)))
            base = request.raw_path.split("?", 1)[0]
            headers["Link"] = f'<{self.url}{base}?{urlencode(query)}>; rel="next"'
        return web.json_response(entries, headers=headers)

    async def _paths_info(self, request: web.Request, repo: _Repo, revision: str) -> web.Response:
        with self._lock:
            commit = repo.resolve(revision)
        if commit is None:
            return self._revision_not_found(revision)
        if request.content_type == "application/json":
            body = await request.json()
            paths = body.get("paths", [])
            paths = [paths] if isinstance(paths, str) else list(paths)
            expand = _truthy(body.get("expand", False))
        else:
            form = await request.post()
            paths = [str(p) for p in form.getall("paths", [])]
            expand = _truthy(form.get("expand", ""))
        out = []
        seen = set()
        for raw in paths:
            path = str(raw).strip("/")
            if path in seen:
                continue
            seen.add(path)
            entry = self._entry(repo, commit, path, expand)
            if entry is not None:
                out.append(entry)
        return web.json_response(out)

    def _refs(self, repo: _Repo, include_prs: bool) -> web.Response:
        with self._lock:
            branches = dict(repo.branches)
            tags = dict(repo.tags)
            special = dict(repo.special)

        def ref(name: str, full: str, sha: str) -> dict[str, str]:
            return {"name": name, "ref": full, "targetCommit": sha}

        data: dict[str, Any] = {
            "branches": [ref(n, f"refs/heads/{n}", s) for n, s in sorted(branches.items())],
            "converts": [
                ref(n.removeprefix("refs/convert/"), n, s)
                for n, s in sorted(special.items())
                if n.startswith("refs/convert/")
            ],
            "tags": [ref(n, f"refs/tags/{n}", s) for n, s in sorted(tags.items())],
        }
        if include_prs:
            data["pullRequests"] = [
                ref(n.removeprefix("refs/pr/"), n, s)
                for n, s in sorted(special.items())
                if n.startswith("refs/pr/")
            ]
        return web.json_response(data)

    def _commits(self, repo: _Repo, revision: str) -> web.Response:
        with self._lock:
            commit = repo.resolve(revision)
            history = repo.history(commit) if commit is not None else []
        if commit is None:
            return self._revision_not_found(revision)
        return web.json_response(
            [
                {
                    "id": c.sha,
                    "title": c.title,
                    "message": "",
                    "authors": [{"user": "hub-test"}],
                    "date": _iso(c.date),
                }
                for c in history
            ]
        )


def _split_revision(segments: list[str]) -> tuple[str, list[str]]:
    """The revision at the head of raw path ``segments`` and the segments after it: one
    segment (``main``, ``refs%2Fpr%2F1``), or an unquoted special ref (``refs/pr/1/...``)."""
    first = unquote(segments[0])
    if first == "refs" and len(segments) >= 3 and segments[1] in ("pr", "convert", "heads", "tags"):
        return f"refs/{segments[1]}/{unquote(segments[2])}", segments[3:]
    return first, segments[1:]


# -- pytest ----------------------------------------------------------------------------------


def quiet_huggingface_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep huggingface_hub off the network beyond the test servers.

    huggingface_hub 2.x builds its user agent with ``detect_agent()``, which fetches
    ``https://huggingface.co/api/agent-harnesses`` (the real Hub, whatever the endpoint)
    unless telemetry is off. ``HF_HUB_DISABLE_TELEMETRY`` is read at import, so the
    constant is patched too; the environment variable covers subprocesses.
    """
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - the extra is not installed
        return
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)


@pytest.fixture
def hub_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """A fresh ``HubServer`` (Hub + CDN) for one test."""
    quiet_huggingface_hub(monkeypatch)
    with HubServer() as server:
        yield server
