"""Create (once) a separate virtualenv holding a pinned checkov, and print its executable.

checkov pins dozens of heavy dependencies that would fight the project's own pins, so it
never goes into the development virtualenv. The ``checkov`` fixture in the root
``conftest.py`` calls this for the Terraform, Dockerfile and Kubernetes checks; the first
run installs (about half a minute with a warm pip cache), later runs only check the
version. A lock file keeps two concurrent runs from racing.

    python tools/ensure_checkov.py      # prints the path of checkov
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from toolcache import locked, run, tail

CHECKOV_VERSION = "3.3.30"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENV = REPO_ROOT / ".venv-tools"


def installed_version(checkov: Path) -> str | None:
    if not checkov.exists():
        return None
    try:
        result = run([str(checkov), "--version"], timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def ensure_checkov(venv: Path) -> Path:
    """Return a working ``checkov`` at :data:`CHECKOV_VERSION`, installing it if needed."""
    checkov = venv / "bin" / "checkov"
    with locked(venv.parent / f".{venv.name}.lock"):
        if installed_version(checkov) == CHECKOV_VERSION:
            return checkov
        started = time.monotonic()
        if venv.exists():
            shutil.rmtree(venv)
        base_python = getattr(sys, "_base_executable", sys.executable)
        steps = [
            [base_python, "-m", "venv", str(venv)],
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                f"checkov=={CHECKOV_VERSION}",
            ],
        ]
        for argv in steps:
            result = run(argv, timeout=900)
            if result.returncode != 0:
                raise SystemExit(f"{' '.join(argv[:4])} … failed:\n{tail(result)}")
            if argv[1:3] == ["-m", "venv"]:
                # Keeps git and ruff (which honour nested .gitignore files) out of it.
                (venv / ".gitignore").write_text("*\n")
        version = installed_version(checkov)
        if version != CHECKOV_VERSION:
            raise SystemExit(f"checkov {CHECKOV_VERSION} did not install (got {version!r})")
        elapsed = time.monotonic() - started
        print(f"installed checkov {CHECKOV_VERSION} into {venv} in {elapsed:.0f}s", file=sys.stderr)
        return checkov


def main() -> None:
    venv = Path(os.environ.get("HARBOR_TOOLS_VENV", str(DEFAULT_VENV)))
    print(ensure_checkov(venv))


if __name__ == "__main__":
    main()
