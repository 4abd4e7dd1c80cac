"""Where one `harbor-secrets sync` process spends its wall time: a wall-clock timeline.

Runs the real command (``harbor_secrets.cli.main``) in this fresh process with timers
wrapped around the steps that matter, then writes a JSON breakdown to ``--out``:

* start-up: from the parent's spawn to the first line of this file (interpreter + site);
* import of the CLI (click and the core), configuration loading, the entry-point scan,
  each provider's import (its SDK included), building the sinks, the engine's pass and
  closing the providers;
* inside the pass, per operation kind and across the worker threads: store reads and
  writes by provider, token requests, and the AWS client creation (which the other workers
  wait for, behind the client cache's lock).

A sampling profiler would not do here: pyinstrument and cProfile follow one thread, and the
engine works on a thread pool. Wrapping is done from outside; no core file is changed.

Usage: python bench/profile_sync.py --out FILE --spawned-at EPOCH -- <harbor-secrets args>
"""

from __future__ import annotations

import time

_STARTED = time.time()  # first thing: the interpreter and site are done by now

import argparse  # noqa: E402 (timed from the line above on purpose)
import contextlib  # noqa: E402
import functools  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

F = TypeVar("F", bound=Callable[..., Any])


class Timeline:
    """Named phases (main thread) and operations (any thread), in milliseconds."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, float]] = []
        self.ops: dict[str, list[float]] = defaultdict(list)
        self._lock = threading.Lock()

    def phase(self, name: str, seconds: float) -> None:
        self.phases.append((name, seconds * 1000))

    def op(self, name: str, seconds: float) -> None:
        with self._lock:
            self.ops[name].append(seconds * 1000)

    def wrap(self, owner: Any, attribute: str, name: str, *, as_phase: bool = False) -> None:
        original = getattr(owner, attribute)
        timeline = self

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - began
                if as_phase:
                    timeline.phase(name, elapsed)
                else:
                    timeline.op(name, elapsed)

        setattr(owner, attribute, timed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--spawned-at", type=float, required=True)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    argv = [a for a in args.argv if a != "--"]
    timeline = Timeline()
    timeline.phase("interpreter start-up (spawn to first line)", _STARTED - args.spawned_at)

    began = time.perf_counter()
    from harbor_secrets import cli, registry, runtime, sync

    timeline.phase("import harbor_secrets.cli (click, core)", time.perf_counter() - began)

    loaded: set[type[Any]] = set()
    original_load = registry.Registry.load

    def load(self: registry.Registry, name: str) -> Any:
        first = self._entry_points is None
        if first:
            began = time.perf_counter()
            self._points()
            timeline.phase("entry-point scan (importlib.metadata)", time.perf_counter() - began)
        began = time.perf_counter()
        cls = original_load(self, name)
        if cls not in loaded:
            loaded.add(cls)
            timeline.phase(f"import provider {name} (+ its SDK)", time.perf_counter() - began)
            timeline.wrap(cls, "read", f"{name}: read")
            timeline.wrap(cls, "write", f"{name}: write")
            aws = sys.modules.get("harbor_secrets_aws.clients")
            if aws is not None and not hasattr(aws.ClientCache.client, "__wrapped__"):
                timeline.wrap(aws.ClientCache, "client", "aws: get client (create, or wait)")
        return cls

    registry.Registry.load = load  # type: ignore[method-assign]
    timeline.wrap(runtime.Runtime, "__init__", "build sinks (providers, options)", as_phase=True)
    timeline.wrap(runtime.Runtime, "close", "close providers", as_phase=True)
    original_run = sync.SyncEngine.run

    def run(self: sync.SyncEngine, **kwargs: Any) -> Any:
        # The engine imports the token client lazily, in a worker; do it here to time it.
        began = time.perf_counter()
        from harbor_secrets import token_client

        timeline.phase("import token client", time.perf_counter() - began)
        timeline.wrap(token_client.TokenClient, "fetch", "token request")
        began = time.perf_counter()
        try:
            return original_run(self, **kwargs)
        finally:
            timeline.phase(
                "engine pass (reads, token requests, writes)", time.perf_counter() - began
            )

    sync.SyncEngine.run = run  # type: ignore[method-assign]

    sys.argv = ["harbor-secrets", *argv]
    began = time.perf_counter()
    code: object = 0
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code
    timeline.phase("whole command (cli.main)", time.perf_counter() - began)
    total = (time.time() - args.spawned_at) * 1000
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(
            {
                "exit_code": code,
                "total_ms": total,
                "phases": timeline.phases,
                "ops": {
                    k: {"count": len(v), "sum_ms": sum(v), "max_ms": max(v)}
                    for k, v in timeline.ops.items()
                },
            },
            out,
        )


if __name__ == "__main__":
    main()
