"""``on_write``: one command per changed sink per run, never on fresh or dry runs, killed at
its timeout, and its failure never undoes the write (exit 1, counted in the metrics)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dotenv import dotenv_values

from conftest import CLIENT_ID, CLIENT_SECRET, Result
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_testkit.cli_text import issuer_sections

Run = Callable[..., Result]
TOKEN = "HARBOR_SANDBOX_SERVICE_PROVIDER_ACCESS_TOKEN"

# Appends one JSON line per run: what the command was told, and whether secrets reached it.
RECORDER = """
import json, os, sys
with open(sys.argv[1], "a") as log:
    log.write(json.dumps({
        "env": {k: v for k, v in os.environ.items() if k.startswith("HARBOR_SECRETS_")},
        "argv": sys.argv[2:],
        "client_secret_visible": "HARBOR_CLIENT_SECRET" in os.environ,
    }) + "\\n")
sys.exit(int(os.environ.get("EXIT_WITH", "0")))
"""


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def config(
    issuer: StandInIssuer,
    tmp_path: Path,
    *,
    hook_a: list[str],
    extra_a: str = "",
    scopes: tuple[str, ...] = ("service_provider",),
) -> Path:
    scopes_list = json.dumps(list(scopes))
    text = f"""
{issuer_sections(issuer.url, CLIENT_ID)}

[sinks.a]
provider = "envfile"
path = "a.env"
on_write = {_toml_list(hook_a)}
{extra_a}

[sinks.b]
provider = "files"
directory = "tokens"
on_write = {_toml_list([sys.executable, str(tmp_path / "recorder.py"), str(tmp_path / "b.log")])}

[[targets]]
environments = ["sandbox"]
scopes = {scopes_list}
sinks = ["a", "b"]
"""
    (tmp_path / "tokens").mkdir(exist_ok=True)
    (tmp_path / "recorder.py").write_text(RECORDER, encoding="utf-8")
    path = tmp_path / "harbor.toml"
    path.write_text(text, encoding="utf-8")
    return path


def runs(log: Path) -> list[dict[str, object]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def recorder(tmp_path: Path, name: str) -> list[str]:
    return [sys.executable, str(tmp_path / "recorder.py"), str(tmp_path / name), "--flag"]


def test_runs_once_per_changed_sink_and_never_on_fresh_or_dry_runs(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    cfg = config(issuer, tmp_path, hook_a=recorder(tmp_path, "a.log"))
    assert run_cli("sync", "-c", str(cfg), "--dry-run").code == 0
    assert runs(tmp_path / "a.log") == runs(tmp_path / "b.log") == []
    first = run_cli("sync", "-c", str(cfg), "-o", "json")
    assert first.code == 0, first.output
    (a_run,) = runs(tmp_path / "a.log")
    (b_run,) = runs(tmp_path / "b.log")
    assert a_run["argv"] == ["--flag"]
    env_a, env_b = a_run["env"], b_run["env"]
    assert isinstance(env_a, dict)
    assert isinstance(env_b, dict)
    assert env_a["HARBOR_SECRETS_SINK"] == "a"
    assert env_a["HARBOR_SECRETS_ENVIRONMENT"] == "sandbox"
    assert env_a["HARBOR_SECRETS_SCOPE"] == "service_provider"
    assert env_a["HARBOR_SECRETS_PATH"] == str(tmp_path / "a.env")
    (change,) = json.loads(str(env_a["HARBOR_SECRETS_CHANGES"]))
    assert change["key"] == "HARBOR_SANDBOX_SERVICE_PROVIDER"
    assert change["expires_at"].endswith("Z")
    assert env_b["HARBOR_SECRETS_PATH"] == str(
        tmp_path / "tokens" / "sandbox" / "service_provider" / "access_token"
    )
    assert a_run["client_secret_visible"] is False  # env: references never reach the command
    for value in (CLIENT_SECRET, *issuer.issued):
        assert value not in json.dumps([a_run, b_run])
    report = json.loads(first.stdout)
    assert [s["on_write"] for s in report["jobs"][0]["sinks"]] == [
        {"ok": True, "error": None},
        {"ok": True, "error": None},
    ]
    assert run_cli("sync", "-c", str(cfg)).code == 0  # fresh: nothing written, nothing run
    assert len(runs(tmp_path / "a.log")) == len(runs(tmp_path / "b.log")) == 1
    time.sleep(1.1)  # a token issued in the same second would expire no later: kept, not run
    assert run_cli("sync", "-c", str(cfg), "--force").code == 0
    assert len(runs(tmp_path / "a.log")) == len(runs(tmp_path / "b.log")) == 2


def test_several_tokens_written_to_one_sink_run_its_command_once(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    cfg = config(
        issuer,
        tmp_path,
        hook_a=recorder(tmp_path, "a.log"),
        scopes=("service_provider", "tower_access"),
    )
    result = run_cli("sync", "-c", str(cfg))
    assert result.code == 0, result.output
    (a_run,) = runs(tmp_path / "a.log")  # one env file, two tokens: one reload
    env = a_run["env"]
    assert isinstance(env, dict)
    assert env["HARBOR_SECRETS_SCOPE"] == "service_provider tower_access"
    changes = json.loads(str(env["HARBOR_SECRETS_CHANGES"]))
    assert sorted(c["scope"] for c in changes) == ["service_provider", "tower_access"]
    (b_run,) = runs(tmp_path / "b.log")
    b_env = b_run["env"]
    assert isinstance(b_env, dict)
    assert len(str(b_env["HARBOR_SECRETS_PATH"]).splitlines()) == 2  # one file per token


def test_a_command_that_leaves_a_daemon_behind_does_not_hold_the_run(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    """A daemon keeps a pipe open long after the command exits; the run must not wait."""
    pid_file = tmp_path / "daemon.pid"
    hook = ["sh", "-c", f"setsid sh -c 'echo $$ > {pid_file}; exec sleep 30' & exit 0"]
    cfg = config(issuer, tmp_path, hook_a=hook, extra_a='on_write_timeout = "10s"')
    began = time.monotonic()
    result = run_cli("sync", "-c", str(cfg))
    elapsed = time.monotonic() - began
    assert result.code == 0, result.output
    assert elapsed < 8, f"the run waited {elapsed:.1f}s for the command's daemon"
    deadline = time.monotonic() + 5
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(int(pid_file.read_text()), 9)


def test_a_failing_command_is_reported_counted_and_leaves_the_written_token(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    cfg = config(issuer, tmp_path, hook_a=recorder(tmp_path, "a.log"))
    prom = tmp_path / "harbor.prom"
    result = run_cli("sync", "-c", str(cfg), "--metrics-file", str(prom), env={"EXIT_WITH": "3"})
    assert result.code == 1, result.output
    assert "on_write of sink 'a'" in result.output
    assert "exited with status 3" in result.output
    assert "on_write command(s) failed" in result.stdout
    values = dotenv_values(tmp_path / "a.env")
    assert values[TOKEN] in issuer.issued  # written, and still there
    assert 'reason="on-write-failed"' in prom.read_text()


def test_a_slow_command_is_killed_with_its_children_at_the_timeout(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    pid_file = tmp_path / "child.pid"
    hook = ["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"]
    cfg = config(issuer, tmp_path, hook_a=hook, extra_a='on_write_timeout = "1s"')
    began = time.monotonic()
    result = run_cli("sync", "-c", str(cfg))
    assert time.monotonic() - began < 20
    assert result.code == 1
    assert "was killed after 1s" in result.output
    assert dotenv_values(tmp_path / "a.env")[TOKEN] in issuer.issued
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the command's child outlived the timeout"
    assert len(runs(tmp_path / "b.log")) == 1  # the other sink's command still ran


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.split(") ", 1)[1][0] != "Z"  # a zombie is dead, just not reaped


@pytest.mark.parametrize(
    ("value", "problem"),
    [('"systemctl reload billing"', "not a shell command line"), ("[]", "non-empty list")],
)
def test_a_shell_string_or_empty_list_is_a_config_error(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run, value: str, problem: str
) -> None:
    cfg = config(issuer, tmp_path, hook_a=["true"])
    cfg.write_text(cfg.read_text().replace('on_write = ["true"]', f"on_write = {value}", 1))
    result = run_cli("sync", "-c", str(cfg))
    assert result.code == 2
    assert "sinks.a.on_write" in result.stderr
    assert problem in result.stderr
    assert issuer.token_requests == 0
