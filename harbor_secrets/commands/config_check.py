"""``harbor-secrets config check``: validate offline and show the effective configuration."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from harbor_secrets.commands._common import load
from harbor_secrets.durations import format_duration
from harbor_secrets.errors import EXIT_OK
from harbor_secrets.invocation import Globals
from harbor_secrets.output import settings_text, to_json
from harbor_secrets.runtime import Runtime
from harbor_secrets.writer import writer_name


def effective_config(runtime: Runtime) -> dict[str, Any]:
    """The configuration as it will be used; secrets appear only as their references."""
    config = runtime.config
    refresh = config.refresh
    return {
        "source": config.source,
        # What this refresher writes into records (HARBOR_SECRETS_WRITER or the host name);
        # a bad HARBOR_SECRETS_WRITER exits 2 here, as sync would.
        "writer": writer_name(runtime.environ),
        "refresh": {
            "refresh_before_seconds": refresh.refresh_before,
            "schedule_period_seconds": refresh.schedule_period,
            "token_lifetime_seconds": refresh.token_lifetime,
            "max_workers": refresh.max_workers,
        },
        "http": dataclasses.asdict(config.http),
        "environments": environments(runtime),
        "credentials": {
            name: {
                "client_id": c.client_id,
                "client_secret": c.client_secret,  # a reference, never the value
                "auth_method": c.auth_method,
            }
            for name, c in config.credentials.items()
        },
        "sinks": {
            name: {
                **sink.provider.describe(),
                "key_template": sink.key_template.text,
                "on_write": sink.on_write.describe() if sink.on_write else None,
            }
            for name, sink in runtime.sinks.items()
        },
        "tokens": [
            {
                "credentials": job.credentials,
                "environment": job.environment,
                "scope": job.scope,
                "keys": {name: runtime.sinks[name].key_for(job) for name in job.sinks},
            }
            for job in config.jobs()
        ],
    }


def environments(runtime: Runtime) -> dict[str, dict[str, Any]]:
    """Every environment's URLs, where each came from, and whether a target uses it.

    The client secret is sent to the token URL, and an environment variable can override
    the file, so ``config check`` must show which URL won and why.
    """
    used = {job.environment for job in runtime.config.jobs()}
    return {
        name: {
            "in_use": name in used,
            "token_url": env.token_url,
            "token_url_from": env.accounts_origin.to_dict(),
            "test_token_url": env.test_token_url,
            "test_token_url_from": env.api_origin.to_dict(),
        }
        for name, env in runtime.config.environments.items()
    }


def environment_lines(runtime: Runtime) -> list[str]:
    """The text form of :func:`environments`, for the environments in use only."""
    lines = ["environments in use (the client secret is sent to each token URL):"]
    for name in dict.fromkeys(job.environment for job in runtime.config.jobs()):
        env = runtime.config.environments[name]
        lines += [
            f"  {name}:",
            f"    token URL:      {env.token_url} ({env.accounts_origin.describe()})",
            f"    test-token URL: {env.test_token_url} ({env.api_origin.describe()})",
        ]
    return lines


#: Where the arithmetic behind the availability budget is explained.
AVAILABILITY_DOC = "docs/AVAILABILITY.md"


def availability(runtime: Runtime) -> dict[str, Any]:
    """The availability budget of ``[refresh]`` and ``[http]``, scheduled and in watch mode
    (the freshness policy computes every figure), per-sink figures for readers that see
    writes late, and the sinks no other host can keep fresh."""
    config = runtime.config
    policy, budget = config.refresh, config.http.total_budget
    shapes = {
        mode: policy.availability(watching=watching, request_budget=budget).to_dict()
        for mode, watching in (("scheduled", False), ("watch", True))
    }
    delayed = {
        name: {
            mode: policy.availability(
                watching=watching, request_budget=budget, propagation=delay
            ).to_dict()
            for mode, watching in (("scheduled", False), ("watch", True))
        }
        for name, sink in runtime.sinks.items()
        if (delay := sink.provider.reader_delay()) > 0
    }
    local = [name for name, sink in runtime.sinks.items() if not sink.provider.shared]
    return {**shapes, "delayed_readers": delayed, "local_sinks": local}


def _left(seconds: float) -> str:
    if seconds > 0:
        return f"at least {format_duration(seconds)} left"
    if seconds == 0:
        return "a token at the moment it expires"
    return f"an expired token (up to {format_duration(-seconds)} past its expiry)"


def _outage(figures: dict[str, Any]) -> str:
    """What an outage that starts at the worst moment leaves readers, in words that stay
    true when the budget is gone (a policy ``config check`` also warns about)."""
    survived = figures["outage_survived_seconds"]
    at_best = format_duration(figures["outage_survived_at_best_seconds"])
    refuse = figures["outage_before_readers_refuse_seconds"]
    min_remaining = format_duration(figures["min_remaining_seconds"])
    if survived > 0:
        text = (
            f"an outage of Harbor, the store or every refresher is survived for at least "
            f"{format_duration(survived)} (at most {at_best}) before a token expires"
        )
    else:
        text = (
            "an outage of Harbor, the store or every refresher is not survived if it begins "
            "at the worst moment (readers then already hold a token that is expiring); one "
            f"that begins just after a write is survived for {at_best}"
        )
    if refuse > 0:
        return (
            f"{text}, {format_duration(refuse)} before get/exec refuse one with less than "
            f"{min_remaining} left"
        )
    return (
        f"{text}; get/exec, which refuse a token with less than {min_remaining} left, can "
        "refuse one even while everything answers"
    )


def availability_lines(data: dict[str, Any]) -> list[str]:
    """The budget in words, for ``config check``'s text output."""
    lines = [f"availability (the arithmetic: {AVAILABILITY_DOC}):"]
    shapes = {
        "scheduled": "run every {period} (cron, systemd timer, CronJob, Lambda)",
        "watch": "sync --watch, any one replica lost",
    }
    for mode, shape in shapes.items():
        figures = data[mode]
        lines.append(
            f"  {shape.format(period=format_duration(figures['latest_start_seconds']))}: "
            f"readers find {_left(figures['reader_floor_seconds'])} while Harbor and the "
            f"store answer promptly ({_left(figures['reader_floor_slow_issuer_seconds'])} if "
            f"each token request takes its whole "
            f"{format_duration(figures['request_budget_seconds'])} [http] budget); "
            + _outage(figures)
        )
    for name, modes in data["delayed_readers"].items():
        delay = modes["scheduled"]["propagation_seconds"]
        lines.append(
            f"  readers of sinks.{name} that see writes up to {format_duration(delay)} late "
            f"(a mounted volume) find {_left(modes['scheduled']['reader_floor_seconds'])} "
            f"when scheduled, {_left(modes['watch']['reader_floor_seconds'])} in watch mode"
        )
    for name in data["local_sinks"]:
        lines.append(
            f"  sinks.{name} is a file on this host, not shared: a refresher on another host "
            "cannot keep it fresh, so run one refresher on each host, next to its readers"
        )
    return lines


def config_check_command(g: Globals, *, skip_references: bool) -> int:
    output = g.output
    with Runtime(load(g.config), resolve_references=not skip_references) as runtime:
        if not skip_references:
            runtime.resolve_local_secrets()
        data = effective_config(runtime)
        data["availability"] = availability(runtime)
        data["warnings"] = runtime.warnings()
        urls = environment_lines(runtime)
    if output == "json":
        click.echo(to_json({"ok": True, **data}))
        return EXIT_OK
    refresh = data["refresh"]
    lines = [
        f"configuration OK: {data['source']}",
        f"refresh: tokens are rewritten when less than "
        f"{format_duration(refresh['refresh_before_seconds'])} is left; schedule every "
        f"{format_duration(refresh['schedule_period_seconds'])}",
        *urls,
        f"records written by: {data['writer']} ($HARBOR_SECRETS_WRITER, else the host name)",
        "credentials:",
    ]
    for name, c in data["credentials"].items():
        lines.append(
            f"  {name}: client_id={c['client_id']} client_secret={c['client_secret']} "
            f"({c['auth_method']})"
        )
    lines.append("sinks:")
    for name, sink in data["sinks"].items():
        settings = {key: value for key, value in sink.items() if key != "on_write"}
        if sink["on_write"] is not None:  # as the file writes it: on_write, on_write_timeout
            settings["on_write"] = sink["on_write"]["argv"]
            settings["on_write_timeout_seconds"] = sink["on_write"]["timeout_seconds"]
        lines.append(f"  {name}: {settings_text(settings)}")
    lines.append("tokens kept fresh:")
    for token in data["tokens"]:
        label = f"{token['credentials']}/{token['environment']}/{token['scope']}"
        keys = ", ".join(f"{sink} -> {key}" for sink, key in token["keys"].items())
        lines.append(f"  {label}: {keys}")
    lines += availability_lines(data["availability"])
    lines += [f"warning: {note}" for note in data["warnings"]]
    click.echo("\n".join(lines))
    return EXIT_OK
