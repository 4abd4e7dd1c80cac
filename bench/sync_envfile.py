"""1,000 tokens (500 credential sets x 2 scopes) synced into env files via the stand-in issuer.

Aim (issue 2): under 10 s wall on 2 cores, peak RSS under 150 MB. The sync runs as a real
`harbor-secrets sync` process (the issuer lives in this process), so the figures are the
tool's own: wall time of the process and its peak RSS from getrusage(RUSAGE_CHILDREN).
A second run then shows the steady state (everything fresh: reads only, no requests).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harbor_secrets.stand_in_issuer import StandInIssuer

CREDENTIALS = 500
# Credential sets are spread over this many env files (default 10: 100 tokens per file);
# `python bench/sync_envfile.py 1` puts all 1,000 tokens in one file.
FILES = int(sys.argv[1]) if len(sys.argv) > 1 else 10
BIN = Path(sys.executable).parent


def write_config(directory: Path, url: str) -> Path:
    parts = [
        "[refresh]\nmax_workers = 16\n",
        f'[environments.sandbox]\naccounts_url = "{url}"\napi_url = "{url}"\n',
    ]
    for n in range(FILES):
        parts.append(
            f'[sinks.file{n}]\nprovider = "envfile"\npath = "harbor-{n}.env"\n'
            'prefix = "HARBOR_{credentials}_{environment}_{scope}"\n'
        )
    for n in range(CREDENTIALS):
        parts.append(
            f'[credentials.c{n}]\nclient_id = "client-{n}"\n'
            f'client_secret = "env:HARBOR_BENCH_SECRET"\n'
        )
        parts.append(
            f'[[targets]]\ncredentials = "c{n}"\nenvironments = ["sandbox"]\n'
            f'sinks = ["file{n % FILES}"]\n'
        )
    path = directory / "bench.toml"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def run_sync(config: Path) -> tuple[float, dict[str, object]]:
    env = dict(os.environ, HARBOR_BENCH_SECRET="bench-secret-value")
    start = time.perf_counter()
    completed = subprocess.run(
        [str(BIN / "harbor-secrets"), "-c", str(config), "sync", "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        raise SystemExit(f"sync failed ({completed.returncode}): {completed.stderr[-2000:]}")
    return wall, json.loads(completed.stdout)


def main() -> None:
    clients = {f"client-{n}": "bench-secret-value" for n in range(CREDENTIALS)}
    with tempfile.TemporaryDirectory() as tmp, StandInIssuer(clients=clients) as issuer:
        config = write_config(Path(tmp), issuer.url)
        wall, report = run_sync(config)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        counts = report["counts"]
        assert isinstance(counts, dict)
        print(
            f"first sync : {counts['written']} tokens written in {wall:.2f} s wall "
            f"({issuer.token_requests} token requests), peak RSS {peak_mb:.1f} MB"
        )
        wall2, report2 = run_sync(config)
        counts2 = report2["counts"]
        assert isinstance(counts2, dict)
        print(
            f"second sync: {counts2['fresh']} fresh, {counts2['written']} written in "
            f"{wall2:.2f} s wall ({issuer.token_requests - 1000} new token requests)"
        )
        print(
            f"cpus: {os.cpu_count()}; aim: < 10 s and < 150 MB -> "
            f"{'met' if wall < 10 and peak_mb < 150 else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
