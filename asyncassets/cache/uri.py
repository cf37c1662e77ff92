"""A checkpoint reference, parsed once: what every part of the cache needs to know of it.
Pure: no I/O.

A presigned URL (S3 ``X-Amz-*``, GCS ``X-Goog-*``, Azure SAS ``sig``/``se``/..., CloudFront
``Signature``/``Policy``/``Key-Pair-Id``) names the same object whatever its signature, and
its signature is a credential, as are ``token=``, ``api_key=`` and the like. The cache keys
an entry by the URI *without* them (a re-signed URL is a cache hit) and writes, logs and
prints only that form, without user info either (:func:`asyncassets.urls.public_uri`, the
one sanitiser); the full URI is used for the requests and nothing else.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from asyncassets.urls import HUB_SCHEMES, local_path, public_uri

__all__ = ["CheckpointURI", "HubTarget", "SourceKind", "entry_name"]

#: How a reference is read: a local path, HTTP(S), any other fsspec protocol, or the Hub.
SourceKind = Literal["local", "http", "fsspec", "hub"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_REPO_TYPES = {"models": "model", "datasets": "dataset"}


def entry_name(uri: str) -> str:
    """The last path component of a URI (``model.pt`` for ``s3://b/ckpt/model.pt``)."""
    stripped = uri.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    name = stripped.rsplit("/", 1)[-1] or "data"
    if name in {".", ".."} or (":" in name and "/" not in stripped):
        name = "data"
    return name


@dataclass(frozen=True)
class HubTarget:
    """The Hub part of a reference (``hg://ORG/REPO`` or
    ``hf://[models/|datasets/]ORG/REPO[@REVISION][/PATH]``): repo type and id, revision
    (``None``: the default branch) and a path inside the repo (``""``: the whole repo)."""

    repo_type: str
    repo_id: str
    revision: str | None
    path: str

    @classmethod
    def parse(cls, uri: str) -> HubTarget:
        """Raises ``ValueError`` saying what is wrong with a Hub URI."""
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
        return cls(repo_type, f"{org}/{name}", revision, "/".join(rest_parts))

    @property
    def url_prefix(self) -> str:
        """Where the repo's files live under the endpoint (``datasets/`` for datasets)."""
        return "" if self.repo_type == "model" else f"{self.repo_type}s/"

    def describe(self) -> str:
        """``model repo ORG/REPO at revision REV, path PATH``: for messages."""
        kind = "dataset" if self.repo_type == "dataset" else "model"
        at = f" at revision {self.revision}" if self.revision else ""
        inside = f", path {self.path}" if self.path else ""
        return f"{kind} repo {self.repo_id}{at}{inside}"


@dataclass(frozen=True)
class CheckpointURI:
    """A checkpoint reference parsed once, in ``fetch``, and carried by every call below it.

    ``raw`` is the URI as given (with its credentials): it is used for requests and
    nothing else. ``public`` (no user info, no signature) keys the entry and is what is
    stored, logged and shown. ``kind`` chooses the transport; ``local`` is the path of a
    local file or folder (``None`` for a remote URI); ``hub`` the repo, revision and path
    of a Hub reference; ``name`` the entry's file or folder name.
    """

    raw: str
    scheme: str
    kind: SourceKind
    public: str
    name: str
    local: Path | None = None
    hub: HubTarget | None = None

    @classmethod
    def parse(cls, uri: str | os.PathLike[str]) -> CheckpointURI:
        """Raises ``ValueError`` for a Hub URI that names no repo (see :class:`HubTarget`)."""
        raw = os.fspath(uri)
        local = None if "::" in raw else local_path(raw)
        scheme = raw.split("://", 1)[0].lower() if "://" in raw else "file"
        public = public_uri(raw)
        hub = None
        kind: SourceKind
        if local is not None:
            kind = "local"
        elif scheme in HUB_SCHEMES:
            kind, hub = "hub", HubTarget.parse(raw)
        elif scheme in ("http", "https"):
            kind = "http"
        else:
            kind = "fsspec"
        return cls(raw, scheme, kind, public, entry_name(public), local, hub)

    def __str__(self) -> str:
        return self.public
