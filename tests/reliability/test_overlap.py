"""Overlap for real: many ``harbor-secrets sync --force`` processes at once on one config,
writing to an env file, OpenBao KV v2 and SSM Parameter Store together.

To make the race adversarial, the processes come in two waves on the same config file.
The first wave mints its tokens first but reaches OpenBao and moto_server through a fault
proxy adding latency to every request (``VAULT_ADDR`` / ``AWS_ENDPOINT_URL`` differ, the
config does not), so its older tokens arrive at those stores *after* the second wave's
newer ones. Afterwards every store must hold, for every token, the newest record any
process wrote (ties at the same second are all "newest"), each stored token must be one
the issuer issued, and the env file must parse with python-dotenv and with sh.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from harbor_secrets import parse_time
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_testkit.canaries import Canaries
from harbor_testkit.cli_text import json_log_lines
from harbor_testkit.proxy import ProxyFault
from harbor_testkit.servers import Bao

from .conftest import AWS_TEST_ENV
from .report import ReliabilityLog
from .servers import Moto
from .support import (
    EnvFileStore,
    JobKey,
    Lab,
    SsmStore,
    VaultStore,
    base_environ,
)

WAVE = 6  # processes per wave; two waves
WAVE_GAP = 1.2  # seconds between the waves, so their tokens expire at different seconds
LATENCY = 0.25  # added to every store request of the first wave
JOBS = tuple(
    JobKey(environment, scope)
    for environment in ("production", "sandbox")
    for scope in ("service_provider", "tower_access")
)
TIME_LIMIT = 60.0


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return claims


def _sh_values(path: Path) -> dict[str, str]:
    """What POSIX sh makes of the file (``set -a; . FILE``), variables by name."""
    script = f'set -a; . "{path}"; env -0'
    output = subprocess.run(
        ["sh", "-c", script], capture_output=True, check=True, timeout=30, env={}
    ).stdout.decode()
    pairs = (entry.partition("=") for entry in output.split("\0") if entry)
    return {name: value for name, _, value in pairs if name.startswith("HARBOR_")}


def test_concurrent_syncs_leave_the_newest_token_everywhere(
    lab: Lab,
    issuer: StandInIssuer,
    bao: Bao,
    moto: Moto,
    ssm_client: Any,
    canaries: Canaries,
    tmp_path: Path,
    reliability_log: ReliabilityLog,
) -> None:
    canaries.add("vault root token", bao.root_token)
    directory = lab.directory()
    local = EnvFileStore(directory / "harbor.env", jobs=JOBS)
    vault = VaultStore(bao, tmp_path, jobs=JOBS)
    params = SsmStore(ssm_client, moto.url, jobs=JOBS)
    stores = (local, vault, params)
    ws = lab.workspace(stores, accounts_url=issuer.url, directory=directory, jobs=JOBS)
    # One config for every process: the store endpoints come from the environment.
    text = ws.config.read_text()
    ws.config.write_text(re.sub(r"(?m)^(address|endpoint_url) = .*\n", "", text))
    slow_vault = lab.proxy(bao.address)
    slow_moto = lab.proxy(moto.url)
    for proxy in (slow_vault, slow_moto):
        proxy.set_fault(ProxyFault.latency(LATENCY))
    base = {
        **base_environ(lab.client_secret),
        **AWS_TEST_ENV,
        "VAULT_TOKEN": bao.root_token,
        "HOME": str(tmp_path),
    }
    waves = [
        {**base, "VAULT_ADDR": slow_vault.url, "AWS_ENDPOINT_URL": slow_moto.url},
        {**base, "VAULT_ADDR": bao.address, "AWS_ENDPOINT_URL": moto.url},
    ]
    command = [sys.executable, "-m", "harbor_secrets", "-c", str(ws.config)]
    verbose = ["-vv", "--log-format", "json"]
    started = time.monotonic()
    processes = []
    for wave, environ in enumerate(waves):
        if wave:
            time.sleep(WAVE_GAP)
        processes += [
            subprocess.Popen(
                [*command, *(verbose if n % 2 else []), "sync", "--force", "--output", "json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=environ,
                cwd=directory,
            )
            for n in range(WAVE)
        ]
    outputs = [process.communicate(timeout=TIME_LIMIT) for process in processes]
    elapsed = time.monotonic() - started
    codes = [process.returncode for process in processes]
    canaries.add_tokens("issued token", issuer.issued)

    # What each process wrote, and the expiry of each process's own token per job (known
    # from any sink it wrote): the newest written record per job is the target.
    written: dict[str, list[datetime]] = {}
    own: dict[tuple[int, str], datetime] = {}
    outcomes: list[tuple[int, str, str, str]] = []  # process, job, sink, action
    for index, (stdout, stderr) in enumerate(outputs):
        for job in json.loads(stdout)["jobs"]:
            label = f"{job['environment']}/{job['scope']}"
            for sink in job["sinks"]:
                outcomes.append((index, label, sink["sink"], sink["action"]))
                if sink["action"] == "written":
                    expiry = parse_time(sink["expires_at"])
                    written.setdefault(label, []).append(expiry)
                    own[(index, label)] = expiry
        if stderr.startswith("{"):
            json_log_lines(stderr)  # every line of a JSON-logging process parses
    leaks = canaries.leaks({f"process {n}": out + err for n, (out, err) in enumerate(outputs)})
    held: dict[tuple[str, str], bool] = {}
    finals: dict[str, datetime] = {}
    for job in JOBS:
        label = f"{job.environment}/{job.scope}"
        newest = max(written[label])
        finals[label] = newest
        newest_exp = max(
            int(_claims(token)["exp"])
            for token in issuer.issued
            if _claims(token)["scope"] == job.scope
        )
        for store in stores:
            record = store.read(job)
            assert record is not None
            token = record.access_token.reveal()
            held[(label, store.sink)] = (
                record.expires_at == newest
                and token in issuer.issued
                and int(_claims(token)["exp"]) >= newest_exp - 1  # the issuer's clock
            )
    # Older tokens that arrived after a newer one was stored, and were refused.
    refused_late = sum(
        1
        for index, label, sink, action in outcomes
        if action == "kept-newer" and (index, label) in own and own[(index, label)] < finals[label]
    )
    actions = Counter(action for _, _, _, action in outcomes)
    seconds = len({expiry for expiries in written.values() for expiry in expiries})

    env_values = dotenv_values(local.path)
    sh_values = _sh_values(local.path)
    parses = env_values == sh_values and len(env_values) == 2 * len(JOBS)
    debris = [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]
    locks = [name for name, value in params.snapshot().items() if ".lock" in name and value]
    reliability_log.overlap.append(
        f"{2 * WAVE} `harbor-secrets sync --force --output json` processes on one config "
        "(2 environments × 2 scopes; sinks: env file, OpenBao KV v2, SSM Parameter Store; "
        f"half of them with `-vv --log-format json`), in two waves {WAVE_GAP:g} s apart; "
        f"the first wave reached OpenBao and moto_server through the fault proxy with "
        f"{LATENCY:g} s added to every request, so its older tokens arrived after the "
        f"second wave's newer ones. Exit codes {sorted(codes)}; all done in {elapsed:.1f} s "
        f"(limit {TIME_LIMIT:g} s); {len(issuer.issued)} tokens issued, expiring at "
        f"{seconds} distinct seconds."
    )
    reliability_log.overlap.append(
        f"Sink outcomes over all processes: {dict(sorted(actions.items()))}; at least "
        f"{refused_late} writes of a strictly older token arrived after a newer one was "
        "stored and were refused (kept-newer; counted where the writer's own token expiry "
        "is known from another sink it wrote)."
    )
    reliability_log.overlap.append(
        f"Afterwards every store held the newest record for every token: "
        f"{'yes' if all(held.values()) else 'NO'} ({sum(held.values())} of {len(held)} "
        "store × token checks: expires_at equal to the latest any process wrote, the token "
        "one the issuer issued, and no older than the issuer's newest for that scope)."
    )
    reliability_log.overlap.append(
        f"The env file parsed with python-dotenv and with sh to the same "
        f"{len(env_values)} variables: {'yes' if parses else 'NO'}; temporary files left: "
        f"{len(debris)}; SSM writer locks left: {len(locks)}; secrets leaked: "
        f"{'yes' if leaks else 'no'}."
    )
    assert not leaks, leaks
    assert codes == [0] * len(processes), [lab.redacted(err)[-2000:] for _, err in outputs]
    assert all(held.values()), held
    assert parses, (sorted(env_values), sorted(sh_values))
    assert debris == []
    assert locks == []
    assert elapsed < TIME_LIMIT
    vault.close()
