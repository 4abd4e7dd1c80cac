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


def scrub_excerpt(text: str, *, cut_before: bool, cut_after: bool) -> str:
    """:func:`scrub` for text cut out of a longer stream (the tail of a command's output).

    Whole secrets become ``***``; and where the text was cut (its start, when
    ``cut_before``; its end, when ``cut_after``: a process killed mid-write) a *piece* of a
    secret that began before the cut, or went on after it, is dropped too. Scrubbing only
    matches whole values, so without this a token cut in two at the boundary would be
    printed almost whole. Cuts made after scrubbing need nothing more: no whole secret is
    left to be cut.
    """
    text = scrub(text)
    values = _by_length
    if cut_before and text:
        text = text[_leading_piece(text, values) :]
    if cut_after and text:
        text = text[: len(text) - _trailing_piece(text, values)]
    return text


def _leading_piece(text: str, values: tuple[str, ...]) -> int:
    """How many characters at the start of ``text`` may be the end of a secret (or lie
    inside one) that began before it."""
    longest = 0
    first = text[0]
    for value in values:
        start = value.find(first, 1)  # 1: the secret started before the text did
        while start != -1 and len(value) - start > longest:
            rest = value[start:]
            if text.startswith(rest) or rest.startswith(text):
                longest = min(len(rest), len(text))
                break
            start = value.find(first, start + 1)
    return longest


def _trailing_piece(text: str, values: tuple[str, ...]) -> int:
    """How many characters at the end of ``text`` may be the start of a secret (or lie
    inside one) that went on after it."""
    longest = 0
    last = text[-1]
    for value in values:
        end = value.rfind(last, 0, len(value) - 1)  # a proper prefix: the secret went on
        while end != -1 and end + 1 > longest:
            head = value[: end + 1]
            if text.endswith(head) or head.endswith(text):
                longest = min(len(head), len(text))
                break
            end = value.rfind(last, 0, end)
    return longest
