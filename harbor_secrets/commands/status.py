"""``harbor-secrets status``: what each sink holds, without fetching anything."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from harbor_secrets.commands._common import load
from harbor_secrets.durations import format_duration
from harbor_secrets.errors import EXIT_FAILURE, EXIT_OK, HarborSecretsError
from harbor_secrets.output import table, to_json
from harbor_secrets.record import format_time
from harbor_secrets.runtime import Runtime


def collect_status(runtime: Runtime, now: datetime) -> list[dict[str, Any]]:
    refresh_before = runtime.config.refresh.refresh_before
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
            except HarborSecretsError as exc:
                row.update(state="error", error=str(exc))
                rows.append(row)
                continue
            if record is None:
                row["state"] = "missing"
            else:
                left = record.seconds_left(now)
                state = "fresh" if left > refresh_before else ("due" if left > 0 else "expired")
                row.update(
                    expires_at=format_time(record.expires_at),
                    expires_in_seconds=int(left),
                    age_seconds=int((now - record.issued_at).total_seconds()),
                    state=state,
                )
            rows.append(row)
    return rows


def status_command(config_path: str | None, *, output: str) -> int:
    now = datetime.now(UTC)
    with Runtime(load(config_path)) as runtime:
        rows = collect_status(runtime, now)
    healthy = all(row["state"] in ("fresh", "due") for row in rows)
    if output == "json":
        click.echo(to_json({"ok": healthy, "time": format_time(now), "tokens": rows}))
    else:
        click.echo(
            table(
                [
                    [
                        f"{r['credentials']}/{r['environment']}/{r['scope']}",
                        r["sink"],
                        r["state"],
                        format_duration(r["expires_in_seconds"]) if "expires_at" in r else "-",
                        format_duration(r["age_seconds"]) if "expires_at" in r else "-",
                        r.get("error", r["key"]),
                    ]
                    for r in rows
                ],
                ["TOKEN", "SINK", "STATE", "EXPIRES IN", "AGE", "KEY / ERROR"],
            )
        )
    return EXIT_OK if healthy else EXIT_FAILURE
