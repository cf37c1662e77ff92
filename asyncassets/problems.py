"""Problems found in a store: values that ``check()`` returns and change events carry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asyncassets.errors import AssetError
from asyncassets.urls import display_path

__all__ = ["Problem", "display_path"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a store, with where it is.

    ``kind`` is a short tag (``yaml``, ``not-a-mapping``, ``name``, ``base``,
    ``missing-base``, ``cycle``, ``duplicate``, ``shadowed``, ``read``);
    ``source`` the provider's source, ``file`` the file's URL, ``line`` 1-based,
    ``card`` the canonical name and ``field`` the field, when known.

    ``str(problem)`` reads ``file:line: message``. ``to_dict()`` / ``to_json()`` give the
    same as plain JSON data and ``Problem.from_dict`` reads it back::

        json.dumps([p.to_dict() for p in await store.check()])
    """

    kind: str
    message: str
    source: str
    file: str | None = None
    line: int | None = None
    card: str | None = None
    field: str | None = None
    #: The URI a reachability problem is about, as displayed (no secret).
    uri: str | None = None

    def __str__(self) -> str:
        if self.file is None:
            return f"{self.source}: {self.message}"
        where = display_path(self.file)
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON data, plus ``where``: ``str(problem)``, the line a person
        reads (``uri`` only when the problem has one: a reachability problem's)."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "message": self.message,
            "source": self.source,
            "file": self.file,
            "line": self.line,
            "card": self.card,
            "field": self.field,
            "where": str(self),
        }
        if self.uri is not None:
            data["uri"] = self.uri
        return data

    def to_json(self, *, indent: int | None = None) -> str:
        """``json.dumps(problem.to_dict())``."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Problem:
        """The problem ``to_dict()`` described (``where`` is derived, so it is ignored).

        Raises :class:`AssetError` naming the key when a value has the wrong type.
        """
        if not isinstance(data, Mapping):
            raise AssetError(f"a problem is a JSON object, not {type(data).__name__}")
        return cls(
            kind=_text(data, "kind"),
            message=_text(data, "message"),
            source=_text(data, "source"),
            file=_optional_text(data, "file"),
            line=_optional_line(data),
            card=_optional_text(data, "card"),
            field=_optional_text(data, "field"),
            uri=_optional_text(data, "uri"),
        )


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise AssetError(f"problem {key!r} must be a string, not {type(value).__name__}")
    return value


def _optional_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise AssetError(f"problem {key!r} must be a string or null, not {type(value).__name__}")
    return value


def _optional_line(data: Mapping[str, Any]) -> int | None:
    value = data.get("line")
    # bool is an int subclass, but `true` is no line number.
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise AssetError(f"problem 'line' must be an integer or null, not {type(value).__name__}")
    return value
