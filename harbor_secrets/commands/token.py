"""``harbor-secrets token`` and ``harbor-secrets verify``."""

from __future__ import annotations

import click

from harbor_secrets.commands._common import load, pick_credentials, pick_environment
from harbor_secrets.errors import EXIT_FAILURE, EXIT_OK, ConfigError, StoreError
from harbor_secrets.runtime import Runtime
from harbor_secrets.secrets import Secret


def _fetch(runtime: Runtime, environment: str, scope: str, credentials_name: str | None) -> Secret:
    from harbor_secrets.sync import default_client_factory

    config = runtime.config
    credentials = pick_credentials(config, credentials_name)
    secret = runtime.client_secret(credentials)
    client = default_client_factory(config, config.environments[environment], credentials, secret)
    try:
        return client.fetch(scope).access_token
    finally:
        client.close()


def token_command(
    config_path: str | None,
    *,
    environment: str | None,
    tower_id: str | None,
    scope: str,
    credentials: str | None,
) -> int:
    config = load(config_path)
    name = pick_environment(config, environment, tower_id)
    with Runtime(config) as runtime:
        token = _fetch(runtime, name, scope, credentials)
    click.echo(token.reveal())
    return EXIT_OK


def verify_command(
    config_path: str | None,
    *,
    environment: str | None,
    tower_id: str | None,
    scope: str,
    credentials: str | None,
    sink: str | None,
) -> int:
    from harbor_secrets.config import Job
    from harbor_secrets.token_client import ClientCredentials, TokenClient

    config = load(config_path)
    name = pick_environment(config, environment, tower_id)
    chosen = pick_credentials(config, credentials)
    with Runtime(config) as runtime:
        if sink is None:
            token = _fetch(runtime, name, scope, chosen.name)
            origin = "a freshly fetched token"
        else:
            if sink not in runtime.sinks:
                raise ConfigError(
                    f"unknown sink {sink!r}",
                    key="--sink",
                    fix=f"use one of: {', '.join(runtime.sinks)}",
                )
            key = runtime.sinks[sink].key_for(Job(chosen.name, name, scope, (sink,)))
            record = runtime.sinks[sink].provider.read(key)
            if record is None:
                raise StoreError(
                    f"sink {sink!r} holds no token under {key!r}",
                    hint="run harbor-secrets sync first",
                )
            token = record.access_token
            origin = f"the token stored in sink {sink!r} ({key})"
        client = TokenClient(
            config.environments[name], ClientCredentials(chosen.client_id, Secret(""))
        )
        try:
            result = client.test_token(token)
        finally:
            client.close()
    environment_info = config.environments[name]
    if result.ok:
        click.echo(f"ok: Harbor accepted {origin} ({environment_info.test_token_url})")
        return EXIT_OK
    click.echo(
        f"failed: Harbor answered {result.status} for {origin} "
        f"({environment_info.test_token_url}): {result.message}",
        err=True,
    )
    return EXIT_FAILURE
