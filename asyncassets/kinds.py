"""What kind of asset a card describes, from the fields fairseq2 cards carry. Pure."""

from __future__ import annotations

from asyncassets.card import AssetCard

__all__ = ["card_family", "card_kind"]


def card_kind(card: AssetCard) -> str:
    """model / dataset / tokenizer / other, from the fields fairseq2 cards carry."""
    if card.has_field("model_family") or card.has_field("model_arch"):
        return "model"
    if card.has_field("dataset_family") or card.has_field("data"):
        return "dataset"
    if card.has_field("tokenizer_family") or card.has_field("tokenizer"):
        return "tokenizer"
    return "other"


def card_family(card: AssetCard, kind: str) -> str:
    """The card's ``<kind>_family`` (``""`` when it has none)."""
    field = card.field(f"{kind}_family")
    return str(field.value) if field.exists() else ""
