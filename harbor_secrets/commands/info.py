"""``harbor-secrets environment`` and ``harbor-secrets providers``: facts, no configuration."""

from __future__ import annotations

import dataclasses

import click

from harbor_secrets.environments import (
    environment_for_tower,
    normalize_tower_id,
    resolve_environment,
)
from harbor_secrets.errors import EXIT_OK
from harbor_secrets.output import table, to_json
from harbor_secrets.registry import Registry


def environment_command(tower_id: str, *, output: str) -> int:
    name = environment_for_tower(tower_id)
    environment = resolve_environment(name)
    if output == "json":
        click.echo(
            to_json(
                {
                    "tower_id": normalize_tower_id(tower_id),
                    "environment": name,
                    "token_url": environment.token_url,
                    "api_url": environment.api_url,
                    "test_token_url": environment.test_token_url,
                }
            )
        )
    else:
        click.echo(name)
    return EXIT_OK


def providers_command(*, output: str) -> int:
    infos = Registry().describe()
    if output == "json":
        click.echo(to_json([dataclasses.asdict(info) for info in infos]))
        return EXIT_OK
    rows = []
    for info in infos:
        detail = info.summary if info.status == "installed" else f"{info.install}"
        if info.error:
            detail = f"{info.error}; {detail}"
        rows.append(
            [
                info.name,
                info.status,
                f"{info.distribution} {info.version or ''}".strip(),
                ", ".join(f"{s}:" for s in info.schemes) or "-",
                detail,
            ]
        )
    click.echo(table(rows, ["PROVIDER", "STATUS", "DISTRIBUTION", "REFERENCES", "NOTES"]))
    return EXIT_OK
