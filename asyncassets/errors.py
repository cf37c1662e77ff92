"""Every exception asyncassets raises. All derive from :class:`AssetError`.

Each error says what it is about — the card, the field path, the file and line, the URL —
in its message, so that one line in a log is enough to act on it.
"""

from __future__ import annotations

__all__ = [
    "AssetCardError",
    "AssetCardNotFoundError",
    "AssetDownloadError",
    "AssetError",
    "AssetGatedError",
    "AssetMetadataError",
    "AssetMetadataNotFoundError",
    "AssetSourceNotFoundError",
    "ChecksumMismatchError",
]


class AssetError(Exception):
    """Base class of every error raised by asyncassets."""


class AssetCardError(AssetError):
    """A card cannot be resolved or one of its fields has the wrong shape.

    Raised for a missing base card, a base cycle, a missing field or a field whose value
    is not of the requested type. ``name`` is the card, ``field`` the dotted field path
    when the error is about a field.
    """

    def __init__(self, message: str, *, name: str | None = None, field: str | None = None):
        super().__init__(message)
        self.name = name
        self.field = field


class AssetCardNotFoundError(AssetCardError, LookupError):
    """No store defines the requested card. The message lists close matches."""

    def __init__(self, message: str, *, name: str, suggestions: tuple[str, ...] = ()):
        super().__init__(message, name=name)
        self.suggestions = suggestions


class AssetGatedError(AssetCardError):
    """The card's checkpoint (or tokenizer) is gated: the card names no file to fetch, only
    the ``url`` of the page where access is requested (fairseq2's gated models).

    ``name`` is the card, ``field`` the absent field (``checkpoint``, ``tokenizer``) and
    ``url`` where to request access. Once granted, set the field in a user card
    (``name@user``) and fetch again.
    """

    def __init__(self, message: str, *, name: str, field: str, url: str):
        super().__init__(message, name=name, field=field)
        self.url = url


class AssetMetadataError(AssetError):
    """A source of cards cannot be read: a network failure, denied access, a bad URL."""

    def __init__(self, message: str, *, source: str | None = None):
        super().__init__(message)
        self.source = source


class AssetMetadataNotFoundError(AssetMetadataError, LookupError):
    """A provider has no metadata under the requested canonical name (``foo@``)."""

    def __init__(self, message: str, *, name: str, source: str | None = None):
        super().__init__(message, source=source)
        self.name = name


class AssetSourceNotFoundError(AssetMetadataError):
    """The folder, bucket, prefix or package a provider points at does not exist."""


class AssetDownloadError(AssetError):
    """A file a card points to cannot be fetched into the local cache.

    ``uri`` names what was being fetched.
    """

    def __init__(self, message: str, *, uri: str | None = None):
        super().__init__(message)
        self.uri = uri


class ChecksumMismatchError(AssetDownloadError):
    """The fetched bytes do not have the expected sha256. Nothing is kept."""

    def __init__(self, message: str, *, uri: str, expected: str, actual: str):
        super().__init__(message, uri=uri)
        self.expected = expected
        self.actual = actual


def first_error(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups: an :class:`AssetError` when
    one is there, else the first leaf that is not a cancellation (cancellations are only
    ``BaseException``: the consequence of another error), else the first leaf. What a task
    group raised, as one error to report."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if isinstance(current, BaseExceptionGroup):
            pending[:0] = current.exceptions
        else:
            leaves.append(current)
    for wanted in (AssetError, Exception):
        for leaf in leaves:
            if isinstance(leaf, wanted):
                return leaf
    return leaves[0] if leaves else exc


# -- internal: raised and caught inside asyncassets, never by the public API --------------------


class TransientError(Exception):
    """A failure that another try may not see: 5xx, 429, a truncated body, a reset."""


class PermanentError(Exception):
    """A failure that retrying will not fix: 404, 403, a bad URL. ``status`` when HTTP."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RangeNotHonouredError(Exception):
    """The server answered a ranged read without a matching ``206 Content-Range``."""


class RemoteChangedError(Exception):
    """The remote object changed while it was being downloaded (412, a size change)."""
