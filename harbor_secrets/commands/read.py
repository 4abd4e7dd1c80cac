"""``harbor-secrets get`` and ``harbor-secrets exec``: the token a store holds, for a reader.

Both only read. They never call the issuer and never look at the credentials' secret
reference, so a reader's host needs no client secret at all: only read access to the store
the scheduled ``sync`` keeps fresh. Whether a stored token is still good enough is the
freshness policy's answer (:meth:`RefreshPolicy.for_reader`); a token with less than
``--min-remaining`` left is refused rather than handed to a caller that would get 401s.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

import click

from harbor_secrets.commands._common import Target, load, pick_sink
from harbor_secrets.config import Job
from harbor_secrets.durations import format_duration
from harbor_secrets.errors import EXIT_OK, ConfigError, HarborSecretsError, describe_error
from harbor_secrets.freshness import ReaderState, ReaderVerdict, RefreshPolicy
from harbor_secrets.invocation import Globals
from harbor_secrets.keys import default_env_names
from harbor_secrets.output import to_json
from harbor_secrets.record import TokenRecord, format_time
from harbor_secrets.runtime import Runtime

log = logging.getLogger(__name__)


class TokenUnavailableError(HarborSecretsError):
    """No stored token good enough for the reader (exit 1); the message says what to run."""


@dataclass(frozen=True)
class Found:
    """The token a reader gets, and where it came from."""

    job: Job
    sink: str
    key: str
    record: TokenRecord
    full_record: bool
    verdict: ReaderVerdict
    #: Variables holding this configuration's secrets, which a command run by exec never gets.
    hidden: frozenset[str] = frozenset()


def find_token(g: Globals, target: Target, *, sink: str | None, min_remaining: float) -> Found:
    """Read the token from ``sink`` (default: the first of its sinks that holds it)."""
    (found,) = find_tokens(g, [target], sink=sink, min_remaining=min_remaining)
    return found


def find_tokens(
    g: Globals, targets: Sequence[Target], *, sink: str | None, min_remaining: float
) -> list[Found]:
    """:func:`find_token` for several tokens, from one configuration and one set of stores."""
    config = load(g.config)
    jobs = [target.job(config) for target in targets]
    orders: list[list[str]] = []
    if sink is not None:
        pick_sink(config, sink)
    for job in jobs:
        if sink is not None and sink not in job.sinks:
            raise ConfigError(
                f"sink {sink!r} does not hold {job.label}",
                key="--sink",
                fix=f"use one of: {', '.join(job.sinks)}",
            )
        orders.append([sink] if sink is not None else list(job.sinks))
    needed = {name for order in orders for name in order}
    now = datetime.now(UTC)
    with Runtime(config, client_secrets=False, only_sinks=needed) as runtime:
        hidden = runtime.hidden_variables()
        return [
            _read(runtime, job, order, now=now, min_remaining=min_remaining, hidden=hidden)
            for job, order in zip(jobs, orders, strict=True)
        ]


def _read(
    runtime: Runtime,
    job: Job,
    order: Sequence[str],
    *,
    now: datetime,
    min_remaining: float,
    hidden: frozenset[str],
) -> Found:
    problems: list[str] = []
    unreadable = 0
    best: Found | None = None
    for name in order:
        configured = runtime.sinks[name]
        key = configured.key_for(job)
        try:
            record = configured.provider.read(key)
        except Exception as exc:  # any store failure: say so, try the next sink
            problems.append(f"sink {name!r} could not be read: {describe_error(exc)}")
            unreadable += 1
            continue
        verdict = runtime.config.refresh.for_reader(record, now, min_remaining=min_remaining)
        if record is None:
            problems.append(f"sink {name!r} holds no token under {key!r}")
            continue
        full = configured.provider.stores_full_record
        found = Found(job, name, key, record, full, verdict, hidden)
        if verdict.usable:
            return found
        best = best or found
    if best is not None:
        raise _too_old(best, min_remaining, problems, runtime.config.refresh)
    if unreadable == len(order):  # a sync would not help a reader that cannot read
        hint = "fix reading the store as said above; `harbor-secrets status` shows each sink"
    else:
        hint = (
            "run `harbor-secrets sync` (it writes every configured sink); "
            "`harbor-secrets status` shows what each sink holds"
        )
    raise TokenUnavailableError(
        f"no stored token for {job.label}: " + "; ".join(problems), hint=hint
    )


def _too_old(
    found: Found, min_remaining: float, problems: Sequence[str], policy: RefreshPolicy
) -> TokenUnavailableError:
    left = found.verdict.seconds_left or 0.0
    where = f"sink {found.sink!r} ({found.key})"
    others = f" ({'; '.join(problems)})" if problems else ""
    if found.verdict.state is ReaderState.IMPLAUSIBLE:
        return TokenUnavailableError(
            f"the token for {found.job.label} in {where} expires in {format_duration(left)}, "
            "further ahead than a token lives: it was written under a clock that was wrong "
            f"(this host's or its writer's), so its expiry cannot be believed{others}",
            hint="check the clocks (timedatectl, chronyc tracking), and that "
            "refresh.token_lifetime is not shorter than the issuer's tokens; "
            "`harbor-secrets sync` replaces it",
        )
    if found.verdict.state is ReaderState.EXPIRED:
        message = f"the token for {found.job.label} in {where} expired {format_duration(-left)} ago"
    else:
        message = (
            f"the token for {found.job.label} in {where} has only {format_duration(left)} "
            f"left, less than --min-remaining {format_duration(min_remaining)}"
        )
    # A reader cannot know how the store is kept fresh, so it names both promises.
    floors = {
        "a scheduled sync": policy.reader_floor(),
        "sync --watch": policy.reader_floor(watching=True),
    }
    promises = "; ".join(
        f"{how} keeps at least {format_duration(floor)} on a token"
        if floor > 0
        else f"{how} cannot keep any (refresh_before is too short for it)"
        for how, floor in floors.items()
    )
    basis = (
        f"refresh_before {format_duration(policy.refresh_before)}, schedule period "
        f"{format_duration(policy.schedule_period)}"
    )
    kept = [how for how, floor in floors.items() if 0 < floor <= left]
    missed = [how for how, floor in floors.items() if floor > left]
    if kept:
        # As fresh as (at least one way of running) promises: the request asked for more.
        least = format_duration(min(floor for floor in floors.values() if floor > 0))
        if missed:
            verdict = (
                f"this one is as fresh as {kept[0]} promises, not as {missed[0]}: if that keeps "
                "this store, check it with `harbor-secrets status`; otherwise"
            )
        else:
            verdict = "this one is as fresh as promised:"
        hint = (
            f"{promises} ({basis}); {verdict} ask for at most --min-remaining {least}, "
            "or raise refresh_before"
        )
    else:
        hint = (
            f"the refresher should have refreshed it ({promises}; {basis}): check that it "
            "runs (every minute, or `sync --watch`) with `harbor-secrets status`, or run "
            "`harbor-secrets sync` now"
        )
    return TokenUnavailableError(message + others, hint=hint)


def record_for_output(found: Found) -> dict[str, Any]:
    """The stored record (schema 1) as a reader sees it; fields the store does not keep
    (an env file keeps only the token and its expiry) are null."""
    data = found.record.to_dict()
    data["scope"] = data["scope"] or found.job.scope
    data["environment"] = data["environment"] or found.job.environment
    if not found.full_record:
        for name in ("issued_at", "expires_in", "client_id", "issuer", "managed_by", "schema"):
            data[name] = None
    return data


def get_command(g: Globals, target: Target, *, sink: str | None, min_remaining: float) -> int:
    found = find_token(g, target, sink=sink, min_remaining=min_remaining)
    log.info(
        "%s from sink %s: %s left",
        found.job.label,
        found.sink,
        format_duration(found.verdict.seconds_left or 0),
        extra={"event": "get.found", "sink": found.sink, "key": found.key},
    )
    if g.output == "json":
        click.echo(to_json(record_for_output(found)))
    else:
        click.echo(found.record.access_token.reveal())
    return EXIT_OK


def exec_command(
    g: Globals,
    targets: Sequence[Target],
    command: Sequence[str],
    *,
    sink: str | None,
    min_remaining: float,
) -> NoReturn:
    """Replace this process with ``command``, each target's token in its environment.

    ``exec`` (not a child process): the command's exit status and any signal it gets or
    dies of are exactly its own, and nothing of this tool stays in memory beside it.
    """
    found = find_tokens(g, targets, sink=sink, min_remaining=min_remaining)
    # The command gets this process's environment, minus every secret the configuration
    # reads from it (the client secret, VAULT_TOKEN, AWS keys ...), plus the tokens.
    hidden = frozenset().union(*(each.hidden for each in found))
    environ = {k: v for k, v in os.environ.items() if k not in hidden}
    names = []
    for each in found:
        token_name, expires_name = default_env_names(
            environment=each.job.environment, scope=each.job.scope
        )
        environ[token_name] = each.record.access_token.reveal()
        environ[expires_name] = format_time(each.record.expires_at)
        names.append(f"{token_name} ({format_duration(each.verdict.seconds_left or 0)} left)")
    log.info(
        "running %s with %s",
        command[0],
        ", ".join(names),
        extra={"event": "exec.start", "sinks": [each.sink for each in found]},
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], list(command), environ)  # noqa: S606 - argv, no shell
    except OSError as exc:
        raise _exec_failed(command[0], exc) from None


def _exec_failed(program: str, exc: OSError) -> HarborSecretsError:
    error = HarborSecretsError(
        f"cannot run {program!r}: {exc.strerror or type(exc).__name__}",
        hint="give the command after --, e.g. harbor-secrets exec -e sandbox -- ./job.sh",
    )
    error.exit_code = 127 if isinstance(exc, FileNotFoundError) else 126
    return error
