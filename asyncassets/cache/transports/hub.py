"""Hugging Face Hub repos as checkpoints: ``hg://ORG/REPO`` (fairseq2's form) and
``hf://[models/|datasets/]ORG/REPO[@REVISION][/PATH]``.

huggingface_hub (extra ``hf``) makes the one API call a fetch needs, ``repo_info`` with the
files' metadata: it resolves the revision to a commit and lists every file with its size and,
for LFS files, the sha256 the Hub publishes; it also finds the token (``$HF_TOKEN``, the token
file of ``hf auth login``). The bytes go through the cache's own parallel ranged downloader
(:mod:`asyncassets.cache.ranged`), over the HTTP transport the dispatch hands in,
from ``resolve/<commit>/<file>`` URLs, which never change:
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

import hashlib
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio

from asyncassets.envs import env_flag
from asyncassets.errors import PermanentError, TransientError

from ..uri import CheckpointURI, HubTarget
from .base import (
    HTTPTransport,
    RemoteFile,
    RemoteIdentity,
    RemoteListing,
    Source,
    WriteChunk,
    folder_identity,
)

__all__ = ["HubSource", "hf_hub_cache", "hub_offline"]

logger = logging.getLogger("asyncassets.cache.hub")

#: Seconds the Hub's API may take to answer the one call a fetch makes.
API_TIMEOUT = 30.0

DEFAULT_ENDPOINT = "https://huggingface.co"


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
    token huggingface_hub finds). File bytes travel over ``http``, the HTTP transport that
    suits the running event loop.
    """

    default_concurrency = 32

    def __init__(
        self,
        uri: CheckpointURI,
        storage_options: dict[str, Any] | None = None,
        *,
        http: HTTPTransport,
    ) -> None:
        super().__init__(uri)
        try:
            import huggingface_hub  # noqa: F401
        except ImportError as exc:
            raise PermanentError(
                f"cannot fetch {uri.public}: huggingface_hub is missing "
                "(pip install 'asyncassets[hf]')"
            ) from exc
        assert uri.hub is not None
        self.target: HubTarget = uri.hub
        options = dict(storage_options or {})
        self.endpoint = hub_endpoint(options)
        self._token: str | None = options.get("token")
        self._open_http = http
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
            # Its messages name this URI: it only reads the ``resolve/`` URLs of files.
            self._http = self._open_http(self.uri, {"headers": headers})
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
