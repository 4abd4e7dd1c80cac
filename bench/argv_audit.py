"""Watch every process's command line while a run goes on, and look for secrets in them.

Any local user can read any process's argv (``ps``, ``/proc/PID/cmdline``), so neither
the client secret nor an access token may ever be an argument. The sampler reads
``/proc/*/cmdline`` in a loop from a thread; afterwards the collected command lines are
searched for the canaries. Sampling can miss a process that lives shorter than one sweep,
so a positive control (a process holding a canary in argv for 300 ms) proves the sampler
sees what it should; a clean result is evidence, not proof.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self


class ArgvSampler:
    """Collects distinct command lines of all processes until stopped."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.sweeps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="argv-sampler", daemon=True)

    def _run(self) -> None:
        own = str(os.getpid())
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit() or entry.name == own:
                    continue
                try:
                    raw = Path(entry.path, "cmdline").read_bytes()
                except OSError:
                    continue
                if raw:
                    self.seen.add(raw.replace(b"\0", b" ").decode(errors="replace"))
            self.sweeps += 1

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass(frozen=True)
class AuditResult:
    label: str
    command_lines: int
    sweeps: int
    leaked: list[str]  # which canaries were seen ("client secret", "access token")


def audit(
    label: str,
    run: Callable[[], object],
    secrets: Callable[[], Iterable[tuple[str, str]]],
    ignore: Callable[[str], bool] = lambda line: False,
) -> AuditResult:
    """Run ``run()`` under the sampler; ``secrets()`` names the values to look for after it.

    ``ignore`` drops the bench's own infrastructure (the OpenBao dev server is started with
    its root token in argv; that is the test server's business, not the tool's).
    """
    with ArgvSampler() as sampler:
        run()
    lines = [line for line in sampler.seen if not ignore(line)]
    leaked = sorted({name for name, value in secrets() if any(value in line for line in lines)})
    return AuditResult(label, len(lines), sampler.sweeps, leaked)


def positive_control() -> AuditResult:
    """A canary held in argv for 300 ms must be seen, or the sampler is blind."""
    canary = "argv-audit-canary-" + os.urandom(8).hex()
    command = [sys.executable, "-c", "import time; time.sleep(0.3)", canary]
    result = audit(
        "positive control (canary in argv for 0.3 s)",
        lambda: subprocess.run(command, check=True),
        lambda: [("canary", canary)],
    )
    if result.leaked != ["canary"]:
        raise SystemExit("argv sampler did not see a canary held in argv: it is blind")
    return result
