"""Metrics: scraped, written as a textfile, pushed; and prometheus-client stays optional.

Every exposition is parsed with prometheus-client's own parser and compared with what the
run demonstrably did: the issuer's record of token requests, the env file's EXPIRES_AT.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from watch_helpers import (
    FAST,
    SCOPES,
    SECRETS,
    Samples,
    healthz_ok,
    http_get,
    parse_metrics,
    read_env_file,
    running,
    sample,
    sink_labels,
    start_cli,
    wait_for,
    watch_config,
)

from conftest import CLIENT_ID, CLIENT_SECRET, Result
from harbor_secrets.config import load_config
from harbor_secrets.exposition import registry_for, render
from harbor_secrets.health import StatusServer
from harbor_secrets.runtime import Runtime
from harbor_secrets.stand_in_issuer import Fault, StandInIssuer
from harbor_secrets.sync import FRESH, KEPT_NEWER, WRITTEN
from harbor_secrets.watch import Cycle, Watcher
from harbor_testkit.environ import clean_environ
from harbor_testkit.servers import free_port

Run = Callable[..., Result]
WRITES = "harbor_secrets_writes_total"
SKIPS = "harbor_secrets_skips_total"
FAILURES = "harbor_secrets_failures_total"
EXPIRY = "harbor_secrets_token_expiry_timestamp_seconds"
LAST_SUCCESS = "harbor_secrets_last_success_timestamp_seconds"
LATENCY = "harbor_secrets_token_request_seconds"
INSTALL = "pip install 'harbor-secrets[metrics]'"


def successful_requests(issuer: StandInIssuer, scope: str) -> int:
    return sum(1 for r in issuer.requests if r.scope == scope and r.fault is None)


def outcomes(cycles: list[Cycle], scope: str, *actions: str) -> int:
    return sum(
        1
        for cycle in cycles
        if cycle.report is not None
        for job in cycle.report.results
        for sink in job.sinks
        if job.job.scope == scope and sink.action in actions
    )


def test_scraped_metrics_carry_the_values_the_run_produced(tmp_path: Path) -> None:
    env_file = tmp_path / "harbor.env"
    with StandInIssuer(clients={CLIENT_ID: CLIENT_SECRET}, token_lifetime=4) as issuer:
        issuer.inject(Fault.error(503, "temporarily_unavailable", "Keycloak is restarting"))
        config = load_config(text=watch_config(issuer.url, env_path=str(env_file)), environ={})
        runtime = Runtime(config, environ=SECRETS)
        cycles: list[Cycle] = []
        watcher = Watcher(runtime, pacing=FAST, on_cycle=cycles.append)
        registry = registry_for(watcher.metrics, process=True)
        server = StatusServer(
            "127.0.0.1", 0, health=watcher.health, metrics=lambda a: render(registry, a)
        )
        with runtime, server:
            with running(watcher):
                # The failed request, its retry, then a full round of rotation.
                wait_for(lambda: issuer.token_requests >= 5, 15, "five token requests")
            reply = http_get(server.url + "/metrics")  # the loop has stopped: values are final
            health = http_get(server.url + "/healthz")
        faulted = next(r.scope for r in issuer.requests if r.fault is not None)
        requests = issuer.token_requests

    assert reply.status == 200
    assert reply.content_type.startswith("text/plain; version=")
    assert health.status == 200
    scraped = parse_metrics(reply.body.decode())
    stored = read_env_file(env_file)
    for scope in SCOPES:
        labels = sink_labels(scope)
        assert sample(scraped, WRITES, **labels) == successful_requests(issuer, scope) >= 2
        assert sample(scraped, WRITES, **labels) == outcomes(cycles, scope, WRITTEN)
        assert sample(scraped, SKIPS, **labels) == outcomes(cycles, scope, FRESH, KEPT_NEWER)
        assert sample(scraped, EXPIRY, **labels) == stored[scope].expires_at.timestamp()
        last_ok = max(
            c.report.finished_at
            for c in cycles
            if c.report is not None
            and any(
                j.job.scope == scope and s.action in (WRITTEN, FRESH)
                for j in c.report.results
                for s in j.sinks
            )
        )
        assert sample(scraped, LAST_SUCCESS, **labels) == pytest.approx(last_ok.timestamp())
        failed = sample_or_none(scraped, FAILURES, **labels, reason="issuer-unavailable")
        assert failed == (1 if scope == faulted else None)
    assert sample(scraped, LATENCY + "_count", environment="sandbox") == requests
    assert sample(scraped, LATENCY + "_bucket", environment="sandbox", le="+Inf") == requests
    assert 0 < sample(scraped, LATENCY + "_sum", environment="sandbox") < requests * 2.0
    assert ("process_start_time_seconds", ()) in scraped  # a long-running process's own metrics


def sample_or_none(samples: Samples, name: str, **labels: str) -> float | None:
    try:
        return sample(samples, name, **labels)
    except KeyError:
        return None


def test_watch_process_serves_metrics_that_match_the_env_file(tmp_path: Path) -> None:
    with StandInIssuer(clients={CLIENT_ID: CLIENT_SECRET}, token_lifetime=300) as issuer:
        config = tmp_path / "harbor.toml"
        text = watch_config(issuer.url, refresh_before="150s", token_lifetime="300s")
        config.write_text(text, encoding="utf-8")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        began = datetime.now(UTC).timestamp()
        process = start_cli(
            "-c", str(config), "sync", "--watch", "--listen", str(port), cwd=tmp_path
        )
        try:
            wait_for(lambda: healthz_ok(base), 20, "the first cycle")
            scraped = parse_metrics(http_get(base + "/metrics").body.decode())
            process.terminate()
            _, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0, err
    stored = read_env_file(tmp_path / "harbor.env")
    for scope in SCOPES:
        labels = sink_labels(scope)
        assert sample(scraped, WRITES, **labels) == 1
        assert sample(scraped, EXPIRY, **labels) == stored[scope].expires_at.timestamp()
        assert began <= sample(scraped, LAST_SUCCESS, **labels) <= datetime.now(UTC).timestamp()
    assert sample(scraped, LATENCY + "_count", environment="sandbox") == 2


# -- one-shot runs: node-exporter textfile -----------------------------------------------------


def read_prom(path: Path) -> Samples:
    return parse_metrics(path.read_text(encoding="utf-8"))


def test_metrics_file_is_replaced_atomically_and_counters_keep_counting(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    config = tmp_path / "harbor.toml"
    text = watch_config(issuer.url, refresh_before="150s", token_lifetime="300s")
    config.write_text(text, encoding="utf-8")
    prom = tmp_path / "textfile" / "harbor-secrets.prom"
    prom.parent.mkdir()
    args = ("-c", str(config), "sync", "--metrics-file", str(prom))

    first = run_cli(*args)
    assert first.code == 0, first.output
    one = read_prom(prom)
    stored = read_env_file(tmp_path / "harbor.env")
    for scope in SCOPES:
        labels = sink_labels(scope)
        assert sample(one, WRITES, **labels) == 1
        assert sample(one, SKIPS, **labels) == 0
        assert sample(one, EXPIRY, **labels) == stored[scope].expires_at.timestamp()
    assert sample(one, LATENCY + "_count", environment="sandbox") == 2
    assert stat.S_IMODE(prom.stat().st_mode) == 0o644  # node-exporter runs as another user
    inode = prom.stat().st_ino

    second = run_cli(*args)
    assert second.code == 0, second.output
    two = read_prom(prom)
    assert prom.stat().st_ino != inode  # renamed into place, never rewritten in place
    for scope in SCOPES:
        labels = sink_labels(scope)
        assert sample(two, WRITES, **labels) == 1  # carried over: a counter, not a per-run value
        assert sample(two, SKIPS, **labels) == 1
        assert sample(two, LAST_SUCCESS, **labels) >= sample(one, LAST_SUCCESS, **labels)
    assert sample(two, LATENCY + "_count", environment="sandbox") == 2

    rejected = run_cli(*args, "--force", env={"HARBOR_CLIENT_SECRET": "canary-wrong-7e1d"})
    assert rejected.code == 1, rejected.output
    three = read_prom(prom)
    for scope in SCOPES:
        labels = sink_labels(scope)
        assert sample(three, FAILURES, **labels, reason="invalid-client") == 1
        assert sample(three, WRITES, **labels) == 1
        assert sample(three, LAST_SUCCESS, **labels) == sample(two, LAST_SUCCESS, **labels)
        assert sample(three, EXPIRY, **labels) == stored[scope].expires_at.timestamp()
    assert sample(three, LATENCY + "_count", environment="sandbox") == 4
    assert sorted(p.name for p in prom.parent.iterdir()) == ["harbor-secrets.prom"]  # no debris


def test_metrics_file_mistakes_exit_2_before_any_token_request(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    config = tmp_path / "harbor.toml"
    config.write_text(watch_config(issuer.url), encoding="utf-8")
    for target, fragment in (
        ("metrics.txt", "does not end in .prom"),
        ("missing/harbor.prom", "does not exist"),
    ):
        result = run_cli("-c", str(config), "sync", "--metrics-file", str(tmp_path / target))
        assert result.code == 2, result.output
        assert fragment in result.stderr
    dry = run_cli("-c", str(config), "sync", "--dry-run", "--metrics-file", "m.prom")
    assert dry.code == 2, dry.output
    assert issuer.token_requests == 0


# -- one-shot runs: Pushgateway ----------------------------------------------------------------


class Recorder(ThreadingHTTPServer):
    """A stand-in Pushgateway: records each request and answers ``status``."""

    daemon_threads = True

    def __init__(self, status: int) -> None:
        self.status = status
        self.received: list[tuple[str, str, bytes]] = []
        super().__init__(("127.0.0.1", 0), _RecorderHandler)


class _RecorderHandler(BaseHTTPRequestHandler):
    server: Recorder

    def _record(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append((self.command, self.path, body))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PUT(self) -> None:
        self._record()

    def do_POST(self) -> None:
        self._record()

    def log_message(self, format: str, *args: object) -> None:
        pass


def recorder(status: int) -> Iterator[Recorder]:
    server = Recorder(status)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def pushgateway() -> Iterator[Recorder]:
    yield from recorder(200)


@pytest.fixture
def broken_pushgateway() -> Iterator[Recorder]:
    yield from recorder(500)


def test_pushgateway_receives_a_parseable_push(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run, pushgateway: Recorder
) -> None:
    config = tmp_path / "harbor.toml"
    config.write_text(watch_config(issuer.url), encoding="utf-8")
    url = f"http://127.0.0.1:{pushgateway.server_address[1]}"
    result = run_cli("-c", str(config), "sync", "--pushgateway", url)
    assert result.code == 0, result.output
    [(method, path, body)] = pushgateway.received
    assert (method, path) == ("PUT", "/metrics/job/harbor-secrets")
    pushed = parse_metrics(body.decode())
    for scope in SCOPES:
        assert sample(pushed, WRITES, **sink_labels(scope)) == 1
    assert sample(pushed, LATENCY + "_count", environment="sandbox") == 2


def test_a_failed_push_is_a_run_time_failure_after_the_tokens_were_written(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run, broken_pushgateway: Recorder
) -> None:
    config = tmp_path / "harbor.toml"
    config.write_text(watch_config(issuer.url), encoding="utf-8")
    url = f"http://127.0.0.1:{broken_pushgateway.server_address[1]}"
    answered = run_cli("-c", str(config), "sync", "--pushgateway", url)
    assert answered.code == 1, answered.output
    assert f"pushing metrics to {url} failed: HTTP 500" in answered.stderr
    assert set(read_env_file(tmp_path / "harbor.env")) == set(SCOPES)
    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = run_cli("-c", str(config), "sync", "--pushgateway", closed)
    assert unreachable.code == 1, unreachable.output
    assert f"pushing metrics to {closed} failed" in unreachable.stderr


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://pushgateway.example:9091", "plain http:// to pushgateway.example"),
        ("https://user:hunter2@pushgateway.example", "carries credentials"),
        ("pushgateway.example:9091", "is not an http(s) URL"),
    ],
)
def test_unsafe_pushgateway_urls_exit_2_before_any_token_request(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run, url: str, fragment: str
) -> None:
    config = tmp_path / "harbor.toml"
    config.write_text(watch_config(issuer.url), encoding="utf-8")
    result = run_cli("-c", str(config), "sync", "--pushgateway", url)
    assert result.code == 2, result.output
    assert fragment in result.stderr
    assert "hunter2" not in result.output
    assert issuer.token_requests == 0


# -- prometheus-client is optional -------------------------------------------------------------

BLOCKED = """
import sys


class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "prometheus_client":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Missing())
for name in [m for m in sys.modules if m.split(".")[0] == "prometheus_client"]:
    del sys.modules[name]
from harbor_secrets.cli import main

main(sys.argv[1:])
"""

PROBE = """
import sys
from harbor_secrets.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    print("exit", exit.code, "loaded", "prometheus_client" in sys.modules)
"""


def python(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = clean_environ({"HARBOR_CLIENT_SECRET": CLIENT_SECRET})
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=60,
        check=False,
    )


def test_plain_sync_never_imports_prometheus_client(tmp_path: Path, issuer: StandInIssuer) -> None:
    config = tmp_path / "harbor.toml"
    config.write_text(watch_config(issuer.url), encoding="utf-8")
    result = python(PROBE, "-c", str(config), "sync", cwd=tmp_path)
    assert result.stdout.strip().splitlines()[-1] == "exit 0 loaded False", result.stderr
    assert issuer.token_requests == 2


@pytest.mark.parametrize(
    "options",
    [
        ["--metrics-file", "harbor.prom"],
        ["--pushgateway", "http://127.0.0.1:9091"],
        ["--watch", "--listen", "9464"],
    ],
)
def test_missing_prometheus_client_exits_2_naming_the_extra(
    tmp_path: Path, issuer: StandInIssuer, options: list[str]
) -> None:
    config = tmp_path / "harbor.toml"
    config.write_text(watch_config(issuer.url), encoding="utf-8")
    result = python(BLOCKED, "-c", str(config), "sync", *options, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert INSTALL in result.stderr
    assert "Traceback" not in result.stderr
    assert issuer.token_requests == 0


# -- status --output json: the same facts without Prometheus -----------------------------------


def test_status_json_gives_expiry_due_time_and_issue_time(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    config = tmp_path / "harbor.toml"
    text = watch_config(issuer.url, refresh_before="150s", token_lifetime="300s")
    config.write_text(text, encoding="utf-8")
    prom = tmp_path / "harbor.prom"
    assert run_cli("-c", str(config), "sync", "--metrics-file", str(prom)).code == 0
    status = run_cli("-c", str(config), "status", "--output", "json")
    assert status.code == 0, status.output
    data = json.loads(status.stdout)
    assert data["refresh_before_seconds"] == 150
    metrics = read_prom(prom)
    for row in data["tokens"]:
        labels = sink_labels(row["scope"])
        assert row["expires_at_unix"] == sample(metrics, EXPIRY, **labels)
        assert row["state"] == "fresh"
        # Due when sync rewrites it: refresh_before, plus the freshness policy's 1 s slack.
        due_at = datetime.fromisoformat(row["due_at"]).timestamp()
        assert row["expires_at_unix"] - 150 - 1 == due_at
        assert 140 <= row["due_in_seconds"] <= 150
        # The env file keeps no issue time: unknown, not a made-up (negative) age; nor does it
        # keep who wrote the token.
        assert row["issued_at"] is None
        assert row["age_seconds"] is None
        assert row["written_by"] is None
    text_status = run_cli("-c", str(config), "status")
    # The AGE and WRITTEN BY columns say "-" rather than a made-up value.
    assert re.search(
        r"fresh +\d+m \d+s +- +- +HARBOR_SANDBOX_TOWER_ACCESS$", text_status.stdout, re.M
    )
