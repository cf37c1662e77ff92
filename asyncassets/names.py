"""Card names: ``foo`` (the plain card), ``foo@env`` (an environment override).

Pure functions; no I/O. A *canonical* name always carries the ``@``: ``foo@`` for the plain
card, ``foo@env`` for an override. Stores index cards by canonical name.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["CardName", "InvalidNameError", "canonical_name", "parse_card_name"]


class InvalidNameError(ValueError):
    """A ``name`` that breaks the rules; the message says which rule."""


class CardName(NamedTuple):
    """A parsed card name: ``name`` without the env, ``env`` or None for the plain card."""

    name: str
    env: str | None

    @property
    def canonical(self) -> str:
        return f"{self.name}@{self.env or ''}"


def parse_card_name(text: str) -> CardName:
    """Parse ``foo``, ``foo@`` or ``foo@env``.

    >>> parse_card_name("llama3@slurm")
    CardName(name='llama3', env='slurm')
    """
    if not text:
        raise InvalidNameError("a card name must not be empty")
    if text.startswith("@"):
        raise InvalidNameError(f"card name {text!r} must not start with '@'")
    name, sep, env = text.partition("@")
    if sep and "@" in env:
        raise InvalidNameError(f"card name {text!r} has more than one '@'")
    return CardName(name, env or None)


def canonical_name(text: str) -> str:
    """``foo`` -> ``foo@``; ``foo@env`` stays as it is."""
    return parse_card_name(text).canonical
