"""The servers the documentation's blocks run against, started once per session.

One sync writes both scopes of sandbox into every store the docs show (env file, token
files, OpenBao KV v2, moto's SSM and Secrets Manager), so each block can read a real token
back and show it to the stand-in issuer's test-token endpoint, which answers 200 only for a
live token it signed. The docs name ``vault``: OpenBao's ``bao`` answers to that name here.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doc_blocks import Block

from conftest import CLIENT_ID, CLIENT_SECRET
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_testkit.cli_text import issuer_sections
from harbor_testkit.environ import clean_environ
from harbor_testkit.servers import MotoServer, OpenBaoDevServer, ServerStartError

BIN = Path(sys.executable).parent
#: Harbor's real API, as the docs write it; pointed at the stand-in issuer when a block runs.
HARBOR_API = "https://api.sandbox.harborlockers.com"


@dataclass(frozen=True)
class Stores:
    directory: Path
    config: Path
    environ: dict[str, str]
    issuer: StandInIssuer
    vault_token: str

    def boto3_client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.environ["AWS_ENDPOINT_URL"],
            region_name=self.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def start_stores(directory: Path) -> Iterator[Stores]:
    """The servers, synced; stopped when the generator is closed. Fails, never skips."""
    root_token = f"canary-vault-{secrets.token_hex(8)}"
    home = directory / "home"
    home.mkdir()
    try:
        bao = OpenBaoDevServer(root_token, workdir=directory / "bao").start()
    except ServerStartError as error:
        raise AssertionError(str(error)) from None
    try:
        try:
            moto = MotoServer(workdir=directory / "moto").start()
        except ServerStartError as error:
            raise AssertionError(str(error)) from None
        try:
            with StandInIssuer(clients={CLIENT_ID: CLIENT_SECRET}) as issuer:
                yield _synced(directory, home, bao, moto, issuer)
        finally:
            moto.stop()
    finally:
        bao.stop()


def _shims(directory: Path) -> Path:
    """``vault`` as the docs type it, answered by OpenBao's CLI."""
    shims = directory / "shims"
    shims.mkdir()
    vault = shims / "vault"
    vault.write_text(f'#!/bin/sh\nexec "{BIN / "bao"}" "$@"\n')
    vault.chmod(0o755)
    return shims


def _synced(
    directory: Path, home: Path, bao: OpenBaoDevServer, moto: MotoServer, issuer: StandInIssuer
) -> Stores:
    (directory / "tokens").mkdir()
    config = directory / "harbor.toml"
    config.write_text(
        f"""
{issuer_sections(issuer.url, CLIENT_ID)}

[sinks.local]
provider = "envfile"
path = "harbor.env"

[sinks.files]
provider = "files"
directory = "tokens"

[sinks.vault]
provider = "vault"
address = "{bao.url}"
mount = "secret"

[sinks.params]
provider = "aws-ssm"
endpoint_url = "{moto.url}"

[sinks.secrets]
provider = "aws-secretsmanager"
endpoint_url = "{moto.url}"

[[targets]]
environments = ["sandbox"]
scopes = ["service_provider", "tower_access"]
""",
        encoding="utf-8",
    )
    path = os.pathsep.join((str(_shims(directory)), str(BIN), os.environ.get("PATH", "")))
    environ = clean_environ(
        {
            "PATH": path,
            "HARBOR_SECRETS_CONFIG": str(config),
            "HARBOR_API_URL": issuer.url,
            "HARBOR_ENV_FILE": str(directory / "harbor.env"),
            "HARBOR_TOKEN_DIR": str(directory / "tokens"),
            "VAULT_ADDR": bao.url,
            "VAULT_TOKEN": bao.root_token,
            "AWS_ENDPOINT_URL": moto.url,
        },
        home=home,
        aws=True,
    )
    sync = subprocess.run(
        [sys.executable, "-m", "harbor_secrets", "sync"],
        env={**environ, "HARBOR_CLIENT_SECRET": CLIENT_SECRET},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert sync.returncode == 0, sync.stdout + sync.stderr
    return Stores(directory, config, environ, issuer, bao.root_token)


def run_block(
    stores: Stores,
    block: Block,
    *,
    cwd: Path | None = None,
    extra: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run a shell or Python block as written, with Harbor's API pointed at the stand-in."""
    code = block.code.replace(HARBOR_API, stores.issuer.url)
    command = ["bash", "-c", code] if block.lang == "sh" else [sys.executable, "-c", code]
    return subprocess.run(
        command,
        env={**stores.environ, **(extra or {})},
        cwd=cwd or stores.directory,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
