"""``harbor-secrets demo``: the whole job on this machine, against the stand-in issuer.

It uses exactly the code path of a real run (config file, file: secret reference, the sync
engine, the env-file provider); only the issuer is local.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import sys
import tomllib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import click

from harbor_secrets._files import AtomicFile
from harbor_secrets.commands._common import Target
from harbor_secrets.commands.read import find_token
from harbor_secrets.config import load_config
from harbor_secrets.durations import format_duration
from harbor_secrets.environments import DEFAULT_SCOPE
from harbor_secrets.errors import EXIT_FAILURE, EXIT_OK, ConfigError, StoreError
from harbor_secrets.freshness import DEFAULT_MIN_REMAINING
from harbor_secrets.invocation import Globals
from harbor_secrets.output import sync_text
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_secrets.sync import FAILED, FRESH, KEPT_NEWER, WRITTEN, SyncReport, run_sync

_T = TypeVar("_T")

LOOPBACK = "127.0.0.1"
#: The demo's files are a few KiB; anything bigger in their place is not theirs.
MAX_DEMO_FILE = 1 << 20
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
  {run} stand-in-issuer -c {config}
and then, for example:
  {run} -c {config} verify -e sandbox                 # a fresh token
  {run} -c {config} verify -e sandbox --sink local    # the stored one
  {run} -c {config} sync
  {run} -c {config} status
"""

REAL_HARBOR = """\
To run the same job against real Harbor:
  1. delete the two [environments.*] tables from {config} (Harbor's own URLs are the default);
  2. set client_id to your Harbor client id and keep the secret out of the file:
       client_secret = "env:HARBOR_CLIENT_SECRET"
  3. export HARBOR_CLIENT_SECRET=… and run, every minute (cron, CronJob, Lambda):
       {run} -c {config} sync
  Check it first with:
       {run} -c {config} config check
       {run} -c {config} verify -e sandbox
"""

#: The demo's client secret file and configuration (its env file is the store's own).
SECRET_FILE = "client-secret"
CONFIG_FILE = "harbor-secrets.toml"
#: Each freshness state a first sync can find, in words, in the order they are told.
_FOUND = (
    ("expired", "expired"),
    ("implausible", "implausible (written under a clock that was wrong)"),
    ("due", "due (less than {refresh_before} left)"),
    ("missing", "missing"),
    ("fresh", "still fresh"),
    ("failed", "failed (see below)"),
)


def command_name() -> str:
    """This tool as the user can run it again from where they ran the demo.

    ``make demo`` runs ``.venv/bin/harbor-secrets``, which is seldom on ``PATH``: a bare
    ``harbor-secrets`` in the hints would be "command not found". So the hints name the
    running executable unless ``PATH`` finds that very one (``python -m``: the interpreter).
    """
    program = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if not program or Path(program).name == "__main__.py":
        return f"{shlex.quote(sys.executable)} -m harbor_secrets"
    found = shutil.which("harbor-secrets")
    if found and os.path.realpath(found) == os.path.realpath(program):
        return "harbor-secrets"
    return shlex.quote(program)


def _demo_file(path: Path, mode: int) -> AtomicFile:
    """One of the demo's own files: written whole with ``mode``, read bounded, and never
    through a symbolic link or into a special file (a link planted in a shared directory
    would otherwise receive the client secret)."""
    return AtomicFile(path, mode=mode, what=f"the demo's {path.name}", max_bytes=MAX_DEMO_FILE)


def _read(file: AtomicFile) -> str | None:
    data = _guarded(file.read)
    return None if data is None else data.decode("utf-8", "replace")


def _write(file: AtomicFile, text: str) -> None:
    _guarded(lambda: file.replace(text.encode("utf-8")))


def _guarded(action: Callable[[], _T]) -> _T:
    """A refused demo file is the --directory's problem: a usage error (exit 2)."""
    try:
        return action()
    except StoreError as exc:
        raise ConfigError(
            exc.message,
            key="--directory",
            fix="remove it, or give another --directory: the demo writes only regular files "
            "of its own",
        ) from None


def _show_env_file(file: AtomicFile) -> str:
    """The env file with token values elided: the demo shows names and expiry, not tokens."""
    lines = []
    for line in (_read(file) or "").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.endswith("_ACCESS_TOKEN"):
            value = f"'{value.strip(chr(39))[:12]}…' ({len(value)} characters, elided)"
        lines.append(f"  {name}{sep}{value}")
    return "\n".join(lines)


def _client_secret(file: AtomicFile) -> str:
    """The demo's client secret: the one an earlier run wrote, so the tokens that run
    stored stay valid for the stand-in (it checks a token against the client's secret)."""
    kept = (_read(file) or "").strip()
    if len(kept) >= 24:
        return kept
    secret = secrets.token_urlsafe(24)
    _write(file, secret + "\n")
    return secret


def _previous_port(text: str | None) -> int | None:
    """The loopback port an earlier demo wrote into its configuration, if it did."""
    try:
        environments = tomllib.loads(text or "").get("environments", {})
        url = environments["sandbox"]["accounts_url"]
        parts = urlsplit(url if isinstance(url, str) else "")
        if parts.scheme == "http" and parts.hostname == LOOPBACK and parts.port:
            return int(parts.port)
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError):
        return None
    return None


def _start_issuer(client_secret: str, previous: int | None) -> tuple[StandInIssuer, str]:
    """The stand-in on the port the existing configuration names (so a stand-in issuer
    started from it later still matches), else on a free one; and a note saying which."""
    clients = {DEMO_CLIENT_ID: client_secret}
    if previous is not None:
        try:
            issuer = StandInIssuer(clients, token_lifetime=300, host=LOOPBACK, port=previous)
            return issuer.start(), f"port {previous}, as the existing configuration names"
        except OSError as exc:
            taken = (
                f"port {previous}, which the existing configuration names, is taken "
                f"({exc.strerror or exc}), perhaps by a stand-in issuer you left running: "
                "stop it (Ctrl-C) and start it again after the demo, to serve the new port; "
            )
    else:
        taken = ""
    issuer = StandInIssuer(clients, token_lifetime=300, host=LOOPBACK).start()
    return issuer, f"{taken}a free port"


def first_sync_heading(report: SyncReport, env_file: str, refresh_before: float) -> str:
    """What the first sync found and did, from each row's own reason: true on every run of
    the demo (the first, a rerun within minutes, the next day's)."""
    found: Counter[str] = Counter()
    for job in report.results:
        for sink in job.sinks:
            if sink.action == FAILED:
                found["failed"] += 1
            elif sink.action in (FRESH, KEPT_NEWER):
                found["fresh"] += 1
            else:
                found[sink.reason] += 1
    rows = sum(found.values())
    if found["missing"] == rows:
        return "== first sync: nothing stored yet, so every token is fetched and written"
    if found["fresh"] == rows:
        return (
            f"== first sync: {env_file} already holds fresh tokens (an earlier demo run "
            "stored them), so nothing is fetched"
        )
    told = [
        f"{found[state]} {words.format(refresh_before=format_duration(refresh_before))}"
        for state, words in _FOUND
        if found[state]
    ]
    told += [f"{count} {state}" for state, count in found.items() if state not in dict(_FOUND)]
    written = report.count(WRITTEN)
    if written == rows:
        outcome = "so every token is fetched and written"
    elif written:
        outcome = f"so the {written} that are not fresh are fetched and written"
    else:
        outcome = "and nothing could be written"
    return (
        f"== first sync: {env_file} holds tokens an earlier demo run stored "
        f"({', '.join(told)}), {outcome}"
    )


def demo_command(directory: str) -> int:
    target = Path(directory).resolve()
    target.mkdir(parents=True, exist_ok=True)
    run = command_name()
    client_secret = _client_secret(_demo_file(target / SECRET_FILE, 0o600))
    config_file = _demo_file(target / CONFIG_FILE, 0o644)
    config_path = config_file.path
    issuer, port_note = _start_issuer(client_secret, _previous_port(_read(config_file)))
    try:
        _write(config_file, CONFIG_TEMPLATE.format(url=issuer.url, client_id=DEMO_CLIENT_ID))
        click.echo(
            f"stand-in issuer listening on {issuer.url} (Keycloak realm 'harbor'; {port_note})"
        )
        click.echo(f"config written to {config_path}\n")

        config = load_config(config_path)
        first = run_sync(config)
        env_file = _demo_file(target / "harbor.env", 0o600)
        click.echo(first_sync_heading(first, env_file.path.name, config.refresh.refresh_before))
        click.echo(sync_text(first) + "\n")

        mode = env_file.path.lstat().st_mode & 0o777
        click.echo(f"== {env_file.path} (mode {mode:04o}):")
        click.echo(_show_env_file(env_file) + "\n")

        before = issuer.token_requests
        click.echo("== second sync a moment later: every token is still fresh")
        second = run_sync(load_config(config_path))
        click.echo(sync_text(second))
        click.echo(f"token requests sent by the second sync: {issuer.token_requests - before}\n")
    finally:
        issuer.stop()

    click.echo("== how services read it: from the store, on every use (docs/READING.md)")
    found = find_token(
        Globals(config=str(config_path)),
        Target(environment="sandbox", scope=DEFAULT_SCOPE),
        sink=None,
        min_remaining=DEFAULT_MIN_REMAINING,
    )
    shown = found.record.access_token.reveal()[:12]
    click.echo(f"  {run} get -c {config_path} -e sandbox -s service_provider")
    click.echo(f"    -> {shown}… ({format_duration(found.verdict.seconds_left or 0)} left)")
    click.echo(f'  curl -H "Authorization: Bearer $({run} get -c {config_path} -e sandbox)" …')
    click.echo(
        "  (not `set -a; . harbor.env` in a long-running service: that freezes a token "
        "that dies in five minutes)\n"
    )
    click.echo(KEEP_TRYING.format(run=run, config=config_path))
    click.echo(REAL_HARBOR.format(run=run, config=config_path))
    ok = first.exit_code == EXIT_OK and second.exit_code == EXIT_OK
    return EXIT_OK if ok else EXIT_FAILURE
