"""``harbor-secrets sync``: one pass (optionally exporting metrics), or ``--watch``.

Every option is checked, and the optional Prometheus client looked for, before the
configuration is used, so a mistake exits 2 with nothing fetched or written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import click

from harbor_secrets.commands._common import load
from harbor_secrets.config import Config
from harbor_secrets.errors import ConfigError, HarborSecretsError
from harbor_secrets.invocation import Globals
from harbor_secrets.output import sync_text, to_json
from harbor_secrets.sync import SyncReport, run_sync


@dataclass(frozen=True)
class SyncOptions:
    """What ``sync`` was asked to do, as typed values (the CLI parsed them)."""

    force: bool = False
    dry_run: bool = False
    watch: bool = False
    listen: tuple[str, int] | None = None
    metrics_file: Path | None = None
    pushgateway: str | None = None

    def check(self, output: str) -> None:
        """Refuse combinations that cannot work, before anything is read (exit 2)."""
        if self.watch:
            reports = "watch mode reports through its log (--log-format json)"
            metrics = "watch mode serves its metrics itself: use --listen and scrape /metrics"
            for option, given, fix in (
                (
                    "--force",
                    self.force,
                    "watch mode refreshes each token when it falls due; to rewrite every "
                    "token now, run `harbor-secrets sync --force` once, without --watch, "
                    "then start watch mode",
                ),
                (
                    "--dry-run",
                    self.dry_run,
                    "to see what would be written, run `harbor-secrets sync --dry-run` "
                    "without --watch",
                ),
                ("--output json", output == "json", f"{reports} and --listen's /healthz"),
                ("--metrics-file", self.metrics_file is not None, metrics),
                ("--pushgateway", self.pushgateway is not None, metrics),
            ):
                if given:
                    raise ConfigError("cannot be combined with --watch", key=option, fix=fix)
        elif self.listen is not None:
            raise ConfigError(
                "serves /healthz and /metrics only in watch mode",
                key="--listen",
                fix="add --watch, or use --metrics-file / --pushgateway for a one-shot run",
            )
        if self.dry_run and self.exports:
            raise ConfigError(
                "a dry run changes nothing, so it has no metrics to report",
                key="--dry-run",
                fix="drop --dry-run, or drop --metrics-file / --pushgateway",
            )

    @property
    def exports(self) -> bool:
        return self.metrics_file is not None or self.pushgateway is not None


def sync_command(g: Globals, options: SyncOptions) -> int:
    options.check(g.output)
    if options.watch:
        return watch_command(g, options.listen)
    if options.exports:  # the metrics module is not needed (or imported) otherwise
        from harbor_secrets.metrics import require_prometheus

        require_prometheus("--metrics-file" if options.metrics_file else "--pushgateway")
    config = load(g.config)
    report = run_sync(config, force=options.force, dry_run=options.dry_run)
    click.echo(to_json(report.to_dict()) if g.output == "json" else sync_text(report))
    if options.exports:
        _export(config, report, options)
    return report.exit_code


def _export(config: Config, report: SyncReport, options: SyncOptions) -> None:
    """Write and push this run's metrics; a failure here is a run-time failure (exit 1)."""
    from harbor_secrets import exposition
    from harbor_secrets.metrics import SyncMetrics

    metrics = SyncMetrics(config.jobs())
    if options.metrics_file is not None:
        exposition.restore_textfile(options.metrics_file, metrics)
    metrics.record(report)
    problems: list[str] = []
    if options.metrics_file is not None:
        try:
            exposition.write_textfile(options.metrics_file, metrics)
        except HarborSecretsError as exc:
            problems.append(str(exc))
    if options.pushgateway is not None:
        try:
            exposition.push(options.pushgateway, metrics, timeout=config.http.read_timeout)
        except HarborSecretsError as exc:
            problems.append(str(exc))
    if problems:
        raise HarborSecretsError("; ".join(problems))


def watch_command(g: Globals, listen: tuple[str, int] | None) -> int:
    """Stay up until SIGTERM/SIGINT; exit 0 after finishing the cycle in progress."""
    from harbor_secrets.health import StatusServer
    from harbor_secrets.metrics import require_prometheus
    from harbor_secrets.runtime import Runtime
    from harbor_secrets.watch import Watcher, run_until_signalled

    if listen is not None:
        require_prometheus("--listen")
    # A service logs its cycles even at the default verbosity (one INFO line per cycle).
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("harbor_secrets.watch").setLevel(logging.INFO)
    config = load(g.config)
    with Runtime(config, watching=True) as runtime:
        runtime.resolve_local_secrets()  # exit 2 here, before any network call
        watcher = Watcher(runtime)
        server: StatusServer | None = None
        if listen is not None:
            from harbor_secrets.exposition import registry_for, render

            registry = registry_for(watcher.metrics, process=True)
            server = StatusServer(
                *listen,
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
