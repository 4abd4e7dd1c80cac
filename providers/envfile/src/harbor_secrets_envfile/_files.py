"""The file-system half of a safe write: refuse odd targets, lock, replace atomically.

Readers must only ever see the old file or the new one, whole, so the new content goes to
a temporary file in the same directory (same file system, so ``os.replace`` is atomic),
is fsynced, and is renamed over the old one; the directory is fsynced so the rename
survives a crash. The lock lives on a sibling ``<file>.lock`` because the data file's
inode changes on every write and a lock on it would protect nothing.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from harbor_secrets import StoreError

log = logging.getLogger("harbor_secrets.envfile")

_POLL_FIRST = 0.002
_POLL_MAX = 0.05

# flock excludes other processes; threads of this process queue on a plain lock first so
# they wait without polling (the sync engine writes many keys to one file concurrently).
_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(str(path), threading.Lock())


def os_error(action: str, path: Path, exc: OSError) -> StoreError:
    """A :class:`StoreError` saying what failed, where, and what to do about it."""
    code = exc.errno
    message = f"cannot {action} {path}: {exc.strerror or exc}"
    if code in (errno.ENOSPC, errno.EDQUOT):
        hint = f"free space (or quota) on the file system holding {path.parent}"
        reason = "no-space"
    elif code == errno.EROFS:
        hint = f"{path.parent} is on a read-only file system; point `path` somewhere writable"
        reason = "read-only"
    elif code in (errno.EACCES, errno.EPERM):
        hint = (
            f"let the user running harbor-secrets create and rename files in {path.parent} "
            "(each write creates a temporary file there)"
        )
        reason = "permission"
    elif code == errno.ELOOP:
        return symlink_error(path)
    else:
        hint = None
        reason = "io"
    return StoreError(message, hint=hint, reason=reason)


def symlink_error(path: Path) -> StoreError:
    return StoreError(
        f"refusing to use {path}: it is a symbolic link",
        hint="set `path` to the real file; writes replace the file, which would break the link",
        reason="symlink",
    )


def check_target(path: Path) -> None:
    """Refuse a symlink, directory or special file at ``path``; a missing one is fine."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise os_error("inspect", path, exc) from exc
    _check_mode(path, info.st_mode)


def _check_mode(path: Path, mode: int) -> None:
    if stat.S_ISLNK(mode):
        raise symlink_error(path)
    if stat.S_ISDIR(mode):
        raise StoreError(
            f"{path} is a directory",
            hint=f"set `path` to a file inside it, e.g. {path / 'harbor.env'}",
            reason="not-a-file",
        )
    if not stat.S_ISREG(mode):
        raise StoreError(f"{path} is not a regular file", reason="not-a-file")


def check_directory(path: Path) -> None:
    """The parent must exist already: creating directories silently hides typos."""
    if not path.parent.is_dir():
        raise StoreError(
            f"cannot write {path}: directory {path.parent} does not exist",
            hint=f"create it (mkdir -p {path.parent}) or fix `path`",
            reason="missing-directory",
        )


def read_bytes(path: Path) -> bytes | None:
    """The file's content, ``None`` if it does not exist. Never follows a symlink."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: FIFOs
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise os_error("read", path, exc) from exc
    try:
        _check_mode(path, os.fstat(fd).st_mode)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise os_error("read", path, exc) from exc
    finally:
        os.close(fd)


@contextmanager
def locked(lock_path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` or raise :class:`StoreError` after ``timeout``."""
    deadline = time.monotonic() + timeout
    local = _thread_lock(lock_path)
    if not local.acquire(timeout=timeout):
        raise _lock_timeout(lock_path, timeout)
    try:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(lock_path, flags, 0o600)
        except OSError as exc:
            raise os_error("open the lock file", lock_path, exc) from exc
        try:
            delay = _POLL_FIRST
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise _lock_timeout(lock_path, timeout) from None
                    time.sleep(min(delay, remaining))
                    delay = min(delay * 2, _POLL_MAX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    finally:
        local.release()


def _lock_timeout(lock_path: Path, timeout: float) -> StoreError:
    return StoreError(
        f"timed out after {timeout:g}s waiting for the lock on {lock_path}",
        hint="another harbor-secrets run is writing this file (or is stuck holding the lock); "
        "raise `lock_timeout` or find the process holding it (fuser -v " + str(lock_path) + ")",
        reason="lock-timeout",
    )


def replace_atomically(path: Path, data: bytes, mode: int) -> None:
    """Make ``path`` hold ``data`` with ``mode``; on failure leave it untouched, no debris."""
    try:
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise os_error("create a temporary file for", path, exc) from exc
    try:
        try:
            os.fchmod(fd, mode)  # explicit: independent of the umask and of the old file
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp_name, path)
    except BaseException as exc:
        with suppress(OSError):
            os.unlink(temp_name)
        if isinstance(exc, OSError):
            raise os_error("write", path, exc) from exc
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Persist the rename. The new file is already in place, so failure only warns."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("could not fsync directory %s after writing: %s", directory, exc.strerror)
