"""`make bench`: every benchmark of issue 6 in one run; prints the figures and rewrites
docs/BENCHMARKS.md.

1. side by side: harbor-secrets vs the shell script vs the Python floor (side_by_side.py);
2. scale: 1,000 tokens into each store (scale.py);
3. cost over a simulated day, one-shot and watch mode (day_cost.py);
4. the Kubernetes Secret store: import, a whole run, requests per token (kubernetes_store.py).

Local servers only (stand-in issuer, OpenBao dev server, moto_server, the stand-in
Kubernetes API server), on free loopback ports, started here and stopped when the run ends,
whatever happens. Takes a few minutes on two CPUs; nothing here is part of ``make test``.

Usage: .venv/bin/python bench/run_all.py [--runs N] [--output docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import benchmarks_doc
import day_cost
import kubernetes_store
import scale
import side_by_side
from machine import describe
from stack import ROOT, awscli, local_stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11, help="timed runs per variant (part 1)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()
    began = time.perf_counter()
    side_by_side.require_tools()
    machine = describe(awscli())
    print(f"machine: {machine.uname}; {machine.cpu_model} x {machine.cpus}; {machine.python}")

    with local_stack() as stack:
        print(f"\n[1/4] side by side ({args.runs} runs each) ...", flush=True)
        part1 = side_by_side.measure(stack, runs=args.runs)
        print("\n".join(side_by_side.report(part1)), flush=True)
        print(f"\n[2/4] scale: {scale.TOKENS} tokens per store ...", flush=True)
        part2 = scale.measure(stack)
        print("\n".join(scale.report(part2)), flush=True)
    print("\n[3/4] cost over a simulated day ...", flush=True)
    part3 = day_cost.run()
    print("\n".join(day_cost.report(part3)))
    print("\n[4/4] the Kubernetes Secret store ...", flush=True)
    part4 = kubernetes_store.measure()
    print("\n".join(kubernetes_store.report(part4)), flush=True)

    elapsed = time.perf_counter() - began
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        benchmarks_doc.render(machine, part1, part2, part3, part4, elapsed), encoding="utf-8"
    )
    print(f"\nwrote {args.output.relative_to(ROOT)} ({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
