"""``harbor-secrets sync``."""

from __future__ import annotations

import click

from harbor_secrets.commands._common import load
from harbor_secrets.output import sync_text, to_json
from harbor_secrets.sync import run_sync


def sync_command(config_path: str | None, *, force: bool, dry_run: bool, output: str) -> int:
    report = run_sync(load(config_path), force=force, dry_run=dry_run)
    click.echo(to_json(report.to_dict()) if output == "json" else sync_text(report))
    return report.exit_code
