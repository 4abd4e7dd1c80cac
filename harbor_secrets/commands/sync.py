"""``harbor-secrets sync``: one pass (optionally exporting metrics), or ``--watch``.

Every option is checked, and the optional Prometheus client looked for, before the
configuration is used, so a mistake exits 2 with nothing fetched or written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import click

from harbor_secrets.commands._common import load
from harbor_secrets.config import Config
from harbor_secrets.errors import EXIT_FAILURE, ConfigError, HarborSecretsError
from harbor_secrets.output import sync_text, to_json
from harbor_secrets.sync import SyncReport, run_sync


def sync_command(
    config_path: str | None,
    *,
    force: bool,
    dry_run: bool,
    output: str,
    watch: bool = False,
    listen: str | None = None,
    metrics_file: str | None = None,
    pushgateway: str | None = None,
) -> int:
    _check_combinations(
        force=force,
        dry_run=dry_run,
        output=output,
        watch=watch,
        listen=listen,
        metrics_file=metrics_file,
        pushgateway=pushgateway,
    )
    if watch:
        return watch_command(config_path, listen=listen)
    from harbor_secrets.metrics import check_metrics_file, check_pushgateway_url, require_prometheus

    target = check_metrics_file(metrics_file) if metrics_file is not None else None
    gateway = check_pushgateway_url(pushgateway) if pushgateway is not None else None
    if target is not None:
        require_prometheus("--metrics-file")
    if gateway is not None:
        require_prometheus("--pushgateway")
    config = load(config_path)
    report = run_sync(config, force=force, dry_run=dry_run)
    click.echo(to_json(report.to_dict()) if output == "json" else sync_text(report))
    if target is None and gateway is None:
        return report.exit_code
    return _export(config, report, target, gateway)


def _check_combinations(
    *,
    force: bool,
    dry_run: bool,
    output: str,
    watch: bool,
    listen: str | None,
    metrics_file: str | None,
    pushgateway: str | None,
) -> None:
    if watch:
        for option, given in (
            ("--force", force),
            ("--dry-run", dry_run),
            ("--output json", output == "json"),
            ("--metrics-file", metrics_file is not None),
            ("--pushgateway", pushgateway is not None),
        ):
            if given:
                raise ConfigError(
                    "cannot be combined with --watch",
                    key=option,
                    fix="watch mode reports through its log (--log-format json) and "
                    "--listen's /metrics and /healthz",
                )
    elif listen is not None:
        raise ConfigError(
            "serves /healthz and /metrics only in watch mode",
            key="--listen",
            fix="add --watch, or use --metrics-file / --pushgateway for a one-shot run",
        )
    if dry_run and (metrics_file is not None or pushgateway is not None):
        raise ConfigError(
            "a dry run changes nothing, so it has no metrics to report",
            key="--dry-run",
            fix="drop --dry-run, or drop --metrics-file / --pushgateway",
        )


def _export(config: Config, report: SyncReport, target: Path | None, gateway: str | None) -> int:
    """Write and push this run's metrics; a failure here is a run-time failure (exit 1)."""
    from harbor_secrets import exposition
    from harbor_secrets.metrics import SyncMetrics
    from harbor_secrets.secrets import scrub

    metrics = SyncMetrics(config.jobs())
    if target is not None:
        exposition.restore_textfile(target, metrics)
    metrics.record(report)
    code = report.exit_code
    steps: list[Callable[[], None]] = []
    if target is not None:
        steps.append(lambda: exposition.write_textfile(target, metrics))
    if gateway is not None:
        steps.append(lambda: exposition.push(gateway, metrics, timeout=config.http.read_timeout))
    for step in steps:
        try:
            step()
        except HarborSecretsError as exc:
            click.echo(f"harbor-secrets: error: {scrub(str(exc))}", err=True)
            code = EXIT_FAILURE
    return code


def watch_command(config_path: str | None, *, listen: str | None) -> int:
    """Stay up until SIGTERM/SIGINT; exit 0 after finishing the cycle in progress."""
    from harbor_secrets.health import StatusServer, parse_listen
    from harbor_secrets.metrics import require_prometheus
    from harbor_secrets.runtime import Runtime
    from harbor_secrets.watch import Watcher, run_until_signalled

    address = parse_listen(listen) if listen is not None else None
    if address is not None:
        require_prometheus("--listen")
    # A service logs its cycles even at the default verbosity (one INFO line per cycle).
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("harbor_secrets.watch").setLevel(logging.INFO)
    config = load(config_path)
    with Runtime(config, watching=True) as runtime:
        runtime.resolve_local_secrets()  # exit 2 here, before any network call
        watcher = Watcher(runtime)
        server: StatusServer | None = None
        if address is not None:
            from harbor_secrets.exposition import registry_for, render

            registry = registry_for(watcher.metrics, process=True)
            server = StatusServer(
                *address,
                health=watcher.health,
                metrics=lambda accept: render(registry, accept),
            ).start()
            logging.getLogger("harbor_secrets.watch").info(
                "serving /healthz and /metrics on %s",
                server.url,
                extra={"event": "watch.listening", "url": server.url},
            )
        try:
            return run_until_signalled(watcher, exiting=True)
        finally:
            if server is not None:
                server.stop()
