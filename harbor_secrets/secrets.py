"""Keep secret values out of every printed thing.

Two layers: :class:`Secret` wraps a value so ``str``/``repr``/f-strings show ``***``; and a
process-wide registry of known secret values lets the logging filter and the CLI's error
handler scrub any text that might still carry one (a library's exception message, say).
"""

from __future__ import annotations

import threading

REDACTED = "***"
# Shorter values would blank out ordinary words; real client secrets and tokens are long.
_MIN_SCRUB_LENGTH = 8
# A long-lived process (watch mode, a warm Lambda) registers every access token it ever
# sees; keep the newest ones only, so scrubbing stays fast and memory stays flat. Tokens
# older than this many registrations have long expired. Long-lived secrets are never dropped.
_MAX_EPHEMERAL = 4096


class Secret:
    """A string that never prints itself. Call :meth:`reveal` where the value is needed.

    ``ephemeral=True`` marks a value that is replaced every few minutes (an access token):
    the scrub list keeps only the newest of those. Everything else (client secrets, Vault
    tokens) stays on the list for the life of the process.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str, *, ephemeral: bool = False) -> None:
        self._value = value
        register(value, ephemeral=ephemeral)

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
_pinned: set[str] = set()
_ephemeral: dict[str, None] = {}  # insertion-ordered: the oldest is dropped first
_by_length: tuple[str, ...] = ()  # longest first, so a secret containing another goes whole


def register(value: str, *, ephemeral: bool = False) -> None:
    """Remember a secret value so :func:`scrub` removes it from any text."""
    global _by_length
    if not value or len(value) < _MIN_SCRUB_LENGTH:
        return
    with _lock:
        if value in _pinned or (ephemeral and value in _ephemeral):
            return
        if ephemeral:
            _ephemeral[value] = None
            while len(_ephemeral) > _MAX_EPHEMERAL:
                del _ephemeral[next(iter(_ephemeral))]
        else:
            _pinned.add(value)
            _ephemeral.pop(value, None)
        _by_length = tuple(sorted(_pinned | set(_ephemeral), key=len, reverse=True))


def scrub(text: str) -> str:
    """Replace every registered secret value in ``text`` with ``***``."""
    for value in _by_length:
        if value in text:
            text = text.replace(value, REDACTED)
    return text
