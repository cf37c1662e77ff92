"""Providers: the only code that lists and reads card sources."""

from asyncassets.providers.base import AssetMetadataProvider, SnapshotProvider
from asyncassets.providers.file import FileAssetMetadataProvider
from asyncassets.providers.memory import InMemoryAssetMetadataProvider
from asyncassets.providers.package import PackageAssetMetadataProvider

__all__ = [
    "AssetMetadataProvider",
    "FileAssetMetadataProvider",
    "InMemoryAssetMetadataProvider",
    "PackageAssetMetadataProvider",
    "SnapshotProvider",
]
