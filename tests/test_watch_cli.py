"""``harbor-secrets sync --watch`` as a real process: freshness, SIGTERM, usage errors.

The issuer is the stand-in over loopback with a token lifetime of a few seconds, so many
refresh cycles fit in a few seconds of wall-clock time.
"""

from __future__ import annotations

import random
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from watch_helpers import (
    SCOPES,
    healthz_ok,
    http_get,
    read_env_file,
    start_cli,
    wait_for,
    watch_config,
)

from conftest import CLIENT_ID, CLIENT_SECRET, Result
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_testkit.servers import free_port

Run = Callable[..., Result]


def stop(process: subprocess.Popen[str], *, timeout: float = 20) -> tuple[int, str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.communicate()


def test_watch_keeps_every_token_fresh_over_many_cycles(tmp_path: Path) -> None:
    lifetime, refresh_before = 4, 2.0
    # Wake-up slack: jitter (≤ 5 % of the ≤ 2 s sleep) + the 0.05 s margin + one cycle
    # (read, token request, atomic write with fsync) on a loaded machine.
    slack = 1.0
    duration = 12.0
    with StandInIssuer(clients={CLIENT_ID: CLIENT_SECRET}, token_lifetime=lifetime) as issuer:
        config = tmp_path / "harbor.toml"
        # schedule_period (the longest sleep) is far above the refresh window, so only the
        # due-time arithmetic keeps tokens fresh here.
        config.write_text(watch_config(issuer.url, schedule_period="20s"), encoding="utf-8")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process = start_cli(
            "-c", str(config), "sync", "--watch", "--listen", f"127.0.0.1:{port}", cwd=tmp_path
        )
        try:
            wait_for(lambda: healthz_ok(base), 20, "the first cycle")
            env_file = tmp_path / "harbor.env"
            first_requests = issuer.token_requests
            began = time.monotonic()
            headroom: list[float] = []
            seen: dict[str, set[str]] = {scope: set() for scope in SCOPES}
            statuses = []
            while time.monotonic() - began < duration:
                stored = read_env_file(env_file)
                now = datetime.now(UTC)  # after the read: the token is at least this old
                assert set(stored) == set(SCOPES)
                for scope, record in stored.items():
                    headroom.append((record.expires_at - now).total_seconds())
                    seen[scope].add(record.token)
                if len(headroom) % 40 == 0:
                    statuses.append(http_get(base + "/healthz").status)
                time.sleep(0.03)
            requests = issuer.token_requests - first_requests
            code, out, err = stop(process)
        finally:
            kill(process)
        issued = issuer.issued

    print(
        f"freshness: {len(headroom)} samples, least headroom {min(headroom):.2f}s "
        f"(refresh_before {refresh_before}s, slack {slack}s); tokens per scope "
        f"{ {s: len(t) for s, t in seen.items()} }; {requests} token requests in {duration}s"
    )
    assert code == 0, err
    assert min(headroom) >= refresh_before - slack
    for scope in SCOPES:
        assert len(seen[scope]) >= 5, seen  # tokens really rotate (about every 1.9 s)
        assert seen[scope] <= issued
    # The floor: one request per token per (lifetime − refresh_before − the up-to-1 s lost
    # to whole-second expiry times) ≈ 1.5–2 s; a loop that refreshed early would exceed it.
    assert requests <= len(SCOPES) * (duration / 1.5 + 2)
    assert set(statuses) == {200}
    # One INFO line per cycle, even at the default verbosity.
    cycles = int(re.findall(r"stopped after (\d+) cycle", err)[0])
    assert len(re.findall(r"INFO .*cycle \d+: ", err)) == cycles >= len(seen["tower_access"])
    for value in (CLIENT_SECRET, *issued):
        assert value not in out + err


RUNNER = """
import atexit, os, sys, time
from pathlib import Path

from harbor_secrets._files import AtomicFile

journal = Path(sys.argv.pop(1))
marker = journal.with_name("writing")
real_replace = AtomicFile.replace
real_rename = os.replace


def slow_rename(source, target, *args, **kwargs):
    if str(target).endswith("harbor.env"):
        time.sleep(0.2)  # the new file is written but not renamed yet: mid-write
    return real_rename(source, target, *args, **kwargs)


def journaled(self, data):
    marker.touch()
    with journal.open("a") as log:
        log.write("begin\\n")
    real_replace(self, data)
    with journal.open("a") as log:
        log.write("end\\n")
    marker.unlink()


os.replace = slow_rename
AtomicFile.replace = journaled
atexit.register(
    lambda: journal.with_name("modules").write_text(
        "prometheus_client" if "prometheus_client" in sys.modules else ""
    )
)
from harbor_secrets.cli import main

main(sys.argv[1:])
"""


def test_sigterm_mid_write_finishes_the_write_and_exits_0(tmp_path: Path) -> None:
    chooser = random.Random(20260101)  # noqa: S311 - timing choices, not secrets
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER, encoding="utf-8")
    journal = tmp_path / "journal"
    env_file = tmp_path / "harbor.env"
    env_file.write_text("OTHER_SETTING='kept'\n", encoding="utf-8")
    env_file.chmod(0o600)
    mid_write = 0
    with StandInIssuer(clients={CLIENT_ID: CLIENT_SECRET}, token_lifetime=2) as issuer:
        config = tmp_path / "harbor.toml"
        # Due 0.1 s after each write's whole second: the loop writes about every second.
        text = watch_config(issuer.url, refresh_before="1900ms", token_lifetime="2s")
        config.write_text(text, encoding="utf-8")
        for attempt in range(6):
            journal.write_text("", encoding="utf-8")
            process = start_cli(
                str(journal), "-c", str(config), "sync", "--watch", cwd=tmp_path, runner=runner
            )
            try:
                if attempt % 2 == 0:  # aim inside a write
                    wait_for((tmp_path / "writing").exists, 15, "a write to start")
                    time.sleep(chooser.uniform(0.0, 0.15))
                    mid_write += (tmp_path / "writing").exists()
                else:  # any moment of the loop: sleeping, reading, fetching or writing
                    # (The handler is installed before the first cycle, so no write can
                    # happen earlier; a SIGTERM during start-up just ends the process.)
                    wait_for(lambda: journal.read_text(encoding="utf-8") != "", 15, "the loop")
                    time.sleep(chooser.uniform(0.0, 1.5))
                if chooser.random() < 0.5:  # impatient operators signal twice
                    process.send_signal(signal.SIGTERM)
                    time.sleep(0.02)
                code, _, err = stop(process)
            finally:
                kill(process)
            assert code == 0, err
            assert "(SIGTERM)" in err
            lines = journal.read_text(encoding="utf-8").split()
            assert lines.count("begin") == lines.count("end") >= (1 if attempt % 2 == 0 else 0)
            assert not (tmp_path / "writing").exists()
            assert not list(tmp_path.glob(".harbor.env.*"))  # no half-written temporary file
            stored = read_env_file(env_file)
            assert set(stored) == set(SCOPES)
            assert all(record.token in issuer.issued for record in stored.values())
            assert "OTHER_SETTING='kept'" in env_file.read_text(encoding="utf-8")
            # Watch mode without --listen never loads the optional Prometheus client.
            assert (tmp_path / "modules").read_text(encoding="utf-8") == ""
    assert mid_write >= 2  # the signal really did land inside writes


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--listen", "9464"], "--listen: serves /healthz and /metrics only in watch mode"),
        (["--watch", "--force"], "--force: cannot be combined with --watch"),
        (["--watch", "--dry-run"], "--dry-run: cannot be combined with --watch"),
        (["--watch", "--output", "json"], "--output json: cannot be combined with --watch"),
        (["--watch", "--metrics-file", "m.prom"], "--metrics-file: cannot be combined"),
        (["--watch", "--listen", ":9464"], "names no host"),
        (["--watch", "--listen", "99999"], "is not [HOST:]PORT"),
    ],
)
def test_usage_errors_exit_2_before_any_token_request(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run, args: list[str], fragment: str
) -> None:
    config = tmp_path / "harbor.toml"
    config.write_text(watch_config(issuer.url), encoding="utf-8")
    result = run_cli("-c", str(config), "sync", *args)
    assert result.code == 2, result.output
    assert fragment in result.stderr
    assert issuer.token_requests == 0


def test_a_port_in_use_or_a_missing_secret_exits_2_before_any_token_request(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    config = tmp_path / "harbor.toml"
    config.write_text(watch_config(issuer.url), encoding="utf-8")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli("-c", str(config), "sync", "--watch", "--listen", str(port))
    assert busy.code == 2, busy.output
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr
    missing = run_cli("-c", str(config), "sync", "--watch", env={"HARBOR_CLIENT_SECRET": ""})
    assert missing.code == 2, missing.output
    assert issuer.token_requests == 0
