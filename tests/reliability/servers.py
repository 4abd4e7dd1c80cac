"""Real servers for the reliability suite: an OpenBao dev server and moto_server.

Both run from binaries next to this Python, on free loopback ports, with a temporary HOME;
a server that cannot start fails the test run (these tests never skip). The OpenBao root
token is a canary value, so the suite can prove it never appears in any output.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from harbor_testkit.environ import clean_environ
from harbor_testkit.servers import Bao, MotoServer, ServerStartError

READY_TIMEOUT = 30.0
REGION = "us-east-1"


def server_environ(home: Path) -> dict[str, str]:
    """This process's environment without any Vault, OpenBao or AWS settings."""
    return clean_environ(home=home)


Moto = MotoServer


def start_bao(directory: Path) -> Bao:
    """Start an OpenBao dev server (KV v2 at ``secret/``) or fail the test loudly."""
    root_token = f"canary-vault-token-{secrets.token_hex(12)}"
    environ = server_environ(directory / "home")
    try:
        return Bao(root_token, workdir=directory, env=environ, timeout=READY_TIMEOUT).start()
    except ServerStartError as error:
        pytest.fail(str(error), pytrace=False)


def start_moto(directory: Path) -> Moto:
    """Start moto_server over HTTP on loopback or fail the test loudly."""
    environ = server_environ(directory)
    try:
        return Moto(workdir=directory, env=environ, timeout=READY_TIMEOUT).start()
    except ServerStartError as error:
        pytest.fail(str(error), pytrace=False)
