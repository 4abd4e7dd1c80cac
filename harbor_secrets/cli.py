"""Command-line interface: parse, dispatch, and map errors to exit codes. Nothing else.

Each command is a plain function in :mod:`harbor_secrets.commands`, imported only when that
command runs, so ``--version`` and ``--help`` stay fast and no SDK is loaded unless used.
There is one error handler (:func:`main`): expected errors print one line and exit with
their code (1 run-time failure, 2 usage/configuration); anything else is reported as a bug.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import NoReturn

import click

from harbor_secrets._version import __version__
from harbor_secrets.errors import EXIT_FAILURE, EXIT_USAGE, HarborSecretsError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
OUTPUT = click.Choice(["text", "json"])


@dataclass(frozen=True)
class Globals:
    config: str | None
    verbosity: int


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="harbor-secrets")
@click.option(
    "-c",
    "--config",
    metavar="FILE",
    help="TOML configuration file. Default: $HARBOR_SECRETS_CONFIG.",
)
@click.option("-v", "--verbose", count=True, help="More logging: -v info, -vv debug.")
@click.option(
    "--log-format",
    type=OUTPUT,
    default="text",
    envvar="HARBOR_SECRETS_LOG_FORMAT",
    show_default=True,
    help="Logs on stderr as text or JSON lines.",
)
@click.pass_context
def cli(ctx: click.Context, config: str | None, verbose: int, log_format: str) -> None:
    """Mint Harbor Lockers API tokens and keep them fresh in your secret stores.

    Run `sync` every minute (cron, Kubernetes CronJob, Lambda): it refreshes only the
    tokens that are due and writes them to every configured store.

    \b
    Examples:
      harbor-secrets demo                      # the whole job against a local stand-in
      harbor-secrets -c harbor.toml config check
      harbor-secrets -c harbor.toml sync
      harbor-secrets -c harbor.toml sync --output json
      harbor-secrets -c harbor.toml status

    Exit codes: 0 success (written or already fresh), 1 a failure at run time (other
    targets were still processed), 2 invalid usage or configuration (nothing was sent).
    """
    from harbor_secrets import logs

    logs.configure(verbose, log_format)
    ctx.obj = Globals(config=config, verbosity=verbose)


@cli.command()
@click.option("--force", is_flag=True, help="Refresh every token, due or not.")
@click.option("--dry-run", is_flag=True, help="Read the stores and say what would be written.")
@click.option("-o", "--output", type=OUTPUT, default="text", show_default=True)
@click.option(
    "--watch",
    is_flag=True,
    help="Stay up: refresh each token when it falls due; exit 0 on SIGTERM or SIGINT.",
)
@click.option(
    "--listen",
    metavar="[HOST:]PORT",
    help="With --watch: serve GET /healthz and /metrics (a bare PORT binds 127.0.0.1).",
)
@click.option(
    "--metrics-file",
    metavar="PATH",
    help="Write metrics for node-exporter's textfile collector (a *.prom file, atomically).",
)
@click.option(
    "--pushgateway",
    metavar="URL",
    help="Push metrics to a Prometheus Pushgateway (job harbor-secrets).",
)
@click.pass_obj
def sync(
    g: Globals,
    force: bool,
    dry_run: bool,
    output: str,
    watch: bool,
    listen: str | None,
    metrics_file: str | None,
    pushgateway: str | None,
) -> int:
    """Refresh due tokens and write them to every configured sink.

    A token is due when its stored record has less than `refresh_before` left (or there is
    none). One token request per (credentials, environment, scope) serves every sink; a
    store that already holds a newer token is never overwritten.

    With --watch it stays up instead of being scheduled: it sleeps until the earliest
    token falls due (at most `schedule_period`), backs off while the issuer or a store
    fails, and on SIGTERM finishes the writes in progress and exits 0. /healthz answers
    503 when a token is past due or the last cycle failed entirely. Metrics options need
    the optional extra: pip install 'harbor-secrets[metrics]'.

    \b
    Examples:
      harbor-secrets -c harbor.toml sync
      harbor-secrets -c harbor.toml sync --dry-run
      harbor-secrets -c harbor.toml sync --force --output json | jq .counts
      harbor-secrets -c harbor.toml sync --watch --listen 9464
      harbor-secrets -c harbor.toml sync --metrics-file /var/lib/node_exporter/harbor.prom
      harbor-secrets -c harbor.toml sync --pushgateway https://pushgateway.example:9091
    """
    from harbor_secrets.commands.sync import sync_command

    return sync_command(
        g.config,
        force=force,
        dry_run=dry_run,
        output=output,
        watch=watch,
        listen=listen,
        metrics_file=metrics_file,
        pushgateway=pushgateway,
    )


@cli.command()
@click.option("-o", "--output", type=OUTPUT, default="text", show_default=True)
@click.pass_obj
def status(g: Globals, output: str) -> int:
    """Show each sink's stored token: expires in, age, due or not.

    Exits 1 if any store cannot be read or holds no unexpired token, so it doubles as a
    health check.

    \b
    Examples:
      harbor-secrets -c harbor.toml status
      harbor-secrets -c harbor.toml status --output json
    """
    from harbor_secrets.commands.status import status_command

    return status_command(g.config, output=output)


def _target_options(func: click.decorators.FC) -> click.decorators.FC:
    func = click.option("--credentials", metavar="NAME", help="Credentials table to use.")(func)
    func = click.option(
        "--scope",
        default="service_provider",
        show_default=True,
        help="service_provider (backend API) or tower_access (mobile SDK).",
    )(func)
    func = click.option("--tower-id", metavar="ID", help="Pick the environment from a tower ID.")(
        func
    )
    return click.option(
        "-e", "--environment", metavar="NAME", help="production or sandbox (or a custom one)."
    )(func)


@cli.command()
@_target_options
@click.pass_obj
def token(
    g: Globals, environment: str | None, tower_id: str | None, scope: str, credentials: str | None
) -> int:
    """Fetch one token from Harbor and print it on stdout (nothing is stored).

    For scripts that need a token now. Only the token is printed, followed by a newline.

    \b
    Examples:
      TOKEN=$(harbor-secrets -c harbor.toml token -e sandbox --scope tower_access)
      harbor-secrets -c harbor.toml token --tower-id 0100000123
    """
    from harbor_secrets.commands.token import token_command

    return token_command(
        g.config,
        environment=environment,
        tower_id=tower_id,
        scope=scope,
        credentials=credentials,
    )


@cli.command()
@_target_options
@click.option("--sink", metavar="NAME", help="Test the token stored in this sink instead.")
@click.pass_obj
def verify(
    g: Globals,
    environment: str | None,
    tower_id: str | None,
    scope: str,
    credentials: str | None,
    sink: str | None,
) -> int:
    """Test a token against Harbor's /api/v1/login/test-token endpoint.

    Without --sink a fresh token is fetched and tested (proves credentials and URLs). With
    --sink the stored token is tested (proves what your services read). A 401 means check
    your credentials and environment; a 404 means check the URL.

    \b
    Examples:
      harbor-secrets -c harbor.toml verify -e sandbox
      harbor-secrets -c harbor.toml verify -e sandbox --scope tower_access --sink vault
    """
    from harbor_secrets.commands.token import verify_command

    return verify_command(
        g.config,
        environment=environment,
        tower_id=tower_id,
        scope=scope,
        credentials=credentials,
        sink=sink,
    )


@cli.command("environment")
@click.argument("tower_id")
@click.option("-o", "--output", type=OUTPUT, default="text", show_default=True)
def environment_cmd(tower_id: str, output: str) -> int:
    """Tell which Harbor environment a tower ID belongs to (10… production, 01… sandbox).

    \b
    Examples:
      harbor-secrets environment 0100000123
      harbor-secrets environment 1000000042 --output json
    """
    from harbor_secrets.commands.info import environment_command

    return environment_command(tower_id, output=output)


@cli.command()
@click.option("-o", "--output", type=OUTPUT, default="text", show_default=True)
def providers(output: str) -> int:
    """List installed secret-store providers, and how to install missing ones.

    \b
    Examples:
      harbor-secrets providers
      harbor-secrets providers --output json
    """
    from harbor_secrets.commands.info import providers_command

    return providers_command(output=output)


@cli.group()
def config() -> None:
    """Work with the configuration file."""


@config.command("check")
@click.option("-o", "--output", type=OUTPUT, default="text", show_default=True)
@click.option(
    "--skip-references",
    is_flag=True,
    help="Do not resolve env:/file: secret references (e.g. in CI without the secrets).",
)
@click.pass_obj
def config_check(g: Globals, output: str, skip_references: bool) -> int:
    """Validate the configuration without any network call.

    Prints the effective configuration (secrets redacted: only references are shown), the
    token each target keeps fresh and where, and warnings about policies that cannot keep
    tokens fresh. Exits 2 with the file, key and fix on the first error.

    \b
    Examples:
      harbor-secrets -c harbor.toml config check
      HARBOR_SECRETS_CONFIG=harbor.toml harbor-secrets config check --output json
    """
    from harbor_secrets.commands.config_check import config_check_command

    return config_check_command(g.config, output=output, skip_references=skip_references)


@cli.command()
@click.option(
    "-d",
    "--directory",
    default="harbor-secrets-demo",
    show_default=True,
    help="Where the demo writes its config, client secret file and env file.",
)
def demo(directory: str) -> int:
    """Run the whole job against a local stand-in issuer (no Harbor account needed).

    Starts a Keycloak-shaped issuer on 127.0.0.1, writes a config and an env file into
    DIRECTORY, syncs both scopes of both environments, syncs again to show that nothing is
    due, verifies a token, and shows how to point the same config at real Harbor.

    \b
    Examples:
      harbor-secrets demo
      harbor-secrets demo --directory /tmp/harbor-demo
    """
    from harbor_secrets.commands.demo import demo_command

    return demo_command(directory)


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: the single place where errors become messages and exit codes."""
    try:
        code = cli.main(args=argv, prog_name="harbor-secrets", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        code = 130
    except HarborSecretsError as exc:
        from harbor_secrets.secrets import scrub

        click.echo(f"harbor-secrets: error: {scrub(str(exc))}", err=True)
        code = exc.exit_code
    except Exception as exc:
        code = _report_bug(exc)
    sys.exit(code if isinstance(code, int) else 0)


def run() -> NoReturn:
    """Console-script entry: :func:`main`, then leave without interpreter teardown.

    A one-shot run has closed its stores and flushed its output by then; tearing down the
    SDKs' module graphs (boto3, hvac) costs 60-90 ms on every minutely run and does nothing.
    In-process callers use :func:`main`, which exits normally. Cyclic garbage collection is
    off until the stores are built (see :func:`harbor_secrets.runtime.settle_gc`): imports
    and SDK model loading allocate objects that live until exit, and collecting them
    repeatedly cost ~30 ms per run.
    """
    import gc

    gc.disable()
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        import contextlib
        import logging
        import os

        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to add
                stream.flush()
        os._exit(code)


def _report_bug(exc: Exception) -> int:
    import logging
    import traceback

    from harbor_secrets.secrets import scrub

    click.echo(
        f"harbor-secrets: internal error: {type(exc).__name__} (this is a bug; "
        "run with -vv for a traceback)",
        err=True,
    )
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        click.echo(scrub("".join(traceback.format_exception(exc))), err=True)
    return EXIT_FAILURE
