"""Keep secret values out of every printed thing.

Two layers: :class:`Secret` wraps a value so ``str``/``repr``/f-strings show ``***``; and a
process-wide registry of known secret values lets the logging filter and the CLI's error
handler scrub any text that might still carry one (a library's exception message, say).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

REDACTED = "***"
_MIN_SCRUB_LENGTH = 4  # shorter values would blank out ordinary words


class Secret:
    """A string that never prints itself. Call :meth:`reveal` where the value is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register(value)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return REDACTED

    def __repr__(self) -> str:
        return f"Secret({REDACTED})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secret values are not picklable")


_lock = threading.Lock()
_known: set[str] = set()


def register(value: str) -> None:
    """Remember a secret value so :func:`scrub` removes it from any text."""
    if value and len(value) >= _MIN_SCRUB_LENGTH:
        with _lock:
            _known.add(value)


def register_all(values: Iterable[str]) -> None:
    for value in values:
        register(value)


def scrub(text: str) -> str:
    """Replace every registered secret value in ``text`` with ``***``."""
    with _lock:
        values = sorted(_known, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text
