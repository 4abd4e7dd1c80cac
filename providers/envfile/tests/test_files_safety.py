"""The token-file store: layout, modes, symlinks, crashes mid-write and overlapping writers.

Readers open ``access_token`` on every use, so every state a reader can observe must be a
whole token: the old one or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from harbor_secrets_envfile import TokenFilesProvider

from harbor_secrets import ConfigError, StoreError, WriteOutcome
from harbor_secrets.config import Job
from harbor_secrets.testing import sink_from_options
from harbor_testkit.records import make_record

BASE = datetime(2030, 1, 1, tzinfo=UTC)
KEY = "sandbox/service_provider"


@pytest.fixture
def tokens(tmp_path: Path) -> Path:
    directory = tmp_path / "tokens"
    directory.mkdir()
    return directory


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def test_layout_is_one_directory_per_token_with_the_raw_token(
    tokens: Path, umask: Callable[[int], int]
) -> None:
    umask(0)
    record = make_record(issued_at=BASE, token="raw-token-value")
    assert TokenFilesProvider(tokens).write(KEY, record) is WriteOutcome.WRITTEN
    folder = tokens / "sandbox" / "service_provider"
    assert (folder / "access_token").read_bytes() == b"raw-token-value"  # no newline
    assert json.loads((folder / "record.json").read_text()) == record.to_dict()
    for path in (folder / "access_token", folder / "record.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the file the link leads to
    [generation] = [p.name for p in folder.iterdir() if p.name.startswith("..2")]
    for path in (tokens / "sandbox", folder, folder / generation):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    # The kubelet's layout: both files in one generation, swapped by one link.
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [generation, "..data", "access_token", "record.json", "record.json.lock"]
    )
    assert os.readlink(folder / "..data") == generation
    assert os.readlink(folder / "access_token") == "..data/access_token"
    assert os.readlink(folder / "record.json") == "..data/record.json"
    assert sorted(p.name for p in (folder / generation).iterdir()) == [
        "access_token",
        "record.json",
    ]


def test_group_readable_mode_makes_group_searchable_directories(tokens: Path) -> None:
    TokenFilesProvider(tokens, file_mode=0o640).write(KEY, make_record(issued_at=BASE))
    assert stat.S_IMODE((tokens / "sandbox").stat().st_mode) == 0o750
    assert stat.S_IMODE((tokens / KEY / "access_token").stat().st_mode) == 0o640


def test_the_default_template_and_location(tokens: Path) -> None:
    sink = sink_from_options(TokenFilesProvider, {"directory": str(tokens)})
    key = sink.key_for(Job("main", "sandbox", "tower_access", ("test",)))
    assert key == "sandbox/tower_access"
    assert sink.provider.location(key) == str(tokens / "sandbox" / "tower_access" / "access_token")


@pytest.mark.parametrize("template", ["../{scope}", "/abs/{scope}", "a//{scope}", "."])
def test_a_template_leaving_the_directory_is_a_config_error(tokens: Path, template: str) -> None:
    sink = sink_from_options(TokenFilesProvider, {"directory": str(tokens), "path": template})
    with pytest.raises(ConfigError) as caught:
        sink.key_for(Job("main", "sandbox", "tower_access", ("test",)))
    assert caught.value.key == "sinks.test.path"
    assert caught.value.exit_code == 2


def test_a_symlinked_token_directory_is_refused_and_its_target_untouched(
    tokens: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tokens / "sandbox").symlink_to(elsewhere)
    provider = TokenFilesProvider(tokens)
    with pytest.raises(StoreError, match="symbolic link") as caught:
        provider.write(KEY, make_record(issued_at=BASE))
    assert caught.value.reason == "symlink"
    with pytest.raises(StoreError, match="symbolic link"):
        provider.read(KEY)
    assert list(elsewhere.iterdir()) == []


def test_a_symlinked_token_file_is_refused(tokens: Path, tmp_path: Path) -> None:
    folder = tokens / "sandbox" / "service_provider"
    folder.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (folder / "access_token").symlink_to(victim)
    with pytest.raises(StoreError, match="symbolic link"):
        TokenFilesProvider(tokens).write(KEY, make_record(issued_at=BASE))
    assert victim.read_text() == "keep"


def test_a_missing_base_directory_is_not_created(tmp_path: Path) -> None:
    provider = TokenFilesProvider(tmp_path / "typo")
    with pytest.raises(StoreError, match="does not exist") as caught:
        provider.write(KEY, make_record(issued_at=BASE))
    assert caught.value.reason == "missing-directory"
    assert not (tmp_path / "typo").exists()
    assert "does not exist" in provider.warnings(__import__("harbor_secrets").RefreshPolicy())[0]


def test_older_and_equal_records_are_refused_and_the_files_unchanged(tokens: Path) -> None:
    provider = TokenFilesProvider(tokens)
    newer = make_record(60, issued_at=BASE, token="newer")
    provider.write(KEY, newer)
    before = (tokens / KEY / "access_token").stat().st_ino
    assert (
        provider.write(KEY, make_record(issued_at=BASE, token="older")) is WriteOutcome.KEPT_NEWER
    )
    assert provider.write(KEY, make_record(60, issued_at=BASE, token="same")) is (
        WriteOutcome.KEPT_NEWER
    )
    assert (tokens / KEY / "access_token").read_bytes() == b"newer"
    assert (tokens / KEY / "access_token").stat().st_ino == before  # not even rewritten


def test_a_crash_between_the_two_files_reads_as_due_and_is_repaired(tokens: Path) -> None:
    """Token written, record not: the old record must not vouch for the new token."""
    provider = TokenFilesProvider(tokens)
    provider.write(KEY, make_record(issued_at=BASE, token="first"))
    (tokens / KEY / "access_token").write_bytes(b"second")  # as if the record never followed
    assert provider.read(KEY) is None  # due: the next sync rewrites both
    repaired = make_record(30, issued_at=BASE, token="third")
    assert provider.write(KEY, repaired) is WriteOutcome.WRITTEN
    stored = provider.read(KEY)
    assert stored is not None
    assert stored.access_token.reveal() == "third"


def test_a_process_killed_mid_write_leaves_whole_files(tokens: Path) -> None:
    """SIGKILL after the token's temporary file is written but before its rename."""
    TokenFilesProvider(tokens).write(KEY, make_record(issued_at=BASE, token="old-token"))
    code = textwrap.dedent(
        f"""
        import os, signal
        from datetime import UTC, datetime
        from harbor_secrets_envfile import TokenFilesProvider
        from harbor_testkit.records import make_record
        real = os.replace
        def die(source, target, *a, **k):
            os.kill(os.getpid(), signal.SIGKILL)
        os.replace = die
        TokenFilesProvider({str(tokens)!r}).write(
            {KEY!r}, make_record(60, issued_at=datetime(2030, 1, 1, tzinfo=UTC), token="new")
        )
        """
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    assert result.returncode == -9
    folder = tokens / KEY
    assert (folder / "access_token").read_bytes() == b"old-token"
    stored = TokenFilesProvider(tokens).read(KEY)
    assert stored is not None
    assert stored.access_token.reveal() == "old-token"


def test_readers_never_see_a_partial_token_while_writers_overlap(tokens: Path) -> None:
    """Two writers race; a reader opening access_token in a loop sees only whole tokens."""
    tokens_written = {f"tok-{'x' * 2000}-{n:04d}" for n in range(60)}
    stop = threading.Event()
    seen: set[bytes] = set()
    path = tokens / KEY / "access_token"

    def read_loop() -> None:
        while not stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                seen.add(path.read_bytes())

    def write(parity: int) -> None:
        provider = TokenFilesProvider(tokens)
        for n in range(parity, 60, 2):
            provider.write(KEY, make_record(n, issued_at=BASE, token=f"tok-{'x' * 2000}-{n:04d}"))

    reader = threading.Thread(target=read_loop)
    reader.start()
    writers = [threading.Thread(target=write, args=(parity,)) for parity in (0, 1)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=60)
    stop.set()
    reader.join(timeout=10)
    assert seen, "the reader saw nothing"
    assert {value.decode() for value in seen} <= tokens_written
    final = TokenFilesProvider(tokens).read(KEY)
    assert final is not None
    assert final.expires_at == BASE + timedelta(seconds=59 + 300)
