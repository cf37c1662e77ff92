"""Resolved cards: immutable values with a base chain. No I/O.

An :class:`AssetCard` holds its own fields (the plain card with the active environment
overrides laid over it) and its base card. Field lookups look through the base chain, the
way fairseq2's cards do. Values are read-only views of the store's data: retrieving a card
never copies it; ``as_(dict)``, ``as_(list)`` and ``to_dict()`` return copies you own.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping, Set
from typing import Any, TypeVar, cast, overload

from asyncassets.errors import AssetCardError
from asyncassets.frozen import thaw, type_name

__all__ = ["AssetCard", "AssetCardField"]

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
    def metadata(self) -> Mapping[str, Any]:
        """This card's own fields (read-only), env overrides applied, base not included."""
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
        return cast(dict[str, Any], thaw(merged))

    def __repr__(self) -> str:
        return f"AssetCard({self._name!r}, source={self._source!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AssetCard):
            return NotImplemented
        return (
            self._name == other._name
            and self._metadata == other._metadata
            and self._base == other._base
        )

    def __hash__(self) -> int:
        return hash((self._name, self._source))

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
        """The value (read-only view), looked up through the base chain.

        Raises :class:`AssetCardError` naming the card and field path when it is absent.
        """
        value, _ = self._card._lookup(self._path)
        if value is _MISSING:
            raise self._error("is not set")
        return value

    @overload
    def as_(self, kind: type[T]) -> T: ...
    @overload
    def as_(self, kind: tuple[type[Any], ...]) -> Any: ...
    def as_(self, kind: Any) -> Any:
        """The value checked against ``kind`` (a class or a tuple of classes).

        ``dict`` and ``list`` return a mutable copy; ``float`` accepts an int; ``int``
        refuses a bool.
        """
        value = self.value
        kinds = kind if isinstance(kind, tuple) else (kind,)
        for k in kinds:
            if k is dict and isinstance(value, Mapping):
                return thaw(value)
            if k is list and isinstance(value, tuple):
                return thaw(value)
            if k is float and isinstance(value, int) and not isinstance(value, bool):
                return float(value)
            if k is int and isinstance(value, bool):
                continue
            if isinstance(value, k):
                return value
        names = " or ".join(getattr(k, "__name__", repr(k)) for k in kinds)
        raise self._error(f"must be {names}, not {type_name(value)} ({thaw(value)!r})")

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
            return "file://" + posixpath.normpath(value)
        if value.startswith("~"):
            raise self._error(f"must not start with '~' ({value!r}): use an absolute path")
        return join_relative(self.source, value)

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


def join_relative(file_url: str, relative: str) -> str:
    """Resolve ``relative`` against the folder of ``file_url`` (any scheme)."""
    scheme, sep, path = file_url.rpartition("://")
    if not sep:
        scheme, path = "", file_url
    folder = posixpath.dirname(path)
    if scheme in ("", "file"):
        joined = posixpath.normpath(posixpath.join(folder, relative))
        return f"file://{joined}" if scheme else joined
    # Remote: the first segment is the bucket/host and ``..`` may not climb above it.
    bucket, _, key_folder = folder.partition("/")
    key = posixpath.normpath(posixpath.join("/", key_folder, relative)).lstrip("/")
    return f"{scheme}://{bucket}/{key}" if key else f"{scheme}://{bucket}"
