"""Problems found in a store: values that ``check()`` returns and change events carry."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Problem", "display_path"]


def display_path(url: str) -> str:
    """A file URL as a person reads it: ``file:///a/b.yaml`` -> ``/a/b.yaml``."""
    return url[len("file://") :] if url.startswith("file://") else url


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a store, with where it is.

    ``kind`` is a short tag (``yaml``, ``not-a-mapping``, ``name``, ``base``,
    ``missing-base``, ``cycle``, ``duplicate``, ``shadowed``, ``read``);
    ``source`` the provider's source, ``file`` the file's URL, ``line`` 1-based,
    ``card`` the canonical name and ``field`` the field, when known.

    ``str(problem)`` reads ``file:line: message``.
    """

    kind: str
    message: str
    source: str
    file: str | None = None
    line: int | None = None
    card: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        if self.file is None:
            return f"{self.source}: {self.message}"
        where = display_path(self.file)
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.message}"
