"""Command-line interface: parse, dispatch, and map errors to exit codes. Nothing else.

Each command is a plain function in :mod:`harbor_secrets.commands`, imported only when that
command runs, so ``--version`` and ``--help`` stay fast and no SDK is loaded unless used.
Every option is declared once, here, and handed on as a typed value. The global options
(``-c/--config``, ``-v``, ``--log-format``, ``-o/--output``) are accepted before *or* after
the subcommand, as people type them. There is one error handler (:func:`main`): expected
errors print one line and exit with their code (1 run-time failure, 2 usage or
configuration); anything else is reported as a bug.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from harbor_secrets._version import __version__
from harbor_secrets.cli_params import Duration, ListenAddress, MetricsFile, PushgatewayUrl, Scope
from harbor_secrets.environments import DEFAULT_SCOPE
from harbor_secrets.errors import EXIT_FAILURE, EXIT_USAGE, ConfigError, HarborSecretsError
from harbor_secrets.freshness import DEFAULT_MIN_REMAINING
from harbor_secrets.invocation import Globals

if TYPE_CHECKING:
    from harbor_secrets.commands._common import Target

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
OUTPUT = click.Choice(["text", "json"])
LOG_FORMAT_ENV_VAR = "HARBOR_SECRETS_LOG_FORMAT"
_GLOBALS = "harbor_secrets.globals"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class _Asked:
    """What this command line asked for that the error handler needs after a failure: the
    output format (``-o``), wherever it was typed. Held by the root context's ``obj``,
    which every context of the invocation shares."""

    output: str | None = None


def _note_output(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Remember ``-o`` as soon as it is parsed (it is eager), so that even an error in the
    options that follow it is printed as JSON when JSON was asked for."""
    asked = ctx.find_root().obj
    if value is not None and isinstance(asked, _Asked):
        asked.output = value
    return value


def _global_params(
    *, output: bool, config: bool = True, root: bool = False
) -> list[click.Parameter]:
    """The global options: declared once, attached to the group and to every command.

    Every command parses all of them. A command that reads no configuration still parses
    ``-c``, and one with no JSON form ``-o`` (each hidden from its help), so that it can
    refuse them with one message instead of click's "no such option".
    """
    params: list[click.Parameter] = [
        click.Option(
            ["-c", "--config"],
            metavar="FILE",
            hidden=not config,
            help="TOML configuration file. Default: $HARBOR_SECRETS_CONFIG.",
        ),
        click.Option(["-v", "--verbose"], count=True, help="More logging: -v info, -vv debug."),
        click.Option(
            ["--log-format"],
            type=OUTPUT,
            # Read from the environment once, by the group: a subcommand's own value is
            # then always one typed after it, and wins as typed options do.
            envvar=LOG_FORMAT_ENV_VAR if root else None,
            help=f"Logs on stderr as text (default) or JSON lines. Default: ${LOG_FORMAT_ENV_VAR}.",
        ),
        click.Option(
            ["-o", "--output"],
            type=OUTPUT,
            hidden=not output,
            is_eager=True,
            callback=_note_output,
            help="Result as text (default) or JSON; with JSON, an error is a JSON object too.",
        ),
    ]
    return params


_GLOBAL_NAMES = ("config", "verbose", "log_format", "output")


def _merge(ctx: click.Context, own: dict[str, Any]) -> Globals:
    """A value given after the subcommand wins over one given before it; -v counts add up."""
    before: dict[str, Any] = ctx.find_root().meta.get(_GLOBALS, {})

    def pick(name: str, default: str | None) -> Any:
        value = own.get(name)
        return value if value is not None else before.get(name) or default

    return Globals(
        config=pick("config", None),
        verbosity=int(before.get("verbose") or 0) + int(own.get("verbose") or 0),
        log_format=pick("log_format", "text"),
        output=pick("output", "text"),
    )


class HarborCommand(click.Command):
    """A command that also takes the global options, and configures logging before it runs.

    ``output=False`` marks a command with no JSON form: ``-o json`` is then a usage error.
    ``config=False`` marks one that reads no configuration file: ``-c`` is then a usage
    error rather than silently ignored (people would believe their file was used).
    """

    def __init__(self, *args: Any, output: bool = True, config: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.takes_output = output
        self.takes_config = config
        self.params.extend(_global_params(output=output, config=config))

    def invoke(self, ctx: click.Context) -> Any:
        own = {name: ctx.params.pop(name, None) for name in _GLOBAL_NAMES}
        merged = _merge(ctx, own)
        if not self.takes_output and merged.output != "text":
            raise click.UsageError(
                f"{ctx.command_path} has no --output {merged.output}: its output is for "
                "people; drop -o/--output",
                ctx,
            )
        if not self.takes_config and merged.config is not None:
            raise click.UsageError(
                f"{ctx.command_path} reads no configuration, so -c/--config would be ignored: "
                "drop it",
                ctx,
            )
        from harbor_secrets import logs

        logs.configure(merged.verbosity, merged.log_format)
        ctx.obj = merged
        return super().invoke(ctx)


class HarborGroup(click.Group):
    """The root group: keeps the global options given before the subcommand for it."""

    command_class = HarborCommand
    group_class = type  # subgroups are HarborGroup too


def command(
    group: click.Group,
    name: str | None = None,
    *,
    output: bool = True,
    config: bool = True,
    **settings: Any,
) -> Callable[[Callable[..., Any]], click.Command]:
    """``@command(cli)``: a :class:`HarborCommand` under ``group``."""
    decorator: Callable[[Callable[..., Any]], click.Command] = group.command(
        name, cls=HarborCommand, output=output, config=config, **settings
    )
    return decorator


@click.group(
    cls=HarborGroup, context_settings=CONTEXT, params=_global_params(output=True, root=True)
)
@click.version_option(__version__, "-V", "--version", prog_name="harbor-secrets")
@click.pass_context
def cli(ctx: click.Context, /, **options: Any) -> None:
    """Mint Harbor Lockers API tokens and keep them fresh in your secret stores.

    Run `sync` every minute (cron, Kubernetes CronJob, Lambda): it refreshes only the
    tokens that are due and writes them to every configured store. Services read the
    token from their store on every use, or with `harbor-secrets get` / `exec`.

    \b
    Examples:
      harbor-secrets demo                      # the whole job against a local stand-in
      harbor-secrets config check -c harbor.toml
      harbor-secrets sync -c harbor.toml
      harbor-secrets sync -c harbor.toml -o json
      harbor-secrets status -c harbor.toml
      harbor-secrets get -c harbor.toml -e sandbox -s service_provider

    Global options (-c, -v, --log-format, -o) go before or after the command.
    Exit codes: 0 success (written or already fresh), 1 a failure at run time (other
    targets were still processed), 2 invalid usage or configuration (nothing was sent).
    """
    ctx.meta[_GLOBALS] = options


def sync_options(func: F) -> F:
    """The options of ``sync``; the command hands them on as one typed value."""
    for decorator in reversed(
        (
            click.option("--force", is_flag=True, help="Refresh every token, due or not."),
            click.option(
                "--dry-run", is_flag=True, help="Read the stores and say what would be written."
            ),
            click.option(
                "--watch",
                is_flag=True,
                help="Stay up: refresh each token when it falls due; exit 0 on SIGTERM or SIGINT.",
            ),
            click.option(
                "--listen",
                type=ListenAddress(),
                help="With --watch: serve GET /healthz and /metrics (a bare PORT binds 127.0.0.1).",
            ),
            click.option(
                "--metrics-file",
                type=MetricsFile(),
                help="Write metrics for node-exporter's textfile collector (a *.prom file, "
                "atomically).",
            ),
            click.option(
                "--pushgateway",
                type=PushgatewayUrl(),
                help="Push metrics to a Prometheus Pushgateway (job harbor-secrets).",
            ),
        )
    ):
        func = decorator(func)
    return func


@command(cli)
@sync_options
@click.pass_obj
def sync(g: Globals, /, **options: Any) -> int:
    """Refresh due tokens and write them to every configured sink.

    A token is due when its stored record has less than `refresh_before` left (or there is
    none). One token request per (credentials, environment, scope) serves every sink; a
    store that already holds a token expiring no earlier is never overwritten.

    With --watch it stays up instead of being scheduled: it sleeps until the earliest
    token falls due (at most `schedule_period`), backs off while the issuer or a store
    fails, and on SIGTERM finishes the writes in progress and exits 0. /healthz answers
    503 when a token is past due or the last cycle failed entirely. Metrics options need
    the optional extra: pip install 'harbor-secrets[metrics]'.

    \b
    Examples:
      harbor-secrets sync -c harbor.toml
      harbor-secrets sync -c harbor.toml --dry-run
      harbor-secrets sync -c harbor.toml --force -o json | jq .counts
      harbor-secrets sync -c harbor.toml --watch --listen 9464
      harbor-secrets sync -c harbor.toml --metrics-file /var/lib/node_exporter/harbor.prom
      harbor-secrets sync -c harbor.toml --pushgateway https://pushgateway.example:9091
    """
    from harbor_secrets.commands.sync import SyncOptions, sync_command

    return sync_command(g, SyncOptions(**options))


@command(cli)
@click.pass_obj
def status(g: Globals) -> int:
    """Show each sink's stored token: fresh, due, expired, implausible, missing or unreadable.

    Uses the same freshness rule as `sync`: a token `status` calls due is one the next
    `sync` rewrites. Implausible is a token written under a clock that was wrong (issued
    in the future, or expiring further ahead than tokens live): readers refuse it and
    `sync` replaces it. Exits 1 if any token is missing, unreadable, implausible or
    expired, so it doubles as a health check. Fetches nothing.

    \b
    Examples:
      harbor-secrets status -c harbor.toml
      harbor-secrets status -c harbor.toml -o json
    """
    from harbor_secrets.commands.status import status_command

    return status_command(g)


def target_options(func: F) -> F:
    """Which token: environment (or a tower ID), scope and credentials.

    ``-s`` may be repeated so that ``exec`` can take several tokens at once; every other
    command names one token and refuses a second ``-s`` (click would keep only the last).
    """
    for decorator in reversed(
        (
            click.option(
                "-e",
                "--environment",
                metavar="NAME",
                help="production, sandbox or development (or one your config defines).",
            ),
            click.option(
                "--tower-id",
                metavar="ID",
                help="Pick the environment from a tower ID (16 hex characters: 10… production, "
                "01… sandbox).",
            ),
            click.option(
                "-s",
                "--scope",
                "scopes",
                type=Scope(),
                multiple=True,
                default=(DEFAULT_SCOPE,),
                show_default=True,
                help="service_provider (backend API) or tower_access (mobile SDK).",
            ),
            click.option("--credentials", metavar="NAME", help="Credentials table to use."),
        )
    ):
        func = decorator(func)
    return func


def _targets(scopes: tuple[str, ...], target: dict[str, Any]) -> list[Target]:
    """One :class:`Target` per distinct ``-s`` given (the default: service_provider)."""
    from harbor_secrets.commands._common import Target

    return [Target(scope=scope, **target) for scope in dict.fromkeys(scopes)]


def _one_target(scopes: tuple[str, ...], target: dict[str, Any]) -> Target:
    """The one token a command names; a second, different ``-s`` is a usage error."""
    targets = _targets(scopes, target)
    if len(targets) > 1:
        ctx = click.get_current_context()
        raise click.UsageError(
            f"-s/--scope was given {len(targets)} times, but {ctx.info_name} works on one "
            f"token: give -s once (only exec takes several)",
            ctx,
        )
    return targets[0]


@command(cli)
@target_options
@click.pass_obj
def token(g: Globals, /, scopes: tuple[str, ...], **target: Any) -> int:
    """Mint a new token from Harbor now and print it (nothing is stored).

    Needs the client secret: it is for trying credentials by hand. Services and scripts
    should use `get`, which prints the token the scheduled `sync` keeps fresh in your
    store and needs no client secret (and sends Harbor nothing). Only the token is
    printed, followed by a newline (-o json: the token with its expiry). Like `verify`
    and `get`, it works on the tokens a [[targets]] table keeps, so the client secret
    goes only to an issuer `config check` lists.

    \b
    Examples:
      TOKEN=$(harbor-secrets token -c harbor.toml -e sandbox -s tower_access)
      harbor-secrets token -c harbor.toml --tower-id 0100000000000a3f
    """
    from harbor_secrets.commands.token import token_command

    return token_command(g, _one_target(scopes, target))


def reader_options(func: F) -> F:
    """Where a reader takes the token from, and how much life it needs left."""
    for decorator in reversed(
        (
            click.option(
                "--sink",
                metavar="NAME",
                help="Read this sink. Default: the first of the token's sinks that holds it.",
            ),
            click.option(
                "--min-remaining",
                type=Duration(),
                default=f"{DEFAULT_MIN_REMAINING:g}s",
                show_default=True,
                help="Refuse (exit 1) a token with less than this left.",
            ),
        )
    ):
        func = decorator(func)
    return func


@command(cli)
@target_options
@reader_options
@click.pass_obj
def get(
    g: Globals, /, sink: str | None, min_remaining: float, scopes: tuple[str, ...], **target: Any
) -> int:
    """Print the token your store holds now (what `sync` keeps fresh), for scripts.

    Reads only: never asks Harbor, never needs the client secret. Prints the bare token
    and a newline, nothing else on stdout (-o json: the stored record). Exits 1, saying
    why on stderr, when the store holds no token, cannot be read, or holds one with less
    than --min-remaining left. Call it on every use; do not keep its output for longer
    than the token lives. Use `token` instead only to mint a new one by hand.

    \b
    Examples:
      curl -H "Authorization: Bearer $(harbor-secrets get -e sandbox -s service_provider)" \\
           -X POST https://api.sandbox.harborlockers.com/api/v1/login/test-token
      harbor-secrets get -c harbor.toml --tower-id 0100000000000a3f -s tower_access
      harbor-secrets get -c harbor.toml -e production --sink vault -o json | jq .expires_at
    """
    from harbor_secrets.commands.read import get_command

    return get_command(g, _one_target(scopes, target), sink=sink, min_remaining=min_remaining)


@command(
    cli,
    "exec",
    output=False,
    context_settings={"allow_interspersed_args": False},
)
@target_options
@reader_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def exec_(
    g: Globals,
    /,
    sink: str | None,
    min_remaining: float,
    command: tuple[str, ...],
    scopes: tuple[str, ...],
    **target: Any,
) -> int:
    """Run COMMAND with the stored token in its environment, then exit with its status.

    The variables are the env file's: HARBOR_<ENVIRONMENT>_<SCOPE>_ACCESS_TOKEN and
    ..._EXPIRES_AT. Repeat -s for a job that needs several tokens: each gets its own pair
    of variables. Tokens are read once, when COMMAND starts: this suits jobs that finish
    well within --min-remaining, not daemons (they would outlive the token; let them read
    the store on each use instead). Refuses (exit 1) a token with less than
    --min-remaining left; the schedule promises readers refresh_before minus the schedule
    period (90 s by default), so ask for no more than that. COMMAND replaces this process,
    so its exit status and signals are its own.

    \b
    Examples:
      harbor-secrets exec -c harbor.toml -e sandbox -- ./nightly-report.sh
      harbor-secrets exec -c harbor.toml -e sandbox -s service_provider -s tower_access \\
          --min-remaining 60s -- python issue_mobile_keys.py
    """
    from harbor_secrets.commands.read import exec_command

    targets = _targets(scopes, target)
    exec_command(g, targets, command, sink=sink, min_remaining=min_remaining)


@command(cli)
@target_options
@click.option("--sink", metavar="NAME", help="Test the token stored in this sink instead.")
@click.pass_obj
def verify(g: Globals, /, sink: str | None, scopes: tuple[str, ...], **target: Any) -> int:
    """Test a token against Harbor's /api/v1/login/test-token endpoint.

    Without --sink a fresh token is fetched and tested (proves credentials and URLs). With
    --sink the stored token is tested (proves what your services read). A 401 means check
    your credentials and environment; a 404 means check the URL. Exits 1 when Harbor
    refuses the token; -o json gives Harbor's answer (ok, status, message) for CI checks.

    \b
    Examples:
      harbor-secrets verify -c harbor.toml -e sandbox
      harbor-secrets verify -c harbor.toml -e sandbox -s tower_access --sink vault
      harbor-secrets verify -c harbor.toml -e sandbox -o json | jq -e .ok
    """
    from harbor_secrets.commands.token import verify_command

    return verify_command(g, _one_target(scopes, target), sink=sink)


@command(cli, "environment", config=False)
@click.argument("tower_id")
@click.pass_obj
def environment_cmd(g: Globals, tower_id: str) -> int:
    """Tell which Harbor environment a tower ID belongs to (10… production, 01… sandbox).

    TOWER_ID is 16 hexadecimal characters, in either case, as Harbor's SDKs write it. Harbor
    documents no prefix for development towers: name that environment instead (-e
    development). With -o json it also prints the environment's token and test-token URLs.

    \b
    Examples:
      harbor-secrets environment 0100000000000a3f
      harbor-secrets environment 1000000000000B2C -o json
    """
    from harbor_secrets.commands.info import environment_command

    return environment_command(tower_id, output=g.output)


@command(cli, config=False)
@click.pass_obj
def providers(g: Globals) -> int:
    """List installed secret-store providers, and how to install missing ones.

    \b
    Examples:
      harbor-secrets providers
      harbor-secrets providers -o json
    """
    from harbor_secrets.commands.info import providers_command

    return providers_command(output=g.output)


@cli.group(cls=HarborGroup)
def config() -> None:
    """Work with the configuration file.

    `config check` validates it without any network call: exit 2 with the file, the key
    and the fix on the first mistake; otherwise it prints what will be used (each
    environment's token URL and where it came from, each sink, the key of every token)
    and warns about settings that cannot keep tokens fresh.

    \b
    Examples:
      harbor-secrets config check -c harbor-secrets.toml
      harbor-secrets config check -c harbor-secrets.toml -o json | jq .environments
      harbor-secrets config check -c harbor-secrets.toml --skip-references   # in CI
    """


@command(config, "check")
@click.option(
    "--skip-references",
    is_flag=True,
    help="Do not resolve env:/file: secret references (e.g. in CI without the secrets).",
)
@click.pass_obj
def config_check(g: Globals, skip_references: bool) -> int:
    """Validate the configuration without any network call.

    Prints the effective configuration (secrets redacted: only references are shown), the
    token each target keeps fresh and where, and warnings about policies that cannot keep
    tokens fresh. Exits 2 with the file, key and fix on the first error.

    \b
    Examples:
      harbor-secrets config check -c harbor.toml
      HARBOR_SECRETS_CONFIG=harbor.toml harbor-secrets config check -o json
    """
    from harbor_secrets.commands.config_check import config_check_command

    return config_check_command(g, skip_references=skip_references)


@command(cli, output=False, config=False)
@click.option(
    "-d",
    "--directory",
    default="harbor-secrets-demo",
    show_default=True,
    help="Where the demo writes its config, client secret file and env file.",
)
def demo(directory: str) -> int:
    """Run the whole job against a local stand-in issuer (no Harbor account needed).

    Starts a Keycloak-shaped issuer on 127.0.0.1 (on the port DIRECTORY's configuration
    already names, while it is free), writes a config and an env file into DIRECTORY
    (never through a symbolic link), syncs both scopes of both environments, syncs again
    to show that nothing is due, reads a token back with `get`, and shows how to point the
    same config at real Harbor. Its issuer stops when it ends; `harbor-secrets stand-in-issuer -c
    DIRECTORY/harbor-secrets.toml` serves that configuration again, so `verify`, `token`
    and `sync` work on it.

    \b
    Examples:
      harbor-secrets demo
      harbor-secrets demo --directory ~/harbor-demo
    """
    from harbor_secrets.commands.demo import demo_command

    return demo_command(directory)


@command(cli, "stand-in-issuer", output=False)
@click.option(
    "--host",
    help="Loopback address to bind, without -c: 127.0.0.1 (default), ::1 or localhost.",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), help="Port, without -c (0: any free). Default: 8401."
)
@click.option("--client-id", metavar="ID", help="The client it accepts, without -c.")
@click.option(
    "--client-secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file holding that client's secret (never the secret on the command line).",
)
@click.option(
    "--lifetime",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="Seconds each token lives.",
)
@click.pass_obj
def stand_in_issuer(g: Globals, /, **options: Any) -> int:
    """Run the local stand-in for Harbor's issuer in the foreground, until Ctrl-C.

    The same Keycloak-shaped token endpoint and test-token endpoint `demo` runs, on
    loopback, so `verify`, `token` and `sync` can be tried without a Harbor account. With
    -c it serves that configuration: the one http://127.0.0.1:PORT its environments in use
    name, and its credentials (env: or file: secrets). A taken port exits 2; it never moves
    to a port the configuration does not name. Tokens are signed with the client's secret,
    so a stand-in started again accepts the tokens an earlier one issued.

    \b
    Examples:
      harbor-secrets stand-in-issuer -c demo-output/harbor-secrets.toml
      harbor-secrets stand-in-issuer --port 8401 --client-id my-id \\
          --client-secret-file client-secret
    """
    from harbor_secrets.commands.stand_in import StandInOptions, stand_in_command

    return stand_in_command(g, StandInOptions(**options))


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point: the single place where errors become messages and exit codes.

    The message goes to stderr; when ``-o json`` was asked for, stdout gets the same error
    as a JSON object (:func:`_json_error`), so ``… -o json | jq`` never reads nothing.
    """
    asked = _Asked()
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="harbor-secrets",
            standalone_mode=False,
            obj=asked,
        )
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
        _json_error(asked, code, exc.format_message())
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        code = 130
        _json_error(asked, code, "aborted")
    except HarborSecretsError as exc:
        from harbor_secrets.secrets import scrub

        click.echo(f"harbor-secrets: error: {scrub(str(exc))}", err=True)
        code = exc.exit_code
        fix = exc.fix if isinstance(exc, ConfigError) else exc.hint
        _json_error(asked, code, exc.message, fix)
    except Exception as exc:
        code = _report_bug(exc)
        _json_error(asked, code, _bug_message(exc))
    sys.exit(code if isinstance(code, int) else 0)


def _json_error(asked: _Asked, code: int, error: str, fix: str | None = None) -> None:
    """``{"ok": false, "exit_code": …, "error": …, "fix": …}`` on stdout, scrubbed of every
    known secret, when ``-o json`` was asked for; nothing otherwise."""
    if asked.output != "json":
        return
    import json

    from harbor_secrets.secrets import scrub

    body = {
        "ok": False,
        "exit_code": code,
        "error": scrub(error),
        "fix": scrub(fix) if fix else None,
    }
    click.echo(json.dumps(body, indent=2))


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


def _bug_message(exc: Exception) -> str:
    return f"internal error: {type(exc).__name__} (this is a bug; run with -vv for a traceback)"


def _report_bug(exc: Exception) -> int:
    import logging
    import traceback

    from harbor_secrets.secrets import scrub

    click.echo(f"harbor-secrets: {_bug_message(exc)}", err=True)
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        click.echo(scrub("".join(traceback.format_exception(exc))), err=True)
    return EXIT_FAILURE
