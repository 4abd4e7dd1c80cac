"""Scale: 1,000 tokens (500 credential sets x 2 scopes) into each kind of store.

One ``harbor-secrets sync`` process per store: env files (10 files of 100 tokens, as
bench/sync_envfile.py does), OpenBao KV v2, and SSM Parameter Store on moto_server. For
each store three runs:

* first write, into an empty store: wall time and peak RSS of the process (peak_rss.py);
* forced rewrite through the counting proxies: requests per token, by kind;
* due-only right after (nothing due: reads only): wall time and peak RSS.

The default ``max_workers`` (8) is used, as a user would have it.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from stack import ROOT, Counts, Stack, local_stack, new_second_since, run_timed

CREDENTIALS = 500
SCOPES = ("service_provider", "tower_access")
TOKENS = CREDENTIALS * len(SCOPES)
FILES = 10
STORES = ("envfile", "openbao", "ssm")
SECRET = "scale-client-secret-canary"


@dataclass(frozen=True)
class Run:
    wall_s: float
    peak_rss_mb: float
    cpu_s: float  # user + system time of the harbor-secrets process
    counts: dict[str, int]


@dataclass(frozen=True)
class StoreScale:
    store: str
    first: Run
    rewrite_wall_s: float  # through the counting proxy
    requests: Counts
    due_only: Run
    wrapper_rss_mb: float


def _sinks(store: str, bao: str, moto: str) -> tuple[str, list[str]]:
    if store not in STORES:
        raise ValueError(f"unknown store {store!r}")
    if store == "envfile":
        tables = "".join(
            f'[sinks.file{n}]\nprovider = "envfile"\npath = "scale-{n}.env"\n'
            'prefix = "HARBOR_{credentials}_{environment}_{scope}"\n\n'
            for n in range(FILES)
        )
        return tables, [f"file{n}" for n in range(FILES)]
    if store == "openbao":
        return (
            f'[sinks.vault]\nprovider = "vault"\naddress = "{bao}"\n'
            'path = "scale/{credentials}/{environment}/{scope}"\n\n',
            ["vault"],
        )
    return (
        f'[sinks.params]\nprovider = "aws-ssm"\nendpoint_url = "{moto}"\nregion = "us-east-1"\n'
        'name = "/scale/{credentials}/{environment}/{scope}"\n\n',
        ["params"],
    )


def write_config(
    directory: Path, store: str, issuer: str, bao: str, moto: str, *, name: str
) -> Path:
    tables, sinks = _sinks(store, bao, moto)
    parts = [f'[environments.sandbox]\naccounts_url = "{issuer}"\napi_url = "{issuer}"\n\n', tables]
    for n in range(CREDENTIALS):
        parts.append(
            f'[credentials.c{n}]\nclient_id = "scale-{n}"\n'
            'client_secret = "env:HARBOR_SCALE_SECRET"\n\n'
            f'[[targets]]\ncredentials = "c{n}"\nenvironments = ["sandbox"]\n'
            f'scopes = {json.dumps(list(SCOPES))}\nsinks = ["{sinks[n % len(sinks)]}"]\n\n'
        )
    path = directory / f"{name}.toml"
    path.write_text("".join(parts), encoding="utf-8")
    return path


class Scale:
    def __init__(self, stack: Stack, directory: Path) -> None:
        self.stack = stack
        self.directory = directory
        self.hs = str(Path(sys.executable).parent / "harbor-secrets")
        for n in range(CREDENTIALS):
            stack.issuer.add_client(f"scale-{n}", SECRET)
        self.last_forced = 0.0

    def _run(self, config: Path, *, force: bool, counted: bool) -> tuple[Run, float]:
        """One sync process under peak_rss.py; returns the run and the wrapper's RSS (MB)."""
        out, stdout = self.directory / "rss.json", self.directory / "stdout.json"
        command = [self.hs, "-c", str(config), "sync", "--output", "json"]
        if force:
            command.append("--force")
            new_second_since(self.last_forced)
        wrapper = [sys.executable, "-I", "-S", str(ROOT / "bench" / "peak_rss.py")]
        env = self.stack.env(counted=counted, HARBOR_SCALE_SECRET=SECRET)
        run_timed([*wrapper, str(out), str(stdout), "--", *command], env, cwd=self.directory)
        self.last_forced = time.time()  # whatever this run wrote, a forced one must outdate
        measured = json.loads(out.read_text())
        report = json.loads(stdout.read_text())
        if measured["exit_code"] != 0 or report["counts"]["failed"]:
            raise SystemExit(f"scale run failed: {report['counts']}")
        run = Run(
            measured["wall_s"],
            measured["peak_rss_kb"] / 1024,
            measured["cpu_s"],
            dict(report["counts"]),
        )
        return run, measured["wrapper_rss_kb"] / 1024

    def store(self, store: str) -> StoreScale:
        bao, moto = self.stack.addresses(counted=False)
        issuer = self.stack.issuer_url(counted=False)
        direct = write_config(self.directory, store, issuer, bao, moto, name=store)
        bao, moto = self.stack.addresses(counted=True)
        issuer = self.stack.issuer_url(counted=True)
        counted = write_config(self.directory, store, issuer, bao, moto, name=f"{store}-counted")
        first, wrapper = self._run(direct, force=False, counted=False)
        if first.counts["written"] != TOKENS:
            raise SystemExit(f"{store}: first run wrote {first.counts}, expected {TOKENS}")
        before = self.stack.start_counting()
        rewrite, _ = self._run(counted, force=True, counted=True)
        requests = self.stack.counted(before)
        if rewrite.counts["written"] != TOKENS:
            raise SystemExit(f"{store}: forced rewrite wrote {rewrite.counts}")
        due, _ = self._run(direct, force=False, counted=False)
        if due.counts["fresh"] != TOKENS:
            raise SystemExit(f"{store}: due-only run found {due.counts}, expected all fresh")
        return StoreScale(store, first, rewrite.wall_s, requests, due, wrapper)


def measure(stack: Stack) -> list[StoreScale]:
    with tempfile.TemporaryDirectory(prefix="scale-", dir=stack.workdir) as tmp:
        scale = Scale(stack, Path(tmp))
        return [scale.store(store) for store in STORES]


def report(results: list[StoreScale]) -> list[str]:
    lines = [f"scale: {TOKENS} tokens ({CREDENTIALS} credential sets x 2 scopes) per store"]
    for r in results:
        per = r.requests.per_token(TOKENS)
        lines.append(
            f"  {r.store:<8} first write {r.first.wall_s:6.2f} s (CPU {r.first.cpu_s:5.2f} s), "
            "peak RSS "
            f"{r.first.peak_rss_mb:5.1f} MB; due-only {r.due_only.wall_s:5.2f} s "
            f"({r.due_only.peak_rss_mb:5.1f} MB); requests/token on a rewrite "
            f"{per['total']:.2f} (issuer {per['issuer']:.2f}, OpenBao {per['openbao']:.2f}, "
            f"SSM {per['ssm']:.2f})"
        )
    return lines


def main() -> None:
    with local_stack() as stack:
        results = measure(stack)
    print("\n".join(report(results)))
    for r in results:
        print(r.store, r.requests, r.rewrite_wall_s, r.wrapper_rss_mb)


if __name__ == "__main__":
    main()
