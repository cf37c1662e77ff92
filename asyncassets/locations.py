"""Where asyncassets keeps what it caches on this machine: one root for checkpoints and the
card stores' persistent indexes. Pure: reads the environment, touches no file."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["INDEX_FOLDER", "default_cache_root"]

#: The folder under the cache root that holds the card stores' persistent indexes.
INDEX_FOLDER = "index"


def default_cache_root() -> Path:
    """``$ASYNCASSETS_CACHE_DIR``, else ``$XDG_CACHE_HOME/asyncassets``, else
    ``~/.cache/asyncassets``."""
    if root := os.environ.get("ASYNCASSETS_CACHE_DIR"):
        return Path(root).expanduser()
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return Path(xdg).expanduser() / "asyncassets"
    return Path.home() / ".cache" / "asyncassets"
