"""Issuer faults, end to end through the real CLI: what the token endpoint (or the network in
front of it) does wrong, and what the run and the env file look like afterwards.

Each case seeds the env file with a previous good token, injects the fault (queued in the
stand-in issuer, or set on the fault proxy in front of it), runs ``sync --force`` under three
verbosity variants, and checks exit code, store, request count, time and canaries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Literal

import pytest

from conftest import CLIENT_ID, CLIENT_SECRET
from harbor_secrets.stand_in_issuer import OMIT, Fault, StandInIssuer
from harbor_testkit.proxy import FaultProxy, ProxyFault
from harbor_testkit.servers import free_port

from .support import (
    HTTP_BUDGET,
    VARIANTS,
    Attempt,
    Case,
    EnvFileStore,
    Expectation,
    Lab,
    Run,
    Workspace,
    in_parallel,
)

ISSUER = "issuer"
PROXY = "issuer via proxy"
KEPT: dict[str, Expectation] = {"local": "kept"}
NEW: dict[str, Expectation] = {"local": "new"}
# Full-jitter backoff before retry n is at most 0.5 * 2**n s, so with a 3 s budget two
# retries always fit (<= 1.5 s of waiting) and a third may not (<= 3.5 s).


@dataclass
class Rig:
    issuer: StandInIssuer
    proxy: FaultProxy
    decoy: StandInIssuer  # a second issuer a redirect points at: it must receive nothing
    not_before: float | None = None  # wall-clock time a retry may not come before


@dataclass(frozen=True)
class IssuerCase:
    case: Case
    arm: Callable[[Rig], None]
    route: Literal["direct", "proxy", "closed"] = "direct"
    count: Literal["issuer", "proxy"] = "issuer"
    wrong_secret: bool = False


def _fail(
    name: str,
    fault: str,
    arm: Callable[[Rig], None],
    requests: tuple[int, int] = (1, 1),
    **kwargs: object,
) -> IssuerCase:
    case = Case(name, ISSUER, fault, 1, KEPT, requests, HTTP_BUDGET)
    return IssuerCase(case, arm, **kwargs)  # type: ignore[arg-type]


def _ok(
    name: str,
    fault: str,
    arm: Callable[[Rig], None],
    requests: tuple[int, int] = (1, 1),
    min_elapsed: float = 0.0,
) -> IssuerCase:
    case = Case(name, ISSUER, fault, 0, NEW, requests, HTTP_BUDGET, min_elapsed)
    return IssuerCase(case, arm)


def _inject(*faults: Fault) -> Callable[[Rig], None]:
    return lambda rig: rig.issuer.inject(*faults)


def _http_date_in(seconds: int) -> Callable[[Rig], None]:
    def arm(rig: Rig) -> None:
        when = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)
        rig.issuer.inject(Fault.retry_after(429, when))
        rig.not_before = when.timestamp()  # the run can only succeed after the date

    return arm


def _redirect(rig: Rig) -> None:
    rig.issuer.inject(Fault.redirect(rig.decoy.token_url))


def _proxy(
    name: str,
    fault: str,
    exit_code: int,
    arm: Callable[[FaultProxy], None],
    requests: tuple[int, int],
    min_elapsed: float = 0.0,
    bug: str | None = None,
) -> IssuerCase:
    stores = NEW if exit_code == 0 else KEPT
    case = Case(name, PROXY, fault, exit_code, stores, requests, HTTP_BUDGET, min_elapsed, bug)
    return IssuerCase(case, lambda rig: arm(rig.proxy), route="proxy", count="proxy")


CASES = [
    _ok("baseline: no fault", "none", lambda rig: None),
    # Rate limiting and outages: retried within the budget, Retry-After honoured.
    _ok(
        "429 Retry-After seconds, then success",
        "429 with Retry-After: 1",
        _inject(Fault.retry_after(429, 1)),
        requests=(2, 2),
        min_elapsed=1.0,
    ),
    _ok(
        "429 Retry-After HTTP-date, then success",
        "429 with Retry-After: <HTTP-date 2 s ahead>",
        _http_date_in(2),
        requests=(2, 2),
        min_elapsed=0.5,
    ),
    IssuerCase(
        Case(
            "429 with a malformed Retry-After, then success",
            ISSUER,
            "429 with Retry-After: ² (unparseable: fall back to backoff)",
            0,
            NEW,
            (2, 2),
            HTTP_BUDGET,
        ),
        _inject(Fault(status=429, body="", headers={"Retry-After": "\u00b2"})),
    ),
    _fail(
        "429 Retry-After beyond the budget",
        "429 with Retry-After: 30 (budget 3 s): give up at once",
        _inject(Fault.retry_after(429, 30)),
    ),
    _ok(
        "5xx burst, then success",
        "503, 502, then a normal answer",
        _inject(Fault(status=503, body=""), Fault(status=502, body="")),
        requests=(3, 3),
    ),
    _fail(
        "5xx outlasting the retries",
        "504 on every request",
        _inject(*[Fault(status=504, body="")] * 8),
        requests=(3, 4),
    ),
    _fail("500 is not retried", "500 with a JSON error body", _inject(Fault.error(500, "x"))),
    _ok("HTML 502 page, then success", "nginx HTML 502 page", _inject(Fault.html(502)), (2, 2)),
    _fail("HTML 200 page", "HTML body with status 200", _inject(Fault.html(200))),
    _fail(
        "truncated JSON body",
        'status 200, body {"access_token": "ey… cut off',
        _inject(Fault(status=200, body='{"access_token": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIi')),
    ),
    _fail(
        "body shorter than Content-Length",
        "normal answer, connection closed 64 bytes early",
        _inject(Fault.truncated()),
    ),
    _ok(
        "expires_in missing",
        "success without expires_in (300 s assumed, warned)",
        _inject(Fault.token(expires_in=OMIT)),
    ),
    _fail("expires_in 0", "expires_in: 0", _inject(Fault.token(expires_in=0))),
    _fail("expires_in negative", "expires_in: -300", _inject(Fault.token(expires_in=-300))),
    _fail("expires_in huge", "expires_in: 10^10", _inject(Fault.token(expires_in=10**10))),
    _ok(
        "expires_in numeric string",
        'expires_in: "300" (accepted as 300)',
        _inject(Fault.token(expires_in="300")),
    ),
    _fail(
        "expires_in non-numeric string",
        'expires_in: "five minutes"',
        _inject(Fault.token(expires_in="five minutes")),
    ),
    _fail("empty access_token", 'access_token: ""', _inject(Fault.token(access_token=""))),
    _fail("307 redirect", "307 to another issuer (which must see nothing)", _redirect),
    _fail(
        "scope not granted",
        'success whose scope is "profile email"',
        _inject(Fault.token(scope="profile email")),
    ),
    _fail(
        "400 invalid_client",
        "400 invalid_client",
        _inject(Fault.error(400, "invalid_client", "Invalid client or Invalid client credentials")),
    ),
    _fail(
        "401 invalid_client",
        "401 invalid_client",
        _inject(Fault.error(401, "invalid_client", "Invalid client or Invalid client credentials")),
    ),
    _fail(
        "400 unauthorized_client",
        "400 unauthorized_client",
        _inject(Fault.error(400, "unauthorized_client", "Client not allowed")),
    ),
    _fail(
        "401 unauthorized_client",
        "401 unauthorized_client",
        _inject(Fault.error(401, "unauthorized_client", "Client not allowed")),
    ),
    _fail(
        "wrong client secret",
        "the issuer's own 401 for a wrong secret (another canary)",
        lambda rig: None,
        wrong_secret=True,
    ),
    _fail(
        "error description echoes the secret",
        "400 invalid_request whose description quotes the client secret",
        _inject(Fault.error(400, "invalid_request", f"bad form: client_secret={CLIENT_SECRET}")),
    ),
    _fail(
        "redirect URL carries the secret",
        "307 whose Location quotes the client secret",
        _inject(Fault.redirect(f"https://elsewhere.example/token?client_secret={CLIENT_SECRET}")),
    ),
    _fail(
        "404 realm",
        '404 {"error": "Realm does not exist"}',
        _inject(Fault(status=404, body='{"error":"Realm does not exist"}')),
    ),
    _ok(
        "reset by the issuer, then success",
        "TCP reset instead of an answer, once",
        _inject(Fault.connection_reset()),
        requests=(2, 2),
    ),
    _ok(
        "slow answer past the read timeout, then success",
        "first answer 1.5 s late (read timeout 1 s)",
        _inject(Fault.slow(1.5)),
        requests=(2, 2),
        min_elapsed=1.0,
    ),
    _fail(
        "issuer down",
        "connection refused on every attempt",
        lambda rig: None,
        requests=(0, 0),
        route="closed",
    ),
    # The network between the tool and the issuer, through the fault proxy.
    _proxy(
        "added latency",
        "0.4 s added to every request",
        0,
        lambda p: p.set_fault(ProxyFault.latency(0.4)),
        (1, 1),
        min_elapsed=0.4,
    ),
    _proxy(
        "connection resets, then success",
        "RST on the first two requests",
        0,
        lambda p: p.inject(ProxyFault.reset(), ProxyFault.reset()),
        (3, 3),
    ),
    _proxy(
        "connection resets throughout",
        "RST on every request",
        1,
        lambda p: p.set_fault(ProxyFault.reset()),
        (3, 4),
    ),
    _proxy(
        "stall past the read timeout, then success",
        "first request never answered",
        0,
        lambda p: p.inject(ProxyFault.stall()),
        (2, 2),
        min_elapsed=1.0,
    ),
    _proxy(
        "stalls throughout",
        "no request ever answered",
        1,
        lambda p: p.set_fault(ProxyFault.stall()),
        (2, 3),
        min_elapsed=2.0,
    ),
    _proxy(
        "response cut inside the headers, then success",
        "connection closed after 20 bytes (mid-headers), once",
        0,
        lambda p: p.inject(ProxyFault.truncate(20)),
        (2, 2),
    ),
    _proxy(
        "response cut inside the body",
        "connection closed after 400 bytes (headers complete), once",
        1,
        lambda p: p.inject(ProxyFault.truncate(400)),
        (1, 1),
    ),
]


@pytest.fixture
def decoy() -> Iterator[StandInIssuer]:
    with StandInIssuer(clients={CLIENT_ID: "decoy-secret-never-sent"}) as server:
        yield server


@dataclass
class Prepared:
    variant: str
    rig: Rig
    ws: Workspace
    environ: dict[str, str]
    before: int

    def count(self, item: IssuerCase) -> int:
        if item.count == "proxy":
            return self.rig.proxy.requests
        return self.rig.issuer.token_requests


@pytest.mark.parametrize("item", CASES, ids=[c.case.id for c in CASES])
def test_issuer_fault(item: IssuerCase, lab: Lab, decoy: StandInIssuer) -> None:
    """One scenario, its three variants run at once, each with its own issuer and proxy."""
    prepared = []
    for variant in VARIANTS:
        issuer = lab.issuer()
        proxy = lab.proxy(issuer.url)
        url = {
            "direct": issuer.url,
            "proxy": proxy.url,
            "closed": f"http://127.0.0.1:{free_port()}",
        }[item.route]
        directory = lab.directory()
        ws = lab.workspace([EnvFileStore(directory / "harbor.env")], accounts_url=url)
        environ = {}
        if item.wrong_secret:
            wrong = f"canary-wrong-client-secret-{variant}-5e1f0b7d"
            lab.canaries.add(f"wrong client secret ({variant})", wrong)
            environ["HARBOR_CLIENT_SECRET"] = wrong
        rig = Rig(issuer, proxy, decoy)
        item.arm(rig)
        prepared.append(Prepared(variant, rig, ws, environ, 0))
        prepared[-1].before = prepared[-1].count(item)

    def run(p: Prepared) -> tuple[Run, float]:
        return lab.cli(p.ws, p.variant, environ=p.environ), time.time()

    timed = in_parallel([partial(run, p) for p in prepared])
    runs = [result for result, _ in timed]
    for p, (result, finished) in zip(prepared, timed, strict=True):
        if p.rig.not_before is not None and result.code == 0:
            assert finished >= p.rig.not_before, "retried before the Retry-After date"
    lab.verify(
        item.case,
        [
            Attempt(p.variant, p.ws, run, p.count(item) - p.before)
            for p, run in zip(prepared, runs, strict=True)
        ],
    )
    assert decoy.requests == []  # a redirect is never followed: the secret went nowhere
