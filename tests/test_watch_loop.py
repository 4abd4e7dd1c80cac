"""The watch loop in-process against the real stand-in issuer over loopback HTTP.

In-process so a test can stop the issuer at a chosen moment, hold a write open, and read
every cycle the loop ran; the CLI process around the same loop is tested in
test_watch_cli.py.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import ClassVar, cast

from watch_helpers import (
    FAST,
    SECRETS,
    http_get,
    parse_metrics,
    running,
    sample,
    sink_labels,
    wait_for,
    watch_config,
)

from conftest import CLIENT_ID, CLIENT_SECRET
from harbor_secrets.config import load_config
from harbor_secrets.exposition import registry_for, render
from harbor_secrets.health import StatusServer
from harbor_secrets.provider import WriteOutcome
from harbor_secrets.record import TokenRecord
from harbor_secrets.registry import Registry
from harbor_secrets.runtime import Runtime
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_secrets.sync import FAILED, WRITTEN
from harbor_secrets.testing.memory import MemoryProvider, MemoryStore
from harbor_secrets.watch import Cycle, Watcher


def written(cycle: Cycle) -> int:
    return cycle.report.count(WRITTEN) if cycle.report is not None else 0


def test_backs_off_while_the_issuer_is_down_and_healthz_follows(tmp_path: Path) -> None:
    with StandInIssuer(clients={CLIENT_ID: CLIENT_SECRET}, token_lifetime=4) as issuer:
        text = watch_config(issuer.url, env_path=str(tmp_path / "harbor.env"))
        runtime = Runtime(load_config(text=text, environ={}), environ=SECRETS)
        cycles: list[Cycle] = []
        watcher = Watcher(runtime, pacing=FAST, on_cycle=cycles.append)
        registry = registry_for(watcher.metrics)
        server = StatusServer(
            "127.0.0.1", 0, health=watcher.health, metrics=lambda a: render(registry, a)
        )
        with runtime, server, running(watcher):
            wait_for(lambda: any(written(c) == 2 for c in cycles), 10, "the first writes")
            assert http_get(server.url + "/healthz").status == 200

            issuer.stop()
            wait_for(lambda: any(c.consecutive_failures for c in cycles), 10, "a failed cycle")
            first_failure = next(c for c in cycles if c.consecutive_failures)
            wait_for(lambda: http_get(server.url + "/healthz").status == 503, 5, "503")
            unhealthy = http_get(server.url + "/healthz").json()
            assert unhealthy["status"] == "unhealthy"
            assert "failed entirely" in str(unhealthy["reason"])
            assert sorted(cast(list[str], unhealthy["sinks"])) == [  # which ones, not []
                "main/sandbox/service_provider -> local",
                "main/sandbox/tower_access -> local",
            ]
            time.sleep(max(0.0, first_failure.started + 4.0 - time.monotonic()))

            issuer.start()  # same port: the issuer is back
            back = time.monotonic()
            wait_for(
                lambda: any(c.started > back and written(c) == 2 for c in cycles), 6, "recovery"
            )
            wait_for(lambda: http_get(server.url + "/healthz").status == 200, 5, "200 again")
            scraped = parse_metrics(http_get(server.url + "/metrics").body.decode())

    outage = [c for c in cycles if first_failure.started <= c.started < back]
    starts = [c.started for c in outage]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    print(f"outage: {len(outage)} failed cycles in 4 s, gaps {[round(g, 2) for g in gaps]}")
    # Doubling from 0.1 s to a 1.6 s cap (each delay in the upper half of its window):
    # 6 to 9 attempts fit in 4 s; a loop without backoff (0.05 s floor) would make ~80.
    assert 5 <= len(outage) <= 10, gaps
    assert all(c.consecutive_failures for c in outage)
    assert gaps[0] < 0.5, gaps
    assert gaps[-1] >= 0.75, gaps  # at least half the cap
    recovered = next(c for c in cycles if c.started > back and written(c) == 2)
    assert recovered.started - back < FAST.backoff_cap + 1.5
    # Every failed sink outcome of the outage is counted, with the issuer's reason.
    for scope in ("service_provider", "tower_access"):
        failed = sum(
            1
            for c in outage
            if c.report is not None
            for job in c.report.results
            for sink in job.sinks
            if job.job.scope == scope and sink.action == FAILED
        )
        assert failed == len(outage)
        labels = sink_labels(scope) | {"reason": "issuer-unavailable"}
        assert sample(scraped, "harbor_secrets_failures_total", **labels) == failed


class GatedProvider(MemoryProvider):
    """A memory store whose writes wait at a gate the test opens."""

    name = "gated"
    entered: ClassVar[threading.Event] = threading.Event()
    release: ClassVar[threading.Event] = threading.Event()

    def write(self, key: str, record: TokenRecord) -> WriteOutcome:
        type(self).entered.set()
        assert type(self).release.wait(10), "the test never opened the gate"
        return super().write(key, record)


def test_a_stop_during_a_write_lets_every_write_of_the_cycle_finish() -> None:
    GatedProvider.entered.clear()
    GatedProvider.release.clear()
    sink = '[sinks.local]\nprovider = "gated"\nname = "gated"\n'
    with StandInIssuer(clients={CLIENT_ID: CLIENT_SECRET}, token_lifetime=300) as issuer:
        config = load_config(text=watch_config(issuer.url, sink=sink), environ={})
        runtime = Runtime(
            config, registry=Registry(extra={"gated": GatedProvider}), environ=SECRETS
        )
        cycles: list[Cycle] = []
        watcher = Watcher(runtime, pacing=FAST, on_cycle=cycles.append)
        with runtime, running(watcher) as result:
            assert GatedProvider.entered.wait(10)
            watcher.request_stop("SIGTERM")
            time.sleep(0.3)
            assert result == []  # still inside the write: the stop did not cut it short
            assert MemoryStore.get("gated").records() == {}
            GatedProvider.release.set()
            wait_for(lambda: result == [0], 10, "the loop to exit 0")
    stored = MemoryStore.get("gated").records()
    assert sorted(stored) == ["harbor/sandbox/service_provider", "harbor/sandbox/tower_access"]
    assert {r.access_token.reveal() for r in stored.values()} <= issuer.issued
    assert len(cycles) == 1  # the stop was honoured between cycles: no new cycle started
    assert watcher.stop_reason == "SIGTERM"
