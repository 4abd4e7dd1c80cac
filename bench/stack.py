"""The local stack every bench runs against, and the helpers to run commands on it.

One :class:`Stack` holds the stand-in issuer (in this process), an OpenBao dev server and
moto_server (child processes), and a counting proxy in front of each server. Timed runs
use the servers' own addresses; counting runs use the proxies' (see counting_proxy.py).
The AWS CLI lives in its own virtualenv (``.venv-bench``) so its botocore pin cannot fight
the project's boto3; it is created on first use.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from counting_proxy import CountingProxy
from servers import BIN, Moto, OpenBao, aws_label, clean_environment, moto_server, openbao

from harbor_secrets.stand_in_issuer import StandInIssuer

ROOT = Path(__file__).resolve().parent.parent
AWSCLI_VERSION = "1.46.2"  # awscli v1 from PyPI; v2 is not published there
BENCH_VENV = ROOT / ".venv-bench"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-client-secret-canary"
ENVIRONMENTS = ("sandbox", "production")


def awscli() -> Path:
    """The pinned AWS CLI in ``.venv-bench``, installed there if missing or of another version."""
    aws = BENCH_VENV / "bin" / "aws"
    if aws.is_file():
        found = subprocess.run([str(aws), "--version"], capture_output=True, text=True, check=False)
        if found.stdout.startswith(f"aws-cli/{AWSCLI_VERSION} "):
            return aws
    print(f"installing awscli=={AWSCLI_VERSION} into {BENCH_VENV} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    subprocess.run(
        [
            str(BENCH_VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"awscli=={AWSCLI_VERSION}",
        ],
        check=True,
        stderr=subprocess.DEVNULL,  # pip's index warnings; a failure still fails the check
    )
    return aws


@dataclass
class Counts:
    """Requests one run sent: token requests at the issuer, and each server's by kind."""

    token_requests: int = 0
    vault: Counter[str] = field(default_factory=Counter)
    aws: Counter[str] = field(default_factory=Counter)
    #: TCP connections opened to each server (a new connection per request means no reuse).
    connections: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.token_requests + sum(self.vault.values()) + sum(self.aws.values())

    def per_token(self, tokens: int) -> dict[str, float]:
        return {
            "issuer": self.token_requests / tokens,
            "openbao": sum(self.vault.values()) / tokens,
            "ssm": sum(self.aws.values()) / tokens,
            "total": self.total / tokens,
        }


@dataclass
class Stack:
    issuer: StandInIssuer
    bao: OpenBao
    moto: Moto
    bao_proxy: CountingProxy
    moto_proxy: CountingProxy
    issuer_proxy: CountingProxy
    workdir: Path
    aws: Path

    def env(self, *, counted: bool = False, **extra: str) -> dict[str, str]:
        """Environment for a child process: servers (or their proxies), fake AWS keys."""
        env = clean_environment(self.workdir)
        bao = self.bao_proxy.url if counted else self.bao.address
        aws = self.moto_proxy.url if counted else self.moto.url
        env.update(
            HARBOR_CLIENT_ID=CLIENT_ID,
            HARBOR_CLIENT_SECRET=CLIENT_SECRET,
            VAULT_TOKEN=self.bao.token,
            BAO_TOKEN=self.bao.token,
            BAO_ADDR=bao,
            AWS_ENDPOINT_URL=aws,
            BAO=str(BIN / "bao"),
            AWS=str(self.aws),
        )
        for environment in ENVIRONMENTS:
            env[f"HARBOR_{environment.upper()}_ACCOUNTS_URL"] = self.issuer_url(counted=counted)
            env[f"HARBOR_{environment.upper()}_API_URL"] = self.issuer_url(counted=counted)
        env.update(extra)
        return env

    def issuer_url(self, *, counted: bool) -> str:
        return self.issuer_proxy.url if counted else self.issuer.url

    def addresses(self, *, counted: bool) -> tuple[str, str]:
        """(OpenBao address, moto URL) for a configuration file."""
        if counted:
            return self.bao_proxy.url, self.moto_proxy.url
        return self.bao.address, self.moto.url

    def start_counting(self) -> int:
        """Zero the proxies; returns the issuer's token-request count to subtract later."""
        for proxy in (self.bao_proxy, self.moto_proxy, self.issuer_proxy):
            proxy.take()
        return self.issuer.token_requests

    def counted(self, issuer_before: int) -> Counts:
        time.sleep(0.05)  # let the proxies' pump threads see the last bytes
        vault, vault_connections = self.bao_proxy.take()
        aws, aws_connections = self.moto_proxy.take()
        _, issuer_connections = self.issuer_proxy.take()
        return Counts(
            token_requests=self.issuer.token_requests - issuer_before,
            vault=vault,
            aws=aws,
            connections={
                "issuer": issuer_connections,
                "openbao": vault_connections,
                "ssm": aws_connections,
            },
        )


@contextmanager
def local_stack() -> Iterator[Stack]:
    """Issuer, OpenBao, moto_server and their counting proxies; all stopped on exit."""
    from servers import vault_label

    aws = awscli()
    with tempfile.TemporaryDirectory(prefix="harbor-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        issuer = stack.enter_context(StandInIssuer(clients={CLIENT_ID: CLIENT_SECRET}))
        bao = stack.enter_context(openbao(workdir))
        moto = stack.enter_context(moto_server(workdir))
        bao_proxy = stack.enter_context(CountingProxy(("127.0.0.1", bao.port), vault_label))
        moto_proxy = stack.enter_context(CountingProxy(("127.0.0.1", moto.port), aws_label))
        issuer_proxy = stack.enter_context(CountingProxy(("127.0.0.1", issuer.port)))
        yield Stack(issuer, bao, moto, bao_proxy, moto_proxy, issuer_proxy, workdir, aws)


def run_timed(
    command: list[str], env: Mapping[str, str], *, cwd: Path | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall time of one child process; a failure stops the bench with its stderr."""
    began = time.perf_counter()
    done = subprocess.run(
        command, env=dict(env), cwd=cwd, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command[:4])} ... failed ({done.returncode}):\n{done.stderr[-3000:]}"
        )
    return wall, done


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def new_second_since(moment: float) -> None:
    """Sleep, if needed, until the wall-clock second differs from that of ``moment``.

    Records keep whole seconds, so a forced run in the same second as the previous one
    would find the stores already holding a token that expires no earlier, and rightly
    keep it: less work, a flattering time. Every forced run starts in a fresh second.
    """
    now = time.time()
    if int(now) == int(moment):
        time.sleep(1.0 - (now - int(now)) + 0.01)
