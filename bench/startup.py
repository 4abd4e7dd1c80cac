"""CLI start-up: `harbor-secrets --version` against a bare `python -c pass`.

Aim (issue 2): within 150 ms of the bare interpreter. Prints medians over N runs and which
heavy modules (if any) the version path imports — none should be.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 15
BIN = Path(sys.executable).parent
HEAVY = ("requests", "urllib3", "hvac", "boto3", "botocore", "harbor_secrets_envfile")


def median_seconds(command: list[str]) -> float:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    bare = median_seconds([sys.executable, "-c", "pass"])
    script = median_seconds([str(BIN / "harbor-secrets"), "--version"])
    module = median_seconds([sys.executable, "-m", "harbor_secrets", "--version"])
    probe = (
        "import sys; sys.argv = ['harbor-secrets', '--version']\n"
        "from harbor_secrets import cli\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        f"print('loaded:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = (
        subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
        .stdout.strip()
        .splitlines()[-1]
        .removeprefix("loaded:")
    )
    print(f"python -c pass                 median {bare * 1000:7.1f} ms  ({RUNS} runs)")
    for label, seconds in (
        ("harbor-secrets --version", script),
        ("python -m harbor_secrets -V", module),
    ):
        extra = (seconds - bare) * 1000
        print(f"{label:<30} median {seconds * 1000:7.1f} ms  (+{extra:.1f} ms)")
    print(f"heavy modules imported by --version: {loaded or 'none'}")
    print(f"aim: within 150 ms of bare python -> {'met' if script - bare <= 0.150 else 'MISSED'}")


if __name__ == "__main__":
    main()
