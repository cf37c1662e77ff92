"""Loading a store's providers: concurrently, every error collected, problems reported.

The store decides *when* to load (lazily, once for all concurrent callers); this module
is *how*: every pending provider in one task group, so one slow or failing store never
holds back or hides another.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anyio

from asyncassets.errors import AssetError, AssetMetadataError
from asyncassets.providers.base import AssetMetadataProvider

__all__ = ["load_providers", "strict_error"]

# The store's logger: these are the store's load messages, where users look for them.
logger = logging.getLogger("asyncassets.store")


async def load_providers(pending: Sequence[AssetMetadataProvider]) -> list[AssetError]:
    """Load every provider of ``pending`` concurrently and return the errors, in the
    order they happened (a provider's own failure as an :class:`AssetError`; any other
    exception wrapped in :class:`AssetMetadataError` naming the source).

    A provider that reports no error but is not loaded afterwards is an error too. The
    problems of each loaded provider are logged, the first one quoted.
    """
    errors: list[AssetError] = []

    async def load_one(provider: AssetMetadataProvider) -> None:
        try:
            await provider.load()
        except AssetError as exc:
            errors.append(exc)
        except Exception as exc:  # a provider of someone else's making
            logger.debug("loading %s failed", provider.source, exc_info=True)
            errors.append(
                AssetMetadataError(
                    f"cannot load cards from {provider.source}: {type(exc).__name__}: {exc}",
                    source=provider.source,
                )
            )

    async with anyio.create_task_group() as tg:
        for provider in pending:
            tg.start_soon(load_one, provider)
    if not errors:
        errors.extend(
            AssetMetadataError(
                f"{p.source} finished loading without an error but is not loaded",
                source=p.source,
            )
            for p in pending
            if not p.loaded
        )
    for provider in pending:
        problems = provider.snapshot.problems if provider.loaded else []
        if problems:
            logger.warning(
                "%d problem(s) in %s, first: %s (store.check() lists them all)",
                len(problems),
                provider.source,
                problems[0],
            )
    return errors


def strict_error(providers: Sequence[AssetMetadataProvider]) -> AssetMetadataError | None:
    """The error a strict store raises while ``providers`` have problems (None: none)."""
    problems = [p for provider in providers for p in provider.snapshot.problems]
    if not problems:
        return None
    listing = "\n".join(f"  {p}" for p in problems)
    return AssetMetadataError(f"{len(problems)} problem(s) in the card stores:\n{listing}")
