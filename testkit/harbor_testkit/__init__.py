"""Test-only support for harbor-secrets' own tests and benches (never shipped in a wheel).

Modules, each imported directly (``from harbor_testkit.proxy import FaultProxy``):

- :mod:`~harbor_testkit.proxy` — a loopback TCP proxy that injects network faults;
- :mod:`~harbor_testkit.servers` — launchers for a real OpenBao dev server and moto_server;
- :mod:`~harbor_testkit.clock` — a fake clock for code that takes ``now``/``sleep``;
- :mod:`~harbor_testkit.records` — stored-record factories;
- :mod:`~harbor_testkit.environ` — this process's environment without Harbor, Vault or AWS
  settings, for child processes that must not reach a real account;
- :mod:`~harbor_testkit.kube_apiserver` — a stand-in Kubernetes API server for Secrets
  (TLS with its own CA, token auth, RBAC, resourceVersion compare-and-swap, Status bodies);
- :mod:`~harbor_testkit.tls` — a throwaway CA and loopback server certificate;
- :mod:`~harbor_testkit.tmpfs` — a small tmpfs mounted for one test, to fill it up for real;
- :mod:`~harbor_testkit.fleet` — watch-mode replicas sharing one store in simulated time
  (the real watch loop and engine; kills, stops, outages), for the availability tests and
  bench.
- :mod:`~harbor_testkit.failover` — real ``sync --watch`` processes sharing one real store
  (OpenBao or the stand-in API server), killed, hung and cut off, with readers polling all
  along: the failover test's and the availability bench's one harness;
- :mod:`~harbor_testkit.canaries` — secret values that must appear in no output;
- :mod:`~harbor_testkit.cli_text` — TOML values for generated configs, JSON log lines back.

The provider contract suite third-party providers run is *not* here: it ships with the core
as :mod:`harbor_secrets.testing`.
"""
