"""Fixtures for the reliability suite: real servers, the scenario lab, and the report hook.

The stand-in issuer, ``CLIENT_ID`` and the ``CLIENT_SECRET`` canary come from the core's
tests/conftest.py. OpenBao and moto_server are started once per session on free loopback
ports; if either cannot start, every test that needs it fails (never skips).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from conftest import CLIENT_ID, CLIENT_SECRET
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_testkit.canaries import Canaries
from harbor_testkit.servers import Bao

from . import report as reliability
from .servers import REGION, Moto, start_bao, start_moto
from .support import Lab


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    server = start_bao(tmp_path_factory.mktemp("bao"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


@pytest.fixture(scope="session")
def ssm_client(moto: Moto) -> Any:
    """A plain SSM client on moto, to seed and inspect parameters directly."""
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    return session.client("ssm", endpoint_url=moto.url)


@pytest.fixture
def canaries() -> Canaries:
    found = Canaries()
    found.add("client secret", CLIENT_SECRET)
    return found


@pytest.fixture
def lab(tmp_path: Path, issuer: StandInIssuer, canaries: Canaries) -> Iterator[Lab]:
    """The scenario lab; the shared ``issuer`` fixture is watched, and ``lab.issuer()``
    starts more (one per concurrently running variant)."""
    with contextlib.ExitStack() as stack:
        lab = Lab(
            tmp_path,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            canaries=canaries,
            log=reliability.RESULTS,
            stack=stack,
        )
        lab.watch(issuer)
        yield lab


@pytest.fixture
def reliability_log() -> reliability.ReliabilityLog:
    return reliability.RESULTS


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count outcomes of this suite's tests for the document's summary line."""
    if "tests/reliability/" not in report.nodeid.replace(os.sep, "/"):
        return
    if hasattr(report, "wasxfail"):
        outcome = "xfailed (known bugs)" if report.skipped else "xpassed"
    elif report.when == "call":
        outcome = report.outcome
    elif report.failed:
        outcome = "errors"
    else:
        return
    reliability.RESULTS.outcomes[outcome] += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write docs/RELIABILITY.md, but only when asked to (``make reliability``)."""
    results = reliability.RESULTS
    if os.environ.get(reliability.WRITE_ENV) == "1" and (
        results.rows or results.overlap or results.failover
    ):
        path = reliability.write(results)
        print(f"\nreliability report written to {path}")
