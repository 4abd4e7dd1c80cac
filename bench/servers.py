"""Local servers for the benches: an OpenBao dev server and moto_server on free loopback ports.

Both binaries come from the project's virtualenv (next to ``sys.executable``). Each server is
started by a context manager (harbor_testkit.servers), waited for until it answers,
and stopped when the block ends, whatever happened inside it. A server that does not come up
stops the bench with its log's tail: a benchmark against a missing server means nothing.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harbor_testkit.environ import AWS_TEST_ENVIRONMENT, clean_environ
from harbor_testkit.servers import MotoServer, OpenBaoDevServer

BIN = Path(sys.executable).parent
AWS_REGION = AWS_TEST_ENVIRONMENT["AWS_REGION"]


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


def clean_environment(home: Path) -> dict[str, str]:
    """The process environment minus anything pointing at a real Vault or AWS account."""
    return clean_environ(home=home, aws=True)


@contextmanager
def openbao(workdir: Path) -> Iterator[OpenBao]:
    """``bao server -dev``: in-memory, unsealed, KV v2 mounted at ``secret/``."""
    token = f"root-{secrets.token_hex(8)}"
    with OpenBaoDevServer(token, workdir=workdir, env=clean_environment(workdir)) as server:
        yield OpenBao(server.url, token)


@contextmanager
def moto_server(workdir: Path) -> Iterator[Moto]:
    """``moto_server``: AWS APIs (here SSM) over real HTTP."""
    with MotoServer(workdir=workdir, env=clean_environment(workdir)) as server:
        yield Moto(server.url)


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
