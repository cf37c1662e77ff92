"""The store's provider lists: a mutable sequence that tells its store when it changes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableSequence
from typing import Any, SupportsIndex, overload

from asyncassets.providers.base import AssetMetadataProvider

__all__ = ["ProviderList"]


class ProviderList(MutableSequence[AssetMetadataProvider]):
    """A list of providers that calls ``on_change`` after every change (append is the
    seed's way of registering a store). It reads and compares like a ``list``; slices,
    ``+`` and ``*`` give plain lists.

    >>> store.metadata_providers.append(FileAssetMetadataProvider("/srv/cards"))
    """

    def __init__(
        self, items: Iterable[AssetMetadataProvider], on_change: Callable[[], None]
    ) -> None:
        self._items = list(items)
        self._on_change = on_change

    # -- what MutableSequence asks for; every change ends with one on_change()

    @overload
    def __getitem__(self, index: SupportsIndex) -> AssetMetadataProvider: ...
    @overload
    def __getitem__(self, index: slice) -> list[AssetMetadataProvider]: ...
    def __getitem__(
        self, index: SupportsIndex | slice
    ) -> AssetMetadataProvider | list[AssetMetadataProvider]:
        return self._items[index]

    @overload
    def __setitem__(self, index: SupportsIndex, value: AssetMetadataProvider) -> None: ...
    @overload
    def __setitem__(self, index: slice, value: Iterable[AssetMetadataProvider]) -> None: ...
    def __setitem__(self, index: Any, value: Any) -> None:
        self._items[index] = value
        self._on_change()

    def __delitem__(self, index: SupportsIndex | slice) -> None:
        del self._items[index]
        self._on_change()

    def __len__(self) -> int:
        return len(self._items)

    def insert(self, index: SupportsIndex, value: AssetMetadataProvider) -> None:
        self._items.insert(index, value)
        self._on_change()

    # -- whole-list changes in one step (the mixins would change item by item)

    def extend(self, values: Iterable[AssetMetadataProvider]) -> None:
        self._items.extend(list(values))  # a copy first: ``providers.extend(providers)``
        self._on_change()

    def __iadd__(self, values: Iterable[AssetMetadataProvider]) -> ProviderList:
        self.extend(values)
        return self

    def __imul__(self, count: SupportsIndex) -> ProviderList:
        self._items *= count
        self._on_change()
        return self

    def pop(self, index: SupportsIndex = -1) -> AssetMetadataProvider:
        item = self._items.pop(index)
        self._on_change()
        return item

    def clear(self) -> None:
        self._items.clear()
        self._on_change()

    def reverse(self) -> None:
        self._items.reverse()
        self._on_change()

    def sort(
        self, *, key: Callable[[AssetMetadataProvider], Any] | None = None, reverse: bool = False
    ) -> None:
        """Reorder in place, as ``list.sort``."""
        items: list[Any] = self._items
        items.sort(key=key, reverse=reverse)
        self._on_change()

    # -- reading as a list does

    def __iter__(self) -> Iterator[AssetMetadataProvider]:
        return iter(self._items)

    def __reversed__(self) -> Iterator[AssetMetadataProvider]:
        return reversed(self._items)

    def __contains__(self, value: object) -> bool:
        return value in self._items

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        return self._items.index(value, start, len(self._items) if stop is None else stop)

    def count(self, value: Any) -> int:
        return self._items.count(value)

    def copy(self) -> list[AssetMetadataProvider]:
        return list(self._items)

    def __copy__(self) -> ProviderList:
        return ProviderList(self._items, self._on_change)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ProviderList):
            return self._items == other._items
        if isinstance(other, list):
            return self._items == other
        return NotImplemented

    def __add__(self, other: Iterable[AssetMetadataProvider]) -> list[AssetMetadataProvider]:
        if not isinstance(other, list | ProviderList):
            return NotImplemented
        return [*self._items, *other]

    def __radd__(self, other: Iterable[AssetMetadataProvider]) -> list[AssetMetadataProvider]:
        if not isinstance(other, list):
            return NotImplemented
        return [*other, *self._items]

    def __mul__(self, count: SupportsIndex) -> list[AssetMetadataProvider]:
        return self._items * count

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return repr(self._items)
