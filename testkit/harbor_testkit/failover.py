"""Failover on compressed time: several ``sync --watch`` replicas on one real store.

The replicas are real processes (``python -m harbor_secrets sync --watch``), each with its own
``--listen`` port and writer name, against one real store: OpenBao KV v2 (reached through a
fault proxy, so the store can be taken away) or the stand-in Kubernetes API server (taken down
and up again). The stand-in issuer mints tokens that live :data:`TOKEN_LIFETIME` seconds,
so a refresh comes every ten seconds instead of every two and a half minutes. Meanwhile:

* readers poll continuously, through the store's own client (hvac, lightkube) and through
  ``harbor-secrets get --min-remaining FLOOR`` (which refuses a token below the floor);
* a poller timestamps every token request the issuer answers, and another polls each live
  replica's ``/healthz``;
* the scenario kills replicas with SIGKILL, hangs them with SIGSTOP, starts them again and
  takes the store away, as :class:`FailoverRun`'s methods say.

:class:`Figures` is what a run found: the least lifetime any reader read, whether a store
ever went back to an older token, token requests against refreshes (per window in which
every replica was up), health answers, ``on_write`` runs per replica, and secrets in any
output. tests/reliability/test_failover.py runs a short scripted scenario in ``make test``;
bench/availability.py runs many failovers and writes docs/AVAILABILITY.md. Both use this one
harness, which is why it lives in the test kit. The floor both hold to is the freshness
policy's, computed from this configuration.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import hvac
import hvac.exceptions
from lightkube import ApiError, Client, KubeConfig
from lightkube.resources.core_v1 import Secret as KubeSecret

from harbor_secrets import TokenRecord, format_time, parse_time
from harbor_secrets.config import Config, load_config
from harbor_secrets.freshness import Availability, RefreshPolicy
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_secrets.writer import WRITER_ENV_VAR
from harbor_testkit.canaries import Canaries
from harbor_testkit.cli_text import json_log_lines, toml_value
from harbor_testkit.environ import clean_environ
from harbor_testkit.kube_apiserver import KubeApiServer, Rule
from harbor_testkit.proxy import FaultProxy, ProxyFault
from harbor_testkit.servers import Bao, free_port

#: Compressed time: Harbor's 300 s tokens live 30 s here, refresh_before 150 s becomes 20 s
#: (a refresh every ~10 s), and the schedule period (watch mode's longest sleep) 5 s.
TOKEN_LIFETIME = 30
REFRESH_BEFORE = 20
SCHEDULE_PERIOD = 5
#: The token request's retry policy: small, as in the rest of the reliability suite.
HTTP = {"connect_timeout": "0.5s", "read_timeout": "1s", "total_budget": "3s", "max_attempts": 4}
HTTP_BUDGET = 3.0
SCOPES = ("service_provider", "tower_access")
ENVIRONMENT = "sandbox"
CLIENT_ID = "harbor-failover-client"
#: What each token request takes, as Harbor's issuer over the internet does (a proxy in front
#: of the stand-in adds it): the window in which two replicas that look at once both ask.
ISSUER_LATENCY = 0.3
#: How often each reader reads, and the health poller polls.
STORE_READ_INTERVAL = 0.1
GET_INTERVAL = 0.5
HEALTH_INTERVAL = 1.0
#: Token requests for one scope closer together than this belong to one refresh (at most
#: the standby's lateness, 2W = 4 s, apart); refreshes come ~10 s apart.
SAME_REFRESH = 5.0
#: The on_write command every replica runs: one line per change it was told of, "writer
#: scope expires_at", appended to a shared file.
HOOK = (
    "import json, os\n"
    "changes = json.loads(os.environ['HARBOR_SECRETS_CHANGES'])\n"
    "lines = ''.join(\n"
    "    f\"{os.environ['HARBOR_SECRETS_WRITER']} {c['scope']} {c['expires_at']}\\n\"\n"
    "    for c in changes\n"
    ")\n"
    "with open(os.environ['FAILOVER_HOOK_LOG'], 'a', encoding='utf-8') as log:\n"
    "    log.write(lines)\n"
)


def config_text(issuer_url: str, sink: Mapping[str, object]) -> str:
    """The configuration every replica (and, with a reader's sink, every reader) runs."""
    lines = [
        "[refresh]",
        f'refresh_before = "{REFRESH_BEFORE}s"',
        f'token_lifetime = "{TOKEN_LIFETIME}s"',
        f'schedule_period = "{SCHEDULE_PERIOD}s"',
        "",
        "[http]",
        *(f"{key} = {toml_value(value)}" for key, value in HTTP.items()),
        "",
        f"[environments.{ENVIRONMENT}]",
        f"accounts_url = {toml_value(issuer_url)}",
        f"api_url = {toml_value(issuer_url)}",
        "",
        "[credentials.main]",
        f"client_id = {toml_value(CLIENT_ID)}",
        'client_secret = "env:HARBOR_CLIENT_SECRET"',
        "",
        "[sinks.store]",
        *(f"{key} = {toml_value(value)}" for key, value in sink.items()),
        "",
        "[[targets]]",
        'credentials = "main"',
        f'environments = ["{ENVIRONMENT}"]',
        f"scopes = {toml_value(SCOPES)}",
        'sinks = ["store"]',
    ]
    return "\n".join(lines) + "\n"


def _config() -> Config:
    return load_config(
        text=config_text("http://127.0.0.1:1", {"provider": "memory"}),
        environ={"HARBOR_CLIENT_SECRET": "x"},
    )


def policy() -> RefreshPolicy:
    """The freshness policy every replica of this configuration runs."""
    return _config().refresh


def budget() -> Availability:
    """The freshness policy's availability budget for this configuration, in watch mode."""
    config = _config()
    return config.refresh.availability(watching=True, request_budget=config.http.total_budget)


def promised_floor() -> float:
    """What every reader must find at least: the policy's floor with one replica lost and
    each token request allowed its whole [http] budget (the strict promise)."""
    return budget().reader_floor_slow_issuer


# -- the stores -------------------------------------------------------------------------------


class Backend(Protocol):
    """One real store the replicas share, and how readers and the scenario reach it."""

    label: str

    def sink(self, replica: str) -> dict[str, object]:
        """A replica's sink options (each replica reaches the store its own way, so the store
        requests it makes can be counted)."""

    def store_requests(self, replica: str) -> int:
        """The store requests ``replica`` has made so far."""

    def reader_sink(self) -> dict[str, object]:
        """The sink options of `harbor-secrets get` readers (the store directly)."""

    def environ(self) -> dict[str, str]:
        """What the replicas' and readers' processes need to reach the store."""

    def read(self, scope: str) -> TokenRecord | None:
        """The stored record, through the store's own client."""

    def take_away(self) -> None: ...

    def bring_back(self) -> None: ...

    def history(self, scope: str) -> list[datetime]:
        """The expiries of the versions the store still keeps, oldest first (or [])."""

    def canaries(self) -> dict[str, str]: ...

    def close(self) -> None: ...


class OpenBaoBackend:
    """OpenBao KV v2; the replicas reach it through a fault proxy that can refuse them."""

    label = "OpenBao KV v2"

    def __init__(self, bao: Bao) -> None:
        self.bao = bao
        #: One fault proxy per replica: it can refuse the replica, and it counts its requests.
        self.proxies: dict[str, FaultProxy] = {}
        self.path = f"failover-{uuid.uuid4().hex[:8]}/{{environment}}/{{scope}}"
        self.client = bao.client()
        self._lock = threading.Lock()

    def _options(self, address: str) -> dict[str, object]:
        return {"provider": "vault", "address": address, "path": self.path, "timeout": "2s"}

    def sink(self, replica: str) -> dict[str, object]:
        if replica not in self.proxies:
            self.proxies[replica] = FaultProxy.in_front_of(self.bao.address).start()
        return {**self._options(self.proxies[replica].url), "max_versions": 100}

    def store_requests(self, replica: str) -> int:
        return self.proxies[replica].requests

    def reader_sink(self) -> dict[str, object]:
        return self._options(self.bao.address)

    def environ(self) -> dict[str, str]:
        return {"VAULT_TOKEN": self.bao.root_token}

    def _key(self, scope: str) -> str:
        return self.path.format(environment=ENVIRONMENT, scope=scope)

    def read(self, scope: str) -> TokenRecord | None:
        with self._lock:  # one hvac client, shared by the reader thread and the checks
            try:
                body = self.client.secrets.kv.v2.read_secret_version(
                    path=self._key(scope), mount_point="secret", raise_on_deleted_version=True
                )
            except hvac.exceptions.InvalidPath:
                return None
        return TokenRecord.from_dict(body["data"]["data"])

    def take_away(self) -> None:
        for proxy in self.proxies.values():
            proxy.set_fault(ProxyFault.reset())

    def bring_back(self) -> None:
        for proxy in self.proxies.values():
            proxy.set_fault(ProxyFault.passthrough())

    def history(self, scope: str) -> list[datetime]:
        with self._lock:
            try:
                meta = self.client.secrets.kv.v2.read_secret_metadata(
                    path=self._key(scope), mount_point="secret"
                )
            except hvac.exceptions.InvalidPath:
                return []
            expiries = []
            for version in sorted(int(v) for v in meta["data"]["versions"]):
                body = self.client.secrets.kv.v2.read_secret_version(
                    path=self._key(scope),
                    mount_point="secret",
                    version=version,
                    raise_on_deleted_version=True,
                )
                expiries.append(parse_time(body["data"]["data"]["expires_at"]))
        return expiries

    def canaries(self) -> dict[str, str]:
        return {"OpenBao root token": self.bao.root_token}

    def close(self) -> None:
        self.client.adapter.close()
        for proxy in self.proxies.values():
            proxy.stop()


class KubernetesBackend:
    """The stand-in Kubernetes API server, Secrets pre-created as the overlay does; taken
    down and up again as a whole (readers lose it too)."""

    label = "Kubernetes Secrets (stand-in API server)"
    namespace = "apps"

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.server = KubeApiServer(namespaces=(self.namespace,), workdir=workdir).start()
        reader = f"system:serviceaccount:{self.namespace}:reader"
        self.reader_token = self.server.add_token(reader)
        self.server.set_rules(reader, [Rule(("get",), namespace=self.namespace)])
        #: One service account per replica (as one pod's own token), so the server's request
        #: log tells the replicas apart.
        self.users: dict[str, str] = {}
        self.tokens: dict[str, str] = {}
        self.template = f"fo-{uuid.uuid4().hex[:6]}-{{environment}}-{{scope}}"
        for scope in SCOPES:
            self.server.put_secret(
                self.namespace,
                self._name(scope),
                labels={"app.kubernetes.io/managed-by": "harbor-secrets"},
            )
        self.reader_config = self.server.write_kubeconfig(
            workdir / "reader.kubeconfig", token=self.reader_token, namespace=self.namespace
        )
        self.client = Client(KubeConfig.from_file(self.reader_config), trust_env=False)
        self._lock = threading.Lock()

    def _name(self, scope: str) -> str:
        return self.template.format(environment=ENVIRONMENT, scope=scope.replace("_", "-"))

    def _options(self, kubeconfig: Path) -> dict[str, object]:
        return {
            "provider": "kubernetes",
            "namespace": self.namespace,
            "name": self.template,
            "kubeconfig": str(kubeconfig),
            "timeout": "2s",
            "volume_propagation": 0,
        }

    def sink(self, replica: str) -> dict[str, object]:
        if replica not in self.users:
            user = f"system:serviceaccount:harbor-secrets:{replica}"
            self.users[replica] = user
            self.tokens[replica] = self.server.add_token(user)
            rule = Rule(("get", "update", "patch"), namespace=self.namespace)
            self.server.set_rules(user, [rule])
        kubeconfig = self.server.write_kubeconfig(
            self.workdir / f"{replica}.kubeconfig",
            token=self.tokens[replica],
            namespace=self.namespace,
        )
        return self._options(kubeconfig)

    def store_requests(self, replica: str) -> int:
        user = self.users[replica]
        return sum(
            1
            for request in self.server.requests
            if request.user == user and "/secrets/" in request.path
        )

    def reader_sink(self) -> dict[str, object]:
        return self._options(self.reader_config)

    def environ(self) -> dict[str, str]:
        return {}

    def read(self, scope: str) -> TokenRecord | None:
        with self._lock:
            try:
                secret = self.client.get(KubeSecret, self._name(scope), namespace=self.namespace)
            except ApiError as error:
                if error.status.code == 404:
                    return None
                raise
        data = secret.data or {}
        if "record.json" not in data:
            return None
        return TokenRecord.from_json(base64.b64decode(data["record.json"]).decode())

    def take_away(self) -> None:
        self.server.down()

    def bring_back(self) -> None:
        self.server.up()

    def history(self, scope: str) -> list[datetime]:
        return []  # a Secret keeps no versions; the readers' sequences are the evidence

    def canaries(self) -> dict[str, str]:
        tokens = {f"API token of {name}": token for name, token in self.tokens.items()}
        return {**tokens, "API reader token": self.reader_token}

    def close(self) -> None:
        self.client.close()
        self.server.stop()


# -- the replicas ---------------------------------------------------------------------------


class Replica:
    """One ``sync --watch`` process (started again under the same name after a kill)."""

    def __init__(self, name: str, directory: Path, config: Path, environ: Mapping[str, str]):
        self.name = name
        self.directory = directory
        self.config = config
        self.environ = {**environ, WRITER_ENV_VAR: name}
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.incarnation = 0
        self.stopped = False
        self.logs: list[Path] = []

    def start(self) -> None:
        self.incarnation += 1
        self.port = free_port()
        log = self.directory / f"{self.name}.{self.incarnation}.log"
        self.logs.append(log)
        command = [
            sys.executable,
            "-m",
            "harbor_secrets",
            "-c",
            str(self.config),
            "-v",
            "--log-format",
            "json",
            "sync",
            "--watch",
            "--listen",
            f"127.0.0.1:{self.port}",
        ]
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                command,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=dict(self.environ),
                cwd=self.directory,
            )
        self.stopped = False

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: no cleanup, no finishing the cycle."""
        assert self.process is not None
        if self.stopped:
            self.cont()
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGSTOP: a hung process, holding whatever it held."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.stopped = True

    def cont(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.stopped = False

    def terminate(self) -> int | None:
        """SIGTERM, as Kubernetes stops a pod; the exit code, or None if it had to be killed."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        if self.stopped:
            self.cont()
        self.process.terminate()
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
            return None

    def healthz(self) -> int | None:
        """The status /healthz answers, or None when nothing answers (stopped, dead)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return None

    def output(self) -> str:
        return "".join(path.read_text(encoding="utf-8", errors="replace") for path in self.logs)

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for path in self.logs:
            text = path.read_text(encoding="utf-8", errors="replace")
            # The last line of a killed process can be cut short: only whole lines count.
            whole = text if text.endswith("\n") else text.rpartition("\n")[0]
            lines += json_log_lines(whole)
        return lines


# -- what readers saw ---------------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    """One successful read: when, which token, how long it had left."""

    at: float  # time.time()
    reader: str  # "store" or "get"
    scope: str
    expires_at: float  # unix time
    written_by: str
    token: str

    @property
    def left(self) -> float:
        return self.expires_at - self.at


@dataclass
class Observations:
    reads: list[Read] = field(default_factory=list)
    #: (time, reader, what failed): reads that found no store (it was away) are expected.
    failures: list[tuple[float, str, str]] = field(default_factory=list)
    #: `get` refusing a token below the floor or expired: must never happen.
    refusals: list[tuple[float, str]] = field(default_factory=list)
    requests: list[tuple[float, str]] = field(default_factory=list)  # (time, scope)
    health: list[tuple[float, str, int | None]] = field(default_factory=list)
    get_stderr: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, item: Any) -> None:
        with self.lock:
            getattr(self, name).append(item)


@dataclass(frozen=True)
class Window:
    """A stretch of the run in which every replica was up."""

    start: float
    end: float
    label: str
    #: Store requests each replica made in the window.
    store_requests: Mapping[str, int]


@dataclass
class Figures:
    """What one run found; times in seconds."""

    backend: str
    seconds: float
    replicas: int
    floor: float  # the policy's strict promise the run held readers to
    least_left: float
    least_left_get: float
    reads: int
    gets: int
    read_failures: int
    refusals: list[tuple[float, str]]
    backwards: list[str]
    requests: int
    refreshes: int
    all_up_requests: int
    all_up_refreshes: int
    failovers: int
    kills: int
    events: list[tuple[float, str]]
    unhealthy_all_up: list[tuple[float, str, int | None]]
    #: Changes on_write was told of, per replica; and its runs' counterpart in the logs.
    hook_runs: dict[str, int]
    write_cycles: dict[str, int]
    #: on_write told of a token its replica did not write (must stay empty).
    hooks_for_others: list[tuple[str, str, str]]
    #: Tokens readers saw whose writer ran no on_write for them (a writer killed between
    #: its write and its on_write may leave one).
    writes_without_hook: list[tuple[str, str, str]]
    kept_newer: int
    leaks: list[str]
    exit_codes: dict[str, int | None]
    #: Store requests per replica per refresh of both tokens, in the all-up windows.
    store_requests_per_replica_refresh: dict[str, float] = field(default_factory=dict)
    cycles: dict[str, int] = field(default_factory=dict)

    @property
    def all_up_ratio(self) -> float:
        return self.all_up_requests / max(self.all_up_refreshes, 1)

    @property
    def ratio(self) -> float:
        return self.requests / max(self.refreshes, 1)


def format_time_unix(moment: float) -> str:
    return format_time(datetime.fromtimestamp(moment, UTC))


def refreshes(requests: Sequence[tuple[float, str]]) -> int:
    """How many refreshes the requests were for: per scope, requests less than
    :data:`SAME_REFRESH` apart are one refresh (one replica would have asked once)."""
    count = 0
    for scope in SCOPES:
        times = sorted(at for at, s in requests if s == scope)
        count += sum(1 for n, at in enumerate(times) if n == 0 or at - times[n - 1] >= SAME_REFRESH)
    return count


# -- a run --------------------------------------------------------------------------------


class FailoverRun:
    """Replicas, readers and pollers around one backend; a context manager.

    The scenario calls :meth:`kill`, :meth:`stop`, :meth:`start`, :meth:`store_away` and
    the waits, and marks the windows in which every replica is up with :meth:`all_up`.
    """

    def __init__(
        self,
        backend: Backend,
        directory: Path,
        *,
        replicas: int = 3,
        client_secret: str,
        canaries: Canaries,
        get_readers: bool = True,
    ) -> None:
        self.backend = backend
        self.directory = directory
        self.canaries = canaries
        self.floor = promised_floor()
        self.issuer = StandInIssuer(
            clients={CLIENT_ID: client_secret}, token_lifetime=TOKEN_LIFETIME
        ).start()
        self.issuer_proxy = FaultProxy.in_front_of(
            self.issuer.url, fault=ProxyFault.latency(ISSUER_LATENCY)
        ).start()
        hook_log = directory / "on_write.log"
        hook_log.touch()
        self.hook_log = hook_log
        self.reader_config = directory / "readers.toml"
        self.reader_config.write_text(config_text(self.issuer.url, backend.reader_sink()))
        base = clean_environ({"HARBOR_CLIENT_SECRET": client_secret, **backend.environ()})
        base["FAILOVER_HOOK_LOG"] = str(hook_log)
        self.reader_environ = clean_environ(backend.environ())
        self.replicas = []
        for n in range(replicas):
            name = f"replica-{chr(ord('a') + n)}"
            sink = {**backend.sink(name), "on_write": [sys.executable, "-c", HOOK]}
            config = directory / f"{name}.toml"
            config.write_text(config_text(self.issuer_proxy.url, sink))
            self.replicas.append(Replica(name, directory, config, base))
        self.seen = Observations()
        self.events: list[tuple[float, str]] = []
        self.windows: list[Window] = []
        self._window_start: float | None = None
        self._window_label = ""
        self._window_store: dict[str, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.get_readers = get_readers
        self._requests_seen = 0
        self._get_scopes = itertools.cycle(SCOPES)
        self.started = time.time()
        for label, value in backend.canaries().items():
            canaries.add(label, value)

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> FailoverRun:
        self.started = time.time()
        for replica in self.replicas:
            replica.start()
        loops: list[Callable[[], None]] = [self._read_store, self._poll_requests, self._poll_health]
        if self.get_readers:
            loops.append(self._read_with_get)
        for loop in loops:
            thread = threading.Thread(target=self._forever(loop), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self.exit_codes = {replica.name: replica.terminate() for replica in self.replicas}
        self.issuer_proxy.stop()
        self.issuer.stop()

    def _forever(self, step: Callable[[], None]) -> Callable[[], None]:
        def loop() -> None:
            while not self._stop.is_set():
                step()

        return loop

    # -- the pollers ---------------------------------------------------------------------

    def _read_store(self) -> None:
        for scope in SCOPES:
            try:
                record = self.backend.read(scope)
            except Exception as exc:  # the store away: a failed read, not a bad token
                self.seen.add("failures", (time.time(), "store", type(exc).__name__))
                continue
            now = time.time()
            if record is not None:
                self.seen.add("reads", self._read(now, "store", scope, record))
        self._stop.wait(STORE_READ_INTERVAL)

    @staticmethod
    def _read(now: float, reader: str, scope: str, record: TokenRecord) -> Read:
        return Read(
            now,
            reader,
            scope,
            record.expires_at.timestamp(),
            record.written_by,
            record.access_token.reveal(),
        )

    def _read_with_get(self) -> None:
        """One `harbor-secrets get` (the scopes in turn), as a script would run it."""
        scope = next(self._get_scopes)
        command = [
            sys.executable,
            "-m",
            "harbor_secrets",
            "-c",
            str(self.reader_config),
            "-o",
            "json",
            "get",
            "-e",
            ENVIRONMENT,
            "-s",
            scope,
            "--min-remaining",
            f"{self.floor:.3f}s",
        ]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=self.reader_environ,
            timeout=60,
            check=False,
        )
        now = time.time()
        self.seen.add("get_stderr", done.stderr)
        if done.returncode == 0:
            record = TokenRecord.from_dict(json.loads(done.stdout))
            self.seen.add("reads", self._read(now, "get", scope, record))
        elif "could not be read" in done.stderr or "holds no token" in done.stderr:
            self.seen.add("failures", (now, "get", "store unreadable"))
        else:  # expired, or less than the floor left: the promise broken
            self.seen.add("refusals", (now, done.stderr.strip()[-300:]))
        self._stop.wait(GET_INTERVAL)

    def _poll_requests(self) -> None:
        requests = self.issuer.requests
        now = time.time()
        new, self._requests_seen = requests[self._requests_seen :], len(requests)
        for request in new:
            if request.grant_type == "client_credentials" and request.scope:
                self.seen.add("requests", (now, request.scope.split()[0]))
        self._stop.wait(0.05)

    def _poll_health(self) -> None:
        for replica in self.replicas:
            if replica.alive and not replica.stopped:
                self.seen.add("health", (time.time(), replica.name, replica.healthz()))
        self._stop.wait(HEALTH_INTERVAL)

    # -- the scenario --------------------------------------------------------------------

    def note(self, what: str) -> None:
        self.events.append((time.time(), what))

    def latest(self, scope: str = SCOPES[0]) -> Read | None:
        with self.seen.lock:
            reads = [r for r in self.seen.reads if r.scope == scope and r.reader == "store"]
        return max(reads, key=lambda r: (r.expires_at, r.at)) if reads else None

    def writer(self) -> Replica:
        """The replica that wrote the newest token."""
        read = self.wait_for(lambda: self.latest(), 60, "a stored token")
        (replica,) = [r for r in self.replicas if r.name == read.written_by]
        return replica

    def wait_for(self, probe: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(0.05)

    def wait_for_refresh(self, timeout: float = 40.0) -> Read:
        """Until every scope holds a token newer than now's, then a moment for the writes."""
        before = {scope: self.latest(scope) for scope in SCOPES}

        def refreshed() -> Read | None:
            newest = {scope: self.latest(scope) for scope in SCOPES}
            for scope in SCOPES:
                old, new = before[scope], newest[scope]
                if new is None or (old is not None and new.expires_at <= old.expires_at):
                    return None
            return newest[SCOPES[0]]

        found: Read = self.wait_for(refreshed, timeout, "the next refresh")
        return found

    def deadline(self) -> float:
        """The stored tokens' deadline (unix time): when the writer refreshes them next."""
        latest = self.wait_for(lambda: self.latest(), 60, "a stored token")
        expires_at = datetime.fromtimestamp(latest.expires_at, UTC)
        return policy().deadline(expires_at).timestamp()

    def sleep_until(self, moment: float) -> None:
        time.sleep(max(0.0, moment - time.time()))

    def all_up(self, label: str) -> None:
        """From now on every replica is up; :meth:`not_all_up` ends the window."""
        self._window_start = time.time()
        self._window_label = label
        self._window_store = self._store_requests()

    def not_all_up(self) -> None:
        if self._window_start is not None:
            now = self._store_requests()
            made = {name: now[name] - self._window_store[name] for name in now}
            window = Window(self._window_start, time.time(), self._window_label, made)
            self.windows.append(window)
            self._window_start = None

    def _store_requests(self) -> dict[str, int]:
        return {r.name: self.backend.store_requests(r.name) for r in self.replicas}

    def kill(self, replica: Replica) -> None:
        self.not_all_up()
        self.note(f"kill -9 {replica.name}")
        replica.kill()

    def stop(self, replica: Replica) -> None:
        self.not_all_up()
        self.note(f"SIGSTOP {replica.name}")
        replica.stop()

    def cont(self, replica: Replica) -> None:
        self.note(f"SIGCONT {replica.name}")
        replica.cont()

    def start(self, replica: Replica) -> None:
        self.note(f"start {replica.name}")
        replica.start()

    @contextlib.contextmanager
    def store_away(self) -> Iterator[None]:
        self.not_all_up()
        self.note(f"{self.backend.label} away")
        self.backend.take_away()
        try:
            yield
        finally:
            self.backend.bring_back()
            self.note(f"{self.backend.label} back")

    # -- figures -------------------------------------------------------------------------

    def _store_per_refresh(self, requests: Sequence[tuple[float, str]]) -> dict[str, float]:
        """Each replica's store requests in the all-up windows, per refresh of every token
        (a refresh of both scopes counts once)."""
        rounds = refreshes(requests) / len(SCOPES)
        if not rounds:
            return {}
        made: dict[str, int] = {}
        for window in self.windows:
            for name, count in window.store_requests.items():
                made[name] = made.get(name, 0) + count
        return {name: count / rounds for name, count in made.items()}

    def _hooks(self) -> set[tuple[str, str, str]]:
        """(writer, scope, expires_at) of every change an on_write command was told of."""
        found = set()
        for line in self.hook_log.read_text(encoding="utf-8").splitlines():
            writer, scope, expires_at = line.split()
            found.add((writer, scope, expires_at))
        return found

    def figures(self) -> Figures:
        """What the run found (call after :meth:`close`)."""
        self.not_all_up()
        seen = self.seen
        self.canaries.add_tokens("issued token", self.issuer.issued)
        outputs = {replica.name: replica.output() for replica in self.replicas}
        outputs["get stderr"] = "\n".join(seen.get_stderr)
        leaks = self.canaries.leaks(outputs)
        backwards = []
        for reader, scope in itertools.product(("store", "get"), SCOPES):
            expiries = [r.expires_at for r in seen.reads if r.reader == reader and r.scope == scope]
            if any(later < earlier for earlier, later in itertools.pairwise(expiries)):
                backwards.append(f"{reader} reads of {scope}")
        for scope in SCOPES:
            history = self.backend.history(scope)
            if any(later <= earlier for earlier, later in itertools.pairwise(history)):
                backwards.append(f"{self.backend.label} version history of {scope}")
        windows = self.windows
        in_windows = [
            request
            for request in seen.requests
            if any(w.start <= request[0] < w.end for w in windows)
        ]
        unhealthy = [
            (at, name, status)
            for at, name, status in seen.health
            if status != 200 and any(w.start <= at < w.end for w in windows)
        ]
        hooks = self._hooks()
        written = {(r.written_by, r.scope, format_time_unix(r.expires_at)) for r in seen.reads}
        write_cycles: dict[str, int] = {}
        cycles: dict[str, int] = {}
        kept_newer = 0
        for replica in self.replicas:
            lines = replica.log_lines()
            ran = [line for line in lines if line.get("event") == "watch.cycle"]
            cycles[replica.name] = len(ran)
            write_cycles[replica.name] = sum(1 for line in ran if line["counts"]["written"])
            kept_newer += sum(1 for line in lines if line.get("event") == "sink.kept-newer")
        store_reads = [r for r in seen.reads if r.reader == "store"]
        gets = [r for r in seen.reads if r.reader == "get"]
        all_reads = [r for r in seen.reads if r.at > self.started]
        return Figures(
            backend=self.backend.label,
            seconds=time.time() - self.started,
            replicas=len(self.replicas),
            floor=self.floor,
            least_left=min((r.left for r in all_reads), default=float("nan")),
            least_left_get=min((r.left for r in gets), default=float("nan")),
            reads=len(store_reads),
            gets=len(gets),
            read_failures=len(seen.failures),
            refusals=list(seen.refusals),
            backwards=backwards,
            requests=len(seen.requests),
            refreshes=refreshes(seen.requests),
            all_up_requests=len(in_windows),
            all_up_refreshes=refreshes(in_windows),
            failovers=sum(1 for _, what in self.events if what.startswith(("kill", "SIGSTOP"))),
            kills=sum(1 for _, what in self.events if what.startswith("kill")),
            events=list(self.events),
            unhealthy_all_up=unhealthy,
            hook_runs={
                replica.name: sum(1 for writer, *_ in hooks if writer == replica.name)
                for replica in self.replicas
            },
            write_cycles=write_cycles,
            hooks_for_others=sorted(hooks - written),
            writes_without_hook=sorted(written - hooks),
            kept_newer=kept_newer,
            leaks=leaks,
            exit_codes=dict(getattr(self, "exit_codes", {})),
            cycles=cycles,
            store_requests_per_replica_refresh=self._store_per_refresh(in_windows),
        )
