"""asyncassets: fairseq2-style asset cards for async services.

>>> from asyncassets import asset_store, FileAssetMetadataProvider
>>> asset_store.metadata_providers.append(FileAssetMetadataProvider("~/cards"))
>>> card = await asset_store.retrieve_card("llama3_2_1b")
"""

from typing import TYPE_CHECKING

from asyncassets.card import AssetCard, AssetCardField
from asyncassets.defaults import create_default_store
from asyncassets.errors import (
    AssetCardError,
    AssetCardNotFoundError,
    AssetDownloadError,
    AssetError,
    AssetGatedError,
    AssetMetadataError,
    AssetMetadataNotFoundError,
    AssetSourceNotFoundError,
    ChecksumMismatchError,
)
from asyncassets.events import ChangeEvent
from asyncassets.problems import Problem
from asyncassets.providers import (
    AssetMetadataProvider,
    FileAssetMetadataProvider,
    InMemoryAssetMetadataProvider,
    PackageAssetMetadataProvider,
)
from asyncassets.store import AssetStore

if TYPE_CHECKING:
    from asyncassets.cache import CheckpointCache

__all__ = [
    "AssetCard",
    "AssetCardError",
    "AssetCardField",
    "AssetCardNotFoundError",
    "AssetDownloadError",
    "AssetError",
    "AssetGatedError",
    "AssetMetadataError",
    "AssetMetadataNotFoundError",
    "AssetMetadataProvider",
    "AssetSourceNotFoundError",
    "AssetStore",
    "ChangeEvent",
    "CheckpointCache",
    "ChecksumMismatchError",
    "FileAssetMetadataProvider",
    "InMemoryAssetMetadataProvider",
    "PackageAssetMetadataProvider",
    "Problem",
    "asset_store",
    "create_default_store",
]

#: The default store: system folder ``$ASYNCASSETS_ASSET_DIR`` and user folder
#: ``$ASYNCASSETS_USER_ASSET_DIR`` (see :func:`create_default_store`).
asset_store: AssetStore = create_default_store()


def __getattr__(name: str) -> object:
    # The cache pulls in more of fsspec than card lookups need: import it on first use.
    if name == "CheckpointCache":
        from asyncassets.cache import CheckpointCache

        return CheckpointCache
    raise AttributeError(f"module 'asyncassets' has no attribute {name!r}")
