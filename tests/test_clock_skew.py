"""A writer whose clock is wrong must never send the store backwards.

The review found (fix package B, item 1): the freshness policy judged a stored record by
this host's clock alone, so a host 10 minutes behind saw a correct record as issued in the
future, called it implausible and replaced it with one whose expiry (its clock + 300 s)
readers with a right clock saw as expired five minutes ago. With a replica 10 minutes ahead
too, the two fought: two token requests a cycle, and no reader found a live token.

The issuer is the arbiter now: a token response whose ``Date`` disagrees with this host's
clock by more than the allowance times the record by the issuer's clock, and the engine
judges stored records by the issuer's time from then on, so a skewed host neither writes a
wrong expiry nor fetches on every cycle. A record written under a clock far *ahead* with no
``Date`` to correct it is still replaced by a right host (tests/test_clock_steps.py).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import CLIENT_SECRET, Result, envfile_config
from harbor_secrets.config import Config, load_config
from harbor_secrets.environments import Environment
from harbor_secrets.errors import IssuerUnavailableError
from harbor_secrets.freshness import CLOCK_ALLOWANCE, IssueTiming, RefreshPolicy
from harbor_secrets.issuer_clock import IssuerClock
from harbor_secrets.record import TokenRecord
from harbor_secrets.runtime import Runtime
from harbor_secrets.secrets import Secret
from harbor_secrets.stand_in_issuer import Fault, StandInIssuer
from harbor_secrets.sync import FRESH, WRITTEN, SyncEngine
from harbor_secrets.token_client import ClientCredentials, RetryPolicy, TokenClient
from harbor_testkit.clock import FakeTime, clocked_token_clients
from harbor_testkit.fleet import Event, Fleet

Run = Callable[..., Result]
POLICY = RefreshPolicy()  # 300 s tokens, refresh_before 150 s, schedule_period 60 s
TEN_MINUTES = 600.0
T = datetime(2026, 1, 1, 12, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


# -- the rule: which clock times a new record ------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "received", "date", "issued", "skew"),
    [
        (0.4, 0.6, None, 0.4, None),  # no Date: this host's clock, as always
        (0.4, 0.6, 0.0, 0.4, 0.0),  # agreeing (Date is truncated to the second)
        (0.4, 0.6, -CLOCK_ALLOWANCE + 0.4, 0.4, 0.0),  # behind, but within the allowance
        (0.4, 40.6, 20.0, 0.4, 0.0),  # a slow answer: its 40 s are allowed for
        (0.4, 0.6, 600.0, 600.0, 600.6),  # this host 10 minutes behind
        (0.4, 0.6, -600.0, -600.0, -599.4),  # this host 10 minutes ahead
        (0.4, 0.6, 31.0, 31.0, 31.6),  # just beyond the allowance
    ],
)
def test_the_issuers_date_times_a_record_when_this_hosts_clock_disagrees(
    sent: float, received: float, date: float | None, issued: float, skew: float | None
) -> None:
    timing = RefreshPolicy.time_issue(at(sent), at(received), None if date is None else at(date))
    assert timing.issued_at == at(issued)
    assert timing.skew == (None if skew is None else pytest.approx(skew))


def test_an_answer_without_a_date_is_timed_by_the_skew_its_issuer_measured_before() -> None:
    """An issuer that sent a Date once and none now (a proxy in between on some answers):
    its records are still timed by the corrected clock. Another issuer that never sent a
    usable one is believed to agree with this host: no skew is borrowed across issuers (a
    wrong Date in front of one must not move another's records)."""
    clock = IssuerClock(lambda: T)
    issuer, other = "https://with-date.example", "https://without-date.example"
    clock.learn(IssueTiming(T, 600.0), issuer=issuer)
    timing = RefreshPolicy.time_issue(at(0.4), at(0.6), None, known_skew=clock.skew(issuer))
    assert timing == IssueTiming(at(600.4), None)
    clock.learn(timing, issuer=issuer)
    assert clock.skew(issuer) == 600.0
    assert clock.now(issuer) == at(600)
    assert clock.skew(other) == 0.0
    assert clock.now(other) == T
    assert clock.to_local(at(900), issuer) == at(300)  # an expiry by the issuer's clock


def test_the_corrected_time_is_never_earlier_than_the_issuers() -> None:
    """Date is truncated and the answer takes time: the skew is an upper bound, so the
    corrected clock may run late (tokens fall due early), never early."""
    for sent_fraction in (0.0, 0.3, 0.99):
        for answer_took in (0.0, 0.5, 2.0):
            issuer_now = at(1000 + sent_fraction)  # issuer's time when the request was sent
            stamped = at(1000 + sent_fraction + answer_took / 2).replace(microsecond=0)
            local_sent = issuer_now - timedelta(seconds=TEN_MINUTES)
            local_received = local_sent + timedelta(seconds=answer_took)
            timing = RefreshPolicy.time_issue(local_sent, local_received, stamped)
            clock = IssuerClock(lambda: local_sent)  # noqa: B023 - used right here
            clock.learn(timing, issuer="https://issuer.example")
            late = (clock.now("https://issuer.example") - issuer_now).total_seconds()
            assert 0 <= late <= answer_took + 1, (sent_fraction, answer_took, late)
            assert timing.issued_at <= issuer_now + timedelta(seconds=answer_took)


def test_a_skew_is_warned_about_once_per_change(caplog: pytest.LogCaptureFixture) -> None:
    clock = IssuerClock(lambda: T)
    url = "https://accounts.sandbox.harborlockers.com/realms/harbor/protocol/openid-connect/token"
    with caplog.at_level(logging.INFO, logger="harbor_secrets.issuer_clock"):
        clock.learn(IssueTiming(T, 600.4), issuer=url)
        clock.learn(IssueTiming(T, 601.2), issuer=url)  # the same skew, measured again
        assert clock.now(url) == T + timedelta(seconds=601.2)
        clock.learn(IssueTiming(T), issuer=url)  # fixed
        assert clock.now(url) == T
        clock.learn(IssueTiming(T, -600.0), issuer=url)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3, messages
    assert messages[0].startswith(
        "this host's clock and the issuer's (the Date header of "
        "accounts.sandbox.harborlockers.com) disagree by 600 s: this host is behind it, or "
        "the issuer's side (a proxy) sends a wrong Date"
    )
    assert "chronyc tracking, timedatectl" in messages[0]
    assert "agrees with the issuer's" in messages[1]
    assert "disagree by 600 s: this host is ahead of it" in messages[2]


# -- replicas with wrong clocks on one store, in simulated time (the real watch loop) ---------


@pytest.fixture(scope="module")
def right_clocks() -> int:
    """Token requests of two replicas with right clocks over the simulated span."""
    return Fleet(2, seed=16).run(86_400 / 4).requests


@pytest.mark.parametrize("skews", [(-TEN_MINUTES, TEN_MINUTES), (0.0, -TEN_MINUTES, TEN_MINUTES)])
def test_replicas_whose_clocks_are_ten_minutes_off_keep_the_store_going_forwards(
    skews: tuple[float, ...], right_clocks: int
) -> None:
    fleet = Fleet(len(skews), seed=16, skews=skews).run(86_400 / 4)
    assert not fleet.went_backwards
    # Readers with a right clock always find what the policy promises a watch fleet.
    assert fleet.least_left >= POLICY.reader_floor(watching=True)
    # Each skewed replica learns its clock from its first token response (at most one
    # extra request per token, 2 tokens here); after that, turns as usual.
    assert fleet.requests <= right_clocks + 2 * 2, (fleet.requests, right_clocks)


def test_a_skewed_replica_restarted_relearns_its_clock_at_the_cost_of_a_request() -> None:
    """A new process does not know its clock is wrong until Harbor answers: each restart of
    a skewed replica may cost one token request per token, never a step backwards."""
    restarts = [Event(at, kind, 0) for at in range(3_000, 20_000, 3_000) for kind in ("kill",)]
    restarts += [Event(at + 60, "start", 0) for at in range(3_000, 20_000, 3_000)]
    plain = Fleet(2, seed=5).run(21_600, restarts).requests
    fleet = Fleet(2, seed=5, skews=(-TEN_MINUTES, TEN_MINUTES)).run(21_600, restarts)
    assert not fleet.went_backwards
    assert fleet.least_left >= POLICY.reader_floor(watching=True)
    assert fleet.requests <= plain + 2 * (len(restarts) // 2 + 2), (fleet.requests, plain)


# -- over HTTP: the stand-in issuer's real Date header, the real token client -----------------

ENVIRON = {"HARBOR_CLIENT_SECRET": CLIENT_SECRET}
KEYS = ("sandbox/service_provider", "sandbox/tower_access")


class Host:
    """One refresher, with its own clock (``skew`` seconds off) for everything it stamps."""

    def __init__(self, config: Config, skew: float, stack: ExitStack) -> None:
        self.skew = timedelta(seconds=skew)
        self.config = config
        self.stack = stack
        self.engine = self.new_engine()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.skew

    def new_engine(self) -> SyncEngine:
        """A process of its own: what a scheduled (one-shot) run is."""
        runtime = self.stack.enter_context(Runtime(self.config, environ=ENVIRON))
        engine = SyncEngine(runtime, client_factory=clocked_token_clients(self.now), now=self.now)
        self.stack.callback(engine.close)
        return engine


@pytest.fixture
def files_config(tmp_path: Path, issuer: StandInIssuer) -> Path:
    (tmp_path / "tokens").mkdir()
    text = envfile_config(issuer.url, environments='["sandbox"]').replace(
        'provider = "envfile"\npath = "harbor.env"', 'provider = "files"\ndirectory = "tokens"'
    )
    path = tmp_path / "harbor.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def hosts(files_config: Path) -> Iterator[dict[str, Host]]:
    config = load_config(files_config, environ=ENVIRON)
    with ExitStack() as stack:
        yield {
            "right": Host(config, 0.0, stack),
            "behind": Host(config, -TEN_MINUTES, stack),
            "ahead": Host(config, TEN_MINUTES, stack),
        }


def stored(host: Host) -> dict[str, TokenRecord]:
    provider = host.engine.runtime.sinks["local"].provider
    records = {key: provider.read(key) for key in KEYS}
    assert all(record is not None for record in records.values()), records
    return {key: record for key, record in records.items() if record is not None}


def test_hosts_ten_minutes_off_over_http_never_send_the_store_backwards(
    hosts: dict[str, Host],
    issuer: StandInIssuer,
    files_config: Path,
    run_cli: Run,
    caplog: pytest.LogCaptureFixture,
) -> None:
    right, behind, ahead = hosts["right"], hosts["behind"], hosts["ahead"]
    assert right.engine.run(force=True).count(WRITTEN) == 2
    latest = stored(right)

    def check(after: str) -> None:
        """The stored expiry never decreases; a reader with a right clock finds it live."""
        nonlocal latest
        now = stored(right)
        for key, record in now.items():
            assert record.expires_at >= latest[key].expires_at, (after, key)
            verdict = POLICY.for_reader(record, datetime.now(UTC), min_remaining=30)
            assert verdict.usable, (after, key, verdict)
        latest = now

    with caplog.at_level(logging.WARNING, logger="harbor_secrets.issuer_clock"):
        for round_ in range(3):  # watch mode: the same process, cycle after cycle
            report = behind.engine.run()
            # The run that learned the clock does not report the correction as its length.
            assert report.to_dict()["duration_seconds"] < 60
            check(f"behind, round {round_}")
            ahead.engine.run()
            check(f"ahead, round {round_}")
    # Two requests for the right host's write, and at most one per token for each skewed
    # host to learn its clock (its jobs run at once: one that reads after another learned
    # finds its token fresh already); after that, both find the tokens fresh by Harbor's time.
    assert 2 + 1 + 1 <= issuer.token_requests <= 2 + 2 + 2
    # Named once per host, within a second or two (Date's truncation and the request).
    named = re.findall(r"disagree by (\d+) s: this host is (behind|ahead of) it", caplog.text)
    assert sorted(direction for _, direction in named) == ["ahead of", "behind"], caplog.text
    assert all(abs(int(seconds) - TEN_MINUTES) <= 3 for seconds, _ in named), named

    # Scheduled runs: every run is a new process that learns its clock again. Bounded by
    # the schedule (at most one request per token and run), and never a step backwards.
    for _ in range(2):
        for host in (behind, ahead):
            before = issuer.token_requests
            report = host.new_engine().run()
            check(f"a scheduled run, {host.skew}")
            assert issuer.token_requests - before <= 2
            # What its wrong clock called implausible (behind) or expired (ahead) is fresh
            # by Harbor's: not rewritten, and said to expire as Harbor's clock has it.
            actions = {sink.action for job in report.results for sink in job.sinks}
            assert actions == {FRESH}, report.to_dict()
            left = [
                sink["expires_in_seconds"]
                for job in report.to_dict()["jobs"]
                for sink in job["sinks"]
            ]
            assert all(0 < seconds <= 300 for seconds in left), left

    # Readers with a right clock, as real processes.
    status = run_cli("-c", str(files_config), "status", "-o", "json")
    assert status.code == 0, status.output
    assert {row["state"] for row in json.loads(status.stdout)["tokens"]} == {"fresh"}
    got = run_cli("-c", str(files_config), "get", "-e", "sandbox")
    assert got.code == 0, got.output
    assert got.stdout.strip() in issuer.issued


def test_the_token_command_prints_the_expiry_by_the_issuers_clock(issuer: StandInIssuer) -> None:
    behind = datetime.now(UTC) - timedelta(seconds=TEN_MINUTES)
    client = TokenClient(
        Environment("sandbox", issuer.url, issuer.url),
        ClientCredentials("harbor-test-client", Secret(CLIENT_SECRET)),
        wall_clock=lambda: behind,
    )
    with client:
        token = client.fetch("service_provider")
    assert token.issuer_date is not None
    assert token.expires_at == token.issuer_date + timedelta(seconds=300)
    assert token.timing.skew == pytest.approx(TEN_MINUTES, abs=2)


def test_a_retry_after_date_is_read_by_the_issuers_clock() -> None:
    """An issuer whose clock runs 10 minutes ahead of this host's asks to retry in 3 s as
    an HTTP-date: measured against its own Date that is 3 s, not 10 minutes (which used to
    exceed the budget and give up at once)."""
    ahead = 600.0
    fake = FakeTime()
    with StandInIssuer(
        {"svc": "retry-secret-0a1b2c"}, clock=lambda: datetime.now(UTC).timestamp() + ahead
    ) as issuer:
        issuer.inject(
            Fault.retry_after(503, datetime.now(UTC) + timedelta(seconds=ahead + 3)),
        )
        client = TokenClient(
            Environment("sandbox", issuer.url, issuer.url),
            ClientCredentials("svc", Secret("retry-secret-0a1b2c")),
            retry=RetryPolicy(total_budget=30),
            sleep=fake.sleep,
            clock=fake.clock,
        )
        with client:
            try:
                client.fetch("service_provider")
            except IssuerUnavailableError as exc:  # the old reading: 603 s, over budget
                pytest.fail(f"gave up instead of waiting 3 s: {exc}")
    [delay] = fake.slept
    assert 1.0 < delay <= 4.0  # HTTP-dates have whole seconds


def test_a_host_off_by_about_the_allowance_does_not_flip_with_every_answer() -> None:
    """Date is truncated to the second, so a host 30.5 s behind measures a little more or a
    little less than the allowance from one answer to the next. Once a skew is known it is
    kept until the clocks agree within half the allowance (a clock that was fixed)."""
    skew = 0.0
    skews = []
    for date in (30.0, 31.0, 30.0, 31.0, 30.0):  # Dates of answers sent at 0.4 s, back at 0.6 s
        timing = RefreshPolicy.time_issue(at(0.4), at(0.6), at(date), known_skew=skew)
        assert timing.skew is not None
        skew = timing.skew
        skews.append(skew)
    assert skews[0] == 0.0  # first answer: within the allowance, this host is believed
    assert all(measured > CLOCK_ALLOWANCE - 1 for measured in skews[1:]), skews
    fixed = RefreshPolicy.time_issue(at(0.4), at(0.6), at(0.0), known_skew=skew)
    assert fixed.skew == 0.0
    assert fixed.issued_at == at(0.4)
