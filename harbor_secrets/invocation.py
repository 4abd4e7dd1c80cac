"""What one command line asked for, shared by the CLI (which parses it) and the commands.

It lives apart from :mod:`harbor_secrets.cli` so that imports run one way: the CLI imports
the commands, and both import this; no command imports the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Globals:
    """The global options, merged from before and after the subcommand."""

    config: str | None = None
    verbosity: int = 0
    log_format: str = "text"
    output: str = "text"
