"""The whole job: the core's run_sync (and the CLI) with the stand-in issuer and this sink.

Overlapping runs and writers end with the newest token and never store an older one over a
newer one; every API failure fails this sink alone (exit 1) while the other sink is written;
and at -vv no token, service-account token or Secret value reaches the output.
"""

from __future__ import annotations

import base64
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kube_support import MANAGED, NAMESPACE, SINK, USER, Cluster, MakeProvider, unique

from harbor_secrets import WriteOutcome
from harbor_secrets.config import load_config
from harbor_secrets.registry import Registry
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_secrets.sync import SyncReport, run_sync
from harbor_secrets.testing import MemoryProvider, MemoryStore
from harbor_testkit.cli_text import issuer_sections
from harbor_testkit.kube_apiserver import Fault, Rule
from harbor_testkit.records import make_record

CLIENT_ID = "kubernetes-e2e-client"
CLIENT_SECRET = "canary-kubernetes-client-secret-7d41"
REGISTRY = Registry(extra={"memory": MemoryProvider})


@pytest.fixture
def issuer() -> Iterator[StandInIssuer]:
    with StandInIssuer(clients={CLIENT_ID: CLIENT_SECRET}, token_lifetime=300) as server:
        yield server


def names(prefix: str, scopes: tuple[str, ...]) -> list[str]:
    return [f"{prefix}-sandbox-{scope.replace('_', '-')}" for scope in scopes]


def config_text(
    issuer: StandInIssuer,
    kubeconfig: Path,
    prefix: str,
    *,
    scopes: tuple[str, ...] = ("service_provider",),
    other_sink: str = "",
    cluster_options: str = "",
) -> str:
    scope_list = ", ".join(f'"{scope}"' for scope in scopes)
    other = other_sink or f'[sinks.other]\nprovider = "memory"\nname = "{prefix}"\n'
    return f"""
[refresh]
refresh_before = "210s"

{issuer_sections(issuer.url, CLIENT_ID)}

[sinks.{SINK}]
provider = "kubernetes"
kubeconfig = "{kubeconfig}"
name = "{prefix}-{{environment}}-{{scope}}"
{cluster_options}

{other}

[[targets]]
credentials = "main"
environments = ["sandbox"]
scopes = [{scope_list}]
sinks = ["{SINK}", "other"]
"""


def sync(cluster: Cluster, text: str) -> SyncReport:
    environ = cluster.environ(HARBOR_CLIENT_SECRET=CLIENT_SECRET)
    return run_sync(load_config(text=text, environ=environ), registry=REGISTRY, environ=environ)


def outcome(report: SyncReport, sink: str) -> tuple[str, str]:
    (result,) = report.results
    (chosen,) = [s for s in result.sinks if s.sink == sink]
    return chosen.action, chosen.reason


def precreate(cluster: Cluster, *secret_names: str) -> None:
    for name in secret_names:
        cluster.server.put_secret(NAMESPACE, name, labels=MANAGED)


def content(cluster: Cluster, name: str) -> tuple[Any, ...]:
    """What a reader of the Secret sees: its data, labels and annotations."""
    secret = cluster.server.secret(NAMESPACE, name)
    assert secret is not None
    meta = secret["metadata"]
    return secret.get("data"), meta.get("labels"), meta.get("annotations")


def least_privilege(*secret_names: str) -> Rule:
    return Rule(("get", "update", "patch"), namespace=NAMESPACE, resource_names=secret_names)


# -- overlap ------------------------------------------------------------------------------------


def test_overlapping_runs_leave_the_newest_token(cluster: Cluster, issuer: StandInIssuer) -> None:
    prefix = unique("overlap")
    scopes = ("service_provider", "tower_access")
    secret_names = names(prefix, scopes)
    precreate(cluster, *secret_names)
    cluster.server.set_rules(USER, [least_privilege(*secret_names)])
    text = config_text(issuer, cluster.kubeconfig, prefix, scopes=scopes)
    start = threading.Barrier(6)
    reports: list[SyncReport] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            start.wait(timeout=30)
            reports.append(sync(cluster, text))
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if failures:
        raise failures[0]
    assert [report.exit_code for report in reports] == [0] * 6
    for scope, name in zip(scopes, secret_names, strict=True):
        expiries = [
            r.token_expires_at
            for report in reports
            for r in report.results
            if r.job.scope == scope and r.token_expires_at is not None
        ]
        stored = cluster.stored(name)
        assert stored is not None
        assert stored.expires_at == max(expiries)
        assert stored.access_token.reveal() in issuer.issued
    # The next run finds both fresh: one GET each, nothing fetched, nothing written.
    mark, requests = len(cluster.server.requests), issuer.token_requests
    report = sync(cluster, text)
    assert report.count("written") == 0
    assert issuer.token_requests == requests
    assert sorted(r.method for r in cluster.requests_since(mark)) == ["GET", "GET"]


def test_concurrent_writers_never_store_an_older_token_over_a_newer_one(
    cluster: Cluster, make_kube: MakeProvider
) -> None:
    """Eight writers (one provider each, like eight overlapping runs) write shuffled expiries
    while a watcher samples the Secret: its expiry only ever grows, and ends at the newest."""
    name = unique("monotonic")
    precreate(cluster, name)
    base = make_record(-250).issued_at
    offsets = list(range(1, 41))
    random.Random(11).shuffle(offsets)  # noqa: S311 - an order, not a secret
    batches = [offsets[i::8] for i in range(8)]
    writers = [make_kube(conflict_retries=20) for _ in batches]
    seen: list[datetime] = []
    done = threading.Event()
    failures: list[BaseException] = []

    def watch() -> None:
        while not done.is_set():
            record = cluster.stored(name)
            if record is not None:
                seen.append(record.expires_at)
            time.sleep(0.002)

    def write(provider: Any, batch: list[int]) -> None:
        try:
            for offset in batch:
                provider.read(name)
                record = make_record(offset, issued_at=base)
                outcome = provider.write(name, record)
                stored = cluster.stored(name)
                assert stored is not None
                assert stored.expires_at >= record.expires_at
                assert outcome in (WriteOutcome.WRITTEN, WriteOutcome.KEPT_NEWER)
        except BaseException as exc:
            failures.append(exc)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [
        threading.Thread(target=write, args=(w, b)) for w, b in zip(writers, batches, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    done.set()
    watcher.join(timeout=10)
    if failures:
        raise failures[0]
    assert seen == sorted(seen), "the stored expiry went backwards"
    final = cluster.stored(name)
    assert final is not None
    assert final.expires_at == make_record(max(offsets), issued_at=base).expires_at


# -- failures fail this sink alone -------------------------------------------------------------

Setup = Callable[[Cluster, str, Path], str]  # returns extra sink options


def _forbidden(cluster: Cluster, name: str, tmp: Path) -> str:
    cluster.server.set_rules(USER, [Rule(("get",), namespace=NAMESPACE, resource_names=(name,))])
    return ""


def _unauthorized(cluster: Cluster, name: str, tmp: Path) -> str:
    token = cluster.server.add_token(USER)
    path = cluster.server.write_kubeconfig(tmp / "revoked", token=token, namespace=NAMESPACE)
    cluster.server.revoke_token(token)
    return f'kubeconfig = "{path}"'


def _no_namespace(cluster: Cluster, name: str, tmp: Path) -> str:
    cluster.server.grant(USER, Rule(("get", "create"), namespace="gone"))
    return 'namespace = "gone"\ncreate = true'


def _invalid(cluster: Cluster, name: str, tmp: Path) -> str:
    cluster.server.inject(Fault(status=422, methods=("PUT",)))
    return ""


def _slow(cluster: Cluster, name: str, tmp: Path) -> str:
    cluster.server.inject(Fault(delay=3.0, methods=("GET",)))
    return 'timeout = "1s"'


def _down(cluster: Cluster, name: str, tmp: Path) -> str:
    cluster.server.down()
    return ""


def _storm(cluster: Cluster, name: str, tmp: Path) -> str:
    cluster.server.conflicts(100)
    return "conflict_retries = 2"


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (_forbidden, "permission-denied"),
        (_unauthorized, "unauthorized"),
        (_no_namespace, "not-found"),
        (_invalid, "invalid"),
        (_slow, "timeout"),
        (_down, "unavailable"),
        (_storm, "conflict"),
    ],
    ids=["403", "401", "404-namespace", "422", "timeout", "down", "409-storm"],
)
def test_an_api_failure_fails_this_sink_only_and_leaves_its_secret(
    cluster: Cluster, issuer: StandInIssuer, tmp_path: Path, setup: Setup, reason: str
) -> None:
    prefix = unique("fail")
    (name,) = names(prefix, ("service_provider",))
    precreate(cluster, name)
    before = content(cluster, name)
    options = setup(cluster, name, tmp_path)
    text = config_text(issuer, cluster.kubeconfig, prefix, cluster_options=options)
    if options.startswith("kubeconfig"):  # the revoked kubeconfig replaces the session's
        text = text.replace(f'kubeconfig = "{cluster.kubeconfig}"\n', "", 1)
    report = sync(cluster, text)
    cluster.server.clear_faults()
    cluster.server.up()
    assert report.exit_code == 1
    action, why = outcome(report, SINK)
    assert (action, why) == ("failed", reason)
    assert outcome(report, "other")[0] == "written"
    assert MemoryStore.get(prefix).records()
    assert content(cluster, name) == before  # a storm's rival bumps only resourceVersion


# -- nothing secret in the output, even at -vv ---------------------------------------------------


def run_cli(cluster: Cluster, config: Path) -> subprocess.CompletedProcess[str]:
    harbor_secrets = Path(sys.executable).parent / "harbor-secrets"
    return subprocess.run(
        [str(harbor_secrets), "-vv", "--config", str(config), "sync"],
        env=cluster.environ(HARBOR_CLIENT_SECRET=CLIENT_SECRET),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_no_secret_reaches_the_output_at_debug_level(
    cluster: Cluster, issuer: StandInIssuer, tmp_path: Path
) -> None:
    prefix = unique("canary")
    (name,) = names(prefix, ("service_provider",))
    precreate(cluster, name)
    envfile = f'[sinks.other]\nprovider = "envfile"\npath = "{tmp_path / "harbor.env"}"\n'
    outputs: list[str] = []
    scenarios: list[tuple[Callable[[], None], int]] = [
        (lambda: cluster.server.inject(Fault(status=422, methods=("PUT",))), 1),
        (lambda: cluster.server.conflicts(100), 1),
        (lambda: cluster.server.set_rules(USER, [least_privilege("someone-else")]), 1),
        (lambda: cluster.server.set_rules(USER, [least_privilege(name)]), 0),
    ]
    for arrange, expected in scenarios:
        arrange()
        config = tmp_path / "harbor.toml"
        config.write_text(
            config_text(
                issuer,
                cluster.kubeconfig,
                prefix,
                other_sink=envfile,
                cluster_options="conflict_retries = 1",
            )
        )
        (tmp_path / "harbor.env").unlink(missing_ok=True)  # so every run fetches a token
        result = run_cli(cluster, config)
        cluster.server.clear_faults()
        outputs.append(result.stdout + result.stderr)
        assert result.returncode == expected, outputs[-1]
    text = "\n".join(outputs)
    assert "DEBUG" in text
    stored = cluster.server.secret(NAMESPACE, name)
    assert stored is not None
    canaries = {
        CLIENT_SECRET,
        cluster.token,
        *issuer.issued,
        *(base64.b64encode(t.encode()).decode() for t in issuer.issued),
        *stored["data"].values(),
    }
    leaked = [canary for canary in canaries if canary in text]
    assert leaked == []


def test_a_secret_whose_token_key_was_edited_is_rewritten_by_the_next_run(
    cluster: Cluster, issuer: StandInIssuer, tmp_path: Path
) -> None:
    """Without --force: the edited key makes the token due, so a plain run repairs it."""
    prefix = unique("edited")
    (name,) = names(prefix, ("service_provider",))
    precreate(cluster, name)
    text = config_text(issuer, cluster.kubeconfig, prefix)
    assert outcome(sync(cluster, text), SINK)[0] == "written"
    assert outcome(sync(cluster, text), SINK) == ("fresh", "fresh")
    data = {k: v.decode() for k, v in (cluster.server.secret_data(NAMESPACE, name) or {}).items()}
    data["access_token"] = "eyJ.pasted-by-hand"
    cluster.server.put_secret(NAMESPACE, name, data=data, labels=MANAGED)
    assert outcome(sync(cluster, text), SINK) == ("written", "missing")
    repaired = cluster.server.secret_data(NAMESPACE, name)
    assert repaired is not None
    assert repaired["access_token"].decode() in issuer.issued
    stored = cluster.stored(name)
    assert stored is not None
    assert stored.access_token.reveal() == repaired["access_token"].decode()
