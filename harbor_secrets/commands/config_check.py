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


def effective_config(runtime: Runtime) -> dict[str, Any]:
    """The configuration as it will be used; secrets appear only as their references."""
    config = runtime.config
    refresh = config.refresh
    return {
        "source": config.source,
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
            name: {**sink.provider.describe(), "key_template": sink.key_template.text}
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


def config_check_command(g: Globals, *, skip_references: bool) -> int:
    output = g.output
    with Runtime(load(g.config), resolve_references=not skip_references) as runtime:
        if not skip_references:
            runtime.resolve_local_secrets()
        data = effective_config(runtime)
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
        "credentials:",
    ]
    for name, c in data["credentials"].items():
        lines.append(
            f"  {name}: client_id={c['client_id']} client_secret={c['client_secret']} "
            f"({c['auth_method']})"
        )
    lines.append("sinks:")
    for name, sink in data["sinks"].items():
        details = settings_text(sink)
        lines.append(f"  {name}: {details}")
    lines.append("tokens kept fresh:")
    for token in data["tokens"]:
        label = f"{token['credentials']}/{token['environment']}/{token['scope']}"
        keys = ", ".join(f"{sink} -> {key}" for sink, key in token["keys"].items())
        lines.append(f"  {label}: {keys}")
    lines += [f"warning: {note}" for note in data["warnings"]]
    click.echo("\n".join(lines))
    return EXIT_OK
