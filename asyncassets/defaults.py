"""The default store: the system and user card folders named by environment variables."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from asyncassets.providers.file import FileAssetMetadataProvider
from asyncassets.store import AssetStore

__all__ = ["create_default_store", "system_asset_dir", "user_asset_dir"]

logger = logging.getLogger("asyncassets")


def system_asset_dir() -> tuple[str, bool]:
    """(folder or URL, named by a variable?): ``$ASYNCASSETS_ASSET_DIR``, else
    ``$FAIRSEQ2_ASSET_DIR``, else ``/etc/asyncassets/assets``."""
    for var in ("ASYNCASSETS_ASSET_DIR", "FAIRSEQ2_ASSET_DIR"):
        if value := os.environ.get(var):
            return value, True
    return "/etc/asyncassets/assets", False


def user_asset_dir() -> tuple[str, bool]:
    """(folder or URL, named by a variable?): ``$ASYNCASSETS_USER_ASSET_DIR``, else
    ``$FAIRSEQ2_USER_ASSET_DIR``, else ``$XDG_CONFIG_HOME/asyncassets/assets``, else
    ``~/.config/asyncassets/assets``."""
    for var in ("ASYNCASSETS_USER_ASSET_DIR", "FAIRSEQ2_USER_ASSET_DIR"):
        if value := os.environ.get(var):
            return value, True
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return str(Path(config) / "asyncassets" / "assets"), False


def create_default_store(
    *,
    storage_options: Mapping[str, Any] | None = None,
    index_dir: str | os.PathLike[str] | None = None,
) -> AssetStore:
    """A store with the system and user folders of the environment variables.

    A missing default folder is skipped silently; a folder named by a variable that is
    missing or cannot be read (unknown protocol, unreachable endpoint) is a warning when
    the store first loads, and the other folder's cards are still served.
    ``storage_options`` go to folders the variables name as URLs (``s3://bucket/cards``);
    ``index_dir`` is where their persistent indexes go (default: the cache root's ``index/``).
    """
    providers = []
    for (location, named), user in ((system_asset_dir(), False), (user_asset_dir(), True)):
        provider = FileAssetMetadataProvider(
            location,
            storage_options=storage_options,
            missing_ok=True,
            warn_missing=named,
            optional=named,
            index_dir=index_dir,
        )
        providers.append((provider, user))
    return AssetStore(
        providers=[p for p, user in providers if not user],
        user_providers=[p for p, user in providers if user],
    )
