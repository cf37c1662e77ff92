"""The asset store: providers in precedence order, envs, resolution, caching.

The store composes the pure core (snapshots, resolution), the providers (I/O) and the
checkpoint cache. Every public method loads lazily and only once, however many tasks ask
at the same time. Its parts live next to it: the settings it serves from
(:mod:`asyncassets.settings`), how providers load (:mod:`asyncassets.loading`), the change
feed (:mod:`asyncassets.events`), watching (:mod:`asyncassets.watch.group`) and what a
prefetch fetches (:mod:`asyncassets.planning`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asyncassets.card import AssetCard
from asyncassets.checks import index_problems
from asyncassets.envs import EnvResolver
from asyncassets.errors import (
    AssetCardError,
    AssetCardNotFoundError,
    AssetError,
    AssetMetadataError,
)
from asyncassets.events import ChangeEvent, ChangeFeed
from asyncassets.loading import load_providers, strict_error
from asyncassets.loops import LoopLocalLock
from asyncassets.names import InvalidNameError
from asyncassets.planning import plan_fetch
from asyncassets.problems import Problem
from asyncassets.providers.base import AssetMetadataProvider
from asyncassets.providers.file import FileAssetMetadataProvider
from asyncassets.reachability import check_reachable
from asyncassets.resolution import CardIndex, requested_envs, resolve_card
from asyncassets.settings import StoreSettings
from asyncassets.snapshot import Snapshot, SnapshotDiff
from asyncassets.watch import DEFAULT_DEBOUNCE_MS
from asyncassets.watch.group import watch_providers

__all__ = ["AssetStore"]


if TYPE_CHECKING:
    from asyncassets.cache.cache import ProgressCallback

logger = logging.getLogger("asyncassets.store")


class AssetStore(StoreSettings):
    """Cards from several providers, resolved with fairseq2's semantics.

    ``providers`` are the system stores and ``user_providers`` the user's; user providers
    are consulted first and, inside each list, the later-added provider wins.
    ``default_env`` names the detected environment (else ``$ASYNCASSETS_ENV``, else the
    first of ``env_resolvers`` that answers; by default one reads ``$SLURM_CLUSTER_NAME``).
    ``cache`` is the :class:`CheckpointCache` used by :meth:`prefetch`; ``strict=True``
    makes :meth:`load` raise when a provider has problems instead of logging them.

    >>> async with AssetStore([FileAssetMetadataProvider("/etc/cards")]) as store:
    ...     card = await store.retrieve_card("llama3_2_1b")
    """

    def __init__(
        self,
        providers: Iterable[AssetMetadataProvider] | None = None,
        user_providers: Iterable[AssetMetadataProvider] | None = None,
        default_env: str | None = None,
        env_resolvers: Sequence[EnvResolver] | None = None,
        cache: Any = None,
        strict: bool = False,
    ) -> None:
        super().__init__(providers, user_providers, default_env, env_resolvers, cache, strict)
        self._index: CardIndex | None = None
        #: With strict=True, the error every caller gets while the index has problems.
        self._strict_error: AssetMetadataError | None = None
        self._resolved: dict[str, AssetCard] = {}
        self._by_envs: dict[tuple[str, tuple[str, ...]], AssetCard] = {}
        self._lock = LoopLocalLock()
        #: Providers this store listens to, by identity (kept alive so ids stay unique).
        self._listening: dict[int, AssetMetadataProvider] = {}
        self._feed = ChangeFeed()

    def _invalidate(self) -> None:
        """Forget the index and every card resolved from it: the next call rebuilds them."""
        self._index = None
        self._strict_error = None
        self._resolved = {}
        self._by_envs = {}

    def _on_swap(self, provider: Any, snapshot: Snapshot, diff: SnapshotDiff) -> None:
        self._invalidate()
        self._feed.swapped(provider.source, snapshot, diff)

    def _on_watch_error(self, provider: AssetMetadataProvider, exc: BaseException) -> None:
        self._feed.refresh_failed(provider.source, exc)

    # -- loading

    async def load(self) -> None:
        """Load every provider that is not loaded yet, concurrently, until none is left
        (providers added while a load runs are loaded too).

        Raises the first provider error (a missing folder, denied access) after every
        other provider has finished loading; with ``strict=True``, raises
        :class:`AssetMetadataError` listing the problems. Only :class:`AssetError` leaves.
        """
        await self._ready()

    def _listen(self, providers: Iterable[AssetMetadataProvider]) -> None:
        for provider in providers:
            if id(provider) not in self._listening:
                provider.add_listener(self._on_swap)
                self._listening[id(provider)] = provider

    async def _load_pending(self) -> None:
        """Load the providers that are not loaded, once for all concurrent callers."""
        async with self._lock.get():
            pending = [p for p in self.providers_by_precedence() if not p.loaded]
            if not pending:
                return  # another task loaded them while this one waited
            errors = await load_providers(pending)
            self._invalidate()
            if errors:
                raise errors[0]

    async def _ready(self) -> CardIndex:
        """The index of every provider, all loaded: loads until nothing is pending, and
        builds the index only from providers that finished loading."""
        while True:
            index = self._index
            if index is not None:
                if self._strict_error is not None:
                    raise self._strict_error
                return index
            providers = self.providers_by_precedence()
            self._listen(providers)
            if not all(p.loaded for p in providers):
                await self._load_pending()
                continue  # the list may have changed while loading: look again
            self._index = CardIndex([p.snapshot for p in providers])
            self._strict_error = strict_error(providers) if self._strict else None

    # -- cards

    async def retrieve_card(self, name: str) -> AssetCard:
        """The card ``name`` (``foo``, ``foo@`` or ``foo@env``), resolved and cached.

        Raises :class:`AssetCardNotFoundError` (with close matches) when no store defines
        it, :class:`AssetCardError` for a missing base or a base cycle.
        """
        card = self._resolved.get(name) if type(name) is str else None
        if card is not None and self._index is not None:
            return card
        if not isinstance(name, str):
            raise AssetCardNotFoundError(
                f"a card name is a string, not {type(name).__name__} ({name!r})", name=str(name)
            )
        index = await self._ready()
        return self._resolve(index, name)

    def _resolve(self, index: CardIndex, name: str) -> AssetCard:
        try:
            plain, envs = requested_envs(name, self.active_envs)
        except InvalidNameError as exc:
            raise AssetCardNotFoundError(f"invalid card name: {exc}", name=name) from None
        # A caller holding an older index (find_cards across a refresh) must not put cards
        # resolved from it into the current caches; nor may a request for an env that no
        # card defines (a client asking for ?env=<random> would grow them without end).
        remember = self._index is index and all(
            env in index.envs or env in self.active_envs for env in envs
        )
        card = resolve_card(index, plain, envs, self._by_envs if remember else {})
        if remember:
            self._resolved[name] = card
        return card

    async def maybe_retrieve_card(self, name: str) -> AssetCard | None:
        """Like :meth:`retrieve_card`, but None when no store defines ``name``."""
        if not isinstance(name, str):
            return await self.retrieve_card(name)  # raises: a name is a string
        try:
            return await self.retrieve_card(name)
        except AssetCardNotFoundError as exc:
            if exc.name != name.partition("@")[0] and exc.name != name:
                raise
            return None

    async def find_cards(self, field: str, value: Any) -> AsyncIterator[AssetCard]:
        """Cards whose field ``field`` (through the base chain) equals ``value``.

        Cards that fail to resolve (a missing base) are skipped with a warning.
        """
        if not isinstance(field, str):
            raise AssetCardError(f"a field name is a string, not {type(field).__name__}")
        index = await self._ready()
        for name in sorted({n.partition("@")[0] for n in index.names if n.endswith("@")}):
            try:
                card = self._resolve(index, name)
            except AssetCardError as exc:
                logger.warning("skipping card '%s': %s", name, exc)
                continue
            field_ = card.field(field)
            if field_.exists() and _equal(field_.raw_value, value):
                yield card

    async def asset_names(self) -> frozenset[str]:
        """Canonical names (``foo@``, ``foo@env``) of every card in every store."""
        return (await self._ready()).names

    async def check(self, *, reachable: bool = False) -> list[Problem]:
        """Every problem in the stores: parse errors, invalid documents, duplicates,
        shadowed names, missing bases and base cycles, each with source, file and line.
        ``reachable`` also asks whether what each card points to exists
        (:mod:`asyncassets.reachability`; without it, no network request is made)."""
        index = await self.card_index()
        problems: list[Problem] = []
        for provider in self.providers_by_precedence():
            problems.extend(provider.snapshot.problems)
        problems.extend(index_problems(index))
        if reachable:
            problems.extend((await check_reachable(self, index)).problems)
        return problems

    def remote_stores(self) -> list[tuple[str, Mapping[str, Any]]]:
        """``(source, storage_options)`` of the remote card stores, highest precedence
        first: who lends its options to a reference in its bucket."""
        return _remote_stores(self.providers_by_precedence())

    async def card_index(self) -> CardIndex:
        """The merged index of every store's cards, even when ``strict`` would refuse it:
        check() is how one finds out what strict complains about."""
        try:
            return await self._ready()
        except AssetMetadataError:
            if self._index is None:
                raise
            return self._index

    # -- watching

    @asynccontextmanager
    async def watching(
        self,
        *,
        debounce_ms: int = DEFAULT_DEBOUNCE_MS,
        force_polling: bool | None = None,
        poll_interval: float | None = None,
    ) -> AsyncIterator[AssetStore]:
        """Keep every provider fresh while the block runs; stop every watcher on exit.

        Local folders are watched with watchfiles (``debounce_ms`` of quiet after the last
        event, ``force_polling`` for network file systems); remote folders are re-listed
        every ``poll_interval`` seconds (a provider's own ``poll_interval`` wins; default
        10 s). A file that fails to parse keeps its last good cards; the problem arrives
        as a :class:`ChangeEvent` from :meth:`changes`.

        >>> async with store.watching():
        ...     async for event in store.changes():
        ...         print(event.modified)
        """
        await self.load()
        async with watch_providers(
            self.providers_by_precedence(),
            debounce_ms=debounce_ms,
            force_polling=force_polling,
            poll_interval=poll_interval,
            on_error=self._on_watch_error,
        ):
            yield self

    def changes(self) -> AsyncIterator[ChangeEvent]:
        """Every :class:`ChangeEvent` from now on (each subscriber gets every event).

        Events arrive while :meth:`watching` runs, or after any explicit
        ``provider.refresh()``.
        """
        return self._feed.subscribe()

    # -- prefetch

    async def prefetch(
        self,
        name: str,
        *,
        field: str = "checkpoint",
        force: bool = False,
        local_only: bool = False,
        progress: bool | ProgressCallback = True,
        extract: bool = False,
        include: Sequence[str] | None = None,
    ) -> Path:
        """Bring the file or folder that card ``name``'s ``field`` points to into the local
        cache and return its local path (a local path is returned as it is).

        A Hugging Face Hub repo (``hg://ORG/REPO``, ``hf://...``) is a folder, of which
        the files fairseq2 would load are fetched: for ``field="checkpoint"`` the weights
        (``*.safetensors*``, ``*.pt``), for ``field="tokenizer"`` ``tokenizer*.json``, for
        a dataset card the whole repo. ``include`` (glob patterns) chooses otherwise, for
        any folder.

        The card's ``checksum: sha256:<hex>`` field, when the card that sets ``field`` has
        one, is verified on download (a local checkpoint is returned as it is, unhashed:
        hashing many GB on every call would defeat the cache). A remote
        URI in the same protocol as the card store that defines the card is fetched with
        that store's storage options (credentials, endpoint).

        A card without ``field`` that has a ``url`` (looked up through the base chain) is
        gated, as fairseq2's gated models are: :class:`AssetGatedError` says where to
        request access. Without ``url`` either, it is the usual :class:`AssetCardError`.
        """
        card = await self.retrieve_card(name)
        plan = plan_fetch(card, field, include=include, stores=self.remote_stores())
        path: Path = await self.cache.fetch(
            plan.uri,
            sha256=plan.sha256,
            force=force,
            local_only=local_only,
            progress=progress,
            storage_options=plan.storage_options,
            extract=extract,
            include=plan.include,
        )
        return path

    # -- lifetime

    async def aclose(self) -> None:
        """Close providers' sessions (remote filesystems) and the cache's. Every one is
        closed even when another fails; the first failure is raised afterwards as an
        :class:`AssetError`. The store stays usable: sessions reopen on the next call."""
        closers = [(p.source, p.aclose) for p in self.providers_by_precedence()]
        close = getattr(self._cache, "aclose", None)
        if close is not None:
            closers.append(("the checkpoint cache", close))
        await _close_all(closers)

    async def __aenter__(self) -> AssetStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        sources = [p.source for p in self.providers_by_precedence()]
        return f"AssetStore({sources!r})"


def _equal(stored: Any, wanted: Any) -> bool:
    """``stored == wanted`` for find_cards, where a caller's value of any type (a numpy
    array, an object with a strange ``__eq__``) must not break the search."""
    try:
        return bool(stored == wanted)
    except Exception:
        return False


async def _close_all(closers: Sequence[tuple[str, Callable[[], Awaitable[None]]]]) -> None:
    """Await every closer, even after one failed; then raise the first failure as an
    :class:`AssetError` naming what failed to close."""
    errors: list[tuple[str, BaseException]] = []
    for what, closer in closers:
        try:
            await closer()
        except Exception as exc:
            logger.warning("closing %s failed: %s", what, exc)
            errors.append((what, exc))
    if errors:
        what, error = errors[0]
        if isinstance(error, AssetError):
            raise error
        raise AssetMetadataError(
            f"closing {what} failed: {type(error).__name__}: {error}", source=what
        ) from error


def _remote_stores(
    providers: Iterable[AssetMetadataProvider],
) -> list[tuple[str, Mapping[str, Any]]]:
    """The remote card stores among ``providers`` and their storage options, in order."""
    return [
        (provider.source, provider.storage_options)
        for provider in providers
        if isinstance(provider, FileAssetMetadataProvider) and not provider.is_local
    ]
