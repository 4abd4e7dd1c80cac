"""Help texts and documents say what the code does (each fact checked against the code, or
against the other documents that state it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from conftest import Result
from harbor_secrets.commands.status import HEALTHY
from harbor_secrets.freshness import TokenState

Run = Callable[..., Result]
REPO = Path(__file__).resolve().parents[1]


def test_status_help_names_every_state_and_which_exit_1(run_cli: Run) -> None:
    text = " ".join(run_cli("status", "--help").stdout.split())
    for state in TokenState:
        assert state.value in text, state
    exits = re.search(r"Exits 1 if ([^.]*)\.", text)
    assert exits is not None, text
    for state in TokenState:
        assert (state.value in exits.group(1)) == (state not in HEALTHY), state
