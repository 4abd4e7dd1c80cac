"""Durations in configuration: a number of seconds, or a string like ``"150s"``, ``"2m"``."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(value: object) -> float:
    """Return seconds; raise ``ValueError`` with the accepted forms on anything else."""
    if isinstance(value, bool):
        raise ValueError('expected a duration such as 150, "150s", "2m" or "1h"')
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            number, unit = match.groups()
            return float(number) * _UNITS[unit or "s"]
    raise ValueError('expected a duration such as 150, "150s", "2m" or "1h"')


def format_duration(seconds: float) -> str:
    """Short human form used in summaries: ``"4m 10s"``, ``"45s"``, ``"-12s"``."""
    sign = "-" if seconds < 0 else ""
    total = int(abs(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h {minutes}m"
    if minutes:
        return f"{sign}{minutes}m {secs}s"
    return f"{sign}{secs}s"


def duration_setting(seconds: float) -> str:
    """A duration as a configuration would write it, read back exactly by
    :func:`parse_duration`: ``"2m"``, ``"150s"``, ``"1h"``, ``"500ms"``."""
    millis = round(seconds * 1000)
    if millis % 1000:
        return f"{millis}ms"
    whole = millis // 1000
    for unit, size in (("h", 3600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"
