"""Run a command and report its own peak RSS, measured cleanly.

``getrusage(RUSAGE_CHILDREN)`` in the bench process would report the largest child it ever
reaped (OpenBao, moto_server, an earlier run), and Linux carries a process's peak RSS across
``exec`` — a child spawned from the big bench process would start with the bench's peak.
So the bench starts this small wrapper (stdlib only, run with ``python -I -S``), which
spawns the command and reads that one child's ``ru_maxrss`` from ``wait4``. The wrapper's
own peak is reported too (VmHWM): the child's figure cannot be below it, because at
``exec`` the kernel folds the peak of the address space being replaced — the wrapper's,
shared by ``posix_spawn``'s vfork — into the child's.

Usage: python -I -S peak_rss.py OUT_JSON STDOUT_FILE -- command args...
Writes {"exit_code", "wall_s", "peak_rss_kb", "cpu_s", "wrapper_rss_kb"} to OUT_JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time


def _own_peak_kb() -> int:
    """This process's own peak (VmHWM: per address space, so nothing inherited)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    out_json, stdout_file, separator, *command = sys.argv[1:]
    if separator != "--" or not command:
        raise SystemExit(__doc__)
    wrapper_kb = _own_peak_kb()
    with open(stdout_file, "wb") as stdout:
        began = time.perf_counter()
        pid = os.posix_spawn(
            command[0],
            command,
            os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, stdout.fileno(), 1)],
        )
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - began
    with open(out_json, "w", encoding="utf-8") as out:
        json.dump(
            {
                "exit_code": os.waitstatus_to_exitcode(status),
                "wall_s": wall,
                "peak_rss_kb": usage.ru_maxrss,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "wrapper_rss_kb": wrapper_kb,
            },
            out,
        )


if __name__ == "__main__":
    main()
