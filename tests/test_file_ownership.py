"""Whose file decides the group of the next one: only a file the writer's own user owns.

Anyone who can write a store's directory can plant files in it (her own env file, her own
token generation with ``..data`` pointing at it). Were the group of whatever sits there
kept, root's next sync would write the token with her group and ``file_mode = "0640"``, and
she would read it. So a write keeps the group only of a file (or generation) the writer's
user owns, found through descriptors that follow no link; otherwise the directory's setgid
bit, or the writer's group, decides. A generation the writer did not make is never removed
and never kept in place of its own previous one. The same rule carries the readers' group
across the conversion of an older version's layout (two regular files), also when the
write after the conversion fails.

Real files, real owners: the tests run as root and give files numeric uids and gids that
need no account (``MALLORY``, ``READERS``); a reader is a real process (``setpriv``).
"""

from __future__ import annotations

import grp
import os
import stat
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from harbor_secrets_envfile import EnvFileProvider, TokenFilesProvider

from harbor_secrets import RefreshPolicy, StoreError, TokenRecord, WriteOutcome
from harbor_testkit.records import make_record

MALLORY = 4243  # a local user (and her group) who can write the store's directory
READERS = 4242  # the group of the service that reads the tokens
NOBODY = 65534
BASE = datetime(2030, 1, 1, tzinfo=UTC)
KEY = "sandbox/service_provider"
ENV_KEY = "HARBOR_SANDBOX_SERVICE_PROVIDER"
PLANTED = "..2020_01_01_00_00_00.mal"


def group_of(path: Path) -> int:
    return path.stat().st_gid  # through the links: the file a reader opens


def reader_can_read(path: Path, groups: int) -> subprocess.CompletedProcess[str]:
    """``cat path`` as the unprivileged user with ``groups`` as its supplementary group."""
    as_reader = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", f"--groups={groups}"]
    return subprocess.run(
        [*as_reader, "cat", str(path)], capture_output=True, text=True, timeout=30, check=False
    )


# -- item 1: a planted file never chooses the group ---------------------------------------


def test_a_planted_env_file_does_not_give_its_group_to_the_token(tmp_path: Path) -> None:
    path = tmp_path / "harbor.env"
    path.write_text("OTHER='kept'\n")
    os.chown(path, MALLORY, MALLORY)  # her own file, in place of the store's
    path.chmod(0o640)
    record = make_record(issued_at=BASE, token="secret-token-" + "s" * 30)
    assert EnvFileProvider(path, file_mode=0o640).write(ENV_KEY, record) is WriteOutcome.WRITTEN
    info = path.stat()
    assert (info.st_uid, info.st_gid) == (os.geteuid(), os.getegid()), "her group was kept"
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert "OTHER='kept'" in path.read_text()


def test_the_writers_own_env_file_keeps_its_group(tmp_path: Path) -> None:
    path = tmp_path / "harbor.env"
    path.write_text("")
    os.chown(path, -1, READERS)  # an operator's chgrp of the writer's own file
    EnvFileProvider(path, file_mode=0o640).write(ENV_KEY, make_record(issued_at=BASE))
    assert group_of(path) == READERS


def test_without_a_file_of_its_own_the_directorys_setgid_group_decides(tmp_path: Path) -> None:
    os.chown(tmp_path, -1, READERS)
    tmp_path.chmod(0o2755)
    path = tmp_path / "harbor.env"
    path.write_text("")
    os.chown(path, MALLORY, MALLORY)
    EnvFileProvider(path, file_mode=0o640).write(ENV_KEY, make_record(issued_at=BASE))
    assert group_of(path) == READERS
    tokens = tmp_path / "tokens"
    tokens.mkdir()  # inherits the group and the setgid bit
    TokenFilesProvider(tokens, file_mode=0o640).write(KEY, make_record(issued_at=BASE))
    for path in (tokens / "sandbox", tokens / KEY, tokens / KEY / "..data"):
        assert group_of(path) == READERS, path  # each directory passes it on
    for name in ("access_token", "record.json"):
        assert group_of(tokens / KEY / name) == READERS, name


def test_config_check_says_the_group_of_someone_elses_file_is_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "harbor.env"
    path.write_text("")
    os.chown(path, MALLORY, MALLORY)
    path.chmod(0o600)
    notes = EnvFileProvider(path).warnings(RefreshPolicy())
    assert [note for note in notes if "belongs to user" in note] == [
        f"{path} belongs to user {MALLORY}, not to the user running harbor-secrets, so a "
        f"write does not keep its group {MALLORY} (a file someone else put there chooses no "
        f"reader): it gets group {grp.getgrgid(os.getegid()).gr_name} ({os.getegid()}) "
        "(chown the file to the user running harbor-secrets, or give the directory the "
        "setgid bit and the readers' group)"
    ]


def test_a_directory_someone_else_owns_is_refused_for_writing_not_for_reading(
    tmp_path: Path,
) -> None:
    """Her own setgid directory in place of ``sandbox``: every file written below it would
    get her group."""
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    os.chown(sandbox, MALLORY, MALLORY)
    sandbox.chmod(0o2777)
    provider = TokenFilesProvider(tmp_path, file_mode=0o640)
    with pytest.raises(StoreError) as caught:
        provider.write(KEY, make_record(issued_at=BASE))
    assert caught.value.reason == "foreign-owner"
    assert f"refusing to write in {sandbox}: it belongs to user {MALLORY}" in str(caught.value)
    assert list(sandbox.iterdir()) == []
    refused = provider.cannot_write(KEY)  # config check and the engine know it offline
    assert refused is not None
    assert refused.reason == "foreign-owner"
    assert provider.read(KEY) is None  # readers are not the writer: reading is not refused


def plant_generation(folder: Path, record: TokenRecord) -> Path:
    """What mallory does: a generation of her own files, and ``..data`` pointing at it."""
    planted = folder / PLANTED
    planted.mkdir()
    (planted / "access_token").write_text(record.access_token.reveal())
    (planted / "record.json").write_text(record.to_json())
    for path in (planted, planted / "access_token", planted / "record.json"):
        os.chown(path, MALLORY, MALLORY)
        path.chmod(0o750 if path.is_dir() else 0o640)
    (folder / "..data.mal").symlink_to(PLANTED)
    os.chown(folder / "..data.mal", MALLORY, MALLORY, follow_symlinks=False)
    os.replace(folder / "..data.mal", folder / "..data")
    return planted


def generations(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("..2"))


def test_a_planted_generation_chooses_no_group_and_is_neither_removed_nor_kept_as_previous(
    tmp_path: Path,
) -> None:
    provider = TokenFilesProvider(tmp_path, file_mode=0o640)
    provider.write(KEY, make_record(-120, issued_at=BASE))
    provider.write(KEY, make_record(-60, issued_at=BASE))
    folder = tmp_path / KEY
    real_previous = os.readlink(folder / "..data")
    planted = plant_generation(folder, make_record(-90, issued_at=BASE, token="planted"))

    assert provider.write(KEY, make_record(issued_at=BASE)) is WriteOutcome.WRITTEN
    current = os.readlink(folder / "..data")
    assert current not in (PLANTED, real_previous)
    for path in (folder / current, folder / "access_token", folder / "record.json"):
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (0, os.getegid()), f"{path}: her group was kept"
    # Hers is left alone (not ours to remove); ours before it is the one kept for readers.
    assert generations(folder) == sorted([PLANTED, real_previous, current])
    assert (planted / "access_token").read_text() == "planted"

    provider.write(KEY, make_record(60, issued_at=BASE))
    assert generations(folder) == sorted([PLANTED, current, os.readlink(folder / "..data")])


def test_a_foreign_generation_is_never_pruned(tmp_path: Path) -> None:
    provider = TokenFilesProvider(tmp_path)
    provider.write(KEY, make_record(-60, issued_at=BASE))
    folder = tmp_path / KEY
    stray = folder / "..2021_01_01_00_00_00.abc"
    stray.mkdir()
    (stray / "keep").write_text("hers")
    os.chown(stray, MALLORY, MALLORY)
    for seconds in (0, 60, 120):
        provider.write(KEY, make_record(seconds, issued_at=BASE))
    assert (stray / "keep").read_text() == "hers"
    assert len(generations(folder)) == 3  # hers, ours and our previous one


# -- item 2: converting an older version's layout keeps the readers' group ----------------


def write_old_layout(tokens: Path, record: TokenRecord) -> Path:
    """Two regular files, ``root:READERS 0640``, as versions before the linked layout left."""
    folder = tokens / KEY
    folder.mkdir(parents=True)
    for directory in (tokens / "sandbox", folder):
        directory.chmod(0o755)
    (folder / "access_token").write_text(record.access_token.reveal())
    (folder / "record.json").write_text(record.to_json())
    for name in ("access_token", "record.json"):
        os.chown(folder / name, 0, READERS)
        (folder / name).chmod(0o640)
    return folder


def assert_readers_keep_access(folder: Path, token: str) -> None:
    generation = folder / os.readlink(folder / "..data")
    for path in (generation, folder / "access_token", folder / "record.json"):
        assert group_of(path) == READERS, path
    read = reader_can_read(folder / "access_token", READERS)
    assert read.returncode == 0, read.stderr
    assert read.stdout == token


def test_converting_an_old_layout_keeps_the_readers_group(shared_directory: Path) -> None:
    old = make_record(-60, issued_at=BASE, token="old-" + "o" * 40)
    new = make_record(issued_at=BASE, token="new-" + "n" * 40)
    folder = write_old_layout(shared_directory, old)
    assert reader_can_read(folder / "access_token", READERS).returncode == 0
    provider = TokenFilesProvider(shared_directory, file_mode=0o640)
    assert provider.write(KEY, new) is WriteOutcome.WRITTEN
    assert_readers_keep_access(folder, new.access_token.reveal())


def test_a_write_failing_after_the_conversion_leaves_the_readers_their_group(
    shared_directory: Path,
) -> None:
    """``prlimit --fsize``: the old (short) files convert, the new token (long) does not fit."""
    old = make_record(-60, issued_at=BASE, token="old-token")
    folder = write_old_layout(shared_directory, old)
    limit = (folder / "record.json").stat().st_size + 100
    new = make_record(issued_at=BASE, token="new-" + "n" * (limit + 100))
    script = textwrap.dedent(
        f"""
        import sys
        from harbor_secrets import StoreError, TokenRecord
        from harbor_secrets_envfile import TokenFilesProvider
        record = TokenRecord.from_json(sys.stdin.read())
        try:
            TokenFilesProvider({str(shared_directory)!r}, file_mode=0o640).write({KEY!r}, record)
        except StoreError as error:
            print(error.reason)
        """
    )
    done = subprocess.run(
        ["prlimit", f"--fsize={limit}", "--", sys.executable, "-c", script],
        input=new.to_json(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.strip() == "file-size-limit", done.stdout + done.stderr
    assert os.readlink(folder / "access_token") == "..data/access_token"  # converted
    assert_readers_keep_access(folder, old.access_token.reveal())
