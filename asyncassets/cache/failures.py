"""What a failed fetch says: the one ``AssetDownloadError`` a fetch raises, naming the URI
(never with its secrets), and for an error of the cache's own disk what failed and what to
do about it. No I/O."""

from __future__ import annotations

import errno
from pathlib import Path

from asyncassets.errors import AssetDownloadError, PermanentError
from asyncassets.transient import is_transient
from asyncassets.urls import scrub

from .archive import ArchiveError
from .uri import CheckpointURI

__all__ = ["download_error"]

#: Errors of the cache's own disk, reported as such (never as a failed download).
_DISK_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "a path of the cache folder is a file, not a folder",
    errno.EEXIST: "a path of the cache folder is a file, not a folder",
    errno.EFBIG: "the file is larger than this file system or process allows",
    errno.ELOOP: "a path of the cache folder loops through symlinks",
}
_DISK_ADVICE = {
    errno.ENOSPC: "free space or prune the cache (asyncassets cache prune --max-size SIZE)",
    errno.EDQUOT: "free space or prune the cache (asyncassets cache prune --max-size SIZE)",
    errno.EACCES: "choose a writable folder (--cache-dir or $ASYNCASSETS_CACHE_DIR)",
    errno.EPERM: "choose a writable folder (--cache-dir or $ASYNCASSETS_CACHE_DIR)",
    errno.EROFS: "choose a writable folder (--cache-dir or $ASYNCASSETS_CACHE_DIR)",
    errno.ENOTDIR: "point --cache-dir or $ASYNCASSETS_CACHE_DIR at a folder",
    errno.EEXIST: "point --cache-dir or $ASYNCASSETS_CACHE_DIR at a folder",
    errno.EFBIG: "use a cache folder on a file system that takes the file (ulimit -f too)",
    errno.ELOOP: "remove the symlink loop, or point --cache-dir at another folder",
}


def download_error(
    uri: CheckpointURI, exc: BaseException, *, root: Path, attempts: int
) -> AssetDownloadError:
    """The error a fetch of ``uri`` into the cache at ``root`` raises for ``exc``: an unsafe
    archive, a permanent failure, the cache's own disk, or a transient failure that
    ``attempts`` tries did not get past."""
    shown = uri.public
    text = scrub(str(exc).replace(uri.raw, shown)) or type(exc).__name__
    if isinstance(exc, ArchiveError):
        return AssetDownloadError(f"unsafe or broken archive {shown}: {text}", uri=shown)
    if isinstance(exc, PermanentError):
        return AssetDownloadError(f"cannot fetch {shown}: {text}", uri=shown)
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRORS:
        where = exc.filename or root
        return AssetDownloadError(
            f"cannot fetch {shown} into the cache at {root}: {_DISK_ERRORS[exc.errno]} "
            f"({where}); {_DISK_ADVICE[exc.errno]}",
            uri=shown,
        )
    if not is_transient(exc):
        return AssetDownloadError(f"cannot fetch {shown}: {type(exc).__name__}: {text}", uri=shown)
    return AssetDownloadError(
        f"cannot fetch {shown} ({type(exc).__name__}: {text}); gave up after {attempts} attempts",
        uri=shown,
    )
