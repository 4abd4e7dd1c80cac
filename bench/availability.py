"""Availability at length: replicas killed, hung and restarted for hours; docs/AVAILABILITY.md.

Part of ``make bench`` (never of ``make test``). Four parts:

1. **Failovers at length, real processes.** The failover test's harness
   (testkit/harbor_testkit/failover.py: ``sync --watch`` processes, the stand-in issuer on 30 s
   tokens behind 0.3 s of latency, readers through the stores' own clients and ``harbor-secrets
   get``), three replicas on OpenBao and three on the stand-in Kubernetes API server at once,
   for ``--minutes`` (default 144: one simulated day, as the harness runs Harbor's 300 s tokens
   ten times faster). Between stretches with every replica up, one failover at a time, drawn
   at random: kill -9 the writer or a standby (started again 5-60 s later), kill two of the
   three, SIGSTOP the writer just after its tokens fall due or a standby at any moment (for
   5-40 s), or take the store away for 2-6 s just after a write.
2. **Replica counts, real processes**: 1, 2, 3 and 5 replicas on OpenBao, all up for
   ``--refreshes`` refreshes each: token requests per refresh, store requests per replica.
3. **A simulated day at full scale** (harbor_testkit.fleet): the real watch loop and engine of
   each replica on Harbor's own 300 s tokens and the default [refresh], in simulated time;
   1, 2, 3, 5 replicas; three through ~140 failovers; and without taking turns, to compare.
4. **The arithmetic**, from the freshness policy, for every shape deploy/README.md offers.

Usage: .venv/bin/python bench/availability.py [--minutes 144] [--refreshes 12]
       [--output docs/AVAILABILITY.md] [--save FILE | --render FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import platform
import random
import secrets
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import availability_doc
from availability_results import Chaos, CountResult, SimulatedDay

from harbor_testkit.canaries import Canaries
from harbor_testkit.environ import clean_environ
from harbor_testkit.failover import (
    SCOPES,
    Backend,
    FailoverRun,
    KubernetesBackend,
    OpenBaoBackend,
)
from harbor_testkit.fleet import Event, Fleet
from harbor_testkit.servers import Bao

ROOT = Path(__file__).resolve().parent.parent

CLIENT_SECRET = "availability-bench-client-secret-canary"
DAY = 86_400.0
#: The harness runs Harbor's 300 s tokens as 30 s tokens: ten times faster.
COMPRESSION = 10


def _start_bao(directory: Path) -> Bao:
    root_token = f"canary-vault-token-{secrets.token_hex(12)}"
    environ = clean_environ(home=directory / "home")
    return Bao(root_token, workdir=directory, env=environ, timeout=60).start()


def _settle(run: FailoverRun) -> None:
    """Two refreshes with everyone up: turns are taken again."""
    run.wait_for_refresh(timeout=60)
    run.wait_for_refresh(timeout=60)


def _one_failover(run: FailoverRun, rng: random.Random) -> str:
    """One failover drawn at random, undone again; returns what it was."""
    replicas = run.replicas
    writer = run.writer()
    standbys = [replica for replica in replicas if replica is not writer]
    kind = rng.choice(
        ["kill writer", "kill standby", "kill two", "stop writer", "stop standby", "store away"]
    )
    if kind == "kill writer" or kind == "kill standby":
        victim = writer if kind == "kill writer" else rng.choice(standbys)
        run.kill(victim)
        time.sleep(rng.uniform(5, 60))
        run.start(victim)
    elif kind == "kill two":
        victims = rng.sample(replicas, 2)
        for victim in victims:
            run.kill(victim)
        run.wait_for_refresh(timeout=60)  # the survivor alone
        for victim in victims:
            run.start(victim)
    elif kind == "stop writer":
        run.sleep_until(run.deadline() + rng.uniform(0.0, 1.2))  # before or mid-cycle
        run.stop(writer)
        time.sleep(rng.uniform(5, 40))
        run.cont(writer)
    elif kind == "stop standby":
        victim = rng.choice(standbys)
        run.stop(victim)
        time.sleep(rng.uniform(5, 40))
        run.cont(victim)
    else:
        run.wait_for_refresh(timeout=60)
        time.sleep(0.5)
        with run.store_away():
            time.sleep(rng.uniform(2, 6))
    return kind


def chaos(backend: Callable[[], Backend], directory: Path, minutes: float, seed: int) -> Chaos:
    """Three replicas and random failovers for ``minutes``; the figures at the end."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule, not a secret
    store = backend()
    result = Chaos(store.label)
    canaries = Canaries()
    canaries.add("client secret", CLIENT_SECRET)
    try:
        run = FailoverRun(store, directory, client_secret=CLIENT_SECRET, canaries=canaries)
        until = time.time() + minutes * 60
        with run:
            try:
                _settle(run)
                while time.time() < until:
                    run.all_up("every replica up")
                    for _ in range(rng.randint(1, 3)):
                        run.wait_for_refresh(timeout=60)
                    result.failovers.append((time.time(), _one_failover(run, rng)))
                    _settle(run)
                run.all_up("every replica up")
                run.wait_for_refresh(timeout=60)
            except Exception:
                result.error = traceback.format_exc(limit=6)
        result.figures = run.figures()
    finally:
        store.close()
    return result


def replica_counts(bao: Bao, directory: Path, refreshes: int) -> list[CountResult]:
    """1, 2, 3, 5 replicas on OpenBao, every one up for ``refreshes`` refreshes."""
    results = []
    for count in (1, 2, 3, 5):
        backend = OpenBaoBackend(bao)
        canaries = Canaries()
        where = directory / f"replicas-{count}"
        where.mkdir()
        try:
            run = FailoverRun(
                backend,
                where,
                replicas=count,
                client_secret=CLIENT_SECRET,
                canaries=canaries,
                get_readers=False,
            )
            with run:
                _settle(run)
                run.all_up(f"{count} replicas up")
                for _ in range(refreshes):
                    run.wait_for_refresh(timeout=60)
                run.not_all_up()
            results.append(CountResult(count, run.figures()))
            print(
                f"  {count} replica(s): {results[-1].figures.all_up_requests} token requests "
                f"for {results[-1].figures.all_up_refreshes} refreshes",
                flush=True,
            )
        finally:
            backend.close()
    return results


def simulated_day(seed: int = 15) -> SimulatedDay:
    """The fleet simulation of one day at Harbor's own scale (300 s tokens, defaults)."""
    one = Fleet(1, seed=seed).run(DAY)
    counts = {n: Fleet(n, seed=seed).run(DAY) for n in (2, 3, 5)}
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule
    events: list[Event] = []
    at = 600.0
    while at < DAY - 600:
        victim = rng.randrange(3)
        if rng.random() < 0.5:
            events += [Event(at, "kill", victim), Event(at + rng.uniform(60, 300), "start", victim)]
        else:
            events.append(Event(at, "stop", victim, rng.uniform(10, 420)))
        at += rng.uniform(300, 900)
    failovers = Fleet(3, seed=seed).run(DAY, events)
    without = Fleet(3, seed=seed, standby=False).run(DAY)
    failover_events = sum(1 for event in events if event.kind in ("kill", "stop"))
    return SimulatedDay(one, counts, failovers, failover_events, without)


def machine() -> list[tuple[str, str]]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return [
        ("date (UTC)", datetime.now(UTC).strftime("%Y-%m-%d %H:%M")),
        ("uname -a", " ".join(platform.uname())),
        ("CPU", f"{model} x {os.cpu_count()}"),
        ("Python", sys.version.split()[0]),
        ("load average at the end (1, 5, 15 min)", " ".join(f"{x:.2f}" for x in os.getloadavg())),
    ]


#: Modules whose classes measurements saved by an older bench name, and where those classes
#: live now: the failover harness moved from tests/reliability/ into the test kit, and a
#: --save taken before the move must still --render. (Such a file also names Chaos,
#: CountResult and SimulatedDay as this script's, ``__main__``: it imports them, so they
#: are found here.)
MOVED_MODULES = {"tests.reliability.failover": "harbor_testkit.failover"}


class _SavedMeasurements(pickle.Unpickler):
    """Reads a --save file (our own), finding classes that have moved since it was saved."""

    def find_class(self, module: str, name: str) -> object:
        return super().find_class(MOVED_MODULES.get(module, module), name)


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="harbor-availability-") as name:
        yield Path(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--minutes",
        type=float,
        default=availability_doc.FULL_MINUTES,
        help="length of part 1",
    )
    parser.add_argument("--refreshes", type=int, default=12, help="per replica count (part 2)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "AVAILABILITY.md")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument(
        "--save", type=Path, help="also keep the measurements here (pickle), to --render later"
    )
    parser.add_argument(
        "--render", type=Path, help="write the document from saved measurements, run nothing"
    )
    args = parser.parse_args()
    if args.render:
        with args.render.open("rb") as saved_file:
            saved = _SavedMeasurements(saved_file).load()
        args.output.write_text(availability_doc.render(**saved), encoding="utf-8")
        print(f"wrote {args.output} from {args.render}")
        return
    began = time.time()
    print("[3/4] a simulated day at full scale ...", flush=True)
    day = simulated_day(args.seed)
    print(f"  3 replicas through {day.failover_events} failover events: done", flush=True)
    with _workdir() as directory:
        bao = _start_bao(directory / "bao")
        try:
            print(f"[1/4] failovers for {args.minutes:g} minutes, [2/4] replica counts ...")
            results: dict[str, Chaos] = {}
            counts: list[CountResult] = []

            def long_run(name: str, make: Callable[[], Backend], seed: int) -> None:
                where = directory / f"chaos-{name}"
                where.mkdir()
                try:
                    results[name] = chaos(make, where, args.minutes, seed)
                except Exception:  # the store did not even start: say so in the document
                    results[name] = Chaos(name, error=traceback.format_exc(limit=6))

            threads = [
                threading.Thread(
                    target=long_run, args=("bao", lambda: OpenBaoBackend(bao), args.seed)
                ),
                threading.Thread(
                    target=long_run,
                    args=(
                        "kube",
                        lambda: KubernetesBackend(directory / "chaos-kube" / "server"),
                        args.seed + 1,
                    ),
                ),
            ]
            for thread in threads:
                thread.start()
            counts = replica_counts(bao, directory, args.refreshes)
            for thread in threads:
                thread.join()
        finally:
            bao.stop()
    elapsed = time.time() - began
    measured = {
        "machine": machine(),
        "chaos": [results["bao"], results["kube"]],
        "counts": counts,
        "day": day,
        "minutes": args.minutes,
        "compression": COMPRESSION,
        "scopes": len(SCOPES),
        "elapsed": elapsed,
    }
    if args.save:
        args.save.write_bytes(pickle.dumps(measured))
    args.output.write_text(availability_doc.render(**measured), encoding="utf-8")
    for name in ("bao", "kube"):
        chaos_result = results[name]
        if chaos_result.error:
            print(f"{chaos_result.backend}: the run stopped early:\n{chaos_result.error}")
    print(f"wrote {args.output} ({elapsed / 60:.0f} min)")


if __name__ == "__main__":
    main()
