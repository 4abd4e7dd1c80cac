"""What the figures were measured on: kernel, CPU, memory, Python and tool versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from servers import BIN


@dataclass(frozen=True)
class Machine:
    date: str
    uname: str
    cpu_model: str
    cpus: int
    cpus_usable: int
    memory_gib: float
    python: str
    versions: dict[str, str]

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("date (UTC)", self.date),
            ("uname -a", self.uname),
            ("CPU", f"{self.cpu_model} x {self.cpus} ({self.cpus_usable} usable)"),
            ("memory", f"{self.memory_gib:.1f} GiB"),
            ("Python", self.python),
            *((name, version) for name, version in self.versions.items()),
        ]


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if done.stdout or done.stderr else ""
    )


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _distribution(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe(aws: Path) -> Machine:
    versions = {
        name: _distribution(name)
        for name in ("harbor-secrets", "requests", "hvac", "boto3", "botocore", "moto")
    }
    versions["OpenBao (bao)"] = _first_line([str(BIN / "bao"), "version"])
    versions["AWS CLI"] = _first_line([str(aws), "--version"])
    versions["curl"] = _first_line(["curl", "--version"])
    versions["jq"] = _first_line(["jq", "--version"])
    versions["bash"] = _first_line(["bash", "--version"])
    return Machine(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        uname=_first_line(["uname", "-a"]),
        cpu_model=_cpu_model(),
        cpus=os.cpu_count() or 0,
        cpus_usable=len(os.sched_getaffinity(0)),
        memory_gib=_memory_gib(),
        python=f"{platform.python_implementation()} {sys.version.split()[0]} ({sys.executable})",
        versions=versions,
    )
