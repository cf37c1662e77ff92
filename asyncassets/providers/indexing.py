"""How a card store uses its persistent index: which listed files it still vouches for,
and keeping it current as files are read. The file format is :mod:`.index`'s."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import anyio.to_thread

from asyncassets.index_codec import IndexedFile, encode_file
from asyncassets.providers.base import CardSource, FileIdentity
from asyncassets.providers.index import CardIndex
from asyncassets.snapshot import FileRecord

__all__ = ["ProviderIndex"]

logger = logging.getLogger("asyncassets.index")

#: Problems that say nothing of a file's content (it could not be read this time): a file
#: that has one is read again at the next start.
_PASSING = frozenset({"read", "source"})


class ProviderIndex:
    """The index of one provider: what it holds now (``{file URL: IndexedFile}``) and the
    file it is saved to after every load and refresh that changed it."""

    def __init__(self, index: CardIndex) -> None:
        self.index = index
        self._files: dict[str, IndexedFile] = {}
        #: The index file was missing or stale at the last load: save it even unchanged.
        self._dirty = False
        self._warned = False

    async def read(self) -> dict[str, IndexedFile] | None:
        """What the index file holds (None: no usable index), read in a worker thread: a
        load starts it beside its listing."""
        return await anyio.to_thread.run_sync(self.index.load)

    def split(
        self,
        folder: CardSource,
        listing: Mapping[str, str | None],
        stored: Mapping[str, IndexedFile] | None,
    ) -> tuple[list[FileRecord], list[tuple[str, str | None]]]:
        """The records the index (``stored``, from :meth:`read`) vouches for, and the
        ``(path, version)`` items of the listing left to read (changed, added, or never
        indexed)."""
        self._dirty = stored is None
        stored = stored or {}
        known: dict[str, IndexedFile] = {}
        unread: list[tuple[str, str | None]] = []
        for path, version in listing.items():
            url = folder.file_url(path)
            indexed = stored.get(url)
            identity = folder.identity(url, version)
            if (
                indexed is not None
                and identity is not None
                and identity.vouches_for(indexed.identity, indexed.recorded_ns)
            ):
                known[url] = indexed
            else:
                unread.append((path, version))
        self._dirty |= len(known) != len(stored)
        self._files = known
        logger.debug(
            "%s: %d files from the index %s, %d to read",
            self.index.source,
            len(known),
            self.index.path,
            len(unread),
        )
        return [f.record for f in known.values()], unread

    async def update(
        self,
        folder: CardSource,
        changed: Mapping[str, FileRecord | None],
        recorded_ns: int,
        *,
        whole: bool = False,
    ) -> None:
        """Take ``changed`` (file URL: what it gives now, None: gone; read after
        ``recorded_ns``) into the index and save it when it changed (or, ``whole``, when
        the load found it missing or stale). A failure to save is a warning."""
        identities = {
            url: folder.identity(url, record.version)
            for url, record in changed.items()
            if record is not None
        }
        try:
            await anyio.to_thread.run_sync(
                self._update_and_save, changed, identities, recorded_ns, whole
            )
        except OSError as exc:
            if not self._warned:
                self._warned = True
                logger.warning(
                    "cannot write the card index %s: %s; the next start reads every card "
                    "file of %s",
                    self.index.path,
                    exc.strerror or exc,
                    self.index.source,
                )

    def _update_and_save(
        self,
        changed: Mapping[str, FileRecord | None],
        identities: Mapping[str, FileIdentity | None],
        recorded_ns: int,
        whole: bool,
    ) -> None:
        dirty = whole and self._dirty
        for url, record in changed.items():
            identity = identities.get(url)
            indexed = None
            if record is not None and identity is not None and _lasting(record):
                indexed = encode_file(record, identity.key, recorded_ns)
            if indexed is not None:
                self._files[url] = indexed
                dirty = True
            elif self._files.pop(url, None) is not None:
                dirty = True
        if dirty and (self._files or self.index.path.exists()):
            self.index.save(self._files[url] for url in sorted(self._files))
        self._dirty = False


def _lasting(record: FileRecord) -> bool:
    """What a file gave says something of its content (not of one failed read)."""
    return not record.stale and not any(p.kind in _PASSING for p in record.problems)
