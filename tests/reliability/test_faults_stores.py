"""Store faults: OpenBao and Parameter Store behind the fault proxy, Vault sealed / 403 /
check-and-set races, AWS throttling and IAM/KMS denials, and env files in hostile places.

Every case also has an env-file sink (or is one) so it shows that one failing store never
stops the others: the healthy sink gets the new token, the failing one keeps its previous
token intact. Failures no local server can produce are injected inside the CLI process by
hooks/sitecustomize.py (AWS errors at botocore's ``before-send`` event, ENOSPC on the env
file's temporary file); the Vault check-and-set races run the real engine (``run_sync``)
in-process with a wrapped Vault call that writes a rival record just before each of ours.
"""

from __future__ import annotations

import errno
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from harbor_secrets_vault.connection import VaultConnection
from harbor_secrets_vault.errors import Operation

from harbor_secrets import TokenRecord
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_testkit.proxy import FaultProxy, ProxyFault
from harbor_testkit.servers import Bao

from .conftest import AWS_TEST_ENV
from .servers import Moto, start_bao
from .support import (
    AWS_ATTEMPTS,
    AWS_READ_TIMEOUT,
    VARIANTS,
    VAULT_TIMEOUT,
    Attempt,
    Case,
    EnvFileStore,
    Expectation,
    JobKey,
    Lab,
    Run,
    SsmStore,
    Store,
    VaultStore,
    Workspace,
    in_parallel,
)

JOB = JobKey("sandbox", "service_provider")
# Per KV v2 sync through the proxy: mount lookup, GET data, POST data (cas), POST metadata.
VAULT_REQUESTS = 4
VAULT_BUDGET = VAULT_REQUESTS * VAULT_TIMEOUT
# Per Parameter Store refresh: GetParameter (the engine's read), PutParameter (lock),
# GetParameter (under the lock), PutParameter (value), DeleteParameter (unlock).
SSM_REQUESTS = 5


def _stores(local: Expectation, other_sink: str, other: Expectation) -> dict[str, Expectation]:
    return {"local": local, other_sink: other}


@pytest.fixture(autouse=True)
def _vault_canary(bao: Bao, lab: Lab) -> None:
    lab.canaries.add("vault root token", bao.root_token)


# -- OpenBao behind the fault proxy ------------------------------------------------------


@dataclass(frozen=True)
class ProxyCase:
    case: Case
    arm: Callable[[FaultProxy], None]


def _vault(
    name: str,
    fault: str,
    exit_code: int,
    vault: Expectation,
    arm: Callable[[FaultProxy], None],
    requests: tuple[int, int],
    min_elapsed: float = 0.0,
) -> ProxyCase:
    stores = _stores("new", "vault", vault)
    case = Case(
        name, "OpenBao via proxy", fault, exit_code, stores, requests, VAULT_BUDGET, min_elapsed
    )
    return ProxyCase(case, arm)


def _nth(n: int, fault: ProxyFault) -> Callable[[FaultProxy], None]:
    """Let ``n - 1`` requests pass, then apply ``fault`` to the n-th."""
    return lambda proxy: proxy.inject(*[ProxyFault.passthrough()] * (n - 1), fault)


VAULT_CASES = [
    _vault(
        "baseline: no fault", "none", 0, "new", lambda p: None, (VAULT_REQUESTS, VAULT_REQUESTS)
    ),
    _vault(
        "added latency",
        "0.3 s added to every request",
        0,
        "new",
        lambda p: p.set_fault(ProxyFault.latency(0.3)),
        (VAULT_REQUESTS, VAULT_REQUESTS),
        min_elapsed=1.2,
    ),
    _vault(
        "connection reset",
        "RST on the first request (no retry: the next run tries again)",
        1,
        "kept",
        lambda p: p.inject(ProxyFault.reset()),
        (1, 1),
    ),
    _vault(
        "stalls throughout",
        "no request answered (timeout 1 s)",
        1,
        "kept",
        lambda p: p.set_fault(ProxyFault.stall()),
        (1, 1),
        min_elapsed=VAULT_TIMEOUT,
    ),
    _vault(
        "stall on the write",
        "the check-and-set write is never answered",
        1,
        "kept",
        _nth(3, ProxyFault.stall()),
        (3, 3),
        min_elapsed=VAULT_TIMEOUT,
    ),
    _vault(
        "response cut inside the body",
        "first answer cut after 200 bytes",
        1,
        "kept",
        lambda p: p.inject(ProxyFault.truncate(200)),
        (1, 1),
    ),
    _vault(
        "write's answer lost",
        "the write reaches OpenBao, the connection closes before any answer",
        1,
        "either",
        _nth(3, ProxyFault.truncate(0)),
        (3, 3),
    ),
]


@pytest.mark.parametrize("item", VAULT_CASES, ids=[c.case.id for c in VAULT_CASES])
def test_vault_through_proxy(item: ProxyCase, lab: Lab, bao: Bao, tmp_path: Path) -> None:
    """The three variants run at once, each through its own proxy to the shared server."""
    prepared = []
    for variant in VARIANTS:
        proxy = lab.proxy(bao.address)
        directory = lab.directory()
        stores: list[Store] = [
            EnvFileStore(directory / "harbor.env"),
            VaultStore(bao, tmp_path, address=proxy.url),
        ]
        ws = lab.workspace(stores, accounts_url=lab.issuer().url, directory=directory)
        item.arm(proxy)
        prepared.append((variant, ws, proxy, proxy.requests))
    environ = {"VAULT_TOKEN": bao.root_token, "HOME": str(tmp_path)}
    runs = in_parallel(
        [partial(lab.cli, ws, variant, environ=environ) for variant, ws, _, _ in prepared]
    )
    lab.verify(
        item.case,
        [
            Attempt(variant, ws, run, proxy.requests - before)
            for (variant, ws, proxy, before), run in zip(prepared, runs, strict=True)
        ],
    )


# -- Parameter Store (moto_server) behind the fault proxy --------------------------------


def _ssm(
    name: str,
    fault: str,
    exit_code: int,
    params: Expectation,
    arm: Callable[[FaultProxy], None],
    requests: tuple[int, int],
    budget: float,
    min_elapsed: float = 0.0,
) -> ProxyCase:
    stores = _stores("new", "params", params)
    case = Case(
        name, "Parameter Store via proxy", fault, exit_code, stores, requests, budget, min_elapsed
    )
    return ProxyCase(case, arm)


# One call's five attempts with the SDK's backoff (at most 0.75 s in all for connection
# errors, 15 s for throttling); a stalled request costs a read timeout on top.
SDK_BUDGET = 16.0
SSM_CASES = [
    _ssm(
        "baseline: no fault",
        "none",
        0,
        "new",
        lambda p: None,
        (SSM_REQUESTS, SSM_REQUESTS),
        SDK_BUDGET,
    ),
    _ssm(
        "added latency",
        "0.3 s added to every request",
        0,
        "new",
        lambda p: p.set_fault(ProxyFault.latency(0.3)),
        (SSM_REQUESTS, SSM_REQUESTS),
        SDK_BUDGET,
        min_elapsed=1.5,
    ),
    _ssm(
        "connection reset, then success",
        "RST on the first request; the SDK retries",
        0,
        "new",
        lambda p: p.inject(ProxyFault.reset()),
        (SSM_REQUESTS + 1, SSM_REQUESTS + 1),
        SDK_BUDGET,
    ),
    _ssm(
        "connection resets throughout",
        "RST on every request",
        1,
        "kept",
        lambda p: p.set_fault(ProxyFault.reset()),
        (AWS_ATTEMPTS, AWS_ATTEMPTS),
        SDK_BUDGET,
    ),
    _ssm(
        "stall past the read timeout, then success",
        "first request never answered (SDK read timeout 10 s)",
        0,
        "new",
        lambda p: p.inject(ProxyFault.stall()),
        (SSM_REQUESTS + 1, SSM_REQUESTS + 1),
        AWS_READ_TIMEOUT + SDK_BUDGET,
        min_elapsed=AWS_READ_TIMEOUT,
    ),
    _ssm(
        "response cut inside the body, then success",
        "first answer cut after 200 bytes",
        0,
        "new",
        lambda p: p.inject(ProxyFault.truncate(200)),
        (SSM_REQUESTS + 1, SSM_REQUESTS + 1),
        SDK_BUDGET,
    ),
    _ssm(
        "value write's answer lost",
        "the value PutParameter reaches moto, the connection closes before any answer; "
        "the SDK retries it",
        0,
        "new",
        _nth(4, ProxyFault.truncate(0)),
        (SSM_REQUESTS + 1, SSM_REQUESTS + 1),
        SDK_BUDGET,
    ),
]


@pytest.mark.parametrize("item", SSM_CASES, ids=[c.case.id for c in SSM_CASES])
def test_parameter_store_through_proxy(
    item: ProxyCase, lab: Lab, moto: Moto, ssm_client: Any
) -> None:
    """The three variants run at once, each through its own proxy to the shared moto."""
    prepared = []
    for variant in VARIANTS:
        proxy = lab.proxy(moto.url)
        directory = lab.directory()
        stores: list[Store] = [
            EnvFileStore(directory / "harbor.env"),
            SsmStore(ssm_client, proxy.url),
        ]
        ws = lab.workspace(stores, accounts_url=lab.issuer().url, directory=directory)
        item.arm(proxy)
        prepared.append((variant, ws, proxy, proxy.requests))
    runs = in_parallel(
        [partial(lab.cli, ws, variant, environ=AWS_TEST_ENV) for variant, ws, _, _ in prepared]
    )
    lab.verify(
        item.case,
        [
            Attempt(variant, ws, run, proxy.requests - before)
            for (variant, ws, proxy, before), run in zip(prepared, runs, strict=True)
        ],
    )


# -- OpenBao: sealed, permission denied ----------------------------------------------------


@pytest.fixture(scope="module")
def sealable_bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    """A server of its own, so sealing it never disturbs the shared one."""
    server = start_bao(tmp_path_factory.mktemp("sealable"))
    try:
        yield server
    finally:
        server.stop()


def _vault_workspaces(lab: Lab, bao: Bao, tmp_path: Path) -> list[tuple[str, Workspace]]:
    prepared = []
    for variant in VARIANTS:
        directory = lab.directory()
        vault = VaultStore(bao, tmp_path)
        ws = lab.workspace(
            [EnvFileStore(directory / "harbor.env"), vault],
            accounts_url=lab.issuer().url,
            directory=directory,
        )
        vault.close()
        prepared.append((variant, ws))
    return prepared


def test_vault_sealed(lab: Lab, sealable_bao: Bao, tmp_path: Path) -> None:
    case = Case(
        "sealed",
        "OpenBao",
        "the server is sealed during the run",
        1,
        _stores("new", "vault", "kept"),
        (0, 0),
        VAULT_BUDGET,
    )
    lab.canaries.add("sealable vault root token", sealable_bao.root_token)
    prepared = _vault_workspaces(lab, sealable_bao, tmp_path)
    environ = {"VAULT_TOKEN": sealable_bao.root_token, "HOME": str(tmp_path)}
    client = sealable_bao.client()
    client.sys.seal()
    try:
        runs = in_parallel(
            [partial(lab.cli, ws, variant, environ=environ) for variant, ws in prepared]
        )
    finally:
        client.sys.submit_unseal_key(sealable_bao.unseal_key())
        client.adapter.close()
    lab.verify(case, [Attempt(v, ws, run, 0) for (v, ws), run in zip(prepared, runs, strict=True)])
    assert all("sealed" in run.stdout for run in runs)


def test_vault_permission_denied(lab: Lab, bao: Bao, tmp_path: Path) -> None:
    case = Case(
        "403 permission denied",
        "OpenBao",
        "the token's policy may only read (a canary token)",
        1,
        _stores("new", "vault", "kept"),
        (0, 0),
        VAULT_BUDGET,
    )
    root = bao.client()
    root.sys.create_or_update_policy(
        name="reliability-read-only", policy='path "secret/data/*" { capabilities = ["read"] }'
    )
    limited = f"canary-vault-readonly-{uuid.uuid4().hex}"
    root.auth.token.create(policies=["reliability-read-only"], ttl="10m", id=limited)
    root.adapter.close()
    lab.canaries.add("limited vault token", limited)
    prepared = _vault_workspaces(lab, bao, tmp_path)
    environ = {"VAULT_TOKEN": limited, "HOME": str(tmp_path)}
    runs = in_parallel([partial(lab.cli, ws, variant, environ=environ) for variant, ws in prepared])
    lab.verify(case, [Attempt(v, ws, run, 0) for (v, ws), run in zip(prepared, runs, strict=True)])
    assert all(
        "permission-denied" in run.stdout or "permission denied" in run.stdout.lower()
        for run in runs
    )


# -- OpenBao: check-and-set races (in-process) --------------------------------------------


class Rival:
    """Writes the same secret with the root token just before each of our data writes."""

    def __init__(self, bao: Bao, path: str, records: Iterator[TokenRecord]) -> None:
        self.bao = bao
        self.path = path
        self.records = records
        self.writes = 0
        self.tokens: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = VaultConnection.post
        rival = self

        def post(self: VaultConnection, op: Operation, body: dict[str, Any]) -> dict[str, Any]:
            if op.path == f"secret/data/{rival.path}":
                record = next(rival.records, None)
                if record is not None:
                    rival.writes += 1
                    rival.tokens.append(record.access_token.reveal())
                    client = rival.bao.client()
                    client.secrets.kv.v2.create_or_update_secret(
                        path=rival.path, secret=record.to_dict(), mount_point="secret"
                    )
                    client.adapter.close()
            result: dict[str, Any] = original(self, op, body)
            return result

        monkeypatch.setattr(VaultConnection, "post", post)


def _rival_record(offset: float) -> TokenRecord:
    return TokenRecord.issue(
        access_token=f"rival-token-{uuid.uuid4().hex}",
        issued_at=datetime.now(UTC) + timedelta(seconds=offset),
        expires_in=300,
        scope=JOB.scope,
        environment=JOB.environment,
        client_id="harbor-test-client",
        issuer="rival",
    )


@pytest.mark.parametrize("rival_newer", [True, False], ids=["rival-newer", "rival-older"])
def test_vault_check_and_set_conflict(
    rival_newer: bool, lab: Lab, bao: Bao, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process (the rival is a wrapped Vault call), so the variants run one by one."""
    if rival_newer:
        case = Case(
            "CAS conflict with a newer record",
            "OpenBao",
            "a rival writes a newer token between our read and our check-and-set write",
            0,
            _stores("new", "vault", "new"),
            (1, 1),
            VAULT_BUDGET,
        )
    else:
        case = Case(
            "CAS conflicts exhausted",
            "OpenBao",
            "a rival writes an older (but newer than stored) token before each of our "
            "writes; cas_retries = 3",
            1,
            _stores("new", "vault", "new"),
            (4, 4),
            VAULT_BUDGET,
        )
    attempts = []
    for variant in VARIANTS:
        directory = lab.directory()
        vault = VaultStore(bao, tmp_path)
        ws = lab.workspace(
            [EnvFileStore(directory / "harbor.env"), vault],
            accounts_url=lab.issuer().url,
            directory=directory,
        )
        records = (
            iter([_rival_record(20)])  # newer, and within the clock allowance
            if rival_newer
            else (_rival_record(-60 + step) for step in range(10))
        )
        rival = Rival(bao, vault.key(JOB), records)
        with monkeypatch.context() as patch:
            rival.install(patch)
            run = lab.in_process(ws, variant, environ={"VAULT_TOKEN": bao.root_token})
        lab.also_valid.update(rival.tokens)
        for token in rival.tokens:
            lab.canaries.add(f"rival token {token[-6:]}", token)
        stored = vault.read(JOB)
        vault.close()
        assert stored is not None
        assert stored.access_token.reveal() == rival.tokens[-1]  # never forced over the rival
        assert rival_newer or "cas-conflict" in run.stdout
        attempts.append(Attempt(variant, ws, run, rival.writes))
    lab.verify(case, attempts)


# -- Parameter Store: throttling, access denied, KMS denied (in-process) -----------------


HOOKS = Path(__file__).resolve().parent / "hooks"


def fault_environ(spec: dict[str, object], extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment that makes the CLI process load hooks/sitecustomize.py with ``spec``."""
    return {**(extra or {}), "PYTHONPATH": str(HOOKS), "RELIABILITY_FAULTS": json.dumps(spec)}


@dataclass(frozen=True)
class AwsCase:
    case: Case
    operation: str
    code: str
    message: str
    reason: str | None
    times: int | None = None


def _aws(
    name: str,
    fault: str,
    exit_code: int,
    operation: str,
    code: str,
    message: str,
    reason: str | None,
    requests: tuple[int, int],
    times: int | None = None,
) -> AwsCase:
    stores = _stores("new", "params", "new" if exit_code == 0 else "kept")
    case = Case(name, "Parameter Store", fault, exit_code, stores, requests, SDK_BUDGET)
    return AwsCase(case, operation, code, message, reason, times)


AWS_CASES = [
    _aws(
        "throttled, then success",
        "ThrottlingException on the first value PutParameter; the SDK retries",
        0,
        "PutParameter",
        "ThrottlingException",
        "Rate exceeded",
        None,
        (2, 2),
        times=1,
    ),
    _aws(
        "throttled throughout",
        "ThrottlingException on every value PutParameter",
        1,
        "PutParameter",
        "ThrottlingException",
        "Rate exceeded",
        "throttled",
        (AWS_ATTEMPTS, AWS_ATTEMPTS),
    ),
    _aws(
        "access denied",
        "AccessDeniedException on GetParameter",
        1,
        "GetParameter",
        "AccessDeniedException",
        "User: arn:aws:iam::123456789012:role/harbor is not authorized to perform: "
        "ssm:GetParameter",
        "access-denied",
        (1, 1),
    ),
    _aws(
        "KMS denied",
        "AccessDeniedException naming kms:Encrypt on the value PutParameter",
        1,
        "PutParameter",
        "AccessDeniedException",
        "User: arn:aws:iam::123456789012:role/harbor is not authorized to perform: "
        "kms:Encrypt on resource: arn:aws:kms:us-east-1:123456789012:key/abc",
        "kms-denied",
        (1, 1),
    ),
]


@pytest.mark.parametrize("item", AWS_CASES, ids=[c.case.id for c in AWS_CASES])
def test_parameter_store_errors(item: AwsCase, lab: Lab, moto: Moto, ssm_client: Any) -> None:
    """AWS errors moto cannot produce, answered inside the CLI process by botocore's event
    hooks (hooks/sitecustomize.py); the three variants run at once."""
    prepared = []
    for variant in VARIANTS:
        directory = lab.directory()
        params = SsmStore(ssm_client, moto.url)
        ws = lab.workspace(
            [EnvFileStore(directory / "harbor.env"), params],
            accounts_url=lab.issuer().url,
            directory=directory,
        )
        log = directory / "aws-attempts.log"
        spec = {
            "operation": item.operation,
            "code": item.code,
            "message": item.message,
            "name": params.key(JOB),  # the value's parameter, not the writer's lock
            "times": item.times,
            "log": str(log),
        }
        prepared.append((variant, ws, params, log, fault_environ({"aws": spec}, AWS_TEST_ENV)))
    runs = in_parallel([partial(lab.cli, ws, v, environ=env) for v, ws, _, _, env in prepared])
    attempts = []
    for (variant, ws, params, log, _), run in zip(prepared, runs, strict=True):
        calls = log.read_text().split() if log.exists() else []
        attempts.append(Attempt(variant, ws, run, calls.count(item.operation)))
        assert params.snapshot()[params.key(JOB) + ".lock"] is None  # no lock outlives a run
        if variant == "vv-json" and item.reason:
            summary = json.loads(run.stdout)
            assert summary["jobs"][0]["sinks"][1]["reason"] == item.reason
    lab.verify(item.case, attempts)


# -- env files in hostile places ------------------------------------------------------------


def _local(name: str, fault: str, exit_code: int, requests: tuple[int, int]) -> Case:
    stores: dict[str, Expectation] = {"local": "new" if exit_code == 0 else "kept"}
    return Case(name, "env file", fault, exit_code, stores, requests, 3.0)


@dataclass
class Local:
    """One variant's env-file workspace, with its own issuer to count token requests."""

    variant: str
    ws: Workspace
    issuer: StandInIssuer
    path: Path

    @property
    def store(self) -> EnvFileStore:
        store = self.ws.stores[0]
        assert isinstance(store, EnvFileStore)
        return store


def _locals(lab: Lab) -> list[Local]:
    prepared = []
    for variant in VARIANTS:
        issuer = lab.issuer()
        directory = lab.directory()
        path = directory / "harbor.env"
        ws = lab.workspace([EnvFileStore(path)], accounts_url=issuer.url, directory=directory)
        prepared.append(Local(variant, ws, issuer, path))
    return prepared


def _run_locals(lab: Lab, case: Case, prepared: list[Local], **kwargs: Any) -> list[Run]:
    runs = in_parallel([partial(lab.cli, p.ws, p.variant, **kwargs) for p in prepared])
    lab.verify(
        case,
        [
            Attempt(p.variant, p.ws, run, p.issuer.token_requests)
            for p, run in zip(prepared, runs, strict=True)
        ],
    )
    return runs


def test_env_file_behind_a_symlink(lab: Lab) -> None:
    case = _local("behind a symlink", "path is a symlink to the real file", 1, (0, 0))
    prepared = _locals(lab)
    for p in prepared:
        real = p.path.with_name("real.env")
        p.path.rename(real)
        p.path.symlink_to(real)
        p.ws.before["local"] = p.store.snapshot()  # same bytes, now behind the link
    runs = _run_locals(lab, case, prepared)
    for p, run in zip(prepared, runs, strict=True):
        assert "symbolic link" in run.stdout
        assert os.readlink(p.path) == str(p.path.with_name("real.env"))


def test_env_file_in_a_read_only_directory(lab: Lab) -> None:
    case = _local(
        "read-only directory",
        "directory mode 0555 (root drops CAP_DAC_OVERRIDE via setpriv)",
        1,
        (1, 1),
    )
    prepared = _locals(lab)
    prefix: list[str] = []
    if os.geteuid() == 0:  # root ignores directory permissions unless it drops these
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    for p in prepared:
        p.path.parent.chmod(0o555)
    try:
        runs = _run_locals(lab, case, prepared, prefix=prefix)
    finally:
        for p in prepared:
            p.path.parent.chmod(0o755)
    assert all("permission" in run.stdout.lower() for run in runs)


def test_env_file_under_umask_000(lab: Lab) -> None:
    case = _local(
        "umask 000", "umask 000, and the file widened to 0644 since the last run", 0, (1, 1)
    )
    prepared = _locals(lab)
    for p in prepared:
        p.path.chmod(0o644)
        p.ws.before["local"] = p.store.snapshot()
    _run_locals(lab, case, prepared, umask=0)
    for p in prepared:
        assert p.path.stat().st_mode & 0o7777 == 0o600
        assert p.path.with_name("harbor.env.lock").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("function", ["write", "fsync"])
def test_env_file_disk_full(function: str, lab: Lab) -> None:
    case = _local(
        f"disk full ({function})",
        f"os.{function} on the temporary file fails with ENOSPC (hooks/sitecustomize.py)",
        1,
        (1, 1),
    )
    prepared = _locals(lab)
    runs = _run_locals(lab, case, prepared, environ=fault_environ({"enospc": function}))
    assert all("no-space" in run.stdout or "No space left" in run.stdout for run in runs)
    assert errno.ENOSPC == 28  # the hook raises the real errno
