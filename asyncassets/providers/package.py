"""Cards shipped inside a Python package (read through importlib.resources)."""

from __future__ import annotations

import importlib.resources
from importlib.resources.abc import Traversable
from pathlib import Path

import anyio

from asyncassets.errors import AssetSourceNotFoundError
from asyncassets.parsing import is_card_file, parse_card_file
from asyncassets.providers.base import SnapshotProvider
from asyncassets.snapshot import FileRecord

__all__ = ["PackageAssetMetadataProvider"]


class PackageAssetMetadataProvider(SnapshotProvider):
    """Cards in the ``*.yaml``/``*.yml`` files of a package, found recursively.

    ``package`` is an importable name (``my_models.cards``); ``subpath`` an optional
    folder inside it. Works for zipped packages too.
    """

    def __init__(self, package: str, subpath: str | None = None) -> None:
        self.package = package
        self.subpath = subpath
        where = f"{package}/{subpath}" if subpath else package
        super().__init__(f"package://{where}")

    def _root(self) -> Traversable:
        try:
            root = importlib.resources.files(self.package)
        except (ModuleNotFoundError, TypeError) as exc:
            raise AssetSourceNotFoundError(
                f"cannot find package '{self.package}' for cards: {exc}", source=self._source
            ) from None
        if self.subpath:
            root = root.joinpath(self.subpath)
        if not root.is_dir():
            raise AssetSourceNotFoundError(
                f"package folder {self._source} does not exist", source=self._source
            )
        return root

    def _file_url(self, item: Traversable, relative: str) -> str:
        if isinstance(item, Path):
            return "file://" + str(item.absolute())
        return f"{self._source}/{relative}"

    def _read_sync(self) -> list[FileRecord]:
        records = []
        pending: list[tuple[Traversable, str]] = [(self._root(), "")]
        while pending:
            folder, prefix = pending.pop()
            for item in folder.iterdir():
                relative = f"{prefix}{item.name}"
                if item.is_dir():
                    if not item.name.startswith((".", "__pycache__")):
                        pending.append((item, relative + "/"))
                elif is_card_file(item.name):
                    url = self._file_url(item, relative)
                    records.append(
                        parse_card_file(item.read_bytes(), file=url, source=self._source)
                    )
        return records

    async def _read_all(self) -> list[FileRecord]:
        return await anyio.to_thread.run_sync(self._read_sync)
