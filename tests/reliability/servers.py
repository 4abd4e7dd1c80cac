"""Real servers for the reliability suite: an OpenBao dev server and moto_server.

Both run from binaries next to this Python, on free loopback ports, with a temporary HOME;
a server that cannot start fails the test run (these tests never skip). The OpenBao root
token is a canary value, so the suite can prove it never appears in any output.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest

READY_TIMEOUT = 30.0
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def binary(name: str) -> Path:
    path = Path(sys.executable).parent / name
    if not path.is_file():
        pytest.fail(f"{name} not found at {path}; `make install` puts it there", pytrace=False)
    return path


def clean_environ(home: Path) -> dict[str, str]:
    """This process's environment without any Vault, OpenBao or AWS settings."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VAULT_", "BAO_", "AWS_", "HARBOR_"))
    }
    environ["HOME"] = str(home)
    return environ


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback only
            return True
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Bao:
    """A running ``bao server -dev``; ``root_token`` is a canary that must never print."""

    address: str
    root_token: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.address, token=token or self.root_token)

    def unseal_key(self) -> str:
        found = re.search(r"Unseal Key: (\S+)", self.log_path.read_text(errors="replace"))
        if found is None:
            raise AssertionError("the dev server did not print its unseal key")
        return found.group(1)

    def stop(self) -> None:
        _stop(self.process)


def start_bao(directory: Path) -> Bao:
    """Start an OpenBao dev server (KV v2 at ``secret/``) or fail the test loudly."""
    directory.mkdir(parents=True, exist_ok=True)
    home = directory / "home"
    home.mkdir(exist_ok=True)
    log_path = directory / "bao.log"
    root_token = f"canary-vault-token-{secrets.token_hex(12)}"
    for _ in range(3):  # a port picked free can be taken before the server binds it
        port = free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    str(binary("bao")),
                    "server",
                    "-dev",
                    f"-dev-root-token-id={root_token}",
                    f"-dev-listen-address=127.0.0.1:{port}",
                    "-dev-no-store-token",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_environ(home),
            )
        address = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if _ready(f"{address}/v1/sys/health"):
                return Bao(address, root_token, process, log_path)
            time.sleep(0.05)
        _stop(process)
    pytest.fail(f"bao server did not start:\n{log_path.read_text()[-2000:]}", pytrace=False)


@dataclass
class Moto:
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        _stop(self.process)


def start_moto(directory: Path) -> Moto:
    """Start moto_server over HTTP on loopback or fail the test loudly."""
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "moto_server.log"
    for _ in range(3):
        port = free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(binary("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_environ(directory),
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if _ready(f"{url}/moto-api/data.json"):
                return Moto(url, process)
            time.sleep(0.1)
        _stop(process)
    pytest.fail(f"moto_server did not start:\n{log_path.read_text()[-2000:]}", pytrace=False)
