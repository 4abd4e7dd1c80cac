"""Text to and from the CLI as tests drive it: configurations in, JSON logs out.

Tests, the reliability scenarios and the failover harness write configurations for real
``harbor-secrets`` runs against a local issuer, and read those runs' ``--log-format json``
lines back; each of those rules is kept here once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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


def issuer_sections(
    issuer_url: str,
    client_id: str,
    *,
    environments: Sequence[str] = ("sandbox",),
    secret_ref: str = "env:HARBOR_CLIENT_SECRET",
) -> str:
    """The ``[environments.*]`` tables, every one served by the issuer at ``issuer_url`` (the
    stand-in), and the ``main`` credentials with the client secret read from ``secret_ref``:
    how a test configuration starts. No trailing newline: it drops into a template as a line.
    """
    url = toml_value(issuer_url)
    tables = [
        f"[environments.{name}]\naccounts_url = {url}\napi_url = {url}\n" for name in environments
    ]
    credentials = (
        f"[credentials.main]\nclient_id = {toml_value(client_id)}\n"
        f"client_secret = {toml_value(secret_ref)}"
    )
    return "\n".join([*tables, credentials])


def json_log_lines(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line of a ``--log-format json`` run, parsed (a bad line fails the test)."""
    lines = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            parsed = json.loads(line)
            assert isinstance(parsed, dict)
            lines.append(parsed)
    return lines
