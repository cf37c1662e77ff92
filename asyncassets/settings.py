"""What a store serves from: its providers in precedence order, its envs, strictness and
checkpoint cache. Every change makes the store forget what it resolved.

:class:`~asyncassets.store.AssetStore` builds on these settings, as httpx's clients build on
``BaseClient``: the settings are the knobs, the store is the flow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from asyncassets.envs import EnvResolver, default_env_resolvers, detect_env
from asyncassets.provider_list import ProviderList
from asyncassets.providers.base import AssetMetadataProvider

__all__ = ["StoreSettings"]


class StoreSettings:
    """The settings of an :class:`~asyncassets.store.AssetStore` (see there); a change
    calls :meth:`_invalidate`."""

    def __init__(
        self,
        providers: Iterable[AssetMetadataProvider] | None,
        user_providers: Iterable[AssetMetadataProvider] | None,
        default_env: str | None,
        env_resolvers: Sequence[EnvResolver] | None,
        cache: Any,
        strict: bool,
    ) -> None:
        self._system = ProviderList(providers or (), self._invalidate)
        self._user = ProviderList(user_providers or (), self._invalidate)
        self._default_env = default_env
        self._env_resolvers = (
            list(env_resolvers) if env_resolvers is not None else default_env_resolvers()
        )
        self._cache = cache
        self._strict = strict
        self._envs: tuple[str, ...] | None = None

    def _invalidate(self) -> None:
        """Forget what was derived from the settings (the store overrides this)."""

    @property
    def metadata_providers(self) -> ProviderList:
        """System providers, lowest precedence first; append to register a store."""
        return self._system

    @metadata_providers.setter
    def metadata_providers(self, providers: Iterable[AssetMetadataProvider]) -> None:
        self._system = ProviderList(providers, self._invalidate)
        self._invalidate()

    @property
    def user_metadata_providers(self) -> ProviderList:
        """User providers (consulted before system ones), lowest precedence first."""
        return self._user

    @user_metadata_providers.setter
    def user_metadata_providers(self, providers: Iterable[AssetMetadataProvider]) -> None:
        self._user = ProviderList(providers, self._invalidate)
        self._invalidate()

    def providers_by_precedence(self) -> list[AssetMetadataProvider]:
        """Every provider, highest precedence first."""
        return [*reversed(self.user_metadata_providers), *reversed(self.metadata_providers)]

    @property
    def default_env(self) -> str | None:
        """The detected environment, when set; changing it applies to the next lookup."""
        return self._default_env

    @default_env.setter
    def default_env(self, value: str | None) -> None:
        self._default_env = value
        self._envs = None
        self._invalidate()

    @property
    def env_resolvers(self) -> list[EnvResolver]:
        """Callables asked in turn for the detected env when neither ``default_env`` nor
        ``$ASYNCASSETS_ENV`` names one; changing them applies to the next lookup."""
        return self._env_resolvers

    @env_resolvers.setter
    def env_resolvers(self, value: Sequence[EnvResolver]) -> None:
        self._env_resolvers = list(value)
        self._envs = None
        self._invalidate()

    @property
    def strict(self) -> bool:
        """True: every call raises :class:`AssetMetadataError` while a provider has a
        problem (until the file is fixed and refreshed)."""
        return self._strict

    @strict.setter
    def strict(self, value: bool) -> None:
        self._strict = value
        self._invalidate()

    @property
    def active_envs(self) -> tuple[str, ...]:
        """Envs applied to a bare name, highest precedence first: ``("user", detected)``."""
        if self._envs is None:
            detected = detect_env(self.default_env, self.env_resolvers)
            self._envs = ("user", detected) if detected and detected != "user" else ("user",)
        return self._envs

    @property
    def cache(self) -> Any:
        """The :class:`CheckpointCache` used by :meth:`prefetch` (created on first use)."""
        if self._cache is None:
            from asyncassets.cache import CheckpointCache

            self._cache = CheckpointCache()
        return self._cache

    @cache.setter
    def cache(self, cache: Any) -> None:
        self._cache = cache
