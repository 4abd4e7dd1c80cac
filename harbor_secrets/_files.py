"""The one atomic file writer: every file this tool writes is replaced whole, or not at all.

Readers must only ever see the old file or the new one, whole, so new content goes to a
temporary file in the same directory (same file system, so ``os.replace`` is atomic), with
an explicit mode (independent of the umask and of the old file), is fsynced, and is renamed
over the old one; the directory is fsynced so the rename survives a crash. A symbolic link,
a directory, a special file or a file with several hard links is refused: replacing it would
break the link, or leave the other names holding the old content without a word.

Writers that read, compare and write (the env file, the token-file store) hold
:meth:`AtomicFile.locked`, an ``flock`` on a sibling ``<file>.lock``: the data file's inode
changes on every write, so a lock on it would protect nothing. Used by the env-file and
token-file stores and by the metrics text file. Errors are :class:`StoreError` values that
say what failed, where, and what to do; they never carry file content.

Who may read a rewritten file is decided here too (:func:`own_group`): a new file keeps the
group of the one it replaces only when the writer's own user owns that one. Anyone who can
write the directory can put a file of her own, with her own group, in its place; keeping
that group would hand her the next token. Otherwise the directory's setgid bit, or the
writer's group, decides, as for any new file.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import logging
import os
import pwd
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path

from harbor_secrets._reading import UnusableFileError, read_bounded
from harbor_secrets.errors import StoreError

log = logging.getLogger("harbor_secrets.files")

PRIVATE_MODE = 0o600
#: The most a store's file is read into memory: an env file is a few KiB, and one of
#: hundreds of MiB is a mistake (or an attack) that a reader or a sync must not load whole.
MAX_FILE_BYTES = 16 << 20
_POLL_FIRST = 0.002
_POLL_MAX = 0.05

# flock excludes other processes; threads of this process queue on a plain lock first so
# they wait without polling (the sync engine writes many keys to one file concurrently).
_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(str(path), threading.Lock())


class AtomicFile:
    """One file that is only ever replaced whole; ``what`` names it in errors."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        mode: int = PRIVATE_MODE,
        lock_timeout: float = 10.0,
        what: str = "",
        max_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.path = Path(os.path.abspath(path))
        self.mode = mode
        self.lock_timeout = lock_timeout
        self.what = what
        self.max_bytes = max_bytes
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def __repr__(self) -> str:
        return f"AtomicFile({str(self.path)!r})"

    @property
    def _name(self) -> str:
        return f"{self.what} {self.path}" if self.what else str(self.path)

    # -- checks -----------------------------------------------------------------------------

    def check(self) -> None:
        """Refuse a missing directory and an unsafe target (a missing file is fine)."""
        if not self.path.parent.is_dir():
            raise StoreError(
                f"cannot write {self._name}: directory {self.path.parent} does not exist",
                hint=f"create it (mkdir -p {self.path.parent}) or fix the path",
                reason="missing-directory",
            )
        read_only = read_only_problem(self.path.parent, self._name)
        if read_only is not None:
            raise read_only
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._os_error("inspect", exc) from exc
        self._check_mode(info)

    def problem(self) -> StoreError | None:
        """What :meth:`check` would raise, or None: why a write would be refused, known
        offline (``config check``, ``Provider.cannot_write``)."""
        try:
            self.check()
        except StoreError as exc:
            return exc
        return None

    def notes(self) -> list[str]:
        """What a write would change that someone may rely on (not a refusal): every write
        gives the file :attr:`mode`, and keeps its group only as :func:`own_group` says."""
        try:
            info = os.lstat(self.path)
        except OSError:
            return []
        if not stat.S_ISREG(info.st_mode):
            return []
        notes = []
        current = stat.S_IMODE(info.st_mode)
        if current != self.mode:
            notes.append(
                f"{self._name} is mode {current:04o}, and every write makes it "
                f"{self.mode:04o}: file_mode decides (set file_mode to the mode its readers need)"
            )
        if info.st_uid != os.geteuid():
            given = new_file_group(self.path.parent)
            if given is not None and given != info.st_gid:
                notes.append(
                    f"{self._name} belongs to user {_user_name(info.st_uid)}, not to the user "
                    "running harbor-secrets, so a write does not keep its group "
                    f"{_group_name(info.st_gid)} (a file someone else put there chooses no "
                    f"reader): it gets group {_group_name(given)} (chown the file to the user "
                    "running harbor-secrets, or give the directory the setgid bit and the "
                    "readers' group)"
                )
        elif not may_give_group(info.st_gid):
            notes.append(
                f"{self._name} belongs to group {_group_name(info.st_gid)}, which the user "
                "running harbor-secrets is not in: every write gives it that user's group "
                "instead (add the user to the group, or give the directory the setgid bit)"
            )
        return notes

    def _check_mode(self, info: os.stat_result) -> None:
        mode = info.st_mode
        if stat.S_ISLNK(mode):
            raise StoreError(
                f"refusing to use {self._name}: it is a symbolic link",
                hint="point the path at the real file; writes replace the file, which would "
                "break the link",
                reason="symlink",
            )
        if stat.S_ISDIR(mode):
            raise StoreError(
                f"{self._name} is a directory",
                hint="point the path at a file inside it",
                reason="not-a-file",
            )
        if not stat.S_ISREG(mode):
            raise StoreError(f"{self._name} is not a regular file", reason="not-a-file")
        if info.st_nlink > 1:
            raise StoreError(
                f"refusing to replace {self._name}: it has {info.st_nlink} hard links, and a "
                "write would split them (the other names would keep the old content)",
                hint="point the path at the name your readers use and remove the other links "
                "(find -samefile), or copy the file so it has one name",
                reason="hard-link",
            )

    # -- reading ----------------------------------------------------------------------------

    def read(self) -> bytes | None:
        """The file's content, ``None`` if it does not exist. Never follows a symlink, never
        blocks (a FIFO), never reads more than :attr:`max_bytes`."""
        try:
            return read_bounded(self.path, limit=self.max_bytes, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except UnusableFileError as exc:
            raise StoreError(
                f"cannot read {self._name}: it {exc.problem}",
                hint="point the path at the file this store writes",
                reason=exc.reason,
            ) from None
        except OSError as exc:
            raise self._os_error("read", exc) from exc

    # -- writing ----------------------------------------------------------------------------

    def locked(self) -> AbstractContextManager[None]:
        """Hold an exclusive lock on the sibling lock file, or fail after ``lock_timeout``."""
        return exclusive_lock(self.lock_path, self.lock_timeout)

    def replace(self, data: bytes) -> None:
        """Make the file hold ``data`` with :attr:`mode`; on failure leave it untouched.

        Every step after :meth:`check` (the group lookup, the temporary file, the rename,
        the fsync) is made relative to one descriptor of the directory, so a directory
        swapped meanwhile cannot split them between two places.
        """
        self.check()
        name = self.path.name
        try:
            directory = os.open(self.path.parent, _DIRECTORY_FLAGS)
        except OSError as exc:
            raise self._os_error("open the directory of", exc) from exc
        try:
            group = own_group(directory, name)  # None: the directory's rules decide
            try:
                fd, temp_name = create_temporary(directory, f".{name}.", ".tmp")
            except OSError as exc:
                raise self._os_error("create a temporary file for", exc) from exc
            try:
                try:
                    write_whole(fd, data, mode=self.mode, group=group)
                finally:
                    os.close(fd)
                os.replace(temp_name, name, src_dir_fd=directory, dst_dir_fd=directory)
            except BaseException as exc:
                with suppress(OSError):
                    os.unlink(temp_name, dir_fd=directory)
                if isinstance(exc, OSError):
                    raise self._os_error("write", exc) from exc
                raise
            fsync_directory(directory, self.path.parent)
        finally:
            os.close(directory)

    # -- errors -----------------------------------------------------------------------------

    def _os_error(self, action: str, exc: OSError) -> StoreError:
        if exc.errno == errno.ELOOP:
            return StoreError(
                f"refusing to use {self._name}: it is a symbolic link",
                hint="point the path at the real file",
                reason="symlink",
            )
        return _os_error(action, self.path, exc, name=self._name)


_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
#: Opens a name only to ``fstat`` it: no read access needed, and a link, a FIFO or a device
#: is opened as itself, without following it, blocking or touching the device.
_INSPECT_FLAGS = getattr(os, "O_PATH", os.O_RDONLY | os.O_NONBLOCK) | os.O_NOFOLLOW | os.O_CLOEXEC


def own_group(directory: int, name: str, *, kind: int = stat.S_IFREG) -> int | None:
    """The group a file written in place of ``name`` keeps, or None (the directory's rules).

    Only the group of a file of ``kind`` (a regular file, or ``stat.S_IFDIR``) that this
    process's user owns: whoever can write the directory can put her own file there, with
    her own group, and keeping that group would let her read the token written next. The
    file is found with ``fstat`` on a descriptor opened through ``directory`` (a descriptor)
    without following a link, never through a path a rename could redirect.
    """
    try:
        fd = os.open(name, _INSPECT_FLAGS, dir_fd=directory)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if stat.S_IFMT(info.st_mode) != kind or info.st_uid != os.geteuid():
        return None
    return info.st_gid


def new_file_group(directory: Path) -> int | None:
    """The group a new file in ``directory`` gets: the directory's own when it has the
    setgid bit, else this process's (None: unknown)."""
    try:
        info = os.stat(directory)
    except OSError:
        return None
    return info.st_gid if info.st_mode & stat.S_ISGID else os.getegid()


def create_temporary(directory: int, prefix: str, suffix: str) -> tuple[int, str]:
    """A new empty file (mode 0600, opened for writing) in ``directory`` (a descriptor),
    under a random name that starts with ``prefix``: the descriptor and the name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        name = f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            return os.open(name, flags, PRIVATE_MODE, dir_fd=directory), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary name", prefix)


@contextmanager
def exclusive_lock(
    lock_path: Path, timeout: float, *, directory: int | None = None
) -> Iterator[None]:
    """An exclusive ``flock`` on ``lock_path`` (created 0600, never through a symlink), or
    a :class:`StoreError` after ``timeout`` seconds. Threads of this process queue first.
    With ``directory`` (a descriptor of the lock's directory), the lock file is opened
    through it, so it is made in that very directory whatever happened to the path."""
    deadline = time.monotonic() + timeout
    local = _thread_lock(lock_path)
    if not local.acquire(timeout=timeout):
        raise _lock_timeout(lock_path, timeout)
    try:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            if directory is None:
                fd = os.open(lock_path, flags, PRIVATE_MODE)
            else:
                fd = os.open(lock_path.name, flags, PRIVATE_MODE, dir_fd=directory)
        except OSError as exc:
            raise _os_error("open the lock file", lock_path, exc) from exc
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
        hint="another harbor-secrets run is writing this file (or is stuck holding the "
        f"lock); raise `lock_timeout` or find the process holding it (fuser -v {lock_path})",
        reason="lock-timeout",
    )


def write_whole(fd: int, data: bytes, *, mode: int, group: int | None = None) -> None:
    """Give a new file ``mode`` (whatever the umask) and ``group`` (the group of the file it
    replaces, when there is one), write all of ``data`` and fsync it."""
    if group is not None:
        keep_group(fd, group)
    os.fchmod(fd, mode)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def keep_group(fd: int, gid: int) -> None:
    """Give a new file (or directory) ``gid``, the group of the one it replaces (as
    :func:`own_group` found it): a service reading it through its group
    (``file_mode = "0640"``) must not lose access because the file was rewritten. Not
    permitted (the writer is not a member), it only warns; the start-up check says so
    beforehand (:meth:`AtomicFile.notes`)."""
    if os.fstat(fd).st_gid == gid:
        return
    try:
        os.fchown(fd, -1, gid)
    except OSError as exc:
        log.warning(
            "could not keep group %s of a rewritten file (%s): it now has the writer's group",
            _group_name(gid),
            exc.strerror or exc,
        )


def may_give_group(gid: int) -> bool:
    """Whether this process may give a file it owns group ``gid``."""
    return os.geteuid() == 0 or gid == os.getegid() or gid in os.getgroups()


def _group_name(gid: int) -> str:
    try:
        return f"{grp.getgrgid(gid).gr_name} ({gid})"
    except KeyError:
        return str(gid)


def _user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} ({uid})"
    except KeyError:
        return str(uid)


def read_only_problem(directory: Path, what: str, *, fd: int | None = None) -> StoreError | None:
    """A :class:`StoreError` if ``directory`` (or the directory open as ``fd``) is on a
    file system mounted read-only.

    Known before any write is tried (``statvfs``), so a run can say so without first
    requesting a token it could not store; None if writable or unknown.
    """
    try:
        flags = os.statvfs(directory if fd is None else fd).f_flag
    except OSError:
        return None
    if not flags & os.ST_RDONLY:
        return None
    return StoreError(
        f"cannot write {what}: {directory} is on a read-only file system",
        hint="point the path at a writable file system (or remount it read-write)",
        reason="read-only",
    )


def _os_error(action: str, path: Path, exc: OSError, *, name: str | None = None) -> StoreError:
    """A :class:`StoreError` saying what failed, where, and what to do about it.

    ``action`` "read" gets reading advice: a reader (``get``, ``status``) that may not open
    the file needs read access, not the right to create files where the writer does.
    """
    code = exc.errno
    message = f"cannot {action} {name or path}: {exc.strerror or exc}"
    hint: str | None = None
    reason = "io"
    if code in (errno.EACCES, errno.EPERM):
        reason = "permission"
        if action == "read":
            hint = (
                f"let the user running harbor-secrets read {path} and search every directory "
                "above it (or run it as the user the writer's file_mode lets read)"
            )
        else:
            hint = (
                f"let the user running harbor-secrets create and rename files in "
                f"{path.parent} (each write creates a temporary file there)"
            )
    elif action == "read":
        pass
    elif code in (errno.ENOSPC, errno.EDQUOT):
        hint = f"free space (or quota) on the file system holding {path.parent}"
        reason = "no-space"
    elif code == errno.EROFS:
        hint = f"{path.parent} is on a read-only file system; point the path somewhere writable"
        reason = "read-only"
    elif code == errno.EFBIG:
        hint = "a file-size limit (ulimit -f, RLIMIT_FSIZE) of this process stops the write"
        reason = "file-size-limit"
    return StoreError(message, hint=hint, reason=reason)


def fsync_directory(directory: int, shown: Path) -> None:
    """Persist a rename in ``directory`` (a descriptor; ``shown`` names it). The new file is
    already in place, so failure only warns."""
    try:
        os.fsync(directory)
    except OSError as exc:
        log.warning("could not fsync directory %s after writing: %s", shown, exc.strerror)
