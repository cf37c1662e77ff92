"""Which environment is active: ``default_env=``, ``$ASYNCASSETS_ENV``, env resolvers."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

__all__ = ["EnvResolver", "default_env_resolvers", "detect_env", "env_flag", "slurm_env"]

#: Returns an environment name, or None when it does not apply.
EnvResolver = Callable[[], str | None]


def slurm_env() -> str | None:
    """The Slurm cluster this process runs on (``$SLURM_CLUSTER_NAME``)."""
    return os.environ.get("SLURM_CLUSTER_NAME") or None


def default_env_resolvers() -> list[EnvResolver]:
    return [slurm_env]


def detect_env(default_env: str | None, resolvers: Sequence[EnvResolver]) -> str | None:
    """``default_env``, else ``$ASYNCASSETS_ENV``, else the first resolver that answers."""
    if default_env:
        return default_env
    if env := os.environ.get("ASYNCASSETS_ENV"):
        return env
    for resolver in resolvers:
        if env := resolver():
            return env
    return None


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to ``1``, ``true``, ``yes`` or ``on``."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
