"""Shared by the watch-mode and metrics tests: configs, the CLI as a process, HTTP, env files."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from dotenv import dotenv_values
from prometheus_client.parser import text_string_to_metric_families

from conftest import CLIENT_ID, CLIENT_SECRET
from harbor_secrets.freshness import RefreshPolicy
from harbor_secrets.record import parse_time
from harbor_secrets.watch import Watcher, WatchPacing
from harbor_testkit.cli_text import issuer_sections
from harbor_testkit.environ import clean_environ

SCOPES = ("service_provider", "tower_access")
# No proxy, whatever the environment says: every server here is on loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


SECRETS = {"HARBOR_CLIENT_SECRET": CLIENT_SECRET}
#: A short-lived policy for in-process loops: 2 s refresh window (so the writer wakes within
#: 0.1 s of a deadline, a standby 0.2 to 0.4 s after it), backoff 0.1 s doubling to 1.6 s.
FAST = WatchPacing(
    refresh=RefreshPolicy(refresh_before=2.0, token_lifetime=4.0),
    max_sleep=20.0,
    min_sleep=0.05,
    backoff_base=0.1,
    backoff_cap=1.6,
    grace=1.0,
)


@contextmanager
def running(watcher: Watcher) -> Iterator[list[int]]:
    """Run the loop in a thread; always stop it. Yields where its exit code will be put."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(watcher.run()), daemon=True)
    thread.start()
    try:
        yield result
    finally:
        watcher.request_stop("test finished")
        thread.join(timeout=15)
        assert not thread.is_alive(), "the watch loop did not stop"


def watch_config(
    issuer_url: str,
    *,
    env_path: str = "harbor.env",
    refresh_before: str = "2s",
    token_lifetime: str = "4s",
    schedule_period: str = "20s",
    total_budget: str = "2s",
    max_attempts: int = 1,
    sink: str | None = None,
) -> str:
    """One environment (sandbox), both scopes, one sink: an env file unless ``sink`` is given."""
    sink_table = sink or f'[sinks.local]\nprovider = "envfile"\npath = "{env_path}"\n'
    return f"""
[refresh]
refresh_before = "{refresh_before}"
token_lifetime = "{token_lifetime}"
schedule_period = "{schedule_period}"

[http]
total_budget = "{total_budget}"
max_attempts = {max_attempts}
read_timeout = "2s"
connect_timeout = "1s"

{issuer_sections(issuer_url, CLIENT_ID)}

{sink_table}
[[targets]]
credentials = "main"
environments = ["sandbox"]
scopes = ["service_provider", "tower_access"]
"""


def cli_environ() -> dict[str, str]:
    return clean_environ({"HARBOR_CLIENT_SECRET": CLIENT_SECRET})


def start_cli(*args: str, cwd: Path, runner: Path | None = None) -> subprocess.Popen[str]:
    """``python -m harbor_secrets ARGS`` (or ``python RUNNER ARGS``) in the background."""
    command = [sys.executable, str(runner)] if runner else [sys.executable, "-m", "harbor_secrets"]
    return subprocess.Popen(
        [*command, *args],
        cwd=cwd,
        env=cli_environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str

    def json(self) -> dict[str, object]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


def http_get(url: str, timeout: float = 5.0) -> Reply:
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return Reply(response.status, response.read(), response.headers["Content-Type"])
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read(), exc.headers["Content-Type"])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def healthz_ok(base_url: str) -> bool:
    try:
        return http_get(base_url + "/healthz", timeout=1).status == 200
    except OSError:
        return False


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Samples:
    """Every sample by (name, sorted labels), parsed with prometheus-client's own parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def sink_labels(scope: str, sink: str = "local") -> dict[str, str]:
    return {"credentials": "main", "environment": "sandbox", "scope": scope, "sink": sink}


@dataclass(frozen=True)
class Stored:
    token: str
    expires_at: datetime


def read_env_file(path: Path) -> dict[str, Stored]:
    """The sandbox tokens in an env file, by scope (missing scopes are left out)."""
    values: Mapping[str, str | None] = dotenv_values(path)
    found = {}
    for scope in SCOPES:
        prefix = f"HARBOR_SANDBOX_{scope.upper()}"
        token, expires = values.get(prefix + "_ACCESS_TOKEN"), values.get(prefix + "_EXPIRES_AT")
        if token and expires:
            found[scope] = Stored(token, parse_time(expires))
    return found
