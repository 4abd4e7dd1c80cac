"""Typed access to one configuration table, with errors that name the key and the fix.

Providers read their sink's options through :class:`Options` so every provider reports
mistakes the same way and unknown keys are never silently ignored. A misspelt key is
reported before anything it causes: a table whose ``tower_id`` was meant as ``tower_ids``
"names no environment" only because of the typo, so every error this table raises first
looks for such a key (:meth:`Options.error`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from harbor_secrets.durations import parse_duration
from harbor_secrets.errors import ConfigError
from harbor_secrets.suggest import MISSING_KEY_CUTOFF, close_match, pick


class Options:
    """A TOML table being validated. ``prefix`` is its dotted path, e.g. ``sinks.vault``.

    Every option read through it is known; at :meth:`finish` any other key is refused, with
    a guess at the option it misspells. ``known`` adds names someone else reads from the same
    table (the core's options of a sink, for a provider's table), so they are guessed too.
    """

    def __init__(
        self,
        table: Mapping[str, Any],
        *,
        prefix: str,
        source: str | None,
        known: Iterable[str] = (),
    ) -> None:
        self._table = dict(table)
        self._seen: set[str] = set()
        self._known = frozenset(known)
        self.prefix = prefix
        self.source = source

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, message: str, fix: str) -> ConfigError:
        """The error to raise about option ``name``, unless a misspelt key comes first.

        A key nobody asked for that looks like an option this table was asked for and
        lacks (or one someone else reads from it, ``known``) is the likelier mistake: the
        typo made that option absent, and the absence made this error. It is named instead,
        as :meth:`finish` would name it, so the user fixes the cause first. Keys not asked
        for yet may still be real options, hence the stricter cutoff.
        """
        return self._misspelling() or ConfigError(
            message, source=self.source, key=self.key(name), fix=fix
        )

    def refuse(self, error: ConfigError) -> ConfigError:
        """``error`` (raised about this table by someone else), unless a misspelt key comes
        first, as in :meth:`error`."""
        return self._misspelling() or error

    def _misspelling(self) -> ConfigError | None:
        wanted = (self._seen - set(self._table)) | self._known
        for name in self.unknown():
            guess = close_match(name, wanted, cutoff=MISSING_KEY_CUTOFF)
            if guess is not None:
                return self._not_an_option(name, guess)
        return None

    def _not_an_option(self, name: str, guess: str | None) -> ConfigError:
        if guess is not None:
            return ConfigError(
                f"is not a known option; did you mean {guess}?",
                source=self.source,
                key=self.key(name),
                fix=f"correct the spelling to {guess}, or remove it",
            )
        return ConfigError(
            "is not a known option",
            source=self.source,
            key=self.key(name),
            fix="check the spelling against the documentation, or remove it",
        )

    def pick(self, name: str, value: str, known: Iterable[str], *, what: str, fix: str) -> str:
        """``value`` of option ``name`` if it is one of ``known`` (:func:`suggest.pick`)."""
        try:
            return pick(value, known, key=self.key(name), what=what, source=self.source, fix=fix)
        except ConfigError as exc:
            raise self.refuse(exc) from None

    def __contains__(self, name: str) -> bool:
        return name in self._table

    def raw(self, name: str, default: Any = None) -> Any:
        self._seen.add(name)
        return self._table.get(name, default)

    def string(
        self, name: str, default: str | None = None, *, required: bool = False
    ) -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                raise self._missing(name)
            return default
        if not isinstance(value, str) or not value.strip():
            raise self.error(name, "must be a non-empty string", f'set {name} = "…"')
        return value

    def _missing(self, name: str) -> ConfigError:
        """A required option is absent; if a key nobody asked for looks like it, name that
        key: "is required" alone would send the reader looking for the wrong mistake."""
        unasked = [key for key in self._table if key not in self._seen]
        typo = close_match(name, unasked, cutoff=MISSING_KEY_CUTOFF)
        if typo is not None:
            return ConfigError(
                f"is required; this table has {typo}, which is not an option: did you mean {name}?",
                source=self.source,
                key=self.key(name),
                fix=f"rename {typo} to {name}",
            )
        return self.error(name, "is required", f'set {name} = "…"')

    def required_str(self, name: str) -> str:
        value = self.string(name, required=True)
        assert value is not None
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.string(name, default)
        assert value is not None
        return self.pick(
            name,
            value,
            choices,
            what=f"the values {name} takes",
            fix=f"use one of {', '.join(map(repr, choices))}",
        )

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise self.error(name, "must be true or false", f"set {name} = true or false")
        return value

    def integer(self, name: str, default: int, *, minimum: int | None = None) -> int:
        value = self.raw(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, "must be a whole number", f"set {name} = {default}")
        if minimum is not None and value < minimum:
            raise self.error(name, f"must be at least {minimum}", f"set {name} = {default}")
        return value

    def duration(self, name: str, default: float) -> float:
        value = self.raw(name, default)
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.error(name, str(exc), f'set {name} = "{int(default)}s"') from None

    def str_list(self, name: str, default: list[str] | None = None) -> list[str]:
        value = self.raw(name, default if default is not None else [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(name, "must be a list of strings", f'set {name} = ["…"]')
        return list(value)

    def table(self, name: str) -> Options:
        value = self.raw(name, {})
        if not isinstance(value, Mapping):
            raise self.error(name, "must be a table", f"write it as [{self.key(name)}]")
        return Options(value, prefix=self.key(name), source=self.source)

    def raw_table(self) -> dict[str, Any]:
        """The whole table, handed on to someone who validates it (a provider, say)."""
        self._seen.update(self._table)
        return dict(self._table)

    def unknown(self) -> list[str]:
        return sorted(set(self._table) - self._seen)

    def finish(self) -> None:
        """Raise on the first key nobody asked for (likely a typo), guessing what it meant."""
        for name in self.unknown():
            raise self._not_an_option(
                name, close_match(name, (self._seen - set(self._table)) | self._known)
            )
