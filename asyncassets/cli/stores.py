"""The store a command line names: ``--store``, ``--env``, ``--storage-option``,
``--cache-dir``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from asyncassets import AssetStore, FileAssetMetadataProvider, create_default_store
from asyncassets.cli.reporting import UsageError
from asyncassets.locations import INDEX_FOLDER


def parse_storage_options(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; VALUE is read as YAML, as card files are (so ``true``, ``10``
    and ``{a: 1}`` work, and ``yes`` is a string); a dotted KEY nests
    (``client_kwargs.endpoint_url=...``)."""
    from asyncassets.parsing import read_documents

    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--storage-option wants KEY=VALUE, not {item!r}")
        value: Any = raw
        if raw:
            try:
                documents, _ = read_documents(raw.encode())
            except Exception:  # not YAML: the text as it is
                documents = []
            if len(documents) == 1:
                value = documents[0][1]
        target = options
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return options


def build_store(args: argparse.Namespace) -> AssetStore:
    options = parse_storage_options(args.storage_option or [])
    # --cache-dir holds the stores' persistent indexes too (else the cache root's index/).
    index_dir = os.path.join(args.cache_dir, INDEX_FOLDER) if args.cache_dir else None
    if args.store:
        providers = [
            FileAssetMetadataProvider(url, storage_options=options, index_dir=index_dir)
            for url in args.store
        ]
        store = AssetStore(providers, default_env=args.env)
    else:
        store = create_default_store(storage_options=options, index_dir=index_dir)
        store.default_env = args.env
    if args.cache_dir:
        from asyncassets.cache import CheckpointCache

        store.cache = CheckpointCache(args.cache_dir)
    return store
