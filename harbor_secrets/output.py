"""Render results for people (aligned text) or automation (JSON). Never prints a token."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import PurePath
from typing import Any

from harbor_secrets.durations import duration_setting, format_duration
from harbor_secrets.record import format_time
from harbor_secrets.sync import FAILED, SyncReport


def _json_default(value: Any) -> Any:
    """The few non-JSON types results carry; anything else is a bug, not a repr to print."""
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} has no JSON form")


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=_json_default)


def setting_text(value: Any) -> str:
    """A value as the configuration file writes it: ``true``, ``10``, ``["a", "b"]``,
    ``{team = "payments"}``; a bare string stays bare. Never a Python repr: an unknown type
    is a bug (TypeError), not something to print."""
    if isinstance(value, str):
        return value
    return _toml_value(value)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:g}"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"{type(value).__name__} has no text form")


def settings_text(settings: Mapping[str, Any]) -> str:
    """``name=value`` pairs for one line of text output; a ``*_seconds`` number is shown as
    the duration a configuration would write (``lock_timeout=10s``), and unset values
    (None) are left out."""
    parts = []
    for name, value in settings.items():
        if value is None:
            continue
        if name.endswith("_seconds") and isinstance(value, int | float):
            parts.append(f"{name.removesuffix('_seconds')}={duration_setting(value)}")
        else:
            parts.append(f"{name}={setting_text(value)}")
    return " ".join(parts)


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
            # A sink that failed because its token could not be fetched has no error of
            # its own: the job's (what the log said) is the reason, not the reason code.
            failed = sink["action"] == FAILED
            reason = sink.get("error") or (job.get("error") if failed else None)
            detail = reason or REASONS.get(sink["reason"], sink["reason"])
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
