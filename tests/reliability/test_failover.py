"""Lose any one refresher and no reader notices: three ``sync --watch`` replicas on one store.

On compressed time (30 s tokens, refresh_before 20 s, so a refresh every ~10 s), three
replica processes keep two tokens fresh in one real store, OpenBao KV v2 and the stand-in
Kubernetes API server, both at once. Readers poll all along through the store's own client
and through ``harbor-secrets get --min-remaining FLOOR``. The scenario (the harness is
testkit/harbor_testkit/failover.py): every replica up for three refreshes; kill -9 the
replica that wrote last and start it again; SIGSTOP the next writer just after its tokens
fall due (hung before or in the middle of its cycle) and let it go on once another replica
has refreshed; take the store away for four seconds right after a write; every replica up
again for three refreshes.

What must hold, whatever the machine's load: no reader ever reads an expired token or one
below the floor the freshness policy promises for this configuration (one replica lost, each
token request allowed its whole [http] budget); no store ever goes back to an older token;
with every replica up, the issuer sees at most 1.1x the requests one replica makes (one per
token per refresh); every replica is healthy while all are up, including those that only
found the token fresh; ``on_write`` runs only on the replica that wrote; no secret appears in
any replica's output; every replica exits 0 on SIGTERM at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CLIENT_SECRET
from harbor_testkit.canaries import Canaries
from harbor_testkit.failover import (
    SCOPES,
    Backend,
    FailoverRun,
    Figures,
    KubernetesBackend,
    OpenBaoBackend,
    budget,
)
from harbor_testkit.servers import Bao

from .report import ReliabilityLog
from .support import in_parallel

#: The issue's aim: with every replica up, token requests within 1.1x of one replica's.
AIM = 1.1
OUTAGE = 4.0


def scenario(run: FailoverRun) -> None:
    """The failovers, in order; the windows with every replica up are marked."""
    run.wait_for_refresh(timeout=60)  # the first tokens, then a refresh: turns are settled
    run.wait_for_refresh()
    run.all_up("every replica up")
    for _ in range(3):
        run.wait_for_refresh()

    writer = run.writer()
    run.kill(writer)  # a moment after its write: between cycles, as a node loss would
    takeover = run.wait_for_refresh()
    assert takeover.written_by != writer.name, "a standby must take over"
    run.start(writer)

    hung = run.writer()
    run.sleep_until(run.deadline() + 0.3)  # it wakes within 1.05 s: stopped before or mid-cycle
    run.stop(hung)
    run.wait_for_refresh()
    run.cont(hung)

    run.wait_for_refresh()
    time.sleep(0.5)  # the write has landed; the next deadline is ~9 s away
    with run.store_away():
        time.sleep(OUTAGE)
    run.wait_for_refresh()
    run.wait_for_refresh()
    run.all_up("every replica up again")
    for _ in range(3):
        run.wait_for_refresh()


def run_backend(
    make: Callable[[], Backend], directory: Path, canaries: Canaries
) -> tuple[Figures, FailoverRun]:
    """The scenario on one store; the store is closed whatever happens."""
    backend = make()
    try:
        run = FailoverRun(backend, directory, client_secret=CLIENT_SECRET, canaries=canaries)
        with run:
            scenario(run)
        return run.figures(), run
    finally:
        backend.close()


@pytest.mark.timeout(420)
def test_losing_any_one_replica_leaves_every_reader_above_the_floor(
    bao: Bao,
    canaries: Canaries,
    tmp_path: Path,
    reliability_log: ReliabilityLog,
) -> None:
    (tmp_path / "bao").mkdir()
    (tmp_path / "kube").mkdir()
    results = in_parallel(
        [
            lambda: run_backend(lambda: OpenBaoBackend(bao), tmp_path / "bao", canaries),
            lambda: run_backend(
                lambda: KubernetesBackend(tmp_path / "kube" / "server"), tmp_path / "kube", canaries
            ),
        ]
    )
    promise = budget()
    for figures, _ in results:
        reliability_log.failover.append(describe(figures, promise.reader_floor))
        print(reliability_log.failover[-1])  # shown with -s
    for figures, run in results:
        where = figures.backend
        assert not figures.leaks, (where, figures.leaks)
        # Readers: never expired, never below the floor; `get` never refused a token.
        assert figures.reads > 500, (where, figures.reads)
        assert figures.gets > 20, (where, figures.gets)
        assert figures.least_left >= figures.floor, (where, figures.least_left, figures.floor)
        assert figures.refusals == [], (where, figures.refusals)
        assert figures.backwards == [], (where, figures.backwards)
        # Every replica up: about one request per token per refresh.
        assert figures.all_up_refreshes >= 8, (where, figures.all_up_refreshes)
        assert figures.all_up_ratio <= AIM, (
            where,
            figures.all_up_requests,
            figures.all_up_refreshes,
        )
        # Standbys that only found fresh tokens are healthy too.
        assert figures.unhealthy_all_up == [], (where, figures.unhealthy_all_up)
        # on_write ran on the replica that wrote, for what it wrote, and nowhere else; every
        # token readers saw had its writer's on_write, but for one cut short by the kill.
        assert figures.hooks_for_others == [], (where, figures.hooks_for_others)
        assert len(figures.writes_without_hook) <= figures.kills * len(SCOPES), (
            where,
            figures.writes_without_hook,
        )
        assert sum(figures.hook_runs.values()) >= figures.refreshes - 2, where
        assert figures.exit_codes == {replica.name: 0 for replica in run.replicas}, where


def describe(figures: Figures, prompt_floor: float) -> str:
    """One paragraph for docs/RELIABILITY.md's overlap section."""
    return (
        f"Failover, {figures.backend}: {figures.replicas} `sync --watch` replicas for "
        f"{figures.seconds:.0f} s on 30 s tokens ({'; '.join(w for _, w in figures.events)}). "
        f"Least lifetime any reader read: {figures.least_left:.2f} s (`get`: "
        f"{figures.least_left_get:.2f} s) over {figures.reads} store reads and {figures.gets} "
        f"`get` runs; the policy promises {figures.floor:.2f} s ({prompt_floor:.2f} s while "
        f"Harbor answers promptly); reads that found the store away: {figures.read_failures}. "
        f"Token requests: {figures.requests} for {figures.refreshes} refreshes in all, "
        f"{figures.all_up_requests} for {figures.all_up_refreshes} while every replica was up "
        f"({figures.all_up_ratio:.2f}x). Older tokens refused by the store: "
        f"{figures.kept_newer}; went backwards: {'yes' if figures.backwards else 'no'}; "
        f"on_write runs {figures.hook_runs}; secrets leaked: {'yes' if figures.leaks else 'no'}."
    )
