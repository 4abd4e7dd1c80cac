"""``harbor-secrets token`` and ``harbor-secrets verify``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from harbor_secrets.commands._common import Target, load, pick_sink
from harbor_secrets.config import Job
from harbor_secrets.errors import EXIT_FAILURE, EXIT_OK, StoreError
from harbor_secrets.invocation import Globals
from harbor_secrets.output import to_json
from harbor_secrets.record import format_time
from harbor_secrets.runtime import Runtime
from harbor_secrets.secrets import Secret

if TYPE_CHECKING:
    from harbor_secrets.token_client import IssuedToken

__all__ = ["Target", "token_command", "verify_command"]


def _fetch(runtime: Runtime, job: Job) -> IssuedToken:
    from harbor_secrets.sync import default_client_factory

    config = runtime.config
    credentials = config.credentials[job.credentials]
    secret = runtime.client_secret(credentials)
    client = default_client_factory(
        config, config.environments[job.environment], credentials, secret
    )
    try:
        return client.fetch(job.scope)
    finally:
        client.close()


def token_command(g: Globals, target: Target) -> int:
    config = load(g.config)
    job = target.job(config)
    with Runtime(config) as runtime:
        issued = _fetch(runtime, job)
    if g.output == "json":
        click.echo(
            to_json(
                {
                    "access_token": issued.access_token.reveal(),
                    "token_type": "Bearer",
                    "scope": job.scope,
                    "environment": job.environment,
                    "expires_in": issued.expires_in,
                    "expires_at": format_time(issued.expires_at),
                }
            )
        )
    else:
        click.echo(issued.access_token.reveal())
    return EXIT_OK


def verify_command(g: Globals, target: Target, *, sink: str | None) -> int:
    from harbor_secrets.token_client import ClientCredentials, TokenClient

    config = load(g.config)
    job = target.job(config)
    key: str | None = None
    with Runtime(config) as runtime:
        if sink is None:
            token = _fetch(runtime, job).access_token
            origin = "a freshly fetched token"
        else:
            pick_sink(config, sink)
            key = runtime.sinks[sink].key_for(job)
            record = runtime.sinks[sink].provider.read(key)
            if record is None:
                raise StoreError(
                    f"sink {sink!r} holds no token under {key!r}",
                    hint="run harbor-secrets sync first",
                )
            token = record.access_token
            origin = f"the token stored in sink {sink!r} ({key})"
        environment = config.environments[job.environment]
        client = TokenClient(
            environment,
            ClientCredentials(config.credentials[job.credentials].client_id, Secret("")),
        )
        try:
            result = client.test_token(token)
        finally:
            client.close()
    code = EXIT_OK if result.ok else EXIT_FAILURE
    if g.output == "json":
        click.echo(
            to_json(
                {
                    "ok": result.ok,
                    "exit_code": code,
                    "credentials": job.credentials,
                    "environment": job.environment,
                    "scope": job.scope,
                    "token": "stored" if sink else "fetched",
                    "sink": sink,
                    "key": key,
                    "test_token_url": environment.test_token_url,
                    "status": result.status,
                    "message": result.message,
                }
            )
        )
    elif result.ok:
        click.echo(f"ok: Harbor accepted {origin} ({environment.test_token_url})")
    else:
        click.echo(
            f"failed: Harbor answered {result.status} for {origin} "
            f"({environment.test_token_url}): {result.message}",
            err=True,
        )
    return code
