"""Render results for people (aligned text) or automation (JSON). Never prints a token."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from harbor_secrets.durations import format_duration
from harbor_secrets.sync import FAILED, SyncReport


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


REASONS = {
    "missing": "nothing was stored",
    "due": "stored token was due",
    "expired": "stored token had expired",
    "implausible": "stored token's expiry was implausible (written under a wrong clock)",
    "forced": "--force",
    "fresh": "",
}


def sync_text(report: SyncReport) -> str:
    data = report.to_dict()
    rows = []
    for job in data["jobs"]:
        label = f"{job['credentials']}/{job['environment']}/{job['scope']}"
        for sink in job["sinks"]:
            left = sink.get("expires_in_seconds")
            detail = sink.get("error") or REASONS.get(sink["reason"], sink["reason"])
            hook = sink.get("on_write")
            if hook is not None:
                ran = "on_write ran" if hook["ok"] else f"on_write FAILED: {hook['error']}"
                detail = f"{detail}; {ran}" if detail else ran
            rows.append(
                [
                    label,
                    sink["sink"],
                    sink["action"],
                    format_duration(left) if left is not None else "-",
                    detail,
                ]
            )
        if job.get("error") and not job["sinks"]:
            rows.append([label, "-", FAILED, "-", job["error"]])
    counts = data["counts"]
    summary = (
        f"{counts['written']} written, {counts['fresh']} fresh, "
        f"{counts['kept-newer']} kept (the store held one no older), {counts['failed']} failed; "
        f"{data['tokens_fetched']} token(s) fetched in {data['token_requests']} request(s), "
        f"{data['duration_seconds']}s"
    )
    if data["on_write_failed"]:
        summary += f"; {data['on_write_failed']} on_write command(s) failed"
    if report.dry_run:
        summary = (
            f"dry run: {counts['would-write']} would be written, {counts['fresh']} fresh, "
            f"{counts['failed']} failed; nothing was fetched or written"
        )
    headers = ["TOKEN", "SINK", "ACTION", "EXPIRES IN", "DETAIL"]
    parts = [table(rows, headers) if rows else "no tokens configured"]
    parts += [f"warning: {note}" for note in report.warnings]
    parts.append(summary)
    return "\n".join(parts)
