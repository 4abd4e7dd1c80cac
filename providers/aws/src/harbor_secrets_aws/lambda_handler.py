"""AWS Lambda entry point (``harbor_secrets_aws.lambda_handler.handler``): one sync pass.

EventBridge Scheduler invokes it every minute. Each invocation loads the configuration
(inline TOML in ``HARBOR_SECRETS_CONFIG_TOML``, a path in ``HARBOR_SECRETS_CONFIG``, or
``config.toml`` packaged at the task root), runs :func:`harbor_secrets.sync.run_sync`, and
returns its JSON summary; a failed run raises so Lambda records an error and alarms fire.

A late delivery (an async retry, a backlog behind reserved concurrency 1) carries the time it
was scheduled for; an event older than ``HARBOR_SECRETS_MAX_EVENT_AGE`` seconds (default 90)
is skipped, because the next tick is already on its way and it must not write behind it.

boto3 sessions and clients are created at import, during Lambda's init phase, and reused by
every warm invocation through :func:`harbor_secrets_aws.clients.shared_clients` (tests reset
that cache with :meth:`~harbor_secrets_aws.clients.ClientCache.reset`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harbor_secrets import (
    CONFIG_ENV_VAR,
    Config,
    ConfigError,
    configure_logging,
    load_config,
    parse_time,
    run_sync,
    scrub_handlers,
)
from harbor_secrets_aws.clients import ClientCache, settings_from_environ, shared_clients

log = logging.getLogger("harbor_secrets.lambda")

INLINE_ENV_VAR = "HARBOR_SECRETS_CONFIG_TOML"
MAX_AGE_ENV_VAR = "HARBOR_SECRETS_MAX_EVENT_AGE"
DEFAULT_MAX_EVENT_AGE = 90.0
PACKAGED_CONFIG = "config.toml"


class SyncFailedError(RuntimeError):
    """Raised when the run's exit code is not 0, so Lambda counts the invocation as failed."""

    def __init__(self, summary: Mapping[str, Any]) -> None:
        counts = summary.get("counts", {})
        failed = [
            f"{job['credentials']}/{job['environment']}/{job['scope']}"
            for job in summary.get("jobs", [])
            if not job.get("ok", True)
        ]
        super().__init__(
            f"harbor-secrets sync failed for {', '.join(failed) or 'some jobs'} "
            f"(written {counts.get('written', 0)}, failed {counts.get('failed', 0)}); "
            "see the JSON summary in this invocation's log"
        )
        self.summary = dict(summary)


def _warm_clients(environ: Mapping[str, str]) -> ClientCache:
    """Create the two clients the default sinks use while Lambda's init phase is free."""
    clients = shared_clients()
    settings = settings_from_environ(environ)
    if settings.region:  # always set in Lambda; elsewhere (tests, imports) nothing to warm
        for service in ("ssm", "secretsmanager"):
            try:
                clients.client(service, settings)
            except Exception:  # warming is an optimisation; a real failure shows on use
                log.debug("could not pre-create the %s client", service)
    return clients


def _setup_logging() -> None:
    """Keep Lambda's own log handler (it adds the request id) but scrub secrets through it."""
    if logging.getLogger().handlers:
        scrub_handlers(logging.INFO)
    else:
        configure_logging(verbosity=1, fmt="json")


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    _setup_logging()
CLIENTS = _warm_clients(os.environ)


def event_age(event: Mapping[str, Any], now: datetime) -> float | None:
    """Seconds since the event's ``time`` (EventBridge shape); None if it carries none."""
    stamp = event.get("time") if isinstance(event, Mapping) else None
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return (now - parse_time(stamp)).total_seconds()
    except ValueError:
        log.warning("ignoring the event's unparseable time field")
        return None


def max_event_age(environ: Mapping[str, str]) -> float:
    raw = environ.get(MAX_AGE_ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_MAX_EVENT_AGE
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"{MAX_AGE_ENV_VAR}={raw!r} is not a number of seconds",
            fix=f"set {MAX_AGE_ENV_VAR} to e.g. 90",
        ) from None
    if value <= 0:
        raise ConfigError(f"{MAX_AGE_ENV_VAR} must be positive", fix=f"set {MAX_AGE_ENV_VAR}=90")
    return value


def load_lambda_config(environ: Mapping[str, str], task_root: Path | None = None) -> Config:
    """Inline TOML, then a path, then ``config.toml`` at the task root: exactly one source."""
    inline = environ.get(INLINE_ENV_VAR, "")
    path = environ.get(CONFIG_ENV_VAR, "")
    if inline.strip() and path.strip():
        raise ConfigError(
            f"both {INLINE_ENV_VAR} and {CONFIG_ENV_VAR} are set",
            fix="keep one of them, so it is clear which configuration runs",
        )
    if inline.strip():
        return load_config(text=inline, environ=environ)
    if path.strip():
        return load_config(path.strip(), environ=environ)
    root = task_root or Path(environ.get("LAMBDA_TASK_ROOT") or Path(__file__).parent.parent)
    packaged = root / PACKAGED_CONFIG
    if packaged.is_file():
        return load_config(packaged, environ=environ)
    raise ConfigError(
        "no configuration for the Lambda function",
        fix=f"set {INLINE_ENV_VAR} (TOML text), {CONFIG_ENV_VAR} (a path), or package "
        f"{PACKAGED_CONFIG} at the root of the deployment zip",
    )


def handler(event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
    """Run one sync pass for a scheduled event and return its JSON summary."""
    environ = os.environ
    now = datetime.now(UTC)
    age = event_age(event, now)
    limit = max_event_age(environ)
    if age is not None and age > limit:
        summary = {
            "ok": True,
            "skipped": True,
            "reason": "stale-event",
            "event_time": event.get("time"),
            "event_age_seconds": round(age, 3),
            "max_event_age_seconds": limit,
        }
        log.warning("skipping a scheduled event %.0fs old (limit %gs)", age, limit)
        print(json.dumps(summary, sort_keys=True))  # the invocation's summary line in CloudWatch
        return summary
    config = load_lambda_config(environ)
    report = run_sync(config, environ=environ)
    summary = report.to_dict()
    print(json.dumps(summary, sort_keys=True))  # the invocation's summary line in CloudWatch
    if report.exit_code != 0:
        raise SyncFailedError(summary)
    return summary
