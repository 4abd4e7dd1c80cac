"""Part 4: what the Kubernetes Secret store costs (harbor-secrets-kubernetes, lightkube).

Why: the provider adds a client library to every run of a one-shot CLI that a CronJob starts
every minute, and talks to an API server that other workloads share. Measured here:

(a) import: median wall time of ``python -I -c "import harbor_secrets_kubernetes"`` against
    ``python -I -c "import harbor_secrets"`` (the core alone), and which heavy modules
    ``harbor-secrets --version`` loads (none: users without the provider pay nothing);
(b) a whole forced ``harbor-secrets sync`` process (4 tokens: 2 environments x 2 scopes),
    wall time and peak RSS under bench/peak_rss.py, with a ``kubernetes`` sink against the
    stand-in API server (HTTPS, own CA, bearer token) and, for comparison, an ``envfile``
    sink;
(c) API requests per token, counted by the stand-in: a first run into pre-created empty
    Secrets (all due), a run that finds every token fresh, and a run with every token due
    (``--force``). The goal is 1 read + 1 write per due token.

The stand-in issuer and the stand-in API server (harbor_testkit.kube_apiserver) run in this
process on loopback; nothing else is needed. Nothing here is part of ``make test``.

Usage: .venv/bin/python bench/kubernetes_store.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_testkit.environ import clean_environ
from harbor_testkit.kube_apiserver import KubeApiServer, Rule

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CLIENT_ID = "bench-k8s-client"
CLIENT_SECRET = "bench-k8s-client-secret-canary"
NAMESPACE = "apps"
USER = f"system:serviceaccount:{NAMESPACE}:harbor-secrets"
ENVIRONMENTS = ("sandbox", "production")
SCOPES = ("service_provider", "tower_access")
TOKENS = len(ENVIRONMENTS) * len(SCOPES)
HEAVY = ("requests", "urllib3", "hvac", "boto3", "botocore", "lightkube", "httpx2", "yaml")


@dataclass
class KubernetesResult:
    runs: int
    import_core_ms: float
    import_provider_ms: float
    version_heavy: str
    wall_ms: dict[str, float] = field(default_factory=dict)  # sink kind -> median
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    requests: dict[str, dict[str, float]] = field(default_factory=dict)  # phase -> per token

    @property
    def import_extra_ms(self) -> float:
        return self.import_provider_ms - self.import_core_ms


def _median_ms(command: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - began)
    return statistics.median(samples) * 1000


def _version_heavy() -> str:
    probe = (
        "import sys; sys.argv = ['harbor-secrets', '--version']\n"
        "from harbor_secrets import cli\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        f"print('loaded:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    return out.strip().splitlines()[-1].removeprefix("loaded:") or "none"


def _secret_name(environment: str, scope: str) -> str:
    return f"harbor-{environment}-{scope.replace('_', '-')}"


def _config(directory: Path, issuer: str, sink: str) -> Path:
    environments = "\n".join(
        f'[environments.{e}]\naccounts_url = "{issuer}"\napi_url = "{issuer}"\n'
        for e in ENVIRONMENTS
    )
    sinks = {
        "kubernetes": f'provider = "kubernetes"\nkubeconfig = "{directory / "kubeconfig"}"\n',
        "envfile": f'provider = "envfile"\npath = "{directory / "harbor.env"}"\n',
    }
    path = directory / f"{sink}.toml"
    path.write_text(
        f"""
[refresh]
refresh_before = "210s"

{environments}

[credentials.main]
client_id = "{CLIENT_ID}"
client_secret = "env:HARBOR_CLIENT_SECRET"

[sinks.store]
{sinks[sink]}

[[targets]]
credentials = "main"
environments = {json.dumps(list(ENVIRONMENTS))}
scopes = {json.dumps(list(SCOPES))}
sinks = ["store"]
""",
        encoding="utf-8",
    )
    return path


@contextmanager
def _servers(directory: Path) -> Iterator[tuple[StandInIssuer, KubeApiServer]]:
    with (
        StandInIssuer(clients={CLIENT_ID: CLIENT_SECRET}) as issuer,
        KubeApiServer(namespaces=(NAMESPACE,), workdir=directory / "kube") as kube,
    ):
        token = kube.add_token(USER)
        names = tuple(_secret_name(e, s) for e in ENVIRONMENTS for s in SCOPES)
        # The deploy overlay's Role: get/update/patch on the pre-created names, nothing else.
        kube.grant(
            USER, Rule(("get", "update", "patch"), namespace=NAMESPACE, resource_names=names)
        )
        for name in names:
            kube.put_secret(
                NAMESPACE, name, labels={"app.kubernetes.io/managed-by": "harbor-secrets"}
            )
        kube.write_kubeconfig(directory / "kubeconfig", token=token, namespace=NAMESPACE)
        yield issuer, kube


class _Runner:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env = clean_environ({"HARBOR_CLIENT_SECRET": CLIENT_SECRET}, home=directory)
        self.last = 0.0

    def run(self, config: Path, *, force: bool) -> tuple[float, float, dict[str, int]]:
        """One sync process under peak_rss.py: wall seconds, peak RSS (MB), result counts."""
        if force:  # a forced token must expire later than the stored one: a new second
            time.sleep(max(0.0, int(self.last) + 1.05 - time.time()))
        out, stdout = self.directory / "rss.json", self.directory / "stdout.json"
        command = [str(BIN / "harbor-secrets"), "-c", str(config), "sync", "--output", "json"]
        if force:
            command.append("--force")
        wrapper = [sys.executable, "-I", "-S", str(ROOT / "bench" / "peak_rss.py")]
        subprocess.run(
            [*wrapper, str(out), str(stdout), "--", *command],
            env=self.env,
            cwd=self.directory,
            check=True,
            timeout=120,
        )
        self.last = time.time()
        measured = json.loads(out.read_text())
        report = json.loads(stdout.read_text())
        if measured["exit_code"] != 0 or report["counts"]["failed"]:
            raise SystemExit(f"kubernetes bench run failed: {report['counts']}")
        return measured["wall_s"], measured["peak_rss_kb"] / 1024, dict(report["counts"])


def _per_token(kube: KubeApiServer, mark: int) -> dict[str, float]:
    methods = Counter(r.method for r in kube.requests[mark:] if "/secrets" in r.path)
    return {method: count / TOKENS for method, count in sorted(methods.items())}


def measure(runs: int = 7) -> KubernetesResult:
    core = _median_ms([sys.executable, "-I", "-c", "import harbor_secrets"], runs * 2)
    provider = _median_ms(
        [sys.executable, "-I", "-c", "import harbor_secrets_kubernetes"], runs * 2
    )
    result = KubernetesResult(runs, core, provider, _version_heavy())
    with (
        tempfile.TemporaryDirectory(prefix="bench-k8s-") as scratch,
        _servers(Path(scratch)) as (issuer, kube),
    ):
        directory = Path(scratch)
        runner = _Runner(directory)
        configs = {kind: _config(directory, issuer.url, kind) for kind in ("kubernetes", "envfile")}
        mark = len(kube.requests)
        _, _, counts = runner.run(configs["kubernetes"], force=False)
        assert counts["written"] == TOKENS, counts
        result.requests["first run (empty Secrets)"] = _per_token(kube, mark)
        mark = len(kube.requests)
        _, _, counts = runner.run(configs["kubernetes"], force=False)
        assert counts["fresh"] == TOKENS, counts
        result.requests["tokens fresh"] = _per_token(kube, mark)
        mark = len(kube.requests)
        _, _, counts = runner.run(configs["kubernetes"], force=True)
        assert counts["written"] == TOKENS, counts
        result.requests["tokens due"] = _per_token(kube, mark)
        for kind, config in configs.items():
            samples = [runner.run(config, force=True) for _ in range(runs)]
            result.wall_ms[kind] = statistics.median(s[0] for s in samples) * 1000
            result.peak_rss_mb[kind] = statistics.median(s[1] for s in samples)
    return result


def requests_text(per_token: dict[str, float]) -> str:
    return " + ".join(f"{n:g} {method}" for method, n in per_token.items()) or "none"


def report(r: KubernetesResult) -> list[str]:
    lines = [
        f"import harbor_secrets (core)          median {r.import_core_ms:7.1f} ms",
        f"import harbor_secrets_kubernetes      median {r.import_provider_ms:7.1f} ms "
        f"(+{r.import_extra_ms:.1f} ms: lightkube, httpx2, PyYAML, msgspec)",
        f"heavy modules loaded by --version:    {r.version_heavy}",
    ]
    for kind in r.wall_ms:
        lines.append(
            f"forced sync of {TOKENS} tokens, {kind:<10}  median {r.wall_ms[kind]:7.1f} ms, "
            f"peak RSS {r.peak_rss_mb[kind]:.1f} MB ({r.runs} runs)"
        )
    for phase, per_token in r.requests.items():
        lines.append(f"requests per token, {phase:<26} {requests_text(per_token)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per sink kind")
    args = parser.parse_args()
    print("\n".join(report(measure(args.runs))))


if __name__ == "__main__":
    main()
