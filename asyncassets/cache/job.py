"""One fetch as the caller asked for it: the parsed reference, its entry, and every choice
that goes with it, checked once and then carried as one value through the cache. No I/O."""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from asyncassets.envs import env_flag
from asyncassets.errors import AssetDownloadError, PermanentError
from asyncassets.urls import public_uri

from .archive import archive_kind
from .layout import CacheLayout, PartialState
from .progress import ProgressCallback
from .transports.base import RemoteListing
from .transports.hub import hub_offline
from .uri import CheckpointURI

__all__ = ["FetchJob", "normalize_sha256"]


@dataclass(frozen=True)
class FetchJob:
    """A fetch of ``uri`` into the entry ``key``.

    ``expected`` is the sha256 to check (hex), ``include`` the patterns choosing the files of
    a folder, ``offline`` that the network is never touched; the others are ``fetch``'s
    keywords of the same names.
    """

    uri: CheckpointURI
    key: str
    expected: str | None = None
    force: bool = False
    offline: bool = False
    extract: bool = False
    include: tuple[str, ...] | None = None
    progress: bool | ProgressCallback = field(default=True, compare=False)
    storage_options: dict[str, Any] | None = field(default=None, compare=False)

    @classmethod
    def plan(
        cls,
        uri: str | os.PathLike[str],
        layout: CacheLayout,
        *,
        sha256: str | None = None,
        force: bool = False,
        local_only: bool = False,
        progress: bool | ProgressCallback = True,
        storage_options: dict[str, Any] | None = None,
        extract: bool = False,
        include: Sequence[str] | None = None,
    ) -> FetchJob:
        """The job ``fetch`` was asked for; ``AssetDownloadError`` names what is wrong
        with the request (a Hub URI that names no repo, a bad sha256 or include=)."""
        try:
            target = CheckpointURI.parse(uri)
        except ValueError as exc:
            raise AssetDownloadError(str(exc), uri=public_uri(os.fspath(uri))) from None
        try:
            expected = normalize_sha256(sha256)
        except ValueError as exc:
            raise AssetDownloadError(f"{exc} (for {target.public})", uri=target.public) from None
        patterns = tuple(include) if include is not None else None
        if patterns is not None and (not patterns or not all(isinstance(p, str) for p in patterns)):
            raise AssetDownloadError(
                f"include= must be a non-empty list of glob patterns, not {include!r} "
                f"(for {target.public})",
                uri=target.public,
            )
        offline = (
            local_only
            or env_flag("ASYNCASSETS_OFFLINE")
            or (target.kind == "hub" and hub_offline())
        )
        return cls(
            target,
            layout.key(target, extract=extract, include=patterns),
            expected=expected,
            force=force,
            offline=offline,
            extract=extract,
            include=patterns,
            progress=progress,
            storage_options=storage_options,
        )

    def chosen(self, listing: RemoteListing) -> RemoteListing:
        """``listing`` cut down to the files ``include`` chooses (a folder's); a
        ``PermanentError`` naming the patterns and the files when none matches."""
        if self.include is None or listing.kind != "dir":
            return listing
        chosen = listing.chosen(self.include)
        if not chosen.files:
            shown = ", ".join(f.relpath for f in listing.files[:12])
            more = f" and {len(listing.files) - 12} more" if len(listing.files) > 12 else ""
            raise PermanentError(
                f"no file of {self.uri.public} matches {', '.join(self.include)} "
                f"(it holds {shown}{more})",
                status=404,
            )
        return chosen

    def check(self, listing: RemoteListing) -> None:
        """Raise when what the job asks cannot be done with what ``listing`` describes: a
        sha256 of a folder, or unpacking what is not an archive."""
        if self.expected is not None and listing.kind != "file":
            raise AssetDownloadError(
                f"{self.uri.public} is a folder; a sha256 can only be checked for one file",
                uri=self.uri.public,
            )
        if self.extract and (listing.kind != "file" or archive_kind(self.uri.name) is None):
            raise AssetDownloadError(
                f"extract=True needs a .tar, .tar.gz or .zip file; {self.uri.public} is not one",
                uri=self.uri.public,
            )

    def partial_state(self, listing: RemoteListing, part_size: int) -> PartialState:
        """What a partial download of ``listing`` for this job records."""
        return PartialState(
            uri=self.uri.public,
            kind=listing.kind,
            identity=listing.identity,
            part_size=part_size,
            extract=self.extract,
            include=list(self.include) if self.include is not None else None,
        )

    @property
    def flight(self) -> Hashable:
        """What makes two fetches one: concurrent fetches of the same flight share one run."""
        return (self.key, self.expected, self.force, self.offline, self.extract, self.include)


def normalize_sha256(value: str | None) -> str | None:
    """A sha256 as lower-case hex (a ``sha256:`` prefix allowed); ``ValueError`` if not one."""
    if value is None:
        return None
    text = value.strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:") :]
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"not a sha256 hex digest: {value!r}")
    return text
