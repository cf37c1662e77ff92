"""Unpack ``.tar``, ``.tar.gz`` / ``.tgz``, ``.tar.bz2``, ``.tar.xz`` and ``.zip`` safely.

Every member is checked before anything is written: no absolute path, no ``..`` leaving the
target, no link pointing outside it, no device or fifo. One bad member rejects the archive.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

__all__ = ["ArchiveError", "archive_kind", "extract_archive", "extracted_name"]

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class ArchiveError(ValueError):
    """The archive is malformed or has a member that would leave the target folder."""


def archive_kind(name: str) -> str | None:
    """``"tar"``, ``"zip"`` or ``None`` from a file name."""
    lower = name.lower()
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith(_TAR_SUFFIXES):
        return "tar"
    return None


def extracted_name(name: str) -> str:
    """The folder name an archive unpacks to: ``model.tar.gz`` -> ``model``."""
    lower = name.lower()
    for suffix in (".zip", *_TAR_SUFFIXES):
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name + ".d"


def _check_member_path(name: str) -> str:
    if not name or "\x00" in name:
        raise ArchiveError(f"member with an empty or invalid name: {name!r}")
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        raise ArchiveError(f"member with an absolute path: {name!r}")
    clean = posixpath.normpath(normalized)
    if clean == ".." or clean.startswith("../"):
        raise ArchiveError(f"member leaving the target folder: {name!r}")
    return clean


def _check_link(member: str, target: str, *, hard: bool) -> None:
    normalized = target.replace("\\", "/")
    if normalized.startswith("/"):
        raise ArchiveError(f"link {member!r} points to an absolute path {target!r}")
    base = "" if hard else posixpath.dirname(member)
    resolved = posixpath.normpath(posixpath.join(base, normalized))
    if resolved == ".." or resolved.startswith("../"):
        raise ArchiveError(f"link {member!r} points outside the target folder: {target!r}")


def extract_archive(archive: Path, target: Path) -> None:
    """Unpack ``archive`` into the folder ``target`` (created); raise ``ArchiveError``."""
    kind = archive_kind(archive.name)
    target.mkdir(parents=True, exist_ok=True)
    try:
        if kind == "zip":
            _extract_zip(archive, target)
        elif kind == "tar":
            _extract_tar(archive, target)
        else:
            raise ArchiveError(f"not an archive this cache unpacks: {archive.name}")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise ArchiveError(f"cannot read archive {archive.name}: {exc}") from exc


def _extract_tar(archive: Path, target: Path) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for member in members:
            clean = _check_member_path(member.name)
            if member.issym():
                _check_link(clean, member.linkname, hard=False)
            elif member.islnk():
                _check_link(clean, _check_member_path(member.linkname), hard=True)
            elif not (member.isfile() or member.isdir()):
                raise ArchiveError(f"member {member.name!r} is a device, fifo or unknown type")
        # The "data" filter repeats these checks inside tarfile and drops unsafe modes.
        tf.extractall(target, members=members, filter="data")


def _extract_zip(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            clean = _check_member_path(info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                _check_link(clean, zf.read(info).decode("utf-8", "replace"), hard=False)
        root = os.path.realpath(target)
        for info in infos:
            clean = _check_member_path(info.filename)
            dest = os.path.realpath(os.path.join(root, clean))
            if dest != root and not dest.startswith(root + os.sep):
                raise ArchiveError(f"member leaving the target folder: {info.filename!r}")
            if info.is_dir():
                os.makedirs(dest, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 2**20)
