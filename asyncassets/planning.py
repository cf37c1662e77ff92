"""Card to fetch: what :meth:`AssetStore.prefetch` asks the checkpoint cache for.

A card's field becomes a :class:`FetchPlan`: the URI (a local path as a path), the
``sha256`` the card's ``checksum:`` promises, the files of a folder that fairseq2 would load
(its Hub patterns), and the storage options of the card store the URI shares a bucket with.
A gated card (no ``field``, only a ``url``) is refused here. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from asyncassets.card import AssetCard
from asyncassets.errors import AssetCardError, AssetGatedError
from asyncassets.urls import FILE_SCHEME, HUB_SCHEMES

__all__ = [
    "CHECKPOINT_PATTERNS",
    "TOKENIZER_PATTERNS",
    "FetchPlan",
    "hub_patterns",
    "plan_fetch",
]

#: The files fairseq2 takes from a Hub repo for a checkpoint and for a tokenizer.
CHECKPOINT_PATTERNS = ("*.safetensors*", "*.pt")
TOKENIZER_PATTERNS = ("tokenizer*.json",)


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """What to fetch for one card field: the arguments of ``CheckpointCache.fetch``."""

    uri: str
    sha256: str | None = None
    include: Sequence[str] | None = None
    storage_options: dict[str, Any] | None = None


def plan_fetch(
    card: AssetCard,
    field: str,
    *,
    include: Sequence[str] | None = None,
    stores: Iterable[tuple[str, Mapping[str, Any]]] = (),
) -> FetchPlan:
    """The fetch that brings ``card``'s ``field`` into the cache.

    ``include`` (glob patterns) chooses the files of a folder; left out, a Hub repo gets
    :func:`hub_patterns`. ``stores`` are the remote card stores as ``(source,
    storage_options)``, highest precedence first: the first that defined the card and
    shares the URI's bucket lends its options.

    Raises :class:`AssetGatedError` for a gated card, :class:`AssetCardError` when the
    field is missing or ``checksum`` is not ``sha256:<hex>``.
    """
    target = card.field(field)
    if not target.exists():
        _refuse_gated(card, field)
    uri = target.as_uri()
    sha256 = _checksum(target.holder)
    if uri.startswith(FILE_SCHEME):
        # A local path, unencoded: hand it over as a path so '#', '?' and '%' in file
        # names keep their meaning.
        uri = uri[len(FILE_SCHEME) :]
    if include is None and uri.split("://", 1)[0].lower() in HUB_SCHEMES:
        dataset = card.has_field("dataset_family") and not card.has_field("model_family")
        include = hub_patterns(field, dataset=dataset)
    return FetchPlan(uri, sha256, include, _storage_options_for(stores, target.source, uri))


def hub_patterns(field: str, *, dataset: bool = False) -> tuple[str, ...] | None:
    """The files of a Hub repo that a card's ``field`` means (fairseq2's choice): a
    checkpoint's weights, a tokenizer's JSON files; a dataset card (or any other field) the
    whole repo (``None``)."""
    if dataset:
        return None
    if field == "checkpoint":
        return CHECKPOINT_PATTERNS
    if field == "tokenizer":
        return TOKENIZER_PATTERNS
    return None


def _refuse_gated(card: AssetCard, field: str) -> None:
    """Raise :class:`AssetGatedError` when ``card`` (without ``field``) has a ``url``,
    looked up through the base chain, as fairseq2's gated models have."""
    url = card.field("url").raw_value if card.has_field("url") else None
    if isinstance(url, str) and url.strip():
        raise AssetGatedError(
            f"card '{card.name}' is gated: it sets no '{field}', only a url;"
            f" request access at {url.strip()}, then add the {field} to the card"
            f" (a '{card.name}@user' card in your user store setting"
            f" '{field}: <path or URI>')",
            name=card.name,
            field=field,
            url=url.strip(),
        )


def _checksum(holder: AssetCard) -> str | None:
    """The ``checksum`` of the card that sets the fetched field (not of a base, which may
    describe another file): ``sha256:<hex>`` or None."""
    sha256 = holder.raw_metadata.get("checksum")
    if sha256 is not None and (not isinstance(sha256, str) or not sha256.startswith("sha256:")):
        raise AssetCardError(
            f"card '{holder.name}': field 'checksum' must read 'sha256:<hex>', not {sha256!r}",
            name=holder.name,
            field="checksum",
        )
    return sha256


def _storage_options_for(
    stores: Iterable[tuple[str, Mapping[str, Any]]], card_file: str, uri: str
) -> dict[str, Any] | None:
    """The storage options of the card store that defined the card, when ``uri`` is in
    that same store's bucket or host: credentials and headers given for one store are
    never sent to another bucket or host that a card names."""
    for source, options in stores:
        if card_file.startswith(source) and _same_bucket(source, uri):
            return dict(options)
    return None


def _same_bucket(source: str, uri: str) -> bool:
    """``uri`` has the protocol and the bucket (or host and port) of the card store
    ``source``, parsed as a client parses them: ``https://evil.example?@cards.example.com/``
    is evil.example (the query starts at ``?``), not cards.example.com."""

    def origin(url: str) -> tuple[str, str, int | None] | None:
        try:
            parts = urlsplit(url)
            if not parts.netloc:  # memory:///bucket/...: the first folder is the bucket
                return parts.scheme.lower(), parts.path.lstrip("/").split("/")[0], None
            return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
        except ValueError:  # a port that is no number, a bad IPv6 literal
            return None

    mine = origin(source)
    return mine is not None and mine[1] != "" and mine == origin(uri)
