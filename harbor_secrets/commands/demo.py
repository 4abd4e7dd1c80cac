"""``harbor-secrets demo``: the whole job on this machine, against the stand-in issuer.

It uses exactly the code path of a real run (config file, file: secret reference, the sync
engine, the env-file provider); only the issuer is local.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import click

from harbor_secrets.commands._common import Target
from harbor_secrets.commands.read import find_token
from harbor_secrets.config import load_config
from harbor_secrets.durations import format_duration
from harbor_secrets.errors import EXIT_FAILURE, EXIT_OK
from harbor_secrets.freshness import DEFAULT_MIN_REMAINING
from harbor_secrets.invocation import Globals
from harbor_secrets.output import sync_text
from harbor_secrets.sync import FRESH, KEPT_NEWER, WRITTEN, SyncReport, run_sync

DEMO_CLIENT_ID = "harbor-secrets-demo"

CONFIG_TEMPLATE = """\
# Written by `harbor-secrets demo`. The issuer here is a local stand-in; see the end of the
# demo's output for the lines that point this file at real Harbor.
[refresh]
refresh_before = "150s"

[environments.production]
accounts_url = "{url}"
api_url = "{url}"

[environments.sandbox]
accounts_url = "{url}"
api_url = "{url}"

[credentials.main]
client_id = "{client_id}"
client_secret = "file:client-secret"

[sinks.local]
provider = "envfile"
path = "harbor.env"

[[targets]]
credentials = "main"
environments = ["production", "sandbox"]
scopes = ["service_provider", "tower_access"]
sinks = ["local"]
"""

KEEP_TRYING = """\
The stand-in issuer stopped with the demo. To keep trying commands on this configuration,
start it again in another terminal (it serves the address and client the file names):
  harbor-secrets stand-in-issuer -c {config}
and then, for example:
  harbor-secrets -c {config} verify -e sandbox                 # a fresh token
  harbor-secrets -c {config} verify -e sandbox --sink local    # the stored one
  harbor-secrets -c {config} sync
  harbor-secrets -c {config} status
"""

REAL_HARBOR = """\
To run the same job against real Harbor:
  1. delete the two [environments.*] tables from {config} (Harbor's own URLs are the default);
  2. set client_id to your Harbor client id and keep the secret out of the file:
       client_secret = "env:HARBOR_CLIENT_SECRET"
  3. export HARBOR_CLIENT_SECRET=… and run, every minute (cron, CronJob, Lambda):
       harbor-secrets -c {config} sync
  Check it first with:
       harbor-secrets -c {config} config check
       harbor-secrets -c {config} verify -e sandbox
"""


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def _show_env_file(path: Path) -> str:
    """The env file with token values elided: the demo shows names and expiry, not tokens."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.endswith("_ACCESS_TOKEN"):
            value = f"'{value.strip(chr(39))[:12]}…' ({len(value)} characters, elided)"
        lines.append(f"  {name}{sep}{value}")
    return "\n".join(lines)


def _client_secret(path: Path) -> str:
    """The demo's client secret: the one an earlier run wrote, so the tokens that run
    stored stay valid for the stand-in (it checks a token against the client's secret)."""
    if path.is_file() and not path.is_symlink():
        kept = path.read_text(encoding="utf-8").strip()
        if len(kept) >= 24:
            return kept
    secret = secrets.token_urlsafe(24)
    _write_private(path, secret + "\n")
    return secret


def _first_sync_heading(report: SyncReport, env_file: Path) -> str:
    """What the first sync did, in words that are true on every run of the demo."""
    written, fresh = report.count(WRITTEN), report.count(FRESH) + report.count(KEPT_NEWER)
    if fresh == 0:
        return "== first sync: nothing stored yet, so every token is fetched and written"
    if written == 0:
        return (
            f"== first sync: {env_file.name} already holds fresh tokens (an earlier demo run "
            "wrote them less than five minutes ago), so nothing is fetched"
        )
    return (
        f"== first sync: {fresh} token(s) an earlier demo run stored are still fresh; "
        f"the {written} due or missing are fetched and written"
    )


def demo_command(directory: str) -> int:
    from harbor_secrets.stand_in_issuer import StandInIssuer

    target = Path(directory).resolve()
    target.mkdir(parents=True, exist_ok=True)
    client_secret = _client_secret(target / "client-secret")
    with StandInIssuer(clients={DEMO_CLIENT_ID: client_secret}, token_lifetime=300) as issuer:
        config_path = target / "harbor-secrets.toml"
        config_path.write_text(
            CONFIG_TEMPLATE.format(url=issuer.url, client_id=DEMO_CLIENT_ID), encoding="utf-8"
        )
        click.echo(f"stand-in issuer listening on {issuer.url} (Keycloak realm 'harbor')")
        click.echo(f"config written to {config_path}\n")

        env_file = target / "harbor.env"
        first = run_sync(load_config(config_path))
        click.echo(_first_sync_heading(first, env_file))
        click.echo(sync_text(first) + "\n")

        click.echo(f"== {env_file} (mode {env_file.stat().st_mode & 0o777:04o}):")
        click.echo(_show_env_file(env_file) + "\n")

        before = issuer.token_requests
        click.echo("== second sync a moment later: every token is still fresh")
        second = run_sync(load_config(config_path))
        click.echo(sync_text(second))
        click.echo(f"token requests sent by the second sync: {issuer.token_requests - before}\n")

    click.echo("== how services read it: from the store, on every use (docs/READING.md)")
    found = find_token(
        Globals(config=str(config_path)),
        Target(environment="sandbox", scope="service_provider"),
        sink=None,
        min_remaining=DEFAULT_MIN_REMAINING,
    )
    shown = found.record.access_token.reveal()[:12]
    click.echo(f"  harbor-secrets get -c {config_path} -e sandbox -s service_provider")
    click.echo(f"    -> {shown}… ({format_duration(found.verdict.seconds_left or 0)} left)")
    click.echo(
        f'  curl -H "Authorization: Bearer $(harbor-secrets get -c {config_path} -e sandbox)" …'
    )
    click.echo(
        "  (not `set -a; . harbor.env` in a long-running service: that freezes a token "
        "that dies in five minutes)\n"
    )
    click.echo(KEEP_TRYING.format(config=config_path))
    click.echo(REAL_HARBOR.format(config=config_path))
    ok = first.exit_code == EXIT_OK and second.exit_code == EXIT_OK
    return EXIT_OK if ok else EXIT_FAILURE
