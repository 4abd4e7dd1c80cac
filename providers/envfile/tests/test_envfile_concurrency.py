"""Many writers, one file: processes and threads never lose an update or go backwards."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dotenv import dotenv_values
from harbor_secrets_envfile import EnvFileProvider

from harbor_secrets import WriteOutcome, format_time
from harbor_secrets.testing.contract import make_record_factory

KEY = "HARBOR_SANDBOX_SERVICE_PROVIDER"
BASE = datetime(2030, 1, 1, tzinfo=UTC)
PROCESSES = 4
WRITES = 20

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from harbor_secrets.testing.contract import make_record_factory
    from harbor_secrets_envfile import EnvFileProvider

    path, index, processes, writes = sys.argv[1], *map(int, sys.argv[2:])
    base = datetime(2030, 1, 1, tzinfo=UTC)
    factory = make_record_factory("sandbox", base)
    provider = EnvFileProvider(path)
    sys.stdin.readline()  # start together
    outcomes = []
    for step in range(writes):
        offset = step * processes + index + 1  # interleaved across processes
        record = factory(issued_at=base + timedelta(seconds=offset), token=f"p{index}-s{step}")
        outcomes.append(provider.write("HARBOR_SANDBOX_SERVICE_PROVIDER", record).value)
        seen = provider.read("HARBOR_SANDBOX_SERVICE_PROVIDER")
        assert seen is not None and seen.expires_at >= record.expires_at, "went backwards"
    late = provider.write("HARBOR_SANDBOX_SERVICE_PROVIDER", factory(token="late-and-old"))
    print(late.value, outcomes.count("written"))
    """
)


def test_processes_writing_concurrently_leave_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "harbor.env"
    path.write_text("# header kept\nOTHER='x'\n")
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(i), str(PROCESSES), str(WRITES)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    results = [child.communicate(timeout=60) for child in children]
    assert [child.returncode for child in children] == [0] * PROCESSES, results
    lates = [stdout.split()[0] for stdout, _ in results]
    assert lates == [WriteOutcome.KEPT_NEWER.value] * PROCESSES
    assert sum(int(stdout.split()[1]) for stdout, _ in results) >= 1

    newest = PROCESSES * WRITES  # offset of the last step of the last process
    record = EnvFileProvider(path).read(KEY)
    assert record is not None
    assert record.access_token.reveal() == f"p{PROCESSES - 1}-s{WRITES - 1}"
    assert record.expires_at == BASE + timedelta(seconds=newest + 300)
    values = dotenv_values(path)
    assert values == {
        "OTHER": "x",
        f"{KEY}_ACCESS_TOKEN": f"p{PROCESSES - 1}-s{WRITES - 1}",
        f"{KEY}_EXPIRES_AT": format_time(BASE + timedelta(seconds=newest + 300)),
    }
    assert path.read_text().startswith("# header kept\nOTHER='x'\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["harbor.env", "harbor.env.lock"]


def test_threads_writing_different_keys_to_one_file_lose_nothing(tmp_path: Path) -> None:
    """The sync engine writes many keys to one file from a pool: no update may be lost."""
    path = tmp_path / "harbor.env"
    factory = make_record_factory("sandbox", BASE)
    threads, keys_each = 8, 15
    failures: list[BaseException] = []

    def run(thread: int) -> None:
        provider = EnvFileProvider(path)  # per-thread instances, like separate sinks
        try:
            for number in range(keys_each):
                key = f"HARBOR_T{thread}_K{number}"
                outcome = provider.write(key, factory(token=f"tok-{thread}-{number}"))
                assert outcome is WriteOutcome.WRITTEN
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not failures, failures[0]
    values = dotenv_values(path)
    assert len(values) == threads * keys_each * 2
    for thread in range(threads):
        for number in range(keys_each):
            assert values[f"HARBOR_T{thread}_K{number}_ACCESS_TOKEN"] == f"tok-{thread}-{number}"
