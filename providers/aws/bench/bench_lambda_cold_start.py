"""Cold start of the Lambda handler: import, first (cold) and second (warm) invocation, peak RSS.

Each run is a fresh Python process, as a Lambda cold start is, invoking the handler against a
local moto_server and the stand-in issuer (loopback only): the client secret comes from
Secrets Manager and both scopes are written to Parameter Store, so the first invocation does
the full job. Run from the repository root:

    .venv/bin/python providers/aws/bench/bench_lambda_cold_start.py [--runs 5]

The smallest Lambda memory size is 128 MB; the figure to watch is peak RSS (VmHWM on Linux,
ru_maxrss elsewhere).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import uuid
from typing import Any

import boto3

from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_testkit.environ import clean_environ
from harbor_testkit.servers import MotoServer, ServerStartError

# Peak RSS of this process. On Linux, ru_maxrss survives exec, so a child forked from this
# (boto3- and moto-laden) parent would report the parent's size; VmHWM belongs to the new image.
PEAK_RSS = r"""
import resource
def peak_rss_mb():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

CHILD = (
    PEAK_RSS
    + r"""
import json, sys, time
t0 = time.perf_counter()
import harbor_secrets_aws.lambda_handler as h
t1 = time.perf_counter()
from datetime import UTC, datetime
from harbor_secrets import format_time
event = {"version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events",
         "account": "123456789012", "time": format_time(datetime.now(UTC)), "region": "us-east-1",
         "resources": [], "detail": {}}
first = h.handler(event, None)
t2 = time.perf_counter()
second = h.handler(event, None)
t3 = time.perf_counter()
assert first["counts"]["written"] == 2, first
assert second["counts"]["fresh"] == 2, second
print(json.dumps({"import_s": t1 - t0, "first_s": t2 - t1, "warm_s": t3 - t2,
                  "rss_mb": peak_rss_mb()}), file=sys.stderr)
"""
)


def start_moto() -> MotoServer:
    try:
        return MotoServer().start()
    except ServerStartError as error:
        raise SystemExit(f"moto_server did not start: {error}") from error


def run_once(env: dict[str, str]) -> dict[str, float]:
    completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise SystemExit(f"the handler failed:\n{completed.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(completed.stderr.strip().splitlines()[-1])
    return figures


def baseline_rss(env: dict[str, str]) -> float:
    code = PEAK_RSS + "print(peak_rss_mb())"
    out = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    moto = start_moto()
    moto_url = moto.url
    secret = "bench-client-secret-" + uuid.uuid4().hex
    try:
        with StandInIssuer(clients={"bench": secret}) as issuer:
            aws = {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": moto_url,
            }
            client: Any = boto3.client(
                "secretsmanager",
                endpoint_url=moto_url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            client.create_secret(Name="bench/client", SecretString=json.dumps({"s": secret}))
            results = []
            for run in range(args.runs):
                config = f"""
[credentials.main]
client_id = "bench"
client_secret = "aws-sm:bench/client#s"
[sinks.params]
provider = "aws-ssm"
name = "/bench{run}-{uuid.uuid4().hex[:8]}/{{environment}}/{{scope}}"
[[targets]]
environments = ["sandbox"]
"""
                env = {
                    **clean_environ(),
                    **aws,
                    "AWS_LAMBDA_FUNCTION_NAME": "harbor-secrets-bench",
                    "HARBOR_SANDBOX_ACCOUNTS_URL": issuer.url,
                    "HARBOR_SANDBOX_API_URL": issuer.url,
                    "HARBOR_SECRETS_CONFIG_TOML": config,
                }
                results.append(run_once(env))
            base = baseline_rss(env)
    finally:
        moto.stop()

    def median(key: str) -> float:
        return statistics.median(r[key] for r in results)

    print(f"Lambda handler cold start, median of {len(results)} fresh processes")
    print(f"  import harbor_secrets_aws.lambda_handler  {median('import_s') * 1000:7.0f} ms")
    print(f"  first invocation (cold: 2 tokens, SM+SSM) {median('first_s') * 1000:7.0f} ms")
    print(f"  second invocation (warm, both fresh)      {median('warm_s') * 1000:7.0f} ms")
    print(f"  peak RSS                                  {median('rss_mb'):7.1f} MB")
    print(f"  (bare interpreter                         {base:7.1f} MB; Lambda minimum 128 MB)")


if __name__ == "__main__":
    main()
