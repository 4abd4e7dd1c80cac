"""``harbor-secrets stand-in-issuer``: the demo's local issuer as a command of its own.

``harbor-secrets demo`` runs the stand-in only while it runs; afterwards the commands it
suggests (``verify``, ``token``, ``sync``) need an issuer at the address its configuration
names. Given that configuration (``-c``), this serves exactly that address with exactly its
clients; given ``--client-id`` and ``--client-secret-file`` instead, it serves any port.
Either way it runs in the foreground until Ctrl-C or SIGTERM, and a port that is taken is
a usage error (exit 2) naming what to do, never a silent move to another port that the
configuration does not name.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import click

from harbor_secrets._serving import bind, handle_signals
from harbor_secrets.commands._common import load
from harbor_secrets.config import CONFIG_ENV_VAR, Config
from harbor_secrets.environments import is_loopback_host
from harbor_secrets.errors import EXIT_OK, ConfigError
from harbor_secrets.invocation import Globals
from harbor_secrets.references import ReferenceResolver, is_local
from harbor_secrets.stand_in_issuer import DEFAULT_PORT, StandInIssuer

DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True)
class StandInOptions:
    """How to run the stand-in when no configuration says it."""

    host: str | None = None
    port: int | None = None
    client_id: str | None = None
    client_secret_file: Path | None = None
    lifetime: int = 300

    @property
    def explicit(self) -> list[str]:
        """The address and client options given, which a configuration would contradict."""
        given = {
            "--host": self.host,
            "--port": self.port,
            "--client-id": self.client_id,
            "--client-secret-file": self.client_secret_file,
        }
        return [option for option, value in given.items() if value is not None]


@dataclass(frozen=True)
class Served:
    """What the stand-in serves: an address and the clients it accepts (id → secret)."""

    host: str
    port: int
    clients: Mapping[str, str]
    key: str  # the option or configuration key that chose the port, for errors
    source: str | None = None  # the configuration file, if one chose it


def from_config(config: Config, environ: Mapping[str, str]) -> Served:
    """The one loopback address every environment in use points at, and the credentials
    in use with their secrets (``env:`` and ``file:`` references only)."""
    addresses: dict[tuple[str, int], str] = {}
    for name in dict.fromkeys(job.environment for job in config.jobs()):
        environment = config.environments[name]
        for field_name, url in (
            ("accounts_url", environment.accounts_url),
            ("api_url", environment.api_url),
        ):
            key = f"environments.{name}.{field_name}"
            parts = urlsplit(url)
            if parts.scheme != "http" or not is_loopback_host(parts.hostname or ""):
                raise ConfigError(
                    f"is {url}, not a loopback http:// address the stand-in could serve",
                    source=config.source,
                    key=key,
                    fix="point accounts_url and api_url of every environment in use at one "
                    "http://127.0.0.1:PORT (as `harbor-secrets demo` writes them), or use "
                    "--client-id and --client-secret-file without -c",
                )
            addresses.setdefault((parts.hostname or DEFAULT_HOST, parts.port or 80), key)
    if len(addresses) != 1:
        shown = ", ".join(f"{host}:{port} ({key})" for (host, port), key in addresses.items())
        raise ConfigError(
            f"the environments in use point at {len(addresses) or 'no'} addresses"
            + (f" ({shown})" if shown else "")
            + "; one stand-in serves one",
            source=config.source,
            key="environments",
            fix="give every environment in use the same http://127.0.0.1:PORT",
        )
    ((host, port), key) = next(iter(addresses.items()))
    resolver = ReferenceResolver(environ=environ, base_dir=config.base_dir, source=config.source)
    clients: dict[str, str] = {}
    for name in dict.fromkeys(job.credentials for job in config.jobs()):
        credentials = config.credentials[name]
        key_name = f"credentials.{name}.client_secret"
        if not is_local(credentials.client_secret):
            raise ConfigError(
                "the stand-in reads only env: and file: client secrets",
                source=config.source,
                key=key_name,
                fix="use an env: or file: reference for a stand-in configuration",
            )
        secret = resolver.resolve(credentials.client_secret, key=key_name)
        clients[credentials.client_id] = secret.reveal()
    return Served(host, port, clients, key, config.source)


def from_options(options: StandInOptions) -> Served:
    if options.client_id is None or options.client_secret_file is None:
        raise ConfigError(
            "the stand-in needs a configuration to serve, or a client to accept",
            key="--config",
            fix="pass -c FILE (e.g. demo-output/harbor-secrets.toml), or --client-id ID and "
            "--client-secret-file FILE",
        )
    host = options.host or DEFAULT_HOST
    if not is_loopback_host(host):
        raise ConfigError(
            f"{host} is not a loopback address: the stand-in serves plain http:// with a "
            "client secret anyone who reaches it could try, so it listens on this host only",
            key="--host",
            fix="drop --host (127.0.0.1), or give ::1 or localhost",
        )
    resolver = ReferenceResolver(environ={}, base_dir=Path.cwd())
    secret = resolver.resolve(f"file:{options.client_secret_file}", key="--client-secret-file")
    return Served(
        host,
        DEFAULT_PORT if options.port is None else options.port,
        {options.client_id: secret.reveal()},
        "--port",
    )


def stand_in_command(g: Globals, options: StandInOptions) -> int:
    use_config = g.config is not None or (
        not options.explicit and bool(os.environ.get(CONFIG_ENV_VAR))
    )
    if use_config and options.explicit:
        raise ConfigError(
            f"{', '.join(options.explicit)} cannot be combined with -c: the configuration "
            "names the address and the clients",
            key="--config",
            fix="drop -c to choose them yourself, or drop the other options",
        )
    served = from_config(load(g.config), os.environ) if use_config else from_options(options)
    issuer = StandInIssuer(
        served.clients, token_lifetime=options.lifetime, host=served.host, port=served.port
    )
    bind(
        issuer.start,
        host=served.host,
        port=served.port,
        key=served.key,
        source=served.source,
        fix="another program holds the port, perhaps a stand-in already serving this "
        "configuration (stop it with Ctrl-C); `harbor-secrets demo` picks a free port and "
        "writes it into its configuration",
    )
    stop = threading.Event()
    restore = handle_signals(lambda name: stop.set())
    try:
        click.echo(f"stand-in issuer listening on {issuer.url} (Ctrl-C to stop)")
        click.echo(f"  token endpoint:      {issuer.token_url}")
        click.echo(f"  test-token endpoint: {issuer.test_token_url}")
        click.echo(f"  clients:             {', '.join(served.clients)}")
        click.echo(f"  token lifetime:      {options.lifetime} s")
        while not stop.wait(0.5):
            pass
    finally:
        issuer.stop()
        restore()
    return EXIT_OK
