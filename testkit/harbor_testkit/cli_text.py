"""Text to and from the CLI as the scenarios drive it: configuration values in, JSON logs out.

The reliability scenarios and the failover harness each write configurations for real
``harbor-secrets`` processes and read those processes' ``--log-format json`` lines back;
both directions are one rule each, kept here.
"""

from __future__ import annotations

import json
from typing import Any


def toml_value(value: object) -> str:
    """``value`` as a TOML value (booleans, numbers, strings, lists), for generated configs.

    Numbers are written as Python prints them (``str``), never shortened: a test config says
    exactly what the test means.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")


def json_log_lines(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line of a ``--log-format json`` run, parsed (a bad line fails the test)."""
    lines = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            parsed = json.loads(line)
            assert isinstance(parsed, dict)
            lines.append(parsed)
    return lines
