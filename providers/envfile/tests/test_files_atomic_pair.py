"""The token-file store's two files change together or not at all, on the real file system.

A writer is killed with SIGKILL at every step of a write (a separate process, counting
calls of the system functions a write makes); whatever it left, a reader opening
``access_token`` finds the old token or the new one, ``record.json`` agrees with it, the
store reads as holding that token, and the next write cleans up. A reader holding the
file open across a swap keeps reading what it opened, and a directory written by an older
version (two regular files) is read as it is and converted on the next write. The disk
full and file-size-limit cases run through the CLI in tests/reliability.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from harbor_secrets_envfile import TokenFilesProvider

from harbor_secrets import TokenRecord, WriteOutcome
from harbor_testkit.records import make_record

BASE = datetime(2030, 1, 1, tzinfo=UTC)
KEY = "sandbox/service_provider"
OLD = make_record(issued_at=BASE, token="old-token-" + "o" * 40)
NEW = make_record(60, issued_at=BASE, token="new-token-" + "n" * 40)
LATER = make_record(120, issued_at=BASE, token="later-token-" + "l" * 40)


@pytest.fixture
def tokens(tmp_path: Path) -> Path:
    directory = tmp_path / "tokens"
    directory.mkdir()
    return directory


def write_old_layout(tokens: Path, record: TokenRecord) -> Path:
    """What versions before the linked layout left: two regular files and the lock."""
    folder = tokens / KEY
    folder.mkdir(parents=True)
    (folder / "access_token").write_bytes(record.access_token.reveal().encode())
    (folder / "record.json").write_text(record.to_json())
    (folder / "record.json.lock").touch()
    for path in folder.iterdir():
        path.chmod(0o600)
    return folder


def killed_writing(tokens: Path, record: TokenRecord, function: str, call: int) -> int:
    """Write ``record`` in a new process that kills itself (SIGKILL) at the ``call``-th call
    of ``function`` made by the write; the process's exit status."""
    code = textwrap.dedent(
        f"""
        import os, shutil, signal, sys
        from harbor_secrets import TokenRecord
        from harbor_secrets_envfile import TokenFilesProvider
        record = TokenRecord.from_json(sys.stdin.read())
        provider = TokenFilesProvider({str(tokens)!r})
        module = shutil if {function!r} == "rmtree" else os
        real = getattr(module, {function!r})
        calls = [0]
        def counted(*args, **kwargs):
            calls[0] += 1
            if calls[0] == {call}:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        setattr(module, {function!r}, counted)
        provider.write({KEY!r}, record)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=record.to_json(), text=True, timeout=60, check=False
    )
    return done.returncode


def assert_whole_pair(tokens: Path, allowed: set[str]) -> str:
    """What readers see is one of ``allowed``, and the store agrees: the token it reads."""
    folder = tokens / KEY
    seen = (folder / "access_token").read_text()
    assert seen in allowed
    assert json.loads((folder / "record.json").read_text())["access_token"] == seen
    stored = TokenFilesProvider(tokens).read(KEY)
    assert stored is not None, "the store must not read as empty after a crash"
    assert stored.access_token.reveal() == seen
    return seen


def assert_clean_after_next_write(tokens: Path) -> None:
    assert TokenFilesProvider(tokens).write(KEY, LATER) is WriteOutcome.WRITTEN
    folder = tokens / KEY
    names = sorted(path.name for path in folder.iterdir())
    generations = [name for name in names if name.startswith("..2")]
    assert len(generations) <= 2, names  # the new one and the one before it
    assert sorted(set(names) - set(generations)) == [
        "..data",
        "access_token",
        "record.json",
        "record.json.lock",
    ]
    assert (folder / "access_token").read_text() == LATER.access_token.reveal()


# (function, call): every system call a write makes that a crash can come before. In a
# linked store a write opens, fsyncs each file of the new generation and fsyncs the
# generation; makes the ..data_tmp link and renames it over ..data; then removes the
# generation before the previous one.
LINKED_STEPS = [
    ("fsync", 1),  # the token file of the new generation written, not yet durable
    ("fsync", 2),  # the record file
    ("fsync", 3),  # the generation directory
    ("symlink", 1),  # ..data_tmp about to point at the new generation
    ("replace", 1),  # ..data_tmp about to be renamed over ..data
    ("rmtree", 1),  # swapped; the old generation not yet removed
]


@pytest.mark.parametrize(("function", "call"), LINKED_STEPS)
def test_a_writer_killed_at_any_step_leaves_the_old_pair_or_the_new(
    tokens: Path, function: str, call: int
) -> None:
    provider = TokenFilesProvider(tokens)
    provider.write(KEY, make_record(-60, issued_at=BASE))
    provider.write(KEY, OLD)  # two generations now: the next write prunes one
    assert killed_writing(tokens, NEW, function, call) == -9
    seen = assert_whole_pair(tokens, {OLD.access_token.reveal(), NEW.access_token.reveal()})
    expected = NEW if (function, call) == ("rmtree", 1) else OLD
    assert seen == expected.access_token.reveal()
    assert_clean_after_next_write(tokens)


# Converting an older version's layout: its files become a generation of their own
# (3 fsyncs, then a symlink and a rename), each name becomes a link (a symlink and a rename
# each), then the new generation is written and swapped in as above.
UPGRADE_STEPS = [
    ("fsync", 1),
    ("replace", 1),  # the old files' generation about to become ..data
    ("replace", 2),  # access_token about to become a link
    ("replace", 3),  # record.json about to become a link (access_token already is one)
    ("fsync", 4),  # the new generation being written
    ("replace", 4),  # the new generation about to be swapped in
]


@pytest.mark.parametrize(("function", "call"), UPGRADE_STEPS)
def test_a_writer_killed_while_converting_an_old_layout_leaves_a_whole_pair(
    tokens: Path, function: str, call: int
) -> None:
    write_old_layout(tokens, OLD)
    assert killed_writing(tokens, NEW, function, call) == -9
    assert_whole_pair(tokens, {OLD.access_token.reveal()})
    assert_clean_after_next_write(tokens)


def test_an_old_layout_is_read_as_it_is_and_converted_on_the_next_write(tokens: Path) -> None:
    folder = write_old_layout(tokens, OLD)
    provider = TokenFilesProvider(tokens)
    stored = provider.read(KEY)
    assert stored is not None
    assert stored.access_token.reveal() == OLD.access_token.reveal()
    assert provider.write(KEY, OLD) is WriteOutcome.KEPT_NEWER  # the monotonic rule holds
    assert not (folder / "access_token").is_symlink()  # nothing written, nothing converted
    assert provider.write(KEY, NEW) is WriteOutcome.WRITTEN
    assert os.readlink(folder / "access_token") == "..data/access_token"
    assert os.readlink(folder / "record.json") == "..data/record.json"
    assert (folder / "access_token").read_text() == NEW.access_token.reveal()
    reread = provider.read(KEY)
    assert reread is not None
    assert reread.access_token.reveal() == NEW.access_token.reveal()


def test_a_reader_holding_the_file_open_keeps_what_it_opened(tokens: Path) -> None:
    provider = TokenFilesProvider(tokens)
    provider.write(KEY, OLD)
    with (tokens / KEY / "access_token").open("rb") as held:
        provider.write(KEY, NEW)
        provider.write(KEY, LATER)  # the generation held open is removed now
        assert held.read() == OLD.access_token.reveal().encode()
    assert (tokens / KEY / "access_token").read_text() == LATER.access_token.reveal()


@pytest.mark.parametrize(
    "planted",
    [
        lambda folder: (folder / "..data").symlink_to("/etc"),
        lambda folder: (folder / "..data").symlink_to("..2030_01_01_00_00_00.abc/../.."),
        lambda folder: (folder / "..data").write_text("not a link"),
    ],
    ids=["link-elsewhere", "link-escaping", "regular-file"],
)
def test_a_foreign_data_link_is_refused(tokens: Path, planted: object) -> None:
    folder = tokens / KEY
    folder.mkdir(parents=True)
    assert callable(planted)
    planted(folder)
    provider = TokenFilesProvider(tokens)
    for attempt in (lambda: provider.read(KEY), lambda: provider.write(KEY, NEW)):
        with pytest.raises(Exception, match="not the link to a generation") as caught:
            attempt()
        assert getattr(caught.value, "reason", None) == "symlink"
    assert sorted(path.name for path in folder.iterdir()) == ["..data"]  # refused before locking


def rolled_back(tokens: Path, stale: TokenRecord, record: TokenRecord) -> Path:
    """This version wrote ``stale``; then a rollback to a version before the linked layout:
    its operator removed the links (that version refuses them) and it wrote its two regular
    files, holding ``record``, beside the stale ``..data`` and its generation."""
    TokenFilesProvider(tokens).write(KEY, stale)
    folder = tokens / KEY
    for name in ("access_token", "record.json"):
        (folder / name).unlink()
    (folder / "access_token").write_text(record.access_token.reveal())
    (folder / "record.json").write_text(record.to_json())
    return folder


@pytest.mark.parametrize(("function", "call"), UPGRADE_STEPS)
def test_after_a_rollback_the_regular_files_written_later_win(
    tokens: Path, function: str, call: int
) -> None:
    """Upgraded again: the old version's files (NEW) are newer than the generation ..data
    still points to (OLD). A write killed at any step of converting them leaves readers
    NEW, never the stale OLD; the next write cleans up."""
    folder = rolled_back(tokens, OLD, NEW)
    provider = TokenFilesProvider(tokens)
    stored = provider.read(KEY)
    assert stored is not None
    assert stored.access_token.reveal() == NEW.access_token.reveal()
    assert provider.write(KEY, OLD) is WriteOutcome.KEPT_NEWER  # compared with NEW
    assert killed_writing(tokens, LATER, function, call) == -9
    assert_whole_pair(tokens, {NEW.access_token.reveal()})
    assert_clean_after_next_write(tokens)
    assert OLD.access_token.reveal() not in {
        (generation / "access_token").read_text()
        for generation in folder.iterdir()
        if generation.name.startswith("..2")
    }, "the stale generation outlived the next write"


def test_regular_files_older_than_the_generation_lose_to_it(tokens: Path) -> None:
    """What a write killed between linking the two names leaves: one name a link, the
    other still the regular file the conversion adopted, written before the generation.
    Whatever the layout, the later-written content is what the store holds."""
    folder = rolled_back(tokens, NEW, OLD)
    an_hour_ago = time.time() - 3600
    for name in ("access_token", "record.json"):
        os.utime(folder / name, (an_hour_ago, an_hour_ago))
    provider = TokenFilesProvider(tokens)
    stored = provider.read(KEY)
    assert stored is not None
    assert stored.access_token.reveal() == NEW.access_token.reveal()
    assert provider.write(KEY, NEW) is WriteOutcome.KEPT_NEWER
    assert provider.write(KEY, LATER) is WriteOutcome.WRITTEN
    assert (folder / "access_token").read_text() == LATER.access_token.reveal()
