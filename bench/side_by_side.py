"""harbor-secrets against the shell script it replaces, and against the Python floor.

Same run, same local servers, 2 environments x 2 scopes into OpenBao KV v2, SSM Parameter
Store (moto_server) and an env file:

* ``harbor-secrets -c CFG sync --force``: every token fetched and written (the full work);
* ``harbor-secrets -c CFG sync``: due-only, right after a forced run (nothing is due: the
  steady state of most scheduled runs);
* ``bench/shell/harbor-sync.sh``: curl + jq + ``bao kv put`` + the real AWS CLI;
* the floor: interpreter start plus importing requests, hvac and boto3 and building an SSM
  client, which any Python tool writing to these stores pays.

Wall times are medians of interleaved runs straight to the servers; request counts come
from one extra run of each through the counting proxies. When harbor-secrets misses its
aim (1.2x the floor), the breakdown says where the time goes (profile_sync.py and
``-X importtime``).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests
from argv_audit import AuditResult, audit, positive_control
from stack import (
    CLIENT_SECRET,
    ENVIRONMENTS,
    ROOT,
    Counts,
    Stack,
    local_stack,
    median,
    new_second_since,
    run_timed,
)

from harbor_secrets.record import FIELDS

SHELL_SCRIPT = ROOT / "bench" / "shell" / "harbor-sync.sh"
SCOPES = ("service_provider", "tower_access")
TOKENS = len(ENVIRONMENTS) * len(SCOPES)
AIM = 1.2
HS_PREFIX = "bench-hs"  # harbor-secrets' keys; the script writes harbor/..., as users would
FLOOR_PROBE = """
import json, sys, time
t0 = time.time()
import requests
t1 = time.time()
import hvac
t2 = time.time()
import boto3
t3 = time.time()
boto3.client("ssm", region_name="us-east-1", endpoint_url=sys.argv[1])
print(json.dumps([t0, t1, t2, t3, time.time()]))
"""
#: Candidate core fixes, measured from outside: the same CLI entry point, started by a
#: wrapper that (a) ends the process with os._exit once output is flushed, skipping the
#: interpreter's teardown, and (b) also keeps the cyclic GC off until the sinks are built,
#: then freezes what start-up allocated and turns it back on.
WHAT_IF = """
import gc, logging, os, sys
if sys.argv.pop(1) == "startup-gc":
    gc.disable()
    from harbor_secrets import runtime
    built = runtime.Runtime.__init__
    def init(self, *args, **kwargs):
        built(self, *args, **kwargs)
        gc.freeze()
        gc.enable()
    runtime.Runtime.__init__ = init
from harbor_secrets.cli import main
sys.argv[0] = "harbor-secrets"
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
"""
#: The CLI with a GC callback: how many collections a forced run triggers, what they cost
#: and what they free (printed as JSON on stderr).
GC_PROBE = """
import gc, json, sys, time
stats = {0: [0, 0.0, 0], 1: [0, 0.0, 0], 2: [0, 0.0, 0]}
started = {}
def observe(phase, info):
    generation = info["generation"]
    if phase == "start":
        started[generation] = time.perf_counter()
    else:
        entry = stats[generation]
        entry[0] += 1
        entry[1] += (time.perf_counter() - started[generation]) * 1000
        entry[2] += info["collected"]
gc.callbacks.append(observe)
from harbor_secrets.cli import main
sys.argv[0] = "harbor-secrets"
try:
    main()
except SystemExit:
    pass
gc.callbacks.remove(observe)
print(json.dumps(stats), file=sys.stderr)
"""
VARIANTS = (
    "bare",
    "floor",
    "hs-force",
    "hs-due",
    "shell",
    "hs-fast-exit",
    "hs-startup-gc",
)
FORCED = ("hs-force", "shell", "hs-fast-exit", "hs-startup-gc")
LABELS = {
    "bare": "python -c pass",
    "floor": "floor: python + import requests, hvac, boto3 + SSM client",
    "hs-force": "harbor-secrets sync --force (4 tokens x 3 stores)",
    "hs-due": "harbor-secrets sync, due-only (nothing due)",
    "shell": "bench/shell/harbor-sync.sh (curl, jq, bao, aws)",
    "hs-fast-exit": "what-if: --force, ending with os._exit",
    "hs-startup-gc": "what-if: --force, os._exit + no GC until sinks built",
}


@dataclass
class SideBySideResult:
    runs: int
    samples: dict[str, list[float]]
    counts: dict[str, Counts]
    counted_walls: dict[str, float]
    profile: dict[str, Any]
    floor_profile: dict[str, float]
    gc_stats: dict[str, list[float]]
    peak_rss_mb: float
    argv: list[AuditResult]
    imports_beyond_floor_ms: float
    imports_by_package: list[tuple[str, float]]
    imports_top: list[tuple[str, float]]
    verified: list[str] = field(default_factory=list)

    def median(self, variant: str) -> float:
        return median(self.samples[variant])

    @property
    def ratio_to_floor(self) -> float:
        return self.median("hs-force") / self.median("floor")

    @property
    def aim_met(self) -> bool:
        return self.ratio_to_floor <= AIM


def write_config(directory: Path, name: str, issuer: str, bao: str, moto: str) -> Path:
    path = directory / f"{name}.toml"
    environments = "\n".join(
        f'[environments.{env}]\naccounts_url = "{issuer}"\napi_url = "{issuer}"\n'
        for env in ENVIRONMENTS
    )
    path.write_text(
        f"""{environments}
[credentials.main]
client_id = "bench-client"
client_secret = "env:HARBOR_CLIENT_SECRET"

[sinks.local]
provider = "envfile"
path = "harbor-secrets.env"

[sinks.vault]
provider = "vault"
address = "{bao}"
path = "{HS_PREFIX}/{{environment}}/{{scope}}"

[sinks.params]
provider = "aws-ssm"
endpoint_url = "{moto}"
region = "us-east-1"
name = "/{HS_PREFIX}/{{environment}}/{{scope}}"

[[targets]]
credentials = "main"
environments = {json.dumps(list(ENVIRONMENTS))}
scopes = {json.dumps(list(SCOPES))}
sinks = ["local", "vault", "params"]
""",
        encoding="utf-8",
    )
    return path


class SideBySide:
    def __init__(self, stack: Stack, directory: Path) -> None:
        self.stack = stack
        self.directory = directory
        bao, moto = stack.addresses(counted=False)
        issuer = stack.issuer_url(counted=False)
        self.config = write_config(directory, "side-by-side", issuer, bao, moto)
        bao, moto = stack.addresses(counted=True)
        issuer = stack.issuer_url(counted=True)
        self.counted_config = write_config(directory, "counted", issuer, bao, moto)
        self.last_forced = 0.0
        self.hs = str(Path(sys.executable).parent / "harbor-secrets")

    def command(self, variant: str, *, counted: bool = False) -> list[str]:
        config = str(self.counted_config if counted else self.config)
        moto = self.stack.addresses(counted=counted)[1]
        sync_force = ["-c", config, "sync", "--force", "--output", "json"]
        return {
            "bare": [sys.executable, "-c", "pass"],
            "floor": [
                sys.executable,
                "-c",
                "import requests, hvac, boto3; "
                f"boto3.client('ssm', region_name='us-east-1', endpoint_url='{moto}')",
            ],
            "hs-force": [self.hs, "-c", config, "sync", "--force", "--output", "json"],
            "hs-due": [self.hs, "-c", config, "sync", "--output", "json"],
            "shell": ["bash", str(SHELL_SCRIPT)],
            "hs-fast-exit": [sys.executable, "-c", WHAT_IF, "fast-exit", *sync_force],
            "hs-startup-gc": [sys.executable, "-c", WHAT_IF, "startup-gc", *sync_force],
        }[variant]

    def run(self, variant: str, *, counted: bool = False) -> float:
        env = self.stack.env(
            counted=counted, HARBOR_ENV_FILE=str(self.directory / "shell-script.env")
        )
        if variant in FORCED:
            new_second_since(self.last_forced)
        wall, done = run_timed(self.command(variant, counted=counted), env, cwd=self.directory)
        if variant in FORCED:
            self.last_forced = time.time()
        if variant.startswith("hs-"):
            counts = json.loads(done.stdout)["counts"]
            expected = "fresh" if variant == "hs-due" else "written"
            if counts[expected] != TOKENS * 3:
                raise SystemExit(f"{variant}: expected {TOKENS * 3} {expected}, got {counts}")
        return wall

    def counted(self, variant: str) -> tuple[float, Counts]:
        before = self.stack.start_counting()
        wall = self.run(variant, counted=True)
        return wall, self.stack.counted(before)

    def profile(self, runs: int = 3) -> dict[str, Any]:
        """The breakdown of the median of ``runs`` forced runs (by wall time)."""
        results = []
        for _ in range(runs):
            new_second_since(self.last_forced)
            out = self.directory / "profile.json"
            command = [
                sys.executable,
                str(ROOT / "bench" / "profile_sync.py"),
                "--out",
                str(out),
                "--spawned-at",
                repr(time.time()),
                "--",
                "-c",
                str(self.config),
                "sync",
                "--force",
            ]
            wall, _ = run_timed(command, self.stack.env(), cwd=self.directory)
            self.last_forced = time.time()
            result: dict[str, Any] = json.loads(out.read_text())
            result["wall_ms"] = wall * 1000
            results.append(result)
        results.sort(key=lambda r: float(r["wall_ms"]))
        return results[len(results) // 2]

    def gc_stats(self) -> dict[str, list[float]]:
        """Per generation: [collections, milliseconds, objects freed] in one forced run."""
        new_second_since(self.last_forced)
        command = [sys.executable, "-c", GC_PROBE, "-c", str(self.config), "sync", "--force"]
        _, done = run_timed(command, self.stack.env(), cwd=self.directory)
        self.last_forced = time.time()
        stats: dict[str, list[float]] = json.loads(done.stderr.strip().splitlines()[-1])
        return stats

    def argv_audit(self) -> list[AuditResult]:
        """Secrets in any process's argv during one shell run and one harbor-secrets run."""
        stack = self.stack

        def secrets() -> list[tuple[str, str]]:
            found = [("client secret", CLIENT_SECRET), ("OpenBao token", stack.bao.token)]
            return found + [("access token", token) for token in stack.issuer.issued]

        def server(line: str) -> bool:
            return " server -dev " in line  # the OpenBao dev server's own argv

        naive = [
            "bash",
            "-c",
            'curl -sS -o /dev/null -d "grant_type=client_credentials&scope=tower_access'
            '&client_id=$HARBOR_CLIENT_ID&client_secret=$HARBOR_CLIENT_SECRET" '
            '"$HARBOR_SANDBOX_ACCOUNTS_URL/realms/harbor/protocol/openid-connect/token"',
        ]
        results = [
            positive_control(),
            audit(
                'naive: curl -d "...&client_secret=$SECRET" (one token request)',
                functools.partial(run_timed, naive, stack.env()),
                secrets,
                server,
            ),
        ]
        for variant in ("shell", "hs-force"):
            results.append(
                audit(LABELS[variant], functools.partial(self.run, variant), secrets, server)
            )
        return results

    def peak_rss_mb(self) -> float:
        """Peak RSS of one forced run, measured by peak_rss.py like the scale runs."""
        new_second_since(self.last_forced)
        out, stdout = self.directory / "rss.json", self.directory / "rss-stdout.json"
        wrapper = [sys.executable, "-I", "-S", str(ROOT / "bench" / "peak_rss.py")]
        command = [*wrapper, str(out), str(stdout), "--", *self.command("hs-force")]
        run_timed(command, self.stack.env(), cwd=self.directory)
        self.last_forced = time.time()
        return float(json.loads(out.read_text())["peak_rss_kb"]) / 1024

    def floor_profile(self, runs: int = 3) -> dict[str, float]:
        """The floor's own parts (ms): start-up, each import, the client, interpreter exit."""
        results = []
        for _ in range(runs):
            spawned = time.time()
            _, done = run_timed(
                [sys.executable, "-c", FLOOR_PROBE, self.stack.moto.url], self.stack.env()
            )
            ended = time.time()
            t0, t1, t2, t3, t4 = json.loads(done.stdout)
            results.append(
                {
                    "interpreter start-up": (t0 - spawned) * 1000,
                    "import requests": (t1 - t0) * 1000,
                    "import hvac": (t2 - t1) * 1000,
                    "import boto3": (t3 - t2) * 1000,
                    "boto3.client('ssm')": (t4 - t3) * 1000,
                    "interpreter exit": (ended - t4) * 1000,
                    "wall": (ended - spawned) * 1000,
                }
            )
        results.sort(key=lambda r: r["wall"])
        return results[len(results) // 2]

    def import_times(self) -> tuple[float, list[tuple[str, float]], list[tuple[str, float]]]:
        """Self import time (``-X importtime``) of the modules loaded beyond the floor's."""
        new_second_since(self.last_forced)
        env = self.stack.env()
        hs = _importtime([sys.executable, "-X", "importtime", *self.command("hs-force")], env)
        self.last_forced = time.time()
        floor = _importtime([sys.executable, "-X", "importtime", *self.command("floor")[1:]], env)
        extra = {module: ms for module, ms in hs.items() if module not in floor}
        packages: dict[str, float] = defaultdict(float)
        for module, ms in extra.items():
            packages[module.split(".")[0]] += ms
        by_package = sorted(packages.items(), key=lambda item: -item[1])
        top = sorted(extra.items(), key=lambda item: -item[1])[:12]
        return sum(extra.values()), by_package, top

    def verify(self) -> list[str]:
        """Both tools stored the same schema-1 record in each store (tokens differ)."""
        notes = []
        bao = self.stack.bao
        ssm = boto3.client(
            "ssm",
            region_name="us-east-1",
            endpoint_url=self.stack.moto.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        for prefix, who in ((HS_PREFIX, "harbor-secrets"), ("harbor", "shell script")):
            for env in ENVIRONMENTS:
                for scope in SCOPES:
                    answer = requests.get(
                        f"{bao.address}/v1/secret/data/{prefix}/{env}/{scope}",
                        headers={"X-Vault-Token": bao.token},
                        timeout=10,
                    )
                    answer.raise_for_status()
                    vault_record = answer.json()["data"]["data"]
                    value = ssm.get_parameter(Name=f"/{prefix}/{env}/{scope}", WithDecryption=True)
                    ssm_record = json.loads(value["Parameter"]["Value"])
                    for store, record in (("OpenBao", vault_record), ("SSM", ssm_record)):
                        if sorted(record) != sorted(FIELDS) or record["schema"] != 1:
                            raise SystemExit(f"{who} wrote a different record to {store}")
            notes.append(
                f"{who} wrote all {TOKENS} records to OpenBao and SSM with exactly the "
                f"{len(FIELDS)} schema-1 fields"
            )
        for name in ("harbor-secrets.env", "shell-script.env"):
            text = (self.directory / name).read_text()
            lines = [line for line in text.splitlines() if line.startswith("HARBOR_")]
            if len(lines) != TOKENS * 2 or oct(
                (self.directory / name).stat().st_mode & 0o777
            ) != oct(0o600):
                raise SystemExit(f"{name}: expected {TOKENS * 2} HARBOR_ lines, mode 0600")
        notes.append(
            f"both env files hold {TOKENS * 2} HARBOR_* lines (token and expiry per token), "
            "mode 0600"
        )
        return notes


def _importtime(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Self time (ms) per module from ``-X importtime``."""
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    times = {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if match:
            times[match[3]] = int(match[1]) / 1000
    return times


def require_tools() -> None:
    """The shell script's tools; a missing one stops the bench before anything runs."""
    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"{', '.join(missing)} not found: apt-get install {' '.join(missing)}")


def measure(stack: Stack, runs: int = 11) -> SideBySideResult:
    with tempfile.TemporaryDirectory(prefix="side-by-side-", dir=stack.workdir) as tmp:
        bench = SideBySide(stack, Path(tmp))
        for variant in VARIANTS:  # warm-up: page cache, .pyc files, stores created
            bench.run(variant)
        bench.run("hs-due")
        samples: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        for round_number in range(runs):
            # Rotate the order so no variant always runs first (or right after the shell).
            order = (
                VARIANTS[round_number % len(VARIANTS) :] + VARIANTS[: round_number % len(VARIANTS)]
            )
            for variant in order:
                if variant == "hs-due":
                    continue
                samples[variant].append(bench.run(variant))
                if variant == "hs-force":  # due-only right after: everything is fresh
                    samples["hs-due"].append(bench.run("hs-due"))
        counts: dict[str, Counts] = {}
        walls: dict[str, float] = {}
        for variant in ("hs-force", "hs-due", "shell"):
            walls[variant], counts[variant] = bench.counted(variant)
        profile = bench.profile()
        floor_profile = bench.floor_profile()
        gc_stats = bench.gc_stats()
        peak_rss_mb = bench.peak_rss_mb()
        argv = bench.argv_audit()
        beyond, by_package, top = bench.import_times()
        verified = bench.verify()
    return SideBySideResult(
        runs=runs,
        samples=samples,
        counts=counts,
        counted_walls=walls,
        profile=profile,
        floor_profile=floor_profile,
        gc_stats=gc_stats,
        peak_rss_mb=peak_rss_mb,
        argv=argv,
        imports_beyond_floor_ms=beyond,
        imports_by_package=by_package,
        imports_top=top,
        verified=verified,
    )


def report(result: SideBySideResult) -> list[str]:
    lines = [f"side by side ({result.runs} interleaved runs each, medians):"]
    for variant in VARIANTS:
        samples = result.samples[variant]
        lines.append(
            f"  {LABELS[variant]:<58} {result.median(variant):6.3f} s "
            f"(min {min(samples):.3f}, max {max(samples):.3f})"
        )
    shell = result.median("shell") / result.median("hs-force")
    lines.append(
        f"  harbor-secrets --force / floor = {result.ratio_to_floor:.2f}x (aim <= {AIM}x: "
        f"{'met' if result.aim_met else 'MISSED'}); shell / harbor-secrets = {shell:.1f}x"
    )
    for variant, counts in result.counts.items():
        per = counts.per_token(TOKENS)
        lines.append(
            f"  requests per token, {variant:<8}: {per['total']:.2f} "
            f"(issuer {per['issuer']:.2f}, OpenBao {per['openbao']:.2f}, SSM {per['ssm']:.2f})"
        )
    return lines


def main() -> None:
    require_tools()
    with local_stack() as stack:
        result = measure(stack)
    print("\n".join(report(result)))
    print("profiled forced run (ms):")
    for name, ms in result.profile["phases"]:
        print(f"  {ms:7.1f}  {name}")


if __name__ == "__main__":
    main()
