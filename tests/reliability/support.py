"""What every reliability scenario needs: configs, stores to seed and inspect, the real CLI
process, canary checks and in-process log capture.

A scenario seeds each store with a *previous good token*, injects one fault, runs
``python -m harbor_secrets sync --force`` and then checks the exit code, each store byte for
byte, the number of requests that reached the faulty component, the time against the
configured budget, and that no canary secret appears anywhere.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import hvac.exceptions
import pytest
from harbor_secrets_aws.clients import AwsSettings
from harbor_secrets_aws.ssm import ParameterStoreProvider
from harbor_secrets_envfile import EnvFileProvider, TokenFilesProvider
from harbor_secrets_vault import VaultProvider

from harbor_secrets import HarborSecretsError, TokenRecord
from harbor_secrets.config import Job, load_config
from harbor_secrets.logs import configure as configure_logging
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_secrets.sync import run_sync
from harbor_secrets.testing import sink_from_options
from harbor_testkit.canaries import Canaries
from harbor_testkit.cli_text import json_log_lines, toml_value
from harbor_testkit.environ import clean_environ
from harbor_testkit.proxy import FaultProxy
from harbor_testkit.servers import Bao

from .report import ReliabilityLog, Row
from .servers import REGION

# Time a CLI process needs beyond the configured budget: interpreter start, imports, the
# stores' own requests. Generous on purpose: a loaded 2-CPU CI box is slow.
SLACK = 5.0

# The retry policy every scenario config uses unless it says otherwise: small, so a fault
# that exhausts it costs seconds, not the production defaults' 30 s.
HTTP = {"connect_timeout": "0.5s", "read_timeout": "1s", "total_budget": "3s", "max_attempts": 4}
HTTP_BUDGET = 3.0
VAULT_TIMEOUT = 1.0
# The AWS provider's clients: standard retry mode with 4 retries (5 attempts in all),
# 5 s connect and 10 s read timeouts.
AWS_READ_TIMEOUT = 10.0
AWS_ATTEMPTS = 5

# Verbosity and output variants every CLI scenario runs under.
VARIANTS: dict[str, tuple[str, ...]] = {
    "default": (),
    "vv-text": ("-vv",),
    "vv-json": ("-vv", "--log-format", "json"),
}

Expectation = Literal["new", "kept", "either"]


@dataclass(frozen=True)
class JobKey:
    environment: str
    scope: str


JOBS = (JobKey("sandbox", "service_provider"),)


def unique(prefix: str = "r") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# -- the CLI process -----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One finished CLI process."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    elapsed: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def base_environ(client_secret: str) -> dict[str, str]:
    """The pytest process's environment without Harbor, Vault or AWS settings."""
    return clean_environ({"HARBOR_CLIENT_SECRET": client_secret})


def run_cli(
    args: Sequence[str],
    *,
    environ: Mapping[str, str],
    cwd: Path,
    prefix: Sequence[str] = (),
    umask: int = -1,
    timeout: float = 90,
) -> Run:
    """Run ``python -m harbor_secrets ARGS`` as cron would, and time it."""
    command = [*prefix, sys.executable, "-m", "harbor_secrets", *args]
    started = time.monotonic()
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=dict(environ),
        cwd=cwd,
        timeout=timeout,
        check=False,
        umask=umask,
    )
    elapsed = time.monotonic() - started
    return Run(tuple(args), completed.returncode, completed.stdout, completed.stderr, elapsed)


# -- stores --------------------------------------------------------------------------------


def seed_record(job: JobKey, token: str, *, age: float = 100.0) -> TokenRecord:
    """A previous good token: issued ``age`` seconds ago, so any new one is newer."""
    return TokenRecord.issue(
        access_token=token,
        issued_at=datetime.now(UTC) - timedelta(seconds=age),
        expires_in=300,
        scope=job.scope,
        environment=job.environment,
        client_id="harbor-test-client",
        issuer="http://127.0.0.1/realms/harbor/protocol/openid-connect/token",
    )


class Store(Protocol):
    """A store the suite seeds and inspects directly (never through the faulty path)."""

    sink: str
    kind: str
    jobs: Sequence[JobKey]
    full_record: bool  # False: only the token and its expiry are kept (env file)

    def options(self) -> dict[str, object]: ...

    def key(self, job: JobKey) -> str: ...

    def seed(self, job: JobKey, record: TokenRecord) -> None: ...

    def snapshot(self) -> object: ...

    def read(self, job: JobKey) -> TokenRecord | None: ...

    def close(self) -> None: ...


class EnvFileStore:
    kind = "env file"
    full_record = False

    def __init__(self, path: Path, jobs: Sequence[JobKey] = JOBS, sink: str = "local") -> None:
        self.path = path
        self.jobs = jobs
        self.sink = sink

    def options(self) -> dict[str, object]:
        return {"provider": "envfile", "path": str(self.path)}

    def key(self, job: JobKey) -> str:
        sink = sink_from_options(EnvFileProvider, {"path": str(self.path)}, name=self.sink)
        return sink.key_for(Job("main", job.environment, job.scope, (self.sink,)))

    def seed(self, job: JobKey, record: TokenRecord) -> None:
        EnvFileProvider(self.path.resolve()).write(self.key(job), record)

    def snapshot(self) -> object:
        """The bytes of the file (through a symlink), its mode and temp-file debris."""
        real = self.path.resolve()
        exists = real.exists()
        return (
            real.read_bytes() if exists else None,
            real.stat().st_mode & 0o7777 if exists else None,
            sorted(p.name for p in real.parent.iterdir() if p.name.endswith(".tmp")),
            self.path.is_symlink(),
        )

    def read(self, job: JobKey) -> TokenRecord | None:
        return EnvFileProvider(self.path.resolve()).read(self.key(job))

    def close(self) -> None:
        pass


class TokenFilesStore:
    """The ``files`` store: one directory per token; compared as a whole tree (names, link
    targets, file bytes), so a half-written generation or a stray link is a change."""

    kind = "token files"
    full_record = True

    def __init__(self, directory: Path, jobs: Sequence[JobKey] = JOBS, sink: str = "tokens"):
        self.directory = directory
        self.jobs = jobs
        self.sink = sink

    def options(self) -> dict[str, object]:
        return {"provider": "files", "directory": str(self.directory)}

    def key(self, job: JobKey) -> str:
        table = {"directory": str(self.directory)}
        built = sink_from_options(TokenFilesProvider, table, name=self.sink)
        return built.key_for(Job("main", job.environment, job.scope, (self.sink,)))

    def _provider(self) -> TokenFilesProvider:
        return TokenFilesProvider(self.directory)

    def seed(self, job: JobKey, record: TokenRecord) -> None:
        self._provider().write(self.key(job), record)

    def snapshot(self) -> object:
        tree: dict[str, object] = {}
        for job in self.jobs:
            root = self.directory / self.key(job)
            for path in sorted(root.rglob("*")) if root.exists() else []:
                name = str(path.relative_to(self.directory))
                if path.is_symlink():
                    tree[name] = ("link", os.readlink(path))
                elif path.is_dir():
                    tree[name] = ("dir", path.stat().st_mode & 0o7777)
                else:
                    tree[name] = ("file", path.read_bytes(), path.stat().st_mode & 0o7777)
        return tree

    def read(self, job: JobKey) -> TokenRecord | None:
        return self._provider().read(self.key(job))

    def close(self) -> None:
        pass


class VaultStore:
    kind = "OpenBao KV v2"
    full_record = True

    def __init__(
        self,
        bao: Bao,
        home: Path,
        *,
        address: str | None = None,
        jobs: Sequence[JobKey] = JOBS,
        sink: str = "vault",
    ) -> None:
        self.bao = bao
        self.address = address or bao.address  # what the CLI is told (maybe a proxy)
        self.jobs = jobs
        self.sink = sink
        self.template = f"{unique('rel')}/{{environment}}/{{scope}}"
        environ = {"VAULT_TOKEN": bao.root_token, "HOME": str(home)}
        table = {"address": bao.address, "path": self.template, "timeout": "10s"}
        self.built = sink_from_options(
            VaultProvider, table, environ=environ, name=sink, source="reliability"
        )
        self.provider = self.built.provider

    def options(self) -> dict[str, object]:
        return {
            "provider": "vault",
            "address": self.address,
            "path": self.template,
            "timeout": f"{VAULT_TIMEOUT:g}s",
        }

    def key(self, job: JobKey) -> str:
        return self.built.key_for(Job("main", job.environment, job.scope, (self.sink,)))

    def seed(self, job: JobKey, record: TokenRecord) -> None:
        self.provider.write(self.key(job), record)

    def snapshot(self) -> object:
        """Each secret's current version number and data, read with the root token."""
        client = self.bao.client()
        try:
            result: dict[str, object] = {}
            for job in self.jobs:
                try:
                    body = client.secrets.kv.v2.read_secret_version(
                        path=self.key(job), mount_point="secret", raise_on_deleted_version=True
                    )
                except hvac.exceptions.InvalidPath:
                    result[self.key(job)] = None
                    continue
                result[self.key(job)] = (body["data"]["metadata"]["version"], body["data"]["data"])
            return result
        finally:
            client.adapter.close()

    def read(self, job: JobKey) -> TokenRecord | None:
        return self.provider.read(self.key(job))

    def close(self) -> None:
        self.provider.close()


class SsmStore:
    kind = "SSM Parameter Store"
    full_record = True

    def __init__(
        self,
        client: Any,
        endpoint: str,
        *,
        jobs: Sequence[JobKey] = JOBS,
        sink: str = "params",
    ) -> None:
        self.client = client  # talks to moto directly
        self.endpoint = endpoint  # what the CLI is told (maybe a proxy)
        self.jobs = jobs
        self.sink = sink
        self.template = f"/{unique('rel')}/{{environment}}/{{scope}}"
        settings = AwsSettings(region=REGION, endpoint_url=endpoint)
        self.provider = ParameterStoreProvider(settings=settings, client=client, sink_name=sink)

    def options(self) -> dict[str, object]:
        return {
            "provider": "aws-ssm",
            "name": self.template,
            "region": REGION,
            "endpoint_url": self.endpoint,
        }

    def key(self, job: JobKey) -> str:
        return self.template.format(environment=job.environment, scope=job.scope)

    def seed(self, job: JobKey, record: TokenRecord) -> None:
        self.provider.write(self.key(job), record)

    def snapshot(self) -> dict[str, object]:
        """Each parameter's version and value, and whether a writer's lock was left."""
        result: dict[str, object] = {}
        for job in self.jobs:
            for name in (self.key(job), self.key(job) + ".lock"):
                try:
                    found = self.client.get_parameter(Name=name, WithDecryption=True)
                except self.client.exceptions.ParameterNotFound:
                    result[name] = None
                    continue
                parameter = found["Parameter"]
                result[name] = (parameter["Version"], parameter["Value"])
        return result

    def read(self, job: JobKey) -> TokenRecord | None:
        return self.provider.read(self.key(job))

    def close(self) -> None:
        pass


# -- configuration -------------------------------------------------------------------------


def config_text(
    *,
    accounts_url: str,
    stores: Sequence[Store],
    jobs: Sequence[JobKey] = JOBS,
    http: Mapping[str, object] | None = None,
    client_id: str = "harbor-test-client",
    max_workers: int = 8,
) -> str:
    environments = sorted({job.environment for job in jobs})
    scopes = sorted({job.scope for job in jobs})
    lines = ["[refresh]", 'refresh_before = "150s"', f"max_workers = {max_workers}", ""]
    lines += ["[http]", *(f"{k} = {toml_value(v)}" for k, v in (http or HTTP).items()), ""]
    for environment in environments:
        lines += [
            f"[environments.{environment}]",
            f"accounts_url = {toml_value(accounts_url)}",
            f"api_url = {toml_value(accounts_url)}",
            "",
        ]
    lines += [
        "[credentials.main]",
        f"client_id = {toml_value(client_id)}",
        'client_secret = "env:HARBOR_CLIENT_SECRET"',
        "",
    ]
    for store in stores:
        lines.append(f"[sinks.{store.sink}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in store.options().items()]
        lines.append("")
    lines += [
        "[[targets]]",
        'credentials = "main"',
        f"environments = {toml_value(environments)}",
        f"scopes = {toml_value(scopes)}",
        f"sinks = {toml_value([store.sink for store in stores])}",
    ]
    return "\n".join(lines) + "\n"


# -- checking stores -----------------------------------------------------------------------


def judge_store(
    store: Store,
    jobs: Sequence[JobKey],
    before: object,
    seeds: Mapping[JobKey, TokenRecord],
    issued: frozenset[str],
) -> str:
    """What a store holds compared with its seeded state, never naming a token value.

    ``kept``: byte for byte as before. ``new``: every job's record is complete, issued in
    this run and newer than the previous token. ``mixed``: some records new, the others
    the previous ones. ``touched``: records as before but the bytes changed. ``BAD: …``:
    anything else — missing, unreadable, older, foreign, for the wrong job.
    """
    if store.snapshot() == before:
        return "kept"
    states, problems = set(), []
    for job in jobs:
        try:
            record = store.read(job)
        except Exception as exc:  # an unreadable store is a finding, not a crash
            problems.append(f"{job.scope} unreadable ({type(exc).__name__})")
            continue
        if record is None:
            problems.append(f"{job.scope} missing")
            continue
        seed = seeds[job]
        if record.access_token.reveal() == seed.access_token.reveal():
            states.add("kept" if record.expires_at == seed.expires_at else "altered")
            continue
        states.add("new")
        if record.access_token.reveal() not in issued:
            problems.append(f"{job.scope} holds a token the issuer never issued")
        if record.expires_at <= seed.expires_at:
            problems.append(f"{job.scope} went backwards")
        same_job = (record.scope, record.environment) == (job.scope, job.environment)
        if store.full_record and not same_job:
            problems.append(f"{job.scope} holds another job's record")
    if "altered" in states:
        problems.append("the previous token's expiry changed")
    if problems:
        return "BAD: " + "; ".join(problems)
    if states == {"new"}:
        return "new"
    return "mixed" if "new" in states else "touched"


def store_ok(verdict: str, expectation: Expectation) -> bool:
    if verdict.startswith("BAD"):
        return False
    return expectation == "either" or verdict == expectation


# -- in-process runs -----------------------------------------------------------------------


@contextlib.contextmanager
def captured_logs(verbosity: int, fmt: str) -> Iterator[io.StringIO]:
    """Install the CLI's own scrubbed log handler on a buffer; restore the root logger."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    configure_logging(verbosity, fmt, stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


IN_PROCESS_VARIANTS: dict[str, tuple[int, str]] = {
    "default": (0, "text"),
    "vv-text": (2, "text"),
    "vv-json": (2, "json"),
}


# -- one scenario ------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A scenario and what must hold after it, whatever the verbosity."""

    id: str
    component: str
    fault: str
    exit: int
    stores: Mapping[str, Expectation]
    requests: tuple[int, int]
    budget: float
    min_elapsed: float = 0.0
    #: A product bug this scenario exposes; safety facts are still asserted, the rest xfails.
    bug: str | None = None

    def __str__(self) -> str:
        return self.id


@dataclass
class Workspace:
    """A fresh config and freshly seeded stores for one run."""

    directory: Path
    config: Path
    stores: Sequence[Store]
    jobs: Sequence[JobKey]
    seeds: dict[JobKey, TokenRecord]
    before: dict[str, object]


@dataclass(frozen=True)
class Attempt:
    """One variant's finished run and how many requests reached the faulty component."""

    variant: str
    ws: Workspace
    run: Run
    requests: int


@dataclass(frozen=True)
class Outcome:
    variant: str
    safety: list[str]  # leaks, damaged stores, an unbounded run: always fatal
    wrong: list[str]  # exit code, store expectation, request count, minimum time
    shown: str  # the run's output with canaries replaced by their labels


T = TypeVar("T")


def in_parallel(thunks: Sequence[Callable[[], T]]) -> list[T]:
    """Run the thunks concurrently (threads; each typically waits on a CLI process)."""
    with ThreadPoolExecutor(max_workers=max(1, len(thunks))) as pool:
        return list(pool.map(lambda thunk: thunk(), thunks))


class Lab:
    """Makes issuers, proxies and seeded workspaces, runs the CLI or the engine, and checks
    and records each run. Everything it starts is stopped when the test ends."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        client_id: str,
        client_secret: str,
        canaries: Canaries,
        log: ReliabilityLog,
        stack: contextlib.ExitStack,
    ) -> None:
        self.tmp_path = tmp_path
        self.client_id = client_id
        self.client_secret = client_secret
        self.canaries = canaries
        self.log = log
        self.stack = stack
        self.issuers: list[StandInIssuer] = []
        #: Tokens a scenario itself wrote into a store (a rival writer): valid, and canaries.
        self.also_valid: set[str] = set()

    # -- components ------------------------------------------------------------------------

    def watch(self, issuer: StandInIssuer) -> StandInIssuer:
        """Count ``issuer``'s tokens as issued (valid in stores, canaries in output)."""
        self.issuers.append(issuer)
        return issuer

    def issuer(self) -> StandInIssuer:
        issuer = StandInIssuer(clients={self.client_id: self.client_secret}, token_lifetime=300)
        return self.watch(self.stack.enter_context(issuer))

    def proxy(self, url: str) -> FaultProxy:
        return self.stack.enter_context(FaultProxy.in_front_of(url))

    def issued(self) -> frozenset[str]:
        tokens: set[str] = set(self.also_valid)
        for issuer in self.issuers:
            tokens |= issuer.issued
        return frozenset(tokens)

    # -- workspaces and runs ---------------------------------------------------------------

    def directory(self) -> Path:
        path = self.tmp_path / unique("ws")
        path.mkdir()
        return path

    def workspace(
        self,
        stores: Sequence[Store],
        *,
        accounts_url: str,
        directory: Path | None = None,
        jobs: Sequence[JobKey] = JOBS,
        http: Mapping[str, object] | None = None,
    ) -> Workspace:
        """Seed every store with a previous good token per job and write the config."""
        directory = directory or self.directory()
        seeds = {}
        for job in jobs:
            token = f"seed-token-{secrets.token_hex(16)}"
            self.canaries.add(f"previous token {token[-6:]}", token)
            seeds[job] = seed_record(job, token)
            for store in stores:
                store.seed(job, seeds[job])
        config = directory / "harbor.toml"
        config.write_text(
            config_text(accounts_url=accounts_url, stores=stores, jobs=jobs, http=http),
            encoding="utf-8",
        )
        before = {store.sink: store.snapshot() for store in stores}
        return Workspace(directory, config, stores, jobs, seeds, before)

    def environ(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        environ = base_environ(self.client_secret)
        environ.update(extra or {})
        return environ

    def cli(
        self,
        ws: Workspace,
        variant: str,
        *,
        environ: Mapping[str, str] | None = None,
        prefix: Sequence[str] = (),
        umask: int = -1,
    ) -> Run:
        """``sync --force`` on the workspace's config, under one verbosity variant."""
        args = ["-c", str(ws.config), *VARIANTS[variant], "sync", "--force"]
        if variant == "vv-json":
            args += ["--output", "json"]
        return run_cli(
            args, environ=self.environ(environ), cwd=ws.directory, prefix=prefix, umask=umask
        )

    def in_process(self, ws: Workspace, variant: str, *, environ: Mapping[str, str]) -> Run:
        """The engine in this process (``run_sync``), logs captured as the CLI would write
        them; stdout is the JSON summary, or the error line for an expected error."""
        verbosity, fmt = IN_PROCESS_VARIANTS[variant]
        full = self.environ(environ)
        with captured_logs(verbosity, fmt) as buffer:
            started = time.monotonic()
            try:
                config = load_config(ws.config, environ=full)
                report = run_sync(config, force=True, environ=full)
                code, stdout = report.exit_code, json.dumps(report.to_dict(), default=str)
            except HarborSecretsError as exc:
                code, stdout = exc.exit_code, f"harbor-secrets: error: {exc}\n{exc!r}"
            elapsed = time.monotonic() - started
        return Run(("in-process", variant), code, stdout, buffer.getvalue(), elapsed)

    # -- checking --------------------------------------------------------------------------

    def verify(self, case: Case, attempts: Sequence[Attempt]) -> None:
        """Record a row per attempt, then assert: safety always, correctness unless the
        case names a known bug (then it xfails, and fails once the bug is gone)."""
        outcomes = [self.check(case, attempt) for attempt in attempts]
        for outcome in outcomes:
            assert not outcome.safety, f"{outcome.variant}: {outcome.safety}\n{outcome.shown}"
        wrong = [f"{o.variant}: {'; '.join(o.wrong)}" for o in outcomes if o.wrong]
        if case.bug is not None:
            if not wrong:
                pytest.fail(f"known bug no longer reproduces ({case.bug}); drop the bug note")
            pytest.xfail(f"known bug: {case.bug} ({' | '.join(wrong)})")
        shown = "\n".join(o.shown for o in outcomes if o.wrong)
        assert not wrong, " | ".join(wrong) + "\n" + shown

    def check(self, case: Case, attempt: Attempt) -> Outcome:
        ws, run, variant = attempt.ws, attempt.run, attempt.variant
        self.canaries.add_tokens("issued token", self.issued() - self.also_valid)
        issued = self.issued()
        verdicts = {
            store.sink: judge_store(store, ws.jobs, ws.before[store.sink], ws.seeds, issued)
            for store in ws.stores
        }
        leaks = self.canaries.leaks({"stdout": run.stdout, "stderr": run.stderr})
        low, high = case.requests
        self.log.add(
            Row(
                scenario=case.id,
                component=case.component,
                fault=case.fault,
                variant=variant,
                expected_exit=case.exit,
                observed_exit=run.code,
                stores=", ".join(f"{sink} {verdict}" for sink, verdict in verdicts.items()),
                stores_ok=all(
                    store_ok(verdicts[sink], expected) for sink, expected in case.stores.items()
                ),
                requests=attempt.requests,
                requests_expected=str(low) if low == high else f"{low}–{high}",
                elapsed=run.elapsed,
                budget=case.budget,
                leaks=tuple(leaks),
                bug=case.bug,
                slack=SLACK,
            )
        )
        safety = [f"secrets leaked: {leak}" for leak in leaks]
        safety += [f"{sink} {v}" for sink, v in verdicts.items() if v.startswith("BAD")]
        if run.elapsed > case.budget + SLACK:
            safety.append(f"took {run.elapsed:.2f} s, budget {case.budget:g} s + {SLACK:g} s")
        if variant == "vv-json" and run.code != 2:
            if not json_log_lines(run.stderr):
                safety.append("no JSON log lines under -vv --log-format json")
            if json.loads(run.stdout)["exit_code"] != run.code:
                safety.append("the JSON summary's exit_code is not the process's")
        wrong = []
        if run.code != case.exit:
            wrong.append(f"exit {run.code}, expected {case.exit}")
        for sink, expected in case.stores.items():
            if not store_ok(verdicts[sink], expected):
                wrong.append(f"{sink} {verdicts[sink]}, expected {expected}")
        if not low <= attempt.requests <= high:
            wrong.append(f"{attempt.requests} requests, expected {low}–{high}")
        if run.elapsed < case.min_elapsed:
            wrong.append(f"{run.elapsed:.2f} s, expected at least {case.min_elapsed:g} s")
        return Outcome(variant, safety, wrong, self.redacted(run.output))

    def redacted(self, text: str) -> str:
        for label, value in sorted(self.canaries.values.items(), key=lambda kv: -len(kv[1])):
            text = text.replace(value, f"<{label}>")
        return text
