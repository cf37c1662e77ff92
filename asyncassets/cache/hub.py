"""Hugging Face Hub repos as checkpoints: ``hg://ORG/REPO`` (fairseq2's form) and
``hf://[models/|datasets/]ORG/REPO[@REVISION][/PATH]``.

huggingface_hub (extra ``hf``) makes the one API call a fetch needs, ``repo_info`` with the
files' metadata: it resolves the revision to a commit and lists every file with its size and,
for LFS files, the sha256 the Hub publishes; it also finds the token (``$HF_TOKEN``, the token
file of ``hf auth login``). The bytes go through the cache's own parallel ranged downloader
(:mod:`asyncassets.cache.ranged`) from ``resolve/<commit>/<file>`` URLs, which never change:
a download pinned to a commit cannot mix two versions. The Hub redirects LFS files to its
CDN; the token goes to the Hub's own origin only, and the CDN's signed URLs live in memory
for one fetch and are never stored or printed.

A file already in the local Hugging Face cache (``$HF_HUB_CACHE``, the blob of the same
sha256 or git blob id) is hard-linked (copied across file systems) after its content is
checked, instead of downloaded.

``$HF_ENDPOINT``, ``$HF_HUB_OFFLINE`` and ``$HF_HUB_CACHE`` are read when a fetch starts
(huggingface_hub reads them once, at import).
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import anyio

from asyncassets.envs import env_flag
from asyncassets.errors import PermanentError, TransientError
from asyncassets.loops import on_asyncio
from asyncassets.urls import HUB_SCHEMES

from .layout import RemoteFile, RemoteIdentity
from .sources import RemoteListing, Source, WriteChunk, folder_identity

__all__ = [
    "HUB_SCHEMES",
    "HubSource",
    "HubTarget",
    "hf_hub_cache",
    "hub_offline",
    "select_files",
]

logger = logging.getLogger("asyncassets.cache.hub")

#: Seconds the Hub's API may take to answer the one call a fetch makes.
API_TIMEOUT = 30.0

DEFAULT_ENDPOINT = "https://huggingface.co"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_REPO_TYPES = {"models": "model", "datasets": "dataset"}


@dataclass(frozen=True)
class HubTarget:
    """A parsed Hub URI: repo type and id, revision (``None``: the default branch) and a
    path inside the repo (``""``: the whole repo)."""

    uri: str
    repo_type: str
    repo_id: str
    revision: str | None
    path: str

    @classmethod
    def parse(cls, uri: str) -> HubTarget:
        scheme, sep, rest = uri.partition("://")
        if not sep or scheme.lower() not in HUB_SCHEMES:
            raise ValueError(f"not a Hugging Face Hub URI: {uri}")
        rest = rest.split("#", 1)[0]
        if "?" in rest:
            raise ValueError(f"{uri}: a Hub URI takes no query string (a revision is '@REV')")
        parts = [p for p in rest.split("/") if p]
        repo_type = "model"
        if scheme.lower() == "hf" and parts and parts[0] in _REPO_TYPES:
            repo_type = _REPO_TYPES[parts.pop(0)]
        elif scheme.lower() == "hf" and parts and parts[0] == "spaces":
            raise ValueError(f"{uri}: Spaces hold apps, not checkpoints; use a model or dataset")
        if len(parts) < 2:
            raise ValueError(f"{uri}: expected ORG/REPO after {scheme}://")
        org, name = parts[0], parts[1]
        rest_parts = parts[2:]
        revision = None
        if "@" in name:
            name, revision = name.split("@", 1)
            if revision == "refs" and len(rest_parts) >= 2:
                # '@refs/pr/1' written with its slashes (else quoted: '@refs%2Fpr%2F1')
                revision = "/".join([revision, *rest_parts[:2]])
                rest_parts = rest_parts[2:]
            revision = unquote(revision)
            if not revision:
                raise ValueError(f"{uri}: empty revision after '@'")
        for part in (org, name):
            if not _NAME.match(part) or ".." in part or len(part) > 96:
                raise ValueError(f"{uri}: {part!r} is not a valid Hub organisation or repo name")
        if any(p in (".", "..") for p in rest_parts):
            raise ValueError(f"{uri}: '.' and '..' are not allowed in a path inside a repo")
        return cls(uri, repo_type, f"{org}/{name}", revision, "/".join(rest_parts))

    @property
    def url_prefix(self) -> str:
        """Where the repo's files live under the endpoint (``datasets/`` for datasets)."""
        return "" if self.repo_type == "model" else f"{self.repo_type}s/"

    def describe(self) -> str:
        kind = "dataset" if self.repo_type == "dataset" else "model"
        at = f" at revision {self.revision}" if self.revision else ""
        inside = f", path {self.path}" if self.path else ""
        return f"{kind} repo {self.repo_id}{at}{inside}"


def select_files(files: Iterable[RemoteFile], include: Sequence[str]) -> list[RemoteFile]:
    """The files whose path inside the folder (or its last component) matches a pattern."""
    chosen = []
    for file in files:
        base = file.relpath.rsplit("/", 1)[-1]
        names = (file.relpath, base)
        if any(fnmatch.fnmatchcase(n, p) for p in include for n in names):
            chosen.append(file)
    return chosen


def hub_offline() -> bool:
    """``$HF_HUB_OFFLINE`` (or transformers' ``$TRANSFORMERS_OFFLINE``) is set."""
    return env_flag("HF_HUB_OFFLINE") or env_flag("TRANSFORMERS_OFFLINE")


def hub_endpoint(options: dict[str, Any] | None = None) -> str:
    endpoint = (options or {}).get("endpoint") or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    return str(endpoint).rstrip("/")


def hf_hub_cache() -> Path:
    """The local Hugging Face cache, found as huggingface_hub finds it."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.path.expandvars(os.environ[name])).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(os.path.expandvars(home)).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


_TOKEN_ADVICE = "set a token that has access ($HF_TOKEN, or `hf auth login`)"


def _gated_error(target: HubTarget, endpoint: str, status: int) -> PermanentError:
    return PermanentError(
        f"{target.describe()} is gated: request access at {endpoint}/{target.url_prefix}"
        f"{target.repo_id}, then {_TOKEN_ADVICE}",
        status=status,
    )


def _hub_error(target: HubTarget, endpoint: str, exc: Exception) -> Exception:
    """Our internal error for what huggingface_hub raised."""
    from huggingface_hub import errors

    where = target.describe()
    if isinstance(exc, errors.GatedRepoError):
        return _gated_error(target, endpoint, 403)
    if isinstance(exc, errors.RepositoryNotFoundError):
        return PermanentError(
            f"{where} was not found on {endpoint}, or it is private: check the name, or "
            f"{_TOKEN_ADVICE}",
            status=404,
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return PermanentError(f"{where}: revision not found on {endpoint}", status=404)
    if isinstance(exc, errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        text = f"{where}: HTTP {status} from {endpoint}: {str(exc).splitlines()[0]}"
        if status is None or status >= 500 or status in (408, 429):
            return TransientError(text)
        if status in (401, 403):
            return PermanentError(f"{where}: access denied; {_TOKEN_ADVICE}", status=status)
        return PermanentError(text, status=status)
    if isinstance(exc, (OSError, ConnectionError, TimeoutError)) or type(exc).__module__.startswith(
        ("httpx", "httpcore")
    ):
        return TransientError(f"{where}: cannot reach {endpoint}: {type(exc).__name__}: {exc}")
    return exc


class HubSource(Source):
    """A Hub repo (or one file or folder of it) at one commit.

    ``storage_options`` may hold ``endpoint`` and ``token`` (else ``$HF_ENDPOINT`` and the
    token huggingface_hub finds).
    """

    default_concurrency = 32

    def __init__(self, uri: str, storage_options: dict[str, Any] | None = None) -> None:
        super().__init__(uri)
        try:
            import huggingface_hub  # noqa: F401
        except ImportError as exc:
            raise PermanentError(
                f"cannot fetch {uri}: huggingface_hub is missing (pip install 'asyncassets[hf]')"
            ) from exc
        self.target = HubTarget.parse(uri)
        options = dict(storage_options or {})
        self.endpoint = hub_endpoint(options)
        self._token: str | None = options.get("token")
        self._http: Source | None = None
        #: the commit the revision resolved to (set by ``describe``)
        self.commit: str | None = None
        #: the repo id as the Hub spells it (its cache folders use that case)
        self._canonical_id = self.target.repo_id
        self._gated = False

    # -- metadata -------------------------------------------------------------------------

    def _repo_info(self) -> Any:
        from huggingface_hub import HfApi, get_token

        if self._token is None:
            self._token = get_token()
        api = HfApi(endpoint=self.endpoint, token=self._token or False, library_name="asyncassets")
        try:
            return api.repo_info(
                self.target.repo_id,
                repo_type=self.target.repo_type,
                revision=self.target.revision,
                files_metadata=True,
                timeout=API_TIMEOUT,  # a Hub that never answers is an error, not a wait
            )
        except Exception as exc:
            raise _hub_error(self.target, self.endpoint, exc) from None

    async def describe(self, kind_hint: str | None = None) -> RemoteListing:
        info = await self._blocking(self._repo_info)
        commit = str(info.sha)
        self.commit = commit
        self._canonical_id = str(getattr(info, "id", None) or self.target.repo_id)
        self._gated = bool(getattr(info, "gated", False))
        path = self.target.path
        siblings = list(info.siblings or [])
        exact = [s for s in siblings if s.rfilename == path] if path else []
        if exact:
            file = self._remote_file(exact[0], commit, exact[0].rfilename.rsplit("/", 1)[-1])
            return RemoteListing("file", file.identity, [file], revision=commit)
        prefix = f"{path.rstrip('/')}/" if path else ""
        files = [
            self._remote_file(s, commit, s.rfilename[len(prefix) :])
            for s in sorted(siblings, key=lambda s: str(s.rfilename))
            if s.rfilename.startswith(prefix)
        ]
        if not files:
            what = f"no file or folder {path!r} in" if path else "no file in"
            raise PermanentError(f"{what} {self.target.describe()} (commit {commit})", status=404)
        return RemoteListing("dir", folder_identity(files), files, revision=commit)

    def _remote_file(self, sibling: Any, commit: str, relpath: str) -> RemoteFile:
        lfs = getattr(sibling, "lfs", None)
        sha256 = getattr(lfs, "sha256", None) if lfs is not None else None
        size = getattr(sibling, "size", None)
        if size is None and lfs is not None:
            size = getattr(lfs, "size", None)
        blob = sha256 or getattr(sibling, "blob_id", None)
        url = (
            f"{self.endpoint}/{self.target.url_prefix}{self.target.repo_id}/resolve/"
            f"{commit}/{quote(str(sibling.rfilename))}"
        )
        identity = RemoteIdentity(size=int(size) if size is not None else None, digest=blob)
        return RemoteFile(path=url, relpath=relpath, identity=identity, sha256=sha256, blob=blob)

    # -- bytes ----------------------------------------------------------------------------

    def _transport(self) -> Source:
        if self._http is None:
            from huggingface_hub.utils._headers import build_hf_headers

            headers = build_hf_headers(token=self._token or False, library_name="asyncassets")
            options = {"headers": headers}
            if on_asyncio():
                from .sources import HTTPSource

                self._http = HTTPSource(self.endpoint, options, remember_redirects=True)
            else:
                from .http_threads import ThreadedHTTPSource

                self._http = ThreadedHTTPSource(self.endpoint, options)
            self._http.display = self.display
        return self._http

    async def read_range(self, file: RemoteFile, start: int, end: int, write: WriteChunk) -> None:
        try:
            await self._transport().read_range(file, start, end, write)
        except PermanentError as exc:
            raise self._access_error(exc, file) from None

    async def read_all(self, file: RemoteFile, write: WriteChunk) -> None:
        try:
            await self._transport().read_all(file, write)
        except PermanentError as exc:
            raise self._access_error(exc, file) from None

    def _access_error(self, exc: PermanentError, file: RemoteFile) -> PermanentError:
        if exc.status not in (401, 403):
            return exc
        if self._gated:
            return _gated_error(self.target, self.endpoint, exc.status)
        return PermanentError(
            f"{self.target.describe()}: access to {file.relpath} denied (HTTP {exc.status}); "
            f"{_TOKEN_ADVICE}",
            status=exc.status,
        )

    # -- the local Hugging Face cache -----------------------------------------------------

    def _hf_blob(self, file: RemoteFile) -> Path | None:
        if file.blob is None or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", file.blob):
            return None
        root = hf_hub_cache()
        kind = f"{self.target.repo_type}s"
        for repo_id in dict.fromkeys([self._canonical_id, self.target.repo_id]):
            blob = root / "--".join([kind, *repo_id.split("/")]) / "blobs" / file.blob
            if blob.is_file():
                return blob
        return None

    async def local_copy(self, file: RemoteFile, target: Path) -> bool:
        """Put the file at ``target`` from the local Hugging Face cache, when it holds the
        same blob; True when it did. The blob is checked first (its size, and its sha256 or
        git blob id), so a damaged cache is downloaded past, never copied."""
        return await anyio.to_thread.run_sync(self._local_copy, file, target)

    def _local_copy(self, file: RemoteFile, target: Path) -> bool:
        blob = self._hf_blob(file)
        if blob is None:
            return False
        try:
            if file.identity.size is not None and blob.stat().st_size != file.identity.size:
                return False
            if not _blob_matches(blob, file):
                logger.warning("%s in the Hugging Face cache is damaged; downloading", blob)
                return False
            target.unlink(missing_ok=True)
            try:
                os.link(blob, target)
            except OSError:
                shutil.copyfile(blob, target)
        except OSError as exc:
            logger.debug("cannot reuse %s: %s", blob, exc)
            return False
        logger.info("reused %s from the Hugging Face cache (%s)", file.relpath, blob)
        return True

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()


def _blob_matches(blob: Path, file: RemoteFile) -> bool:
    """The blob holds the file: its sha256 (LFS) or its git blob id (other files)."""
    if file.sha256 is not None:
        digest = hashlib.sha256()
    else:
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(b"blob %d\0" % blob.stat().st_size)
    with open(blob, "rb") as handle:
        while chunk := handle.read(8 * 2**20):
            digest.update(chunk)
    return digest.hexdigest() == (file.sha256 or file.blob)
