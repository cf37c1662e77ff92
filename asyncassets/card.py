"""Resolved cards: immutable values with a base chain. No I/O.

An :class:`AssetCard` holds its own fields (the plain card with the active environment
overrides laid over it) and its base card. Field lookups look through the base chain, the
way fairseq2's cards do. Retrieving a card never copies it; every value a card hands out
(``metadata``, ``field.value``, ``as_``, ``to_dict()``) is plain data the caller owns (see
:mod:`asyncassets.values`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping, Set
from typing import Any, TypeVar, cast, overload

from asyncassets.conversion import ConversionError, convert, type_repr
from asyncassets.errors import AssetCardError
from asyncassets.urls import FILE_SCHEME, join_relative
from asyncassets.values import copy_value, short_repr, type_name

__all__ = ["AssetCard", "AssetCardField", "join_relative"]

T = TypeVar("T")

_MISSING: Any = object()


class AssetCard:
    """A resolved asset card.

    >>> card = await store.retrieve_card("llama3_2_1b")
    >>> card.field("model_config").field("dim").as_(int)
    """

    __slots__ = ("_base", "_metadata", "_name", "_origins", "_source")

    def __init__(
        self,
        name: str,
        metadata: Mapping[str, Any],
        base: AssetCard | None = None,
        *,
        source: str = "",
        origins: Mapping[str, str] | None = None,
    ) -> None:
        self._name = name
        self._metadata = metadata
        self._base = base
        self._source = source
        # Field -> URL of the file that set it, for fields an env override set.
        self._origins: Mapping[str, str] = origins or {}

    @property
    def name(self) -> str:
        """The plain card name (no ``@env``)."""
        return self._name

    @property
    def metadata(self) -> dict[str, Any]:
        """This card's own fields, env overrides applied, base not included (a copy the
        caller owns)."""
        return cast(dict[str, Any], copy_value(self._metadata))

    @property
    def raw_metadata(self) -> Mapping[str, Any]:
        """This card's own fields as the store holds them, without copying: read, never
        change (for code that only looks at a few values on a hot path)."""
        return self._metadata

    @property
    def base(self) -> AssetCard | None:
        return self._base

    @property
    def source(self) -> str:
        """URL of the file that defines the plain card (``file:///...``, ``s3://...``)."""
        return self._source

    def field_source(self, name: str) -> str:
        """URL of the file that set top-level field ``name`` of this card."""
        return self._origins.get(name, self._source)

    def field(self, name: str) -> AssetCardField:
        """The field ``name``; chain ``.field()`` for nested keys."""
        return AssetCardField(self, (name,))

    def has_field(self, name: str) -> bool:
        return self.field(name).exists()

    def chain(self) -> Iterator[AssetCard]:
        """This card, then its base, then the base's base, ..."""
        card: AssetCard | None = self
        while card is not None:
            yield card
            card = card._base

    def config(self, key: str, base: Any = None, *, env: Mapping[str, str] | None = None) -> Any:
        """fairseq2's config overrides: the ``key`` field of every card in the base chain,
        root card first, merged onto ``base`` (``None``: an empty mapping; a mapping gives
        a new dict, a dataclass instance a new instance of its class). ``_del_`` / ``_set_``
        directives and ``${env:VAR[:default]}`` as in fairseq2 (``env`` defaults to
        ``os.environ``); see :mod:`asyncassets.config`. A bad override is an
        :class:`AssetCardError` naming the card that holds it."""
        import os

        from asyncassets.config import load_config

        overrides = [(card._name, card._metadata.get(key)) for card in self.chain()]
        overrides.reverse()
        return load_config(self._name, key, overrides, base, os.environ if env is None else env)

    def to_dict(self) -> dict[str, Any]:
        """Every top-level field visible through the base chain, as a new plain dict.

        The value of each key is what ``card.field(key).value`` returns (a field set by a
        card hides the same field of its bases); the result is JSON-serialisable as long as
        the YAML held only JSON types.
        """
        merged: dict[str, Any] = {}
        for card in reversed(list(self.chain())):
            merged.update(card._metadata)
        merged["name"] = self._name
        return cast(dict[str, Any], copy_value(merged))

    def __repr__(self) -> str:
        return f"AssetCard({self._name!r}, source={self._source!r})"

    def __eq__(self, other: object) -> bool:
        """Same name, same file, same fields and same base chain."""
        if not isinstance(other, AssetCard):
            return NotImplemented
        if self is other:
            return True
        return (
            self._name == other._name
            and self._source == other._source
            and self._metadata == other._metadata
            and self._base == other._base
        )

    def __hash__(self) -> int:
        # Equal cards have the same name and source, so they hash alike.
        return hash((self._name, self._source))

    def __getstate__(self) -> dict[str, Any]:
        return {slot: getattr(self, slot) for slot in self.__slots__}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        for slot, value in state.items():
            object.__setattr__(self, slot, value)

    # -- lookups used by AssetCardField -----------------------------------------------------

    def _lookup(self, path: tuple[str, ...]) -> tuple[Any, AssetCard | None]:
        """(value, card that holds it) for ``path``, or (_MISSING, None)."""
        for card in self.chain():
            value: Any = card._metadata
            for key in path:
                if not isinstance(value, Mapping):
                    value = _MISSING
                    break
                value = value.get(key, _MISSING)
                if value is _MISSING:
                    break
            if value is not _MISSING:
                return value, card
        return _MISSING, None


class AssetCardField:
    """A field of a card, possibly nested: ``card.field("a").field("b")``."""

    __slots__ = ("_card", "_path")

    def __init__(self, card: AssetCard, path: tuple[str, ...]) -> None:
        self._card = card
        self._path = path

    @property
    def card(self) -> AssetCard:
        return self._card

    @property
    def path(self) -> str:
        """The dotted field path, e.g. ``model_config.dim``."""
        return ".".join(self._path)

    def field(self, name: str) -> AssetCardField:
        return AssetCardField(self._card, (*self._path, name))

    @property
    def holder(self) -> AssetCard:
        """The card of the base chain that sets this field (this card or a base)."""
        _, holder = self._card._lookup(self._path)
        if holder is None:
            raise self._error("is not set")
        return holder

    @property
    def source(self) -> str:
        """URL of the file that sets this field (an env override's file, a base's file)."""
        return self.holder.field_source(self._path[0])

    def exists(self) -> bool:
        return self._card._lookup(self._path)[0] is not _MISSING

    @property
    def value(self) -> Any:
        """The value, looked up through the base chain: plain data the caller owns.

        Raises :class:`AssetCardError` naming the card and field path when it is absent.
        """
        return copy_value(self.raw_value)

    @property
    def raw_value(self) -> Any:
        """The value as the store holds it, without copying: read, never change."""
        value, _ = self._card._lookup(self._path)
        if value is _MISSING:
            raise self._error("is not set")
        return value

    @overload
    def as_(self, kind: type[T]) -> T: ...
    @overload
    def as_(self, kind: Any) -> Any: ...
    def as_(self, kind: Any) -> Any:
        """The value checked and converted to ``kind``, as fairseq2 0.4's ``as_`` did.

        ``kind`` is a class (``str``, ``int``, ``float``, ``bool``, ``dict``, ``list``), a
        parameterised type (``list[str]``, ``dict[str, int]``, ``set[str]``,
        ``tuple[int, ...]``, ``int | None``, ``Literal["a", "b"]``) or a tuple of classes
        (any of them). Containers are checked and converted element by element and
        returned as new objects the caller owns; ``float`` accepts an int; ``int`` and
        ``float`` refuse a bool. A mismatch is an :class:`AssetCardError` naming the card,
        the field path (down to the element), the expected and the actual type.

        >>> card.field("model_config").field("layers").as_(list[int])
        """
        value = self.raw_value
        try:
            return convert(value, kind)
        except ConversionError as exc:
            where = f"{self.path}{exc.where}"
            raise AssetCardError(
                f"card '{self._card.name}': field '{where}' must be {type_repr(exc.expected)}, "
                f"not {type_name(exc.value)} ({short_repr(exc.value)})",
                name=self._card.name,
                field=where,
            ) from None

    def as_one_of(self, allowed: Set[str]) -> str:
        """The value, which must be one of the strings in ``allowed``."""
        value = self.as_(str)
        if value not in allowed:
            choices = ", ".join(sorted(allowed))
            raise self._error(f"must be one of {choices}, not {value!r}")
        return value

    def as_uri(self) -> str:
        """The value as a URI. A relative path is resolved against the folder of the file
        that set the field (``s3://b/cards/x.yaml`` + ``../ckpt/m.pt`` ->
        ``s3://b/ckpt/m.pt``); an absolute path becomes a ``file://`` URI; a value with a
        scheme (``hg://``, ``https://``, ...) is returned as it is.
        """
        value = self.as_(str)
        if not value:
            raise self._error("must be a URI or a path, not an empty string")
        if "://" in value:
            return value
        if value.startswith("/"):
            return FILE_SCHEME + posixpath.normpath(value)
        if value.startswith("~"):
            raise self._error(f"must not start with '~' ({value!r}): use an absolute path")
        source = self.source
        if "://" not in source and not source.startswith("/"):
            raise self._error(
                f"is a relative path ({value!r}), but card '{self.holder.name}' comes from "
                f"{source or 'memory'}, which has no folder to resolve it against: "
                "use an absolute path or a URI"
            )
        return join_relative(source, value)

    def as_filename(self) -> str:
        """The value as a bare file name (no folder part)."""
        value = self.as_(str)
        if not value or "/" in value or "\\" in value or value in (".", ".."):
            raise self._error(f"must be a file name without a folder, not {value!r}")
        return value

    def _error(self, what: str) -> AssetCardError:
        return AssetCardError(
            f"card '{self._card.name}': field '{self.path}' {what}",
            name=self._card.name,
            field=self.path,
        )

    def __repr__(self) -> str:
        return f"AssetCardField({self._card.name!r}, {self.path!r})"
