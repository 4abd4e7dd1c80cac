"""docs/AVAILABILITY.md from what bench/availability.py measured, and the arithmetic.

Every figure of the arithmetic comes from the freshness policy (``RefreshPolicy.
availability`` and ``reader_floor``), the same code ``config check`` prints; the only other
numbers are Kubernetes' own timings, named below with where they come from.
"""

from __future__ import annotations

from collections.abc import Sequence

from availability_results import Chaos, CountResult, SimulatedDay

from harbor_secrets.freshness import DEFAULT_MIN_REMAINING, RefreshPolicy

#: Kubernetes marks a node that stops answering not ready after node-monitor-grace-period
#: (40 s before 1.32, 50 s since), then evicts its pods after their not-ready/unreachable
#: toleration: the default 300 s, or the 30 s components/watch sets.
NODE_MONITOR_GRACE = 50.0
DEFAULT_TOLERATION = 300.0
WATCH_TOLERATION = 30.0
#: Scheduling the replacement, starting the container (image present: IfNotPresent) and its
#: first cycle: an estimate for a small Python process, not a measurement.
REPLACEMENT_START = 20.0
#: The retry budget of one token request ([http] total_budget, default).
REQUEST_BUDGET = 30.0
#: EventBridge Scheduler invokes "with 60 second precision": a run due at 1:00 comes between
#: 1:00:00 and 1:00:59, so two runs of rate(1 minute) may be up to 119 s apart.
SCHEDULER_WORST_GAP = 119.0
#: The kubelet's refresh of a mounted Secret (providers/kubernetes: 60 s sync period with
#: 50 % jitter, plus 5 s of watch delay).
VOLUME_PROPAGATION = 95.0

DEFAULT = RefreshPolicy()
#: The full length of part 1: one simulated day when 300 s tokens run as 30 s ones.
FULL_MINUTES = 144.0
K8S_SECRET = RefreshPolicy(refresh_before=210.0)


def _s(seconds: float) -> str:
    """Seconds as the policy computes them: whole, or to the hundredth (138.95 s)."""
    if abs(seconds - round(seconds)) < 0.005:
        return f"{round(seconds)} s"
    return f"{seconds:.2f}".rstrip("0") + " s"


def _left(seconds: float) -> str:
    return _s(seconds) if seconds > 0 else f"**expired** ({_s(-seconds)} past)"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def arithmetic() -> list[str]:
    """What survives what, for every shape deploy/README.md offers, at the defaults."""
    scheduled = DEFAULT.availability(watching=False, request_budget=REQUEST_BUDGET)
    watching = DEFAULT.availability(watching=True, request_budget=REQUEST_BUDGET)
    two_hosts = RefreshPolicy(schedule_period=30.0)
    late_lambda = RefreshPolicy(schedule_period=SCHEDULER_WORST_GAP)
    lost_run = RefreshPolicy(schedule_period=2 * DEFAULT.schedule_period)
    single_gap = NODE_MONITOR_GRACE + DEFAULT_TOLERATION + REPLACEMENT_START
    fast_gap = NODE_MONITOR_GRACE + WATCH_TOLERATION + REPLACEMENT_START
    w = DEFAULT.wake_spread
    volume_cron = K8S_SECRET.reader_floor(propagation=VOLUME_PROPAGATION)
    volume_watch = K8S_SECRET.reader_floor(watching=True, propagation=VOLUME_PROPAGATION)
    cron_delay_survived = DEFAULT.reader_floor()
    lines = [
        "## The arithmetic: what survives what",
        "",
        'Harbor\'s tokens live 300 s. With the defaults (`refresh_before = "150s"`, '
        '`schedule_period = "60s"`, `[http] total_budget = "30s"`), the freshness policy '
        "(`harbor_secrets/freshness.py`, what `harbor-secrets config check` prints for your "
        "own file) promises:",
        "",
        *_table(
            [
                "how it runs",
                "least lifetime a reader finds",
                "if Harbor takes its whole 30 s budget",
                "an outage of Harbor, the store or every refresher is survived",
            ],
            [
                [
                    "scheduled every 60 s (CronJob, systemd timer, cron, Lambda)",
                    _s(scheduled.reader_floor),
                    _s(scheduled.reader_floor_slow_issuer),
                    f"at least {_s(scheduled.outage_survived)}, at most "
                    f"{_s(scheduled.outage_survived_at_best)} (`get`/`exec` refuse a token "
                    f"{_s(DEFAULT_MIN_REMAINING)} before it expires)",
                ],
                [
                    "`sync --watch`, any one replica lost",
                    _s(watching.reader_floor),
                    _s(watching.reader_floor_slow_issuer),
                    f"at least {_s(watching.outage_survived)}, at most "
                    f"{_s(watching.outage_survived_at_best)}",
                ],
                [
                    "`sync --watch`, the replica that wrote last up",
                    _s(watching.reader_floor_writer_up),
                    _s(watching.reader_floor_writer_up - (REQUEST_BUDGET - 1)),
                    "as above",
                ],
            ],
        ),
        "",
        "Where the numbers come from: a token is rewritten from `refresh_before` (150 s) "
        "before it expires; a scheduled run comes up to one period (60 s) after that, so a "
        f"reader finds at least 150 − 60 = {_s(scheduled.reader_floor)} left, as long as a "
        "run's token request and write take about a second (a request that uses its whole "
        "30 s budget costs 29 s more). A watcher wakes when the token falls due: the replica "
        f"that wrote it within W/2 of the deadline, every other replica between W and 2W "
        f"(W = `refresh_before`/10, at most 5 s: {_s(w)}), then 1 s for the answer, so "
        f"150 − {_s(2 * w)} − 0.05 s − 1 s = {_s(watching.reader_floor)} with any one "
        "replica lost. An outage that begins at the worst moment, just as the stored token "
        "falls due, leaves readers that floor; one that begins just after a write leaves "
        "them the whole 300 s.",
        "",
        "### Losing a node, a host, a region, the issuer or the API server",
        "",
        *_table(
            ["what fails", "scheduled shape", "highly available shape", "choose"],
            [
                [
                    "a Kubernetes node (the refresher's)",
                    "CronJob: the run on that node is lost, and its Job holds `Forbid` until "
                    "it is finished: at `activeDeadlineSeconds` (50 s) at best, so one period "
                    f"is skipped and readers find at least {_s(lost_run.reader_floor())}; "
                    "but Kubernetes 1.31 and later mark a Job `Failed` only once its pods "
                    "have terminated, and a pod on an unreachable node is not confirmed gone "
                    "until the node returns or is deleted: no run starts meanwhile, and "
                    f"tokens expire {_s(scheduled.outage_survived)} after the last one. One "
                    "watcher, `replicas: 1`, default tolerations: replaced after "
                    f"~{_s(single_gap)} (node grace {_s(NODE_MONITOR_GRACE)} + toleration "
                    f"{_s(DEFAULT_TOLERATION)} + start ~{_s(REPLACEMENT_START)}), longer "
                    f"than the {_s(watching.outage_survived)} readers survive: **expired "
                    f"tokens** for up to {_s(single_gap - watching.outage_survived)}",
                    "`overlays/watch` (two replicas on different nodes): the other replica "
                    f"refreshes at its turn, readers still find {_s(watching.reader_floor)}; "
                    f"the lost one is replaced in ~{_s(fast_gap)} (toleration "
                    f"{_s(WATCH_TOLERATION)})",
                    "`overlays/watch`, or `components/watch` on your overlay",
                ],
                [
                    "a drain, a cluster upgrade, a rolling update",
                    "CronJob: a run in progress is stopped; the next minute runs",
                    "PodDisruptionBudget `minAvailable: 1` and `maxUnavailable: 0`: a ready "
                    "watcher is always left; nothing changes for readers",
                    "`overlays/watch`",
                ],
                [
                    "a host (systemd timer or cron)",
                    f"one host: readers survive {_s(scheduled.outage_survived)}, then hold "
                    "expired tokens until it is back",
                    f"two hosts, the second offset by 30 s (deploy/README.md): "
                    f"{_s(two_hosts.reader_floor())} while both run, "
                    f"{_s(scheduled.reader_floor)} with one lost, indefinitely",
                    "two hosts on a shared store (Vault, SSM, a Kubernetes Secret)",
                ],
                [
                    "a local store's host (env file, token files)",
                    "the readers on that host are gone with it",
                    "nothing to fail over to: one refresher per host, next to its readers "
                    "(`config check` names such sinks)",
                    "one timer per host",
                ],
                [
                    "an AWS region's Lambda or EventBridge Scheduler",
                    f"{_s(scheduled.reader_floor)} if runs come every 60 s; Scheduler's "
                    "documented 60-second precision allows two runs up to "
                    f"{_s(SCHEDULER_WORST_GAP)} apart: {_s(late_lambda.reader_floor())} "
                    "at worst",
                    "the Terraform module a second time in another region, `store_region` "
                    "set: either region's runs keep the store fresh; the store's own region "
                    "failing is not covered (deploy/aws/README.md)",
                    "two regions, if the store's region is not the one you fear for",
                ],
                [
                    "Harbor's issuer (or the store)",
                    f"survived for {_s(scheduled.outage_survived)} at least",
                    f"survived for {_s(watching.outage_survived)} at least",
                    "watch mode; a larger `refresh_before` buys more, at more writes",
                ],
                [
                    "the Kubernetes API server",
                    "CronJob: no Job starts while it is down: survived for "
                    f"{_s(scheduled.outage_survived)}",
                    "watchers writing to Vault or AWS: unaffected (no Lease, no leader "
                    "election, running pods keep running); watchers writing Kubernetes "
                    f"Secrets: the store is down, survived for {_s(watching.outage_survived)}",
                    "watchers; a store outside the cluster if API-server outages are long",
                ],
                [
                    "the CronJob controller starting a run late by D",
                    f"readers find {_s(scheduled.reader_floor)} − D: survived while D < "
                    f"{_s(cron_delay_survived)}",
                    "not applicable: watchers are not started by the controller",
                    "watchers",
                ],
            ],
        ),
        "",
        "Readers of a Kubernetes Secret **mounted as a volume** see a write up to "
        f"{_s(VOLUME_PROPAGATION)} late (the kubelet's sync period with jitter, plus the "
        'watch). The kubernetes-secret overlay therefore sets `refresh_before = "210s"`: '
        f"such a reader finds at least {_s(volume_cron)} with the CronJob and "
        f"{_s(volume_watch)} with watchers (`config check` prints it per sink).",
        "",
    ]
    return lines


def _chaos(results: Sequence[Chaos], minutes: float, compression: int) -> list[str]:
    lines = [
        "## 1. Failovers at length (real processes)",
        "",
        f"The failover test's harness for {minutes:g} minutes on each store at once: three "
        "`sync --watch` processes, the stand-in issuer on 30 s tokens (Harbor's 300 s, "
        f"{compression} times faster: `refresh_before` 20 s, `schedule_period` 5 s, "
        f"`[http] total_budget` 3 s, 0.3 s added to every token request), so {minutes:g} "
        f"minutes stand for {minutes * compression / 60:g} hours of Harbor time. Between "
        "stretches with every replica up (1-3 refreshes), one failover drawn at random: "
        "kill -9 the writer or a standby (started again 5-60 s later), kill two of the "
        "three (started again after the survivor's next refresh), SIGSTOP the writer just "
        "after its tokens fall due (hung before or in its cycle) or a standby at any moment "
        "(5-40 s), take the store away for 2-6 s just after a write; then two refreshes to "
        "settle. Readers read all along through the store's own client (every 0.1 s) and "
        "`harbor-secrets get --min-remaining FLOOR`.",
        "",
    ]
    header = ["", *(r.backend for r in results)]
    rows: list[list[str]] = []

    def row(label: str, cell: object) -> None:
        rows.append([label, *(str(cell(r)) if callable(cell) else str(cell) for r in results)])

    def fig(attr: str, fmt: str = "{}") -> object:
        return lambda r: fmt.format(getattr(r.figures, attr)) if r.figures else "-"

    row("ran for", lambda r: f"{r.figures.seconds / 60:.0f} min" if r.figures else "-")
    row("failovers survived", lambda r: len(r.failovers))
    kinds = sorted({kind for r in results for _, kind in r.failovers})
    for kind in kinds:
        row(f"... {kind}", lambda r, k=kind: sum(1 for _, what in r.failovers if what == k))
    row("least lifetime any reader read", fig("least_left", "{:.2f} s"))
    row("... through `harbor-secrets get`", fig("least_left_get", "{:.2f} s"))
    row("the policy's promise (one replica lost, slow Harbor)", fig("floor", "{:.2f} s"))
    row("reads (store client / `get`)", lambda r: f"{r.figures.reads} / {r.figures.gets}")
    row("`get` refusals (expired or below the floor)", lambda r: len(r.figures.refusals))
    row("a store went back to an older token", lambda r: "yes" if r.figures.backwards else "no")
    row("older tokens refused by the store (kept-newer)", fig("kept_newer"))
    row(
        "token requests / refreshes, all along",
        lambda r: f"{r.figures.requests} / {r.figures.refreshes} ({r.figures.ratio:.3f}x)",
    )
    row(
        "... while every replica was up",
        lambda r: (
            f"{r.figures.all_up_requests} / {r.figures.all_up_refreshes} "
            f"({r.figures.all_up_ratio:.3f}x)"
        ),
    )
    row("/healthz not 200 while every replica was up", lambda r: len(r.figures.unhealthy_all_up))
    row("`on_write` told of another replica's token", lambda r: len(r.figures.hooks_for_others))
    row("secrets in any output", lambda r: "yes" if r.figures.leaks else "no")
    row("stopped early", lambda r: "yes (below)" if r.error else "no")
    lines += _table(header, rows)
    for result in results:
        if result.error:
            lines += ["", f"{result.backend} stopped early:", "", "```", result.error, "```"]
    lines += [
        "",
        "Every token request beyond one per refresh came at a failover: when the writer is "
        "lost, two standbys may wake within one request of each other (they then both ask, "
        "one write wins, never an older token); a writer hung in its cycle finishes its "
        "request when it is let go; replicas that start on an empty store all ask once.",
        "",
    ]
    return lines


def _counts(counts: Sequence[CountResult], scopes: int) -> list[str]:
    if not counts:
        return []
    one = counts[0].figures.all_up_ratio
    rows = []
    for count in counts:
        figures = count.figures
        per_replica = figures.store_requests_per_replica_refresh
        values = sorted(per_replica.values())
        rows.append(
            [
                str(count.replicas),
                str(figures.all_up_refreshes // scopes),
                f"{figures.all_up_requests} / {figures.all_up_refreshes}",
                f"{figures.all_up_ratio / one:.2f}x" if one else "-",
                f"{figures.all_up_requests - figures.all_up_refreshes:+d}",
                (f"{values[-1]:.1f}" if values else "-"),
                (f"{sum(values[:-1]) / (len(values) - 1):.1f}" if len(values) > 1 else "-"),
            ]
        )
    return [
        "## 2. Replica counts (real processes, OpenBao)",
        "",
        "Every replica up, for as many refreshes each (a refresh rewrites both tokens), on "
        "the same compressed scale. Store requests are counted per replica by its own proxy "
        "in front of OpenBao (HTTP requests: reads, check-and-set writes, metadata).",
        "",
        *_table(
            [
                "replicas",
                "refreshes",
                "token requests / token refreshes",
                "vs one replica",
                "extra requests",
                "store requests per refresh, the writer",
                "per standby (mean)",
            ],
            rows,
        ),
        "",
        "The writer reads both tokens and writes both at each refresh, and reads them again "
        "at every `schedule_period` wake-up in between; a standby reads at its turn and at "
        "those wake-ups. At Harbor's scale (`schedule_period` 60 s, a refresh every 150 s) "
        "that is about three reads per token per refresh per replica.",
        "",
    ]


def _day(day: SimulatedDay) -> list[str]:
    one = day.one.requests
    promise_up = DEFAULT.reader_floor(watching=True, wrote_last=True)
    promise_lost = DEFAULT.reader_floor(watching=True)
    rows = [["1", str(one), "1.00x", f"{day.one.least_left:.1f} s", _s(promise_up)]]
    for count, result in sorted(day.counts.items()):
        rows.append(
            [
                str(count),
                str(result.requests),
                f"{result.requests / one:.3f}x",
                f"{result.least_left:.1f} s",
                _s(promise_up),
            ]
        )
    rows.append(
        [
            f"3, through {day.failover_events} kills and stops",
            str(day.failovers.requests),
            f"{day.failovers.requests / one:.3f}x",
            f"{day.failovers.least_left:.1f} s",
            _s(promise_lost),
        ]
    )
    rows.append(
        [
            "3, without taking turns (every replica paced as the writer)",
            str(day.without_turns.requests),
            f"{day.without_turns.requests / one:.3f}x",
            f"{day.without_turns.least_left:.1f} s",
            "-",
        ]
    )
    return [
        "## 3. A simulated day at Harbor's own scale",
        "",
        "`harbor_testkit.fleet`: each replica's real watch loop and engine "
        "(`Watcher.run_cycle`), on 300 s tokens and the default `[refresh]`, one shared "
        "store whose writes land 0.05-0.3 s after a cycle starts, in simulated time (a day "
        "takes seconds). Two tokens; the kills (restarted 1-5 minutes later) and stops "
        "(10 s to 7 minutes) come every 5-15 minutes at random.",
        "",
        *_table(
            ["replicas", "token requests in the day", "vs one", "least lifetime", "promise"],
            rows,
        ),
        "",
        "Without turns, replicas reading the same expiry wake within a few hundred "
        "milliseconds of each other and all ask: the cause of the extra requests the issue "
        "measured (1.67x). With turns, the one that wrote wakes first and the others find "
        "its token. (The failover test, run against the watch loop from before turns, "
        "fails the same way on real processes.)",
        "",
    ]


def _short_run(minutes: float, compression: int) -> list[str]:
    """A banner when part 1 ran shorter than the full simulated day, so no figure oversells."""
    if minutes >= FULL_MINUTES:
        return []
    return [
        f"> **A shorter run than the full one.** Part 1 ran {minutes:g} minutes "
        f"({minutes * compression / 60:g} hours of Harbor time), not the {FULL_MINUTES:g} "
        "minutes (one simulated day) that `make bench` runs: fewer failovers were drawn, so "
        "a rare bad moment had fewer chances to occur. The arithmetic and part 3 do not "
        "depend on the length.",
        "",
    ]


def render(
    *,
    machine: Sequence[tuple[str, str]],
    chaos: Sequence[Chaos],
    counts: Sequence[CountResult],
    day: SimulatedDay,
    minutes: float,
    compression: int,
    scopes: int,
    elapsed: float,
) -> str:
    summary_rows = []
    for result in chaos:
        if result.figures is None:
            continue
        figures = result.figures
        summary_rows.append(
            [
                f"failovers survived, {result.backend}",
                f"{len(result.failovers)} in {figures.seconds / 60:.0f} min "
                f"({figures.seconds * compression / 3600:.1f} h of Harbor time)",
            ]
        )
        summary_rows.append(
            [
                f"least lifetime any reader read, {result.backend}",
                f"{figures.least_left:.2f} s (promised: {figures.floor:.2f} s)",
            ]
        )
    if counts:
        one = counts[0].figures
        for count in counts[1:]:
            figures = count.figures
            extra = figures.all_up_requests - figures.all_up_refreshes
            summary_rows.append(
                [
                    f"extra token requests, {count.replicas} replicas all up",
                    f"{extra} in {figures.all_up_refreshes} token refreshes "
                    f"({figures.all_up_ratio:.2f}x; one replica: {one.all_up_ratio:.2f}x)",
                ]
            )
        for count in counts:
            values = count.figures.store_requests_per_replica_refresh
            if values:
                summary_rows.append(
                    [
                        f"store requests per replica per refresh, {count.replicas} replica(s)",
                        ", ".join(f"{v:.1f}" for v in sorted(values.values(), reverse=True)),
                    ]
                )
    summary_rows.append(
        [
            f"a simulated day at full scale, 3 replicas through {day.failover_events} failovers",
            f"{day.failovers.requests / day.one.requests:.3f}x one replica's requests, "
            f"least lifetime {day.failovers.least_left:.1f} s",
        ]
    )
    lines = [
        "# Availability: lose any one refresher, node or host, and no reader notices",
        "",
        "<!-- Generated by bench/availability.py (make bench); do not edit by hand. -->",
        "",
        "What survives what, from the configuration (the arithmetic), and how it held when "
        "refreshers were killed, hung and restarted for "
        f"{minutes * compression / 60:g} hours of Harbor time (the measurements). The "
        "highly available shapes: [deploy/README.md](../deploy/README.md) (Kubernetes "
        "watchers, two hosts, two AWS regions); your own file's figures: `harbor-secrets "
        "config check`.",
        "",
        f"Generated in {elapsed / 60:.0f} minutes; regenerate with `make bench` or "
        f"`.venv/bin/python bench/availability.py [--minutes {FULL_MINUTES:g}]`.",
        "",
        *_short_run(minutes, compression),
        *_table(["figure", "measured"], summary_rows),
        "",
        *arithmetic(),
        *_chaos(chaos, minutes, compression),
        *_counts(counts, scopes),
        *_day(day),
        "## Machine",
        "",
        *_table(["", ""], [list(pair) for pair in machine]),
        "",
    ]
    return "\n".join(lines)
