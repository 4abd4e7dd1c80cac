"""A wrong ``Date`` from the issuer's side must not cost readers their token.

The issuer's ``Date`` times a record when this host's clock disagrees with it
(tests/test_clock_skew.py). A review of that change found the ``Date`` itself trusted
without limit: an issuer (or a proxy in front of it) whose clock says 1970, runs 10 minutes
behind, or says year 9999 made a host with a right clock replace a good stored token with
one readers found expired, or crashed the run; and one skew shared by every issuer made two
environments whose issuers disagree look wrong to each other, so watch mode fetched both on
every cycle. Now a ``Date`` outside any clock anyone runs times nothing, a record plausible
by this host's own clock keeps the never-go-backwards rule, and each issuer's skew is its own.

What no refresher can fix: an issuer whose clock really runs behind issues tokens that
expire by its clock. Here the good token is kept (never backwards) while the bad issuer
answers; once it expires, what that issuer grants is expired for right-clock readers too
(README, "Clocks"). The test checks the moment the stored token falls due.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from harbor_secrets.config import Config, load_config
from harbor_secrets.freshness import RefreshPolicy
from harbor_secrets.registry import Registry
from harbor_secrets.runtime import Runtime
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_secrets.sync import KEPT_NEWER, WRITTEN, SyncEngine
from harbor_secrets.testing.memory import MemoryProvider, MemoryStore
from harbor_secrets.watch import Watcher
from harbor_testkit.clock import clocked_token_clients

SECRET = "issuer-date-canary-secret-5d1e"
ENVIRON = {"SECRET": SECRET}
POLICY = RefreshPolicy()
#: The bad run comes this long after the good write: the stored token is due by then.
LATER = 200.0
KEY = "harbor/sandbox/service_provider"

ONE_ISSUER = """
[environments.sandbox]
accounts_url = "{url}"
api_url = "{url}"
[credentials.main]
client_id = "svc"
client_secret = "env:SECRET"
[sinks.a]
provider = "memory"
name = "{name}"
[[targets]]
environments = ["sandbox"]
scopes = ["service_provider"]
"""


def at(seconds: float) -> datetime:
    return datetime(2026, 6, 1, tzinfo=UTC) + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "date", [datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)]
)
def test_a_date_no_clock_runs_at_times_nothing_and_measures_no_skew(date: datetime) -> None:
    timing = RefreshPolicy.time_issue(at(0.4), at(0.6), date, known_skew=12.0)
    assert timing.issued_at == at(12.4)  # the send time, corrected as before
    assert timing.skew is None


def runtime(config: Config) -> Runtime:
    return Runtime(config, registry=Registry(extra={"memory": MemoryProvider}), environ=ENVIRON)


def engine(config: Config, now: Callable[[], datetime]) -> SyncEngine:
    return SyncEngine(runtime(config), client_factory=clocked_token_clients(now), now=now)


@pytest.mark.parametrize(
    ("label", "issuer_clock"),
    [
        ("1970: a box without a real-time clock", lambda: 0.0),
        ("10 minutes behind", lambda: time.time() + LATER - 600),
        ("year 9999", lambda: 253402300799.0),
    ],
)
def test_a_wrong_issuer_date_never_sends_the_store_backwards(
    label: str, issuer_clock: Callable[[], float], caplog: pytest.LogCaptureFixture
) -> None:
    """Every host's clock is right; the issuer's Date is wrong when the token falls due."""
    name = f"issuer-date-{abs(hash(label))}"
    good, bad = StandInIssuer({"svc": SECRET}), StandInIssuer({"svc": SECRET}, clock=issuer_clock)
    with good, bad:
        first = engine(load_config(text=ONE_ISSUER.format(url=good.url, name=name)), _now)
        assert first.run(force=True).exit_code == 0
        before = MemoryStore.get(name).records()[KEY]

        later = engine(load_config(text=ONE_ISSUER.format(url=bad.url, name=name)), _later)
        with caplog.at_level(logging.DEBUG):
            report = later.run()  # the stored token is due: it asks the bad issuer
        for each in (first, later):
            each.close()
            each.runtime.close()
    (result,) = [sink for job in report.results for sink in job.sinks]
    assert result.action in (WRITTEN, KEPT_NEWER), (label, result)
    after = MemoryStore.get(name).records()[KEY]
    assert after.expires_at >= before.expires_at, label
    verdict = POLICY.for_reader(after, _later(), min_remaining=30)
    assert verdict.usable, (label, verdict)
    assert SECRET not in caplog.text


def _now() -> datetime:
    return datetime.now(UTC)


def _later() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=LATER)


TWO_ISSUERS = """
[environments.production]
accounts_url = "{production}"
api_url = "{production}"
[environments.sandbox]
accounts_url = "{sandbox}"
api_url = "{sandbox}"
[credentials.main]
client_id = "svc"
client_secret = "env:SECRET"
[sinks.a]
provider = "memory"
name = "two-issuers"
[[targets]]
environments = ["production", "sandbox"]
scopes = ["service_provider"]
"""


@pytest.mark.parametrize("sandbox_behind", [60.0, 140.0, 600.0])
def test_issuers_whose_clocks_disagree_do_not_make_each_other_fetch(
    sandbox_behind: float, caplog: pytest.LogCaptureFixture
) -> None:
    """Production's issuer is right, sandbox's runs behind: watch mode, one process, ten
    simulated minutes. Each token is refreshed once per (300 − refresh_before) s as with
    agreeing clocks, and neither environment's records are called implausible."""
    start = datetime.now(UTC).replace(microsecond=0)
    elapsed = [0.0]

    def host_now() -> datetime:
        return start + timedelta(seconds=elapsed[0])

    production = StandInIssuer({"svc": SECRET}, clock=lambda: host_now().timestamp())
    sandbox = StandInIssuer({"svc": SECRET}, clock=lambda: host_now().timestamp() - sandbox_behind)
    with production, sandbox, caplog.at_level(logging.WARNING):
        config = load_config(
            text=TWO_ISSUERS.format(production=production.url, sandbox=sandbox.url)
        )
        watcher = Watcher(
            runtime(config),
            client_factory=clocked_token_clients(host_now),
            now=host_now,
            uniform=lambda low, high: low,
        )
        least_left = float("inf")
        while elapsed[0] < 600:
            for record in MemoryStore.get("two-issuers").records().values():
                issuer_now = host_now() - timedelta(
                    seconds=sandbox_behind if record.environment == "sandbox" else 0
                )
                least_left = min(least_left, (record.expires_at - issuer_now).total_seconds())
            cycle = watcher.run_cycle()
            assert cycle.error is None
            elapsed[0] += cycle.delay
        watcher.engine.close()
        watcher.engine.runtime.close()
    # One at the start, then one per 150 s: 5 in 600 s, as with agreeing clocks.
    assert production.token_requests <= 5, production.token_requests
    assert sandbox.token_requests <= 5, sandbox.token_requests
    assert "written under a clock that was wrong" not in caplog.text
    # Every token, by its own issuer's clock, is rewritten with the watch floor left.
    assert least_left >= POLICY.reader_floor(watching=True), least_left


@pytest.mark.parametrize("production_off", [-600.0, 600.0])
def test_one_issuers_wrong_date_does_not_move_another_issuers_records(
    production_off: float,
) -> None:
    """Production's issuer (behind a proxy) sends a Date 10 minutes off; sandbox's sends one
    no clock runs at (ignored, as if it sent none). This host's clock is right: sandbox's
    records are timed by it, whatever production's Date says, and stay usable."""
    start = datetime.now(UTC).replace(microsecond=0)
    elapsed = [0.0]

    def host_now() -> datetime:
        return start + timedelta(seconds=elapsed[0])

    production = StandInIssuer(
        {"svc": SECRET}, clock=lambda: host_now().timestamp() + production_off
    )
    sandbox = StandInIssuer({"svc": SECRET}, clock=lambda: 0.0)
    with production, sandbox:
        config = load_config(
            text=TWO_ISSUERS.format(production=production.url, sandbox=sandbox.url)
        )
        one_process = engine(config, host_now)
        try:
            while elapsed[0] <= 900:
                assert one_process.run().exit_code == 0
                stored = MemoryStore.get("two-issuers").records()[KEY]
                verdict = POLICY.for_reader(stored, host_now(), min_remaining=30)
                assert verdict.usable, (elapsed[0], verdict)
                elapsed[0] += 100
        finally:
            one_process.close()
            one_process.runtime.close()
