"""``harbor-secrets status``: what each sink holds, without fetching anything.

``--output json`` gives the facts the Prometheus metrics carry, without Prometheus: the
expiry (``expires_at_unix`` is ``harbor_secrets_token_expiry_timestamp_seconds``), when the
token falls due, and ``issued_at``, the proxy for the last write (a token is written right
after it is issued), and ``written_by``, the refresher (host or pod) that wrote it. Stores
that keep only the token and its expiry (the env file) have neither; they are then null, as
is the age.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from harbor_secrets.commands._common import load
from harbor_secrets.durations import format_duration
from harbor_secrets.errors import EXIT_FAILURE, EXIT_OK, describe_error
from harbor_secrets.freshness import TokenState, seconds_between
from harbor_secrets.invocation import Globals
from harbor_secrets.output import table, to_json
from harbor_secrets.record import format_time
from harbor_secrets.runtime import Runtime

#: The states ``status`` exits 0 with (every other one exits 1; ``status --help`` says so).
HEALTHY = (TokenState.FRESH, TokenState.DUE)


def collect_status(runtime: Runtime, now: datetime) -> list[dict[str, Any]]:
    """One row per (token, sink): what the store holds and what the freshness policy says."""
    policy = runtime.config.refresh
    rows: list[dict[str, Any]] = []
    for job in runtime.config.jobs():
        for sink_name in job.sinks:
            sink = runtime.sinks[sink_name]
            row: dict[str, Any] = {
                "credentials": job.credentials,
                "environment": job.environment,
                "scope": job.scope,
                "sink": sink_name,
                "provider": sink.provider.name,
                "key": sink.key_for(job),
            }
            try:
                record = sink.provider.read(row["key"])
            except Exception as exc:  # any store failure: this row says so, the rest go on
                row.update(state=policy.unreadable().state.value, error=describe_error(exc))
                rows.append(row)
                continue
            verdict = policy.assess(record, now)
            row["state"] = verdict.state.value
            if record is not None and verdict.due_at is not None:
                issued = sink.provider.stores_full_record
                age = seconds_between(record.issued_at, now) if issued else None
                row.update(
                    expires_at=format_time(record.expires_at),
                    expires_at_unix=int(record.expires_at.timestamp()),
                    expires_in_seconds=int(verdict.seconds_left or 0),
                    due_at=format_time(verdict.due_at),
                    due_in_seconds=int(verdict.seconds_to_due or 0),
                    issued_at=format_time(record.issued_at) if issued else None,
                    age_seconds=int(age) if age is not None else None,
                    written_by=record.written_by or None,
                )
            rows.append(row)
    return rows


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def status_command(g: Globals, *, now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    with Runtime(load(g.config)) as runtime:
        rows = collect_status(runtime, now)
    healthy = all(row["state"] in HEALTHY for row in rows)
    if g.output == "json":
        summary = {
            "ok": healthy,
            "time": format_time(now),
            "refresh_before_seconds": runtime.config.refresh.refresh_before,
            "tokens": rows,
        }
        click.echo(to_json(summary))
    else:
        click.echo(
            table(
                [
                    [
                        f"{r['credentials']}/{r['environment']}/{r['scope']}",
                        r["sink"],
                        r["state"],
                        _duration(r.get("expires_in_seconds")),
                        _duration(r.get("age_seconds")),
                        r.get("written_by") or "-",
                        r.get("error", r["key"]),
                    ]
                    for r in rows
                ],
                ["TOKEN", "SINK", "STATE", "EXPIRES IN", "AGE", "WRITTEN BY", "KEY / ERROR"],
            )
        )
    return EXIT_OK if healthy else EXIT_FAILURE
