"""The one atomic file writer: whole files or nothing, and no target it would silently break.

The env-file and token-file stores and the metrics text file all write through
:class:`harbor_secrets.AtomicFile`; these tests pin its guarantees once.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harbor_secrets_envfile import EnvFileProvider

from harbor_secrets import AtomicFile, AtomicFileSet, StoreError
from harbor_secrets.exposition import write_textfile
from harbor_secrets.metrics import SyncMetrics


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def _debris(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_replaces_whole_with_mode_0600_whatever_the_umask(
    tmp_path: Path, umask: Callable[[int], int]
) -> None:
    umask(0)
    target = tmp_path / "file"
    target.write_bytes(b"old")
    target.chmod(0o666)
    AtomicFile(target).replace(b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _debris(tmp_path) == []


def test_the_temporary_file_is_in_the_same_directory_and_both_are_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file"
    synced: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def replace(source: Any, destination: Any, **dir_fds: int) -> None:
        # Both names relative to one descriptor of the target's directory: the same file
        # system, so the rename is atomic, and the same directory, whatever its path does.
        assert set(dir_fds) == {"src_dir_fd", "dst_dir_fd"}
        assert dir_fds["src_dir_fd"] == dir_fds["dst_dir_fd"]
        assert os.readlink(f"/proc/self/fd/{dir_fds['src_dir_fd']}") == str(tmp_path)
        assert destination == "file"
        assert not Path(source).name.endswith("file")
        real_replace(source, destination, **dir_fds)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    AtomicFile(target).replace(b"data")
    assert len(synced) == 2
    assert Path(synced[0]).parent == tmp_path  # the temporary file, before the rename
    assert synced[1] == str(tmp_path)  # then the directory, so the rename survives a crash


def test_a_hard_linked_file_is_refused_and_neither_name_changes(tmp_path: Path) -> None:
    target = tmp_path / "harbor.env"
    target.write_bytes(b"old")
    other = tmp_path / "other-name.env"
    os.link(target, other)
    with pytest.raises(StoreError) as caught:
        AtomicFile(target).replace(b"new")
    assert caught.value.reason == "hard-link"
    assert "2 hard links" in str(caught.value)
    assert "find -samefile" in str(caught.value)
    assert target.read_bytes() == other.read_bytes() == b"old"
    assert os.stat(target).st_ino == os.stat(other).st_ino  # still one file, not split
    assert _debris(tmp_path) == []
    assert AtomicFile(target).read() == b"old"  # reading it is fine


@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "directory"])
def test_targets_it_would_break_are_refused(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "target"
    real = tmp_path / "real"
    if kind == "symlink":
        real.write_bytes(b"old")
        target.symlink_to(real)
    elif kind == "dangling symlink":
        target.symlink_to(tmp_path / "nowhere")
    else:
        target.mkdir()
    with pytest.raises(StoreError) as caught:
        AtomicFile(target).replace(b"new")
    assert caught.value.reason == ("not-a-file" if kind == "directory" else "symlink")
    if kind == "symlink":
        assert real.read_bytes() == b"old"
        assert target.is_symlink()


def test_a_missing_directory_is_named_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        AtomicFile(tmp_path / "no" / "file").replace(b"x")
    assert caught.value.reason == "missing-directory"
    assert "mkdir -p" in str(caught.value)


@pytest.mark.parametrize(
    ("function", "code", "reason"),
    [("write", errno.ENOSPC, "no-space"), ("fsync", errno.EIO, "io")],
)
def test_a_failed_write_leaves_the_old_file_and_no_debris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, function: str, code: int, reason: str
) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"old")

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, function, fail)
    with pytest.raises(StoreError) as caught:
        AtomicFile(target, what="the test file").replace(b"new")
    monkeypatch.undo()
    assert caught.value.reason == reason
    assert "the test file" in str(caught.value)
    assert target.read_bytes() == b"old"
    assert _debris(tmp_path) == []


def test_the_metrics_file_goes_through_the_same_writer(tmp_path: Path) -> None:
    """Readable by node-exporter (0644), and a hard link is refused as for the env file."""
    target = tmp_path / "harbor.prom"
    write_textfile(target, SyncMetrics())
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    os.link(target, tmp_path / "copy.prom")
    with pytest.raises(StoreError, match="hard links"):
        write_textfile(target, SyncMetrics())


def test_problem_is_the_store_error_a_write_would_raise_for_one_file_and_for_a_set(
    tmp_path: Path,
) -> None:
    """Both writers answer ``problem()`` alike: the :class:`StoreError` itself (its reason
    and hint intact), so every store's ``cannot_write`` is just ``problem()``."""
    (tmp_path / "real").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    one = AtomicFile(tmp_path / "link").problem()
    several = AtomicFileSet(tmp_path / "missing", (), ("a",), lock_name="a.lock").problem()
    for problem, reason in ((one, "symlink"), (several, "missing-directory")):
        assert isinstance(problem, StoreError)
        assert problem.reason == reason
        assert problem.hint
    assert AtomicFile(tmp_path / "real").problem() is None
    provider = EnvFileProvider(tmp_path / "link")
    refused = provider.cannot_write("HARBOR_SANDBOX_SERVICE_PROVIDER")
    assert refused is not None
    assert refused.reason == "symlink"
    assert refused.message == one.message  # type: ignore[union-attr]
