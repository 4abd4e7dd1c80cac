"""What every tool installer in tools/ shares: one lock per install, a bounded subprocess.

The installers (ensure_checkov.py, ensure_binaries.py) run as scripts from the test fixtures
in the root conftest.py, possibly from two pytest sessions at once in one clone; the lock
makes the second wait for the first instead of both downloading into the same place.
"""

from __future__ import annotations

import fcntl
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


def run(
    argv: list[str],
    timeout: float,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a fixed argv (never a shell) and capture its output; never raises on failure."""
    return subprocess.run(  # noqa: S603 - fixed argv built by the caller, no shell
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        env=env,
    )


def tail(result: subprocess.CompletedProcess[str], lines: int = 30) -> str:
    """The last lines of a failed command's output, for the error message."""
    return "\n".join((result.stdout + result.stderr).splitlines()[-lines:])


@contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created if missing) for the block."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
