""" "Did you mean …?": the one rule for guessing which known name a mistyped one meant.

Every error that refuses a name from a known set (an option, a scope, a sink, an
environment, credentials, a provider) asks here, so they all guess the same way: case and
``-``/``_`` do not count, and a name far from every known one gets no guess at all rather
than a wild one. :func:`pick` is the whole lookup (is it known? if not, the error with the
guess), used alike by the configuration and by every command-line option that names one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from harbor_secrets.errors import ConfigError

#: How alike (0-1, difflib's ratio) a name must be to a known one to be suggested.
CUTOFF = 0.6
#: Stricter, for guessing which key *present* in a table was meant to be a missing one:
#: there the candidates are real keys, some of them other valid options.
MISSING_KEY_CUTOFF = 0.8


def _fold(name: str) -> str:
    return name.lower().replace("-", "_")


def close_match(word: str, known: Iterable[str], *, cutoff: float = CUTOFF) -> str | None:
    """The known name ``word`` most likely meant, or None if none is close."""
    candidates: dict[str, str] = {}
    for name in known:
        if name != word:
            candidates.setdefault(_fold(name), name)
    found = difflib.get_close_matches(_fold(word), list(candidates), n=1, cutoff=cutoff)
    return candidates[found[0]] if found else None


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``"; did you mean X?"`` to append to a message, or ``""``."""
    guess = close_match(word, known)
    return f"; did you mean {guess}?" if guess else ""


def pick(
    name: str,
    known: Iterable[str],
    *,
    key: str | None,
    what: str,
    source: str | None = None,
    fix: str | None = None,
) -> str:
    """``name`` if it is one of ``known``; otherwise :func:`unknown`'s error is raised."""
    names = list(known)
    if name in names:
        return name
    raise unknown(name, names, key=key, what=what, source=source, fix=fix)


def unknown(
    name: str,
    known: Iterable[str],
    *,
    key: str | None,
    what: str,
    source: str | None = None,
    fix: str | None = None,
) -> ConfigError:
    """The error (exit 2) for a ``name`` that is not one of ``known``, said at ``key``:
    ``'NAME' is not one of WHAT``, with the closest known name as a guess.

    ``what`` names the set in the plural ("Harbor's scopes", "the configured sinks");
    ``fix`` replaces the default fix, "use one of: …" (the known names).
    """
    names = list(known)
    return ConfigError(
        f"{name!r} is not one of {what}" + did_you_mean(name, names),
        source=source,
        key=key,
        fix=fix or f"use one of: {', '.join(names) or 'none is defined'}",
    )
