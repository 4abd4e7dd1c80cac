"""Failures leave the file as it was: symlinks, odd targets, permissions, full disks, locks."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from harbor_secrets_envfile import EnvFileProvider

from harbor_secrets import RefreshPolicy, StoreError, WriteOutcome
from harbor_secrets.testing.contract import make_record_factory

KEY = "HARBOR_SANDBOX_SERVICE_PROVIDER"
BASE = datetime(2030, 1, 1, tzinfo=UTC)
ORIGINAL = b"# hand-written\nOTHER='keep me'\nHARBOR_SANDBOX_SERVICE_PROVIDER_ACCESS_TOKEN='old'\n"
new_record = make_record_factory("sandbox", BASE)


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / "harbor.env"
    path.write_bytes(ORIGINAL)
    path.chmod(0o600)
    return path


def _debris(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def _canary() -> str:
    return f"canary-{uuid.uuid4().hex}"


# -- targets that must be refused ------------------------------------------------------


def test_symlink_target_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.env"
    target.write_bytes(ORIGINAL)
    link = tmp_path / "harbor.env"
    link.symlink_to(target)
    provider = EnvFileProvider(link)
    with pytest.raises(StoreError, match="symbolic link") as caught:
        provider.write(KEY, new_record())
    assert caught.value.reason == "symlink"
    with pytest.raises(StoreError, match="symbolic link"):
        provider.read(KEY)
    assert link.is_symlink()
    assert os.readlink(link) == str(target)
    assert target.read_bytes() == ORIGINAL
    assert any("symbolic link" in advice for advice in provider.warnings(RefreshPolicy()))


def test_dangling_symlink_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "harbor.env"
    link.symlink_to(tmp_path / "does-not-exist")
    with pytest.raises(StoreError, match="symbolic link"):
        EnvFileProvider(link).write(KEY, new_record())
    assert not (tmp_path / "does-not-exist").exists()


def test_symlinked_lock_file_is_refused(env_file: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    env_file.with_name("harbor.env.lock").symlink_to(victim)
    with pytest.raises(StoreError, match="symbolic link"):
        EnvFileProvider(env_file).write(KEY, new_record())
    assert not victim.exists()
    assert env_file.read_bytes() == ORIGINAL


def test_directory_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory") as caught:
        EnvFileProvider(tmp_path).write(KEY, new_record())
    assert caught.value.reason == "not-a-file"
    with pytest.raises(StoreError, match="is a directory"):
        EnvFileProvider(tmp_path).read(KEY)


def test_a_file_too_large_for_an_env_file_is_refused_unread(tmp_path: Path) -> None:
    """Neither a reader nor a sync loads hundreds of MiB into memory: the read stops at the
    limit (16 MiB), and the file is left as it is."""
    huge = tmp_path / "harbor.env"
    with huge.open("wb") as handle:
        handle.truncate(16 * 1024 * 1024 + 1)  # sparse: cheap to make, every byte a NUL
    before = huge.stat()
    for attempt in (
        lambda: EnvFileProvider(huge).read(KEY),
        lambda: EnvFileProvider(huge).write(KEY, new_record()),
    ):
        with pytest.raises(StoreError, match="larger than 16 MiB") as caught:
            attempt()
        assert caught.value.reason == "too-large"
    after = huge.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    assert _debris(tmp_path) == []


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "harbor.env"
    os.mkfifo(fifo)
    with pytest.raises(StoreError, match="not a regular file"):
        EnvFileProvider(fifo).read(KEY)
    with pytest.raises(StoreError, match="not a regular file"):
        EnvFileProvider(fifo).write(KEY, new_record())


def test_missing_directory_is_an_error_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "harbor.env"
    provider = EnvFileProvider(path)
    assert provider.read(KEY) is None
    with pytest.raises(StoreError, match="does not exist") as caught:
        provider.write(KEY, new_record())
    assert caught.value.reason == "missing-directory"
    assert f"mkdir -p {path.parent}" in str(caught.value)
    assert not path.parent.exists()


# -- modes -------------------------------------------------------------------------------


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """Set the process umask for one test, restoring it afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(previous)


@pytest.mark.parametrize("mask", [0o000, 0o077, 0o022])
@pytest.mark.parametrize("existing_mode", [None, 0o644, 0o666])
def test_file_is_0600_whatever_the_umask_or_previous_mode(
    tmp_path: Path, umask: Callable[[int], None], mask: int, existing_mode: int | None
) -> None:
    path = tmp_path / "harbor.env"
    if existing_mode is not None:
        path.write_bytes(ORIGINAL)
        path.chmod(existing_mode)
    umask(mask)
    assert EnvFileProvider(path).write(KEY, new_record()) is WriteOutcome.WRITTEN
    assert path.stat().st_mode & 0o7777 == 0o600
    assert path.with_name("harbor.env.lock").stat().st_mode & 0o077 == 0


def test_file_mode_option_is_honoured(tmp_path: Path, umask: Callable[[int], None]) -> None:
    umask(0o077)
    path = tmp_path / "harbor.env"
    EnvFileProvider(path, file_mode=0o640).write(KEY, new_record())
    assert path.stat().st_mode & 0o7777 == 0o640


# -- failures in the middle of a write -------------------------------------------------


def _failing(code: int) -> Callable[..., object]:
    def fail(*args: object, **kwargs: object) -> object:
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize(
    ("function", "code", "reason"),
    [
        ("write", errno.ENOSPC, "no-space"),
        ("fsync", errno.ENOSPC, "no-space"),
        ("fsync", errno.EIO, "io"),
        ("fchmod", errno.EPERM, "permission"),
        ("replace", errno.EACCES, "permission"),
    ],
)
def test_failure_mid_write_leaves_file_untouched_and_no_debris(
    env_file: Path, monkeypatch: pytest.MonkeyPatch, function: str, code: int, reason: str
) -> None:
    token = _canary()
    provider = EnvFileProvider(env_file)
    with monkeypatch.context() as patch:
        patch.setattr(os, function, _failing(code))
        with pytest.raises(StoreError) as caught:
            provider.write(KEY, new_record(token=token))
    assert caught.value.reason == reason
    assert str(env_file) in str(caught.value)
    assert token not in str(caught.value)
    assert env_file.read_bytes() == ORIGINAL
    assert _debris(env_file.parent) == []
    assert provider.write(KEY, new_record()) is WriteOutcome.WRITTEN  # and recovers


def _write_as_unprivileged(path: Path) -> subprocess.CompletedProcess[str]:
    """Attempt a write in a child that cannot bypass file permissions (root drops caps)."""
    code = textwrap.dedent(
        f"""
        from datetime import UTC, datetime
        from harbor_secrets import StoreError
        from harbor_secrets.testing.contract import make_record_factory
        from harbor_secrets_envfile import EnvFileProvider
        record = make_record_factory("sandbox", datetime(2030, 1, 1, tzinfo=UTC))()
        try:
            EnvFileProvider({str(path)!r}).write({KEY!r}, record)
        except StoreError as exc:
            print(exc.reason, exc, sep="|")
        """
    )
    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:  # root ignores directory permissions unless it drops these
        command = [
            "setpriv",
            "--bounding-set=-dac_override,-dac_read_search,-fowner",
            "--",
            *command,
        ]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)


def test_read_only_directory_is_a_store_error_and_file_unchanged(env_file: Path) -> None:
    env_file.with_name("harbor.env.lock").touch(mode=0o600)  # the lock may already exist
    directory = env_file.parent
    directory.chmod(0o555)
    try:
        result = _write_as_unprivileged(env_file)
    finally:
        directory.chmod(0o755)
    reason, _, message = result.stdout.strip().partition("|")
    assert reason == "permission", result.stdout + result.stderr
    assert "temporary file" in message
    assert env_file.read_bytes() == ORIGINAL
    assert _debris(directory) == []


# -- unrepresentable values ------------------------------------------------------------


@pytest.mark.parametrize("shape", ["line\nbreak {}", "nul\x00{}", "it's ${}", "${{HOME}}{}"])
def test_unrepresentable_token_is_refused_without_leaking_it(env_file: Path, shape: str) -> None:
    token = shape.format(_canary())
    with pytest.raises(StoreError) as caught:
        EnvFileProvider(env_file).write(KEY, new_record(token=token))
    assert caught.value.reason == "unrepresentable"
    assert token not in str(caught.value)
    assert "canary" not in str(caught.value)
    assert env_file.read_bytes() == ORIGINAL
    assert not env_file.with_name("harbor.env.lock").exists()  # refused before locking


# -- locking ------------------------------------------------------------------------------


def test_lock_held_by_another_process_times_out_clearly(env_file: Path) -> None:
    lock_path = env_file.with_name("harbor.env.lock")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            f"f = open({str(lock_path)!r}, 'a')\n"
            "fcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        provider = EnvFileProvider(env_file, lock_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"timed out after 0\.3s waiting for the lock") as err:
            provider.write(KEY, new_record())
        elapsed = time.monotonic() - started
    finally:
        holder.communicate(input="", timeout=10)
    assert err.value.reason == "lock-timeout"
    assert "lock_timeout" in str(err.value)
    assert 0.3 <= elapsed < 3
    assert env_file.read_bytes() == ORIGINAL
    assert provider.write(KEY, new_record()) is WriteOutcome.WRITTEN  # released: works again


def test_reads_do_not_wait_for_the_lock(env_file: Path) -> None:
    EnvFileProvider(env_file).write(KEY, new_record(token="tok-current"))
    with open(env_file.with_name("harbor.env.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        record = EnvFileProvider(env_file, lock_timeout=0).read(KEY)
    assert record is not None
    assert record.access_token.reveal() == "tok-current"


# -- what read() makes of existing content ---------------------------------------------


def _file_with(path: Path, body: str) -> EnvFileProvider:
    path.write_text(body)
    return EnvFileProvider(path)


def test_unparseable_expiry_reads_as_due_and_is_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "harbor.env"
    provider = _file_with(
        path, f"{KEY}_ACCESS_TOKEN='tok-hand-edited'\n{KEY}_EXPIRES_AT='next tuesday'\n"
    )
    with caplog.at_level(logging.WARNING, logger="harbor_secrets.envfile"):
        assert provider.read(KEY) is None
    assert f"{KEY}_EXPIRES_AT" in caplog.text
    assert "tok-hand-edited" not in caplog.text
    assert provider.write(KEY, new_record(token="tok-fresh")) is WriteOutcome.WRITTEN
    stored = provider.read(KEY)
    assert stored is not None
    assert stored.access_token.reveal() == "tok-fresh"
    assert path.read_text().count("_ACCESS_TOKEN") == 1


@pytest.mark.parametrize(
    "body",
    [
        "",
        f"{KEY}_ACCESS_TOKEN='tok'\n",
        f"{KEY}_EXPIRES_AT='2030-01-01T00:05:00Z'\n",
        f"{KEY}_ACCESS_TOKEN=''\n{KEY}_EXPIRES_AT='2030-01-01T00:05:00Z'\n",
        f"{KEY}_ACCESS_TOKEN='unterminated\n{KEY}_EXPIRES_AT='2030-01-01T00:05:00Z'\n",
    ],
)
def test_incomplete_records_read_as_none(tmp_path: Path, body: str) -> None:
    assert _file_with(tmp_path / "harbor.env", body).read(KEY) is None


def test_hand_written_forms_are_read(tmp_path: Path) -> None:
    provider = _file_with(
        tmp_path / "harbor.env",
        f'export {KEY}_ACCESS_TOKEN="tok \\"quoted\\""  # note\n'
        f"{KEY}_EXPIRES_AT=2030-01-01T00:05:00+00:00\n",
    )
    record = provider.read(KEY)
    assert record is not None
    assert record.access_token.reveal() == 'tok "quoted"'
    assert record.expires_at == BASE + timedelta(seconds=300)
    assert record.issued_at == record.expires_at  # not stored: expires_in reads 0


def test_write_keeps_unrelated_bytes_and_updates_every_copy(tmp_path: Path) -> None:
    original = (
        b"\xef\xbb\xbf# BOM, then a comment\r\n"
        b"export HARBOR_SANDBOX_SERVICE_PROVIDER_ACCESS_TOKEN='old-1' # first\n"
        b"RAW=\xff\xfe not utf-8\n"
        b"\n"
        b"HARBOR_SANDBOX_SERVICE_PROVIDER_ACCESS_TOKEN='old-2'\n"
        b"LAST=1"
    )
    path = tmp_path / "harbor.env"
    path.write_bytes(original)
    EnvFileProvider(path).write(KEY, new_record(token="tok-new"))
    assert path.read_bytes() == (
        b"\xef\xbb\xbf# BOM, then a comment\r\n"
        b"export HARBOR_SANDBOX_SERVICE_PROVIDER_ACCESS_TOKEN='tok-new'\n"
        b"RAW=\xff\xfe not utf-8\n"
        b"\n"
        b"HARBOR_SANDBOX_SERVICE_PROVIDER_ACCESS_TOKEN='tok-new'\n"
        # the new variable goes beside its token's; the lines around it stay in place
        b"HARBOR_SANDBOX_SERVICE_PROVIDER_EXPIRES_AT='2030-01-01T00:05:00Z'\n"
        b"LAST=1\n"
    )


def test_kept_newer_does_not_rewrite_the_file(env_file: Path) -> None:
    provider = EnvFileProvider(env_file)
    provider.write(KEY, new_record(issued_at=BASE + timedelta(seconds=60)))
    inode = env_file.stat().st_ino
    before = env_file.read_bytes()
    assert provider.write(KEY, new_record()) is WriteOutcome.KEPT_NEWER
    assert env_file.stat().st_ino == inode
    assert env_file.read_bytes() == before


def test_invalid_key_is_refused(env_file: Path) -> None:
    with pytest.raises(StoreError, match="not a valid variable-name prefix"):
        EnvFileProvider(env_file).write("harbor/sandbox", new_record())


def test_a_hard_linked_env_file_is_refused_not_split(tmp_path: Path) -> None:
    """Replacing one name of a hard-linked file would leave the other with the old token."""
    env_file = tmp_path / "harbor.env"
    env_file.write_bytes(ORIGINAL)
    other = tmp_path / "app.env"
    os.link(env_file, other)
    provider = EnvFileProvider(env_file)
    token = _canary()
    with pytest.raises(StoreError, match="hard links") as caught:
        provider.write(KEY, new_record(token=token))
    assert caught.value.reason == "hard-link"
    assert token not in str(caught.value)
    assert env_file.read_bytes() == other.read_bytes() == ORIGINAL
    assert os.stat(env_file).st_ino == os.stat(other).st_ino
    assert any("hard links" in advice for advice in provider.warnings(RefreshPolicy()))
