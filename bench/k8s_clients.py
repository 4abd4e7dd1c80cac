"""Which Kubernetes client library the Secret store provider should use: what each one costs.

Why: the provider (distribution ``harbor-secrets-kubernetes``) reads and writes one Opaque
Secret per token, and the core is a one-shot CLI that cron, a CronJob or a systemd timer starts
every minute. Whatever the provider imports is paid on every run, so this compares the
candidates — the official ``kubernetes`` client, ``lightkube`` and ``kr8s`` — with plain
``requests`` (which the core imports anyway) as the reference, each in its own virtual
environment so that neither sizes nor imports mix:

(a) median wall time of ``python -I -c "import <what a Secret get/replace needs>"`` against a
    bare ``python -I -c pass``;
(b) peak RSS (the child's own VmHWM, read from /proc, so nothing of this process is folded in)
    after those imports, and after building a client from a kubeconfig whose non-current
    context points at https://127.0.0.1:1 with a throwaway CA (no server is contacted);
(c) the same for ``import requests`` (run the script with ``--venv requests=PATH``);
(d) a whole run against a stand-in API server over HTTPS on 127.0.0.1 with its own CA: get,
    replace with the read resourceVersion, replace with a stale one (409 Conflict), get a
    missing Secret (404), create, create again (409 AlreadyExists). Root logging is at DEBUG
    and every caught exception is printed, and the output is searched for the bearer token and
    the Secret's value (plain and base64): a hit means the library would leak it. Temporary
    files left behind (TMPDIR is a fresh directory per run) and threads are counted too.

The closure of each candidate's dependencies (Requires-Dist, with the extras that requirements
name but not the candidate's own optional extras) is sized from the installed RECORD files. The
CA and the server certificate are made with the ``openssl`` CLI.

Usage (one venv per candidate; each must have its library installed):
    python bench/k8s_clients.py --venv requests=/tmp/k8sbench/base \\
        --venv kubernetes=/tmp/k8sbench/kubernetes --venv lightkube=/tmp/k8sbench/lightkube \\
        --venv kr8s=/tmp/k8sbench/kr8s [--runs 15] [--e2e-runs 5]
``--python NAME=/path/to/python`` names an interpreter instead of a venv.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import resource
import secrets
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

NAMESPACE = "harbor"
SECRET_NAME = "harbor-token-robot"
NEW_SECRET_NAME = "harbor-token-new"
CONTEXT = "bench"
TOKEN = "sa-" + secrets.token_hex(16)
VALUE = "hbr-old-" + secrets.token_hex(12)
NEW_VALUE = "hbr-new-" + secrets.token_hex(12)
EXPECTED = [
    "get:ok",
    "replace:ok",
    "replace-stale:409:Conflict",
    "get-missing:404:NotFound",
    "create:ok",
    "create-again:409:AlreadyExists",
]


@dataclass(frozen=True)
class Spec:
    """What one candidate runs: its distribution, imports, client construction and scenario."""

    dist: str
    imports: str
    construct: str
    scenario: str


# Each scenario appends to OUT one entry per EXPECTED step; B64 encodes a str to base64 text;
# NS, NAME, NEW, OLD_VALUE, NEW_VALUE and the kubeconfig path come from the environment.
SPECS: dict[str, Spec] = {
    "requests": Spec(
        dist="requests",
        imports="import requests",
        construct="""
            session = requests.Session()
            session.verify = os.environ["BENCH_CA"]
            session.headers["Authorization"] = "Bearer " + os.environ["BENCH_TOKEN"]
        """,
        scenario="""
            base = os.environ["BENCH_SERVER"] + f"/api/v1/namespaces/{NS}/secrets"
            def step(label, response, ok):
                if response.status_code in ok:
                    OUT.append(label + ":ok")
                    return response.json()
                status = response.json()
                OUT.append(f"{label}:{status['code']}:{status['reason']}")
                print(status["message"], file=sys.stderr)
                return None
            secret = step("get", session.get(f"{base}/{NAME}", timeout=(5, 10)), (200,))
            rv = secret["metadata"]["resourceVersion"]
            secret["data"] = {"token": B64(NEW_VALUE)}
            step("replace", session.put(f"{base}/{NAME}", json=secret, timeout=(5, 10)), (200,))
            step("replace-stale", session.put(f"{base}/{NAME}", json=secret, timeout=(5, 10)), ())
            step("get-missing", session.get(f"{base}/missing", timeout=(5, 10)), (200,))
            body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": NEW}, "data": {"token": B64(NEW_VALUE)}}
            for label in ("create", "create-again"):
                step(label, session.post(base, json=body, timeout=(5, 10)), (201,))
        """,
    ),
    "kubernetes": Spec(
        dist="kubernetes",
        imports="""
            from kubernetes import config
            from kubernetes.client import ApiClient, Configuration, CoreV1Api
            from kubernetes.client import V1ObjectMeta, V1Secret
            from kubernetes.client.exceptions import ApiException
        """,
        construct="""
            cfg = Configuration()
            config.load_kube_config(
                config_file=os.environ["BENCH_KUBECONFIG"], context=os.environ["BENCH_CONTEXT"],
                client_configuration=cfg, persist_config=False,
            )
            api = CoreV1Api(ApiClient(cfg))
        """,
        scenario="""
            T = (5, 10)
            def fail(label, e):
                status = json.loads(e.body or "{}")
                OUT.append(f"{label}:{e.status}:{status.get('reason')}")
                print(str(e), file=sys.stderr)
            secret = api.read_namespaced_secret(NAME, NS, _request_timeout=T)
            OUT.append("get:ok")
            rv = secret.metadata.resource_version
            secret.data = {"token": B64(NEW_VALUE)}
            api.replace_namespaced_secret(NAME, NS, secret, _request_timeout=T)
            OUT.append("replace:ok")
            try:
                secret.metadata.resource_version = rv
                api.replace_namespaced_secret(NAME, NS, secret, _request_timeout=T)
                OUT.append("replace-stale:no error")
            except ApiException as e:
                fail("replace-stale", e)
            try:
                api.read_namespaced_secret("missing", NS, _request_timeout=T)
            except ApiException as e:
                fail("get-missing", e)
            body = V1Secret(metadata=V1ObjectMeta(name=NEW), type="Opaque",
                            data={"token": B64(NEW_VALUE)})
            for label in ("create", "create-again"):
                try:
                    api.create_namespaced_secret(NS, body, _request_timeout=T)
                    OUT.append(label + ":ok")
                except ApiException as e:
                    fail(label, e)
        """,
    ),
    "lightkube": Spec(
        dist="lightkube",
        imports="""
            from lightkube import ApiError, Client, KubeConfig
            from lightkube.models.meta_v1 import ObjectMeta
            from lightkube.resources.core_v1 import Secret
        """,
        construct="""
            kubeconfig = KubeConfig.from_file(os.environ["BENCH_KUBECONFIG"])
            client = Client(kubeconfig.get(os.environ["BENCH_CONTEXT"]), trust_env=False)
        """,
        scenario="""
            def fail(label, e):
                OUT.append(f"{label}:{e.status.code}:{e.status.reason}")
                print(str(e), file=sys.stderr)
            secret = client.get(Secret, NAME, namespace=NS)
            OUT.append("get:ok")
            rv = secret.metadata.resourceVersion
            secret.data = {"token": B64(NEW_VALUE)}
            client.replace(secret)
            OUT.append("replace:ok")
            try:
                secret.metadata.resourceVersion = rv
                client.replace(secret)
                OUT.append("replace-stale:no error")
            except ApiError as e:
                fail("replace-stale", e)
            try:
                client.get(Secret, "missing", namespace=NS)
            except ApiError as e:
                fail("get-missing", e)
            body = Secret(metadata=ObjectMeta(name=NEW, namespace=NS), type="Opaque",
                          data={"token": B64(NEW_VALUE)})
            for label in ("create", "create-again"):
                try:
                    client.create(body)
                    OUT.append(label + ":ok")
                except ApiError as e:
                    fail(label, e)
        """,
    ),
    "kr8s": Spec(
        dist="kr8s",
        imports="""
            import kr8s
            from kr8s.objects import Secret
        """,
        # kr8s.api() asks the server for /version while it is built, so construction without a
        # server goes one level down: load the kubeconfig and open the httpx session.
        construct="""
            from kr8s._async_utils import as_sync_func
            api = kr8s.Api(bypass_factory=True, kubeconfig=os.environ["BENCH_KUBECONFIG"],
                           context=os.environ["BENCH_CONTEXT"])
            as_sync_func(api.auth.reauthenticate)()
            as_sync_func(api._create_session)()
        """,
        # kr8s has no PUT for objects: the compare-and-swap is a merge patch that carries
        # metadata.resourceVersion (the API server checks it). Secret.get(name) LISTs with a
        # field selector and retries for 2 s when nothing matches, so a GET by name is
        # Secret(...).refresh().
        scenario="""
            api = kr8s.api(kubeconfig=os.environ["BENCH_KUBECONFIG"],
                           context=os.environ["BENCH_CONTEXT"])
            api.timeout = 10
            def ref(name):
                return Secret({"metadata": {"name": name, "namespace": NS}}, api=api)
            def fail(label, e):
                status = e.status if isinstance(e.status, dict) else {}
                OUT.append(f"{label}:{e.response.status_code}:{status.get('reason')}")
                print(str(e), file=sys.stderr)
            secret = ref(NAME)
            secret.refresh()
            OUT.append("get:ok")
            rv = secret.metadata.resourceVersion
            patch = {"metadata": {"resourceVersion": rv}, "data": {"token": B64(NEW_VALUE)}}
            secret.patch(patch)
            OUT.append("replace:ok")
            try:
                ref(NAME).patch(patch)
                OUT.append("replace-stale:no error")
            except kr8s.ServerError as e:
                fail("replace-stale", e)
            try:
                ref("missing").refresh()
            except kr8s.NotFoundError as e:
                OUT.append("get-missing:404:NotFound")
                print(str(e), file=sys.stderr)
            for label in ("create", "create-again"):
                try:
                    Secret({"metadata": {"name": NEW, "namespace": NS}, "type": "Opaque",
                            "data": {"token": B64(NEW_VALUE)}}, api=api).create()
                    OUT.append(label + ":ok")
                except kr8s.ServerError as e:
                    fail(label, e)
        """,
    ),
}

PRELUDE = """
import base64, json, os, sys, time
_t0 = time.perf_counter()
OUT = []
NS, NAME, NEW = os.environ["BENCH_NS"], os.environ["BENCH_NAME"], os.environ["BENCH_NEW"]
NEW_VALUE = os.environ["BENCH_NEW_VALUE"]
def B64(text):
    return base64.b64encode(text.encode()).decode()
"""
DEBUG_LOGGING = "import logging\nlogging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\n"
EPILOGUE = """
def _status():
    found = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "Threads"):
                found[key] = int(value.split()[0])
    return found
print("BENCH-RESULT " + json.dumps({"outcomes": OUT, **_status()}))
"""
SIZE_PROBE = """
import json, os, re, sys
from importlib import metadata
def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()
dists = {norm(d.metadata["Name"]): d for d in metadata.distributions()}
todo, seen, total = [(norm(sys.argv[1]), ())], set(), 0
while todo:
    name, extras = todo.pop()
    if (name, extras) in seen or name not in dists:
        continue
    first = all(seen_name != name for seen_name, _ in seen)
    seen.add((name, extras))
    dist = dists[name]
    for path in (dist.files or []) if first else []:
        try:
            total += os.path.getsize(dist.locate_file(path))
        except OSError:
            pass
    for req in dist.requires or []:
        wanted = re.search(r"extra\\s*==\\s*\\W([\\w.-]+)", req)
        if wanted and norm(wanted.group(1)) not in extras:
            continue
        match = re.match(r"([A-Za-z0-9_.-]+)\\s*(?:\\[([^\\]]*)\\])?", req)
        more = tuple(sorted(norm(e) for e in (match.group(2) or "").split(",") if e.strip()))
        todo.append((norm(match.group(1)), more))
print(json.dumps({"version": dists[norm(sys.argv[1])].version, "bytes": total,
                  "dists": len({name for name, _ in seen})}))
"""


@dataclass
class Row:
    name: str
    version: str = "?"
    closure_mib: float = 0.0
    closure_dists: int = 0
    bare_ms: float = 0.0
    import_ms: float = 0.0
    import_cpu_ms: float = 0.0
    over_requests_ms: float | None = None
    import_rss_mib: float = 0.0
    construct_rss_mib: float = 0.0
    e2e_ms: float = 0.0
    e2e_cpu_ms: float = 0.0
    e2e_rss_mib: float = 0.0
    threads: int = 0
    tmp_left: int = 0
    outcomes_ok: bool = False
    leaks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class SecretStore:
    """The stand-in API server's state: Opaque Secrets with a resourceVersion counter."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 1000

    def reset(self) -> None:
        with self.lock:
            self.secrets.clear()
            self._put(
                NAMESPACE,
                {
                    "metadata": {"name": SECRET_NAME},
                    "type": "Opaque",
                    "data": {"token": _b64(VALUE)},
                },
            )

    def _put(self, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        meta = obj.setdefault("metadata", {})
        meta.update(
            namespace=namespace,
            resourceVersion=str(self.version),
            uid=meta.get("uid") or secrets.token_hex(8),
            creationTimestamp=meta.get("creationTimestamp") or "2026-01-01T00:00:00Z",
        )
        obj.update(apiVersion="v1", kind="Secret")
        obj.setdefault("type", "Opaque")
        obj.pop("stringData", None)
        self.secrets[(namespace, meta["name"])] = obj
        return obj

    def handle(
        self, method: str, namespace: str, name: str | None, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        with self.lock:
            current = self.secrets.get((namespace, name)) if name else None
            if method == "POST" and name is None:
                new_name = body.get("metadata", {}).get("name", "")
                if (namespace, new_name) in self.secrets:
                    return _status(409, "AlreadyExists", f'secrets "{new_name}" already exists')
                return 201, self._put(namespace, body)
            if name is None or method not in ("GET", "PUT", "PATCH"):
                return _status(405, "MethodNotAllowed", "the server does not allow this method")
            if current is None:
                return _status(404, "NotFound", f'secrets "{name}" not found')
            if method == "GET":
                return 200, current
            if method == "PATCH":
                body = _merge(json.loads(json.dumps(current)), body)
                wanted = body.get("metadata", {}).get("resourceVersion")
            else:
                wanted = body.get("metadata", {}).get("resourceVersion")
            if wanted is not None and wanted != current["metadata"]["resourceVersion"]:
                return _status(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on secrets "{name}": the object has been '
                    "modified; please apply your changes to the latest version and try again",
                )
            body.setdefault("metadata", {})["name"] = name
            return 200, self._put(namespace, body)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
    return code, {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"kind": "secrets"},
        "code": code,
    }


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what a strategic merge does for a Secret's maps too)."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge(target.get(key), value)
    return target


class StandInServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), ApiHandler)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.store = SecretStore()
        self.requests_seen = 0


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls
    server: StandInServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.server.requests_seen += 1
        path = urlsplit(self.path).path.strip("/").split("/")
        scheme, _, credential = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or credential != TOKEN:  # the API server ignores case too
            self._send(*_status(401, "Unauthorized", "Unauthorized"))
        elif method == "GET" and path == ["version"]:
            self._send(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0"})
        elif (
            path[:3] == ["api", "v1", "namespaces"] and len(path) in (5, 6) and path[4] == "secrets"
        ):
            body = json.loads(raw) if raw else {}
            name = path[5] if len(path) == 6 else None
            self._send(*self.server.store.handle(method, path[3], name, body))
        else:
            self._send(
                *_status(404, "NotFound", "the server could not find the requested resource")
            )

    def _send(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def make_pki(directory: Path) -> None:
    """A throwaway CA and a server certificate for IP 127.0.0.1, with the openssl CLI."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]
    subprocess.run(
        ["openssl", "req", "-x509", *ec, "-keyout", str(directory / "ca.key"),
         "-out", str(directory / "ca.crt"), "-subj", "/CN=k8s-bench-ca",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "req", "-x509", *ec, "-keyout", str(directory / "server.key"),
         "-out", str(directory / "server.crt"), "-subj", "/CN=127.0.0.1",
         "-CA", str(directory / "ca.crt"), "-CAkey", str(directory / "ca.key"),
         "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=CA:FALSE",
         "-addext", "extendedKeyUsage=serverAuth"],
        check=True, capture_output=True,
    )  # fmt: skip


def write_kubeconfig(path: Path, server: str, ca: Path) -> None:
    """Two contexts; the current one is a decoy, so the client must honour the chosen context.

    JSON is YAML, so no YAML library is needed to write it.
    """
    ca_data = base64.b64encode(ca.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "decoy",
        "clusters": [
            {"name": CONTEXT, "cluster": {"server": server, "certificate-authority-data": ca_data}},
            {"name": "decoy", "cluster": {"server": "https://127.0.0.1:2"}},
        ],
        "users": [
            {"name": CONTEXT, "user": {"token": TOKEN}},
            {"name": "decoy", "user": {"token": "decoy-token"}},
        ],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": NAMESPACE},
            },
            {"name": "decoy", "context": {"cluster": "decoy", "user": "decoy"}},
        ],
    }
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_ms(command: list[str], runs: int, cpu: list[float] | None = None) -> float:
    """Median wall time; with ``cpu``, the median user+sys CPU time is appended to it too.

    CPU time is less sensitive than wall time to other work on a shared machine.
    """
    subprocess.run(command, check=True, capture_output=True)  # warm the page cache and .pyc
    samples, cpu_samples = [], []
    for _ in range(runs):
        cpu_before = _children_cpu()
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
        cpu_samples.append(_children_cpu() - cpu_before)
    if cpu is not None:
        cpu.append(statistics.median(cpu_samples) * 1000)
    return statistics.median(samples) * 1000


@dataclass
class ChildRun:
    wall_ms: float
    cpu_ms: float
    result: dict[str, Any]
    output: str
    tmp_left: int


def run_child(python: str, code: str, env: dict[str, str], work: Path) -> ChildRun:
    tmp = Path(tempfile.mkdtemp(prefix="tmp-", dir=work))
    cpu_before = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(
        [python, "-I", "-c", code],
        env={**env, "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    wall = (time.perf_counter() - start) * 1000
    cpu = (_children_cpu() - cpu_before) * 1000
    left = sum(1 for _ in tmp.rglob("*"))
    shutil.rmtree(tmp, ignore_errors=True)
    output = done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH-RESULT ")]
    if done.returncode != 0 or not lines:
        tail = "\n".join(output.strip().splitlines()[-15:])
        raise RuntimeError(f"child failed (exit {done.returncode}):\n{tail}")
    result = json.loads(lines[-1].removeprefix("BENCH-RESULT "))
    return ChildRun(wall, cpu, result, output, left)


def program(spec: Spec, *, construct: bool, scenario: bool) -> str:
    parts = [PRELUDE]
    if scenario:
        parts.append(DEBUG_LOGGING)
    parts.append(textwrap.dedent(spec.imports))
    if construct:
        parts.append(textwrap.dedent(spec.construct))
    if scenario:
        parts.append(textwrap.dedent(spec.scenario))
    parts.append(EPILOGUE)
    return "\n".join(parts)


def find_leaks(output: str) -> list[str]:
    needles = {
        "bearer token": TOKEN,
        "old value": VALUE,
        "old value (base64)": _b64(VALUE),
        "new value": NEW_VALUE,
        "new value (base64)": _b64(NEW_VALUE),
    }
    return [label for label, needle in needles.items() if needle in output]


def measure(
    name: str,
    python: str,
    args: argparse.Namespace,
    env: dict[str, str],
    e2e_env: dict[str, str],
    server: StandInServer,
    work: Path,
) -> Row:
    spec = SPECS[name]
    row = Row(name)
    size = subprocess.run(
        [python, "-I", "-c", SIZE_PROBE, spec.dist], check=True, capture_output=True, text=True
    )
    probe = json.loads(size.stdout)
    row.version = probe["version"]
    row.closure_mib = probe["bytes"] / 2**20
    row.closure_dists = probe["dists"]

    row.bare_ms = median_ms([python, "-I", "-c", "pass"], args.runs)
    cpu: list[float] = []
    row.import_ms = median_ms([python, "-I", "-c", textwrap.dedent(spec.imports)], args.runs, cpu)
    row.import_cpu_ms = cpu[0]
    has_requests = subprocess.run([python, "-I", "-c", "import requests"], check=False).returncode
    if name != "requests" and has_requests == 0:
        # The core has imported requests already: what the candidate adds on top of it.
        alone = median_ms([python, "-I", "-c", "import requests"], args.runs)
        both = "import requests\n" + textwrap.dedent(spec.imports)
        row.over_requests_ms = median_ms([python, "-I", "-c", both], args.runs) - alone

    rss_runs = max(3, args.e2e_runs)
    imported = [
        run_child(python, program(spec, construct=False, scenario=False), env, work)
        for _ in range(rss_runs)
    ]
    row.import_rss_mib = statistics.median(r.result["VmHWM"] for r in imported) / 1024
    built = [
        run_child(python, program(spec, construct=True, scenario=False), env, work)
        for _ in range(rss_runs)
    ]
    row.construct_rss_mib = statistics.median(r.result["VmHWM"] for r in built) / 1024
    if any(r.tmp_left for r in built):
        row.notes.append(f"construct left {max(r.tmp_left for r in built)} file(s) in TMPDIR")

    runs: list[ChildRun] = []
    for _ in range(args.e2e_runs):
        server.store.reset()
        runs.append(run_child(python, program(spec, construct=True, scenario=True), e2e_env, work))
    row.e2e_ms = statistics.median(r.wall_ms for r in runs)
    row.e2e_cpu_ms = statistics.median(r.cpu_ms for r in runs)
    row.e2e_rss_mib = statistics.median(r.result["VmHWM"] for r in runs) / 1024
    row.threads = max(r.result["Threads"] for r in runs)
    row.tmp_left = max(r.tmp_left for r in runs)
    outcomes = runs[-1].result["outcomes"]
    row.outcomes_ok = outcomes == EXPECTED
    if not row.outcomes_ok:
        row.notes.append(f"outcomes {outcomes}")
    row.leaks = sorted({leak for r in runs for leak in find_leaks(r.output)})
    return row


def machine_note() -> str:
    model = "?"
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0))
    return (
        f"{platform.system()} {platform.release()}, {model}, nproc {usable} "
        f"(cpu_count {os.cpu_count()}), bench driver Python {platform.python_version()}"
    )


def parse_targets(args: argparse.Namespace) -> list[tuple[str, str]]:
    targets: list[tuple[str, str]] = []
    for item in args.venv or []:
        name, _, path = item.partition("=")
        targets.append((name, str(Path(path) / "bin" / "python")))
    for item in args.python or []:
        name, _, path = item.partition("=")
        targets.append((name, path))
    for name, python in targets:
        if name not in SPECS:
            raise SystemExit(f"unknown candidate {name!r}; known: {', '.join(SPECS)}")
        if not Path(python).exists():
            raise SystemExit(f"{name}: no interpreter at {python}")
    if not targets:
        raise SystemExit("give at least one --venv NAME=PATH or --python NAME=PATH")
    return targets


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    print(f"machine: {machine_note()}")
    print(
        f"(a) median of {args.runs} runs; (b) and (d) peak RSS = child's VmHWM, median of "
        f"{max(3, args.e2e_runs)} / {args.e2e_runs} runs; (d) wall = process start to exit\n"
    )
    header = (
        f"{'candidate':<11} {'version':<10} {'deps MiB':>8} {'dists':>5} {'bare ms':>7} "
        f"{'import ms':>9} {'cpu ms':>6} {'Δ ms':>6} {'Δ req':>6} {'import RSS':>10} "
        f"{'+client RSS':>11} {'e2e ms':>7} {'cpu ms':>6} {'e2e RSS':>7} {'thr':>3} {'tmp':>3}"
        "  scenario / leaks"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        verdict = "ok" if row.outcomes_ok else "MISMATCH"
        leaks = ", ".join(row.leaks) if row.leaks else "no leak"
        over = "-" if row.over_requests_ms is None else f"{row.over_requests_ms:.1f}"
        print(
            f"{row.name:<11} {row.version:<10} {row.closure_mib:8.1f} {row.closure_dists:5d} "
            f"{row.bare_ms:7.1f} {row.import_ms:9.1f} {row.import_cpu_ms:6.1f} "
            f"{row.import_ms - row.bare_ms:6.1f} "
            f"{over:>6} "
            f"{row.import_rss_mib:8.1f} M {row.construct_rss_mib:9.1f} M "
            f"{row.e2e_ms:7.1f} {row.e2e_cpu_ms:6.1f} {row.e2e_rss_mib:5.1f} M "
            f"{row.threads:3d} {row.tmp_left:3d}  "
            f"{verdict} / {leaks}"
        )
        for note in row.notes:
            print(f"{'':<11} note: {note}")
    print(
        "\ncpu ms: user+sys of the import runs (median); Δ ms: import minus bare python;"
        "\nΔ req: what the imports add after `import requests` (the core's own import);"
        "\ndeps MiB: installed files of the distribution and its dependencies (own extras out);"
        "\nthr: threads at exit of (d); tmp: files left in TMPDIR after (d)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--venv", action="append", metavar="NAME=PATH")
    parser.add_argument("--python", action="append", metavar="NAME=PATH")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--e2e-runs", type=int, default=5)
    args = parser.parse_args()
    targets = parse_targets(args)
    if shutil.which("openssl") is None:
        raise SystemExit("the openssl CLI is needed to make the throwaway CA")

    with tempfile.TemporaryDirectory(prefix="k8s-clients-") as scratch:
        work = Path(scratch)
        make_pki(work)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(work / "server.crt", work / "server.key")
        server = StandInServer(context)
        port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            offline = work / "offline.kubeconfig"
            write_kubeconfig(offline, "https://127.0.0.1:1", work / "ca.crt")
            online = work / "online.kubeconfig"
            write_kubeconfig(online, f"https://127.0.0.1:{port}", work / "ca.crt")
            base_env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(work),
                "LANG": "C.UTF-8",
                "BENCH_CONTEXT": CONTEXT,
                "BENCH_NS": NAMESPACE,
                "BENCH_NAME": SECRET_NAME,
                "BENCH_NEW": NEW_SECRET_NAME,
                "BENCH_NEW_VALUE": NEW_VALUE,
                "BENCH_CA": str(work / "ca.crt"),
                "BENCH_TOKEN": TOKEN,
            }
            env = {
                **base_env,
                "BENCH_KUBECONFIG": str(offline),
                "BENCH_SERVER": "https://127.0.0.1:1",
            }
            e2e_env = {
                **base_env,
                "BENCH_KUBECONFIG": str(online),
                "BENCH_SERVER": f"https://127.0.0.1:{port}",
            }
            rows = []
            for name, python in targets:
                print(f"measuring {name} ({python}) ...", file=sys.stderr, flush=True)
                rows.append(measure(name, python, args, env, e2e_env, server, work))
        finally:
            server.shutdown()
            server.server_close()
    print_table(rows, args)


if __name__ == "__main__":
    main()
