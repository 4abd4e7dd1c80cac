"""Several files in one directory that change together, or not at all.

:class:`~harbor_secrets._files.AtomicFile` replaces one file atomically; two files replaced
one after the other are not atomic as a pair (a full disk, a file-size limit or ``kill -9``
between the two renames leaves one new and one old). This is the kubelet's scheme for
projected volumes (``AtomicWriter`` in kubernetes/kubernetes ``pkg/volume/util``)::

    <directory>/
        ..2030_01_01_00_00_00.k3x9ab/    one generation: every file, written and fsynced
        ..data -> ..2030_01_01_00_00_00.k3x9ab
        access_token -> ..data/access_token
        record.json -> ..data/record.json
        record.json.lock                 the writers' flock

A write puts every file into a new hidden generation directory, fsyncs it, and swaps the
one ``..data`` link to it with a single ``rename(2)``: readers opening
``<directory>/access_token`` see the old generation or the new one, whole, and a reader
holding a file open keeps reading what it opened. The previous generation is kept until
the next write (a reader resolving the links at the moment of the swap still finds it);
older ones, and what a crashed write left, are removed.

The visible names are the one deliberate exception to "a symbolic link is refused": only
links this module makes (exactly ``..data/<name>``) are followed, and ``..data`` only to a
generation directory beside it. Any other link is refused as before, since it could
redirect a token anywhere. Files written by older versions (regular files under the
visible names) are read as they are and turned into this layout on the next write: their
current content first becomes a generation of its own, so a crash during the conversion
never leaves two names that disagree.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from pathlib import Path

from harbor_secrets._files import (
    MAX_FILE_BYTES,
    PRIVATE_MODE,
    _os_error,
    exclusive_lock,
    fsync_directory,
    keep_group,
    read_only_problem,
    write_whole,
)
from harbor_secrets._reading import UnusableFileError, read_bounded
from harbor_secrets.errors import StoreError

log = logging.getLogger("harbor_secrets.files")

DATA = "..data"
DATA_TMP = "..data_tmp"
_STAMP = "..%Y_%m_%d_%H_%M_%S."
_GENERATION = re.compile(r"\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.[A-Za-z0-9_]+\Z")
_READ_ATTEMPTS = 3  # a generation removed between resolving ..data and opening its files


@dataclass(frozen=True)
class Snapshot:
    """What readers of the visible names see: each name's bytes (None: absent).

    ``atomic`` is True when every present name was read from one generation, so the
    files cannot disagree because of a write in progress (they can in a layout written
    by an older version, which replaced its files one at a time).
    """

    files: Mapping[str, bytes | None]
    atomic: bool


class AtomicFileSet:
    """The files ``names`` in ``root/<parts...>``, replaced together.

    ``root`` must exist; the directories ``parts`` below it are created on the first write
    (mode ``dir_mode``) and must be real directories, never symbolic links. ``what`` names
    the set in errors.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        parts: Sequence[str],
        names: Sequence[str],
        *,
        lock_name: str,
        mode: int = PRIVATE_MODE,
        dir_mode: int = 0o700,
        lock_timeout: float = 10.0,
        max_bytes: int = MAX_FILE_BYTES,
        root_option: str = "directory",
    ) -> None:
        self.root = Path(os.path.abspath(root))
        self.parts = tuple(parts)
        self.directory = self.root.joinpath(*self.parts)
        self.names = tuple(names)
        self.mode = mode
        self.dir_mode = dir_mode
        self.lock_path = self.directory / lock_name
        self.lock_timeout = lock_timeout
        self.max_bytes = max_bytes
        self.root_option = root_option

    def __repr__(self) -> str:
        return f"AtomicFileSet({str(self.directory)!r}, {self.names!r})"

    def location(self, name: str) -> Path:
        """The path a reader opens for ``name``."""
        return self.directory / name

    # -- directories ------------------------------------------------------------------------

    def _walk(self, *, create: bool) -> bool:
        """Check every directory from ``root`` down (creating them if ``create``); False
        when one is missing (nothing is stored yet) and not created."""
        action = "write" if create else "read"
        try:
            info = os.stat(self.root)
        except FileNotFoundError:
            raise StoreError(
                f"directory {self.root} does not exist",
                hint=f"create it (mkdir -p {self.root}) or fix `{self.root_option}`"
                if create
                else f"check `{self.root_option}` (sync writes below it once it exists)",
                reason="missing-directory",
            ) from None
        except OSError as exc:
            raise _os_error(action, self.root, exc) from exc
        if not stat.S_ISDIR(info.st_mode):
            raise StoreError(f"{self.root} is not a directory", reason="not-a-directory")
        current = self.root
        for part in self.parts:
            current = current / part
            try:
                info = os.lstat(current)
            except FileNotFoundError:
                if not create:
                    return False
                self._make_directory(current)
                info = os.lstat(current)
            except OSError as exc:
                raise _os_error(action, current, exc) from exc
            if stat.S_ISLNK(info.st_mode):
                raise StoreError(
                    f"refusing to use {current}: it is a symbolic link",
                    hint=f"point `{self.root_option}` at the real directory; a link could "
                    "redirect the token anywhere",
                    reason="symlink",
                )
            if not stat.S_ISDIR(info.st_mode):
                raise StoreError(f"{current} is not a directory", reason="not-a-directory")
        return True

    def _make_directory(self, path: Path) -> None:
        try:
            os.mkdir(path, self.dir_mode)
        except FileExistsError:
            return  # a concurrent writer made it; the caller checks what it is
        except OSError as exc:
            raise StoreError(
                f"cannot create directory {path}: {exc.strerror or exc}",
                hint=f"let the user running harbor-secrets create directories in {path.parent}",
                reason="permission" if exc.errno in (errno.EACCES, errno.EPERM) else "io",
            ) from None
        with suppress(OSError):
            os.chmod(path, self.dir_mode)  # whatever the umask

    # -- checks -----------------------------------------------------------------------------

    def check(self) -> None:
        """Raise the :class:`StoreError` a write would certainly end in, known without trying:
        a missing ``root``, a symbolic link or a foreign file in the way, a read-only file
        system. A missing per-token directory is fine (the write creates it)."""
        exists = self._walk(create=False)
        nearest = self.directory if exists else self.root
        read_only = read_only_problem(nearest, str(self.directory))
        if read_only is not None:
            raise read_only
        if exists:
            self._data_target()
            for name in self.names:
                self._visible(name)

    def problem(self) -> StoreError | None:
        """What :meth:`check` would raise, or None."""
        try:
            self.check()
        except StoreError as exc:
            return exc
        return None

    def _data_target(self) -> str | None:
        """The generation ``..data`` points to (None: no ``..data`` yet); refuses anything
        but a link to a generation directory beside it."""
        data = self.directory / DATA
        try:
            target = os.readlink(data)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # not a link
                raise self._foreign(data) from None
            raise _os_error("read", data, exc) from exc
        if not _GENERATION.match(target):
            raise self._foreign(data)
        try:
            info = os.lstat(self.directory / target)
        except FileNotFoundError:
            raise self._foreign(data) from None
        except OSError as exc:
            raise _os_error("read", self.directory / target, exc) from exc
        if not stat.S_ISDIR(info.st_mode):
            raise self._foreign(data)
        return target

    def _visible(self, name: str) -> str:
        """What the visible ``name`` is: "absent", "link" (ours) or "file" (an older
        version's regular file); anything else is refused."""
        path = self.directory / name
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return "absent"
        except OSError as exc:
            raise _os_error("read", path, exc) from exc
        if stat.S_ISLNK(info.st_mode):
            try:
                target = os.readlink(path)
            except OSError as exc:
                raise _os_error("read", path, exc) from exc
            if target != f"{DATA}/{name}":
                raise StoreError(
                    f"refusing to use {path}: it is a symbolic link",
                    hint="remove it; this store writes the file itself, and a link could "
                    "redirect the token anywhere",
                    reason="symlink",
                )
            return "link"
        if stat.S_ISDIR(info.st_mode):
            raise StoreError(f"{path} is a directory", reason="not-a-file")
        if not stat.S_ISREG(info.st_mode):
            raise StoreError(f"{path} is not a regular file", reason="not-a-file")
        if info.st_nlink > 1:
            raise StoreError(
                f"refusing to replace {path}: it has {info.st_nlink} hard links, and a "
                "write would split them (the other names would keep the old content)",
                hint="remove the other links (find -samefile), or copy the file so it has one name",
                reason="hard-link",
            )
        return "file"

    def _foreign(self, path: Path) -> StoreError:
        return StoreError(
            f"refusing to use {path}: it is not the link to a generation of files this "
            "store writes",
            hint=f"remove it (and let the next sync rewrite {self.directory})",
            reason="symlink",
        )

    # -- reading ----------------------------------------------------------------------------

    def read(self) -> Snapshot | None:
        """What readers of the visible names see now; None when nothing was ever stored."""
        if not self._walk(create=False):
            return None
        for attempt in range(_READ_ATTEMPTS):
            try:
                return self._read_once()
            except FileNotFoundError:
                if attempt == _READ_ATTEMPTS - 1:
                    raise StoreError(
                        f"{self.directory} kept changing while it was read",
                        hint="another writer replaces it continuously; check for a second "
                        "writer of this directory",
                        reason="io",
                    ) from None
        raise AssertionError("unreachable")

    def _read_once(self) -> Snapshot:
        """One look; FileNotFoundError when a write swapped generations meanwhile."""
        target = self._data_target()
        kinds = {name: self._visible(name) for name in self.names}
        files: dict[str, bytes | None] = {}
        generation_fd: int | None = None
        if target is not None and "link" in kinds.values():
            generation_fd = self._open_directory(self.directory / target)
        try:
            for name, kind in kinds.items():
                files[name] = None  # absent, or a link to a generation not made yet
                if kind == "file":
                    files[name] = self._read_file(str(self.directory / name))
                elif kind == "link" and generation_fd is not None:
                    try:
                        files[name] = self._read_file(name, dir_fd=generation_fd)
                    except FileNotFoundError:
                        if self._data_target() != target:
                            raise  # swapped and pruned while we read: look again
        finally:
            if generation_fd is not None:
                os.close(generation_fd)
        return Snapshot(files, atomic="file" not in kinds.values())

    def _open_directory(self, path: Path) -> int:
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(path, flags)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise _os_error("read", path, exc) from exc

    def _read_file(self, path: str, *, dir_fd: int | None = None) -> bytes:
        shown = self.directory / path if dir_fd is not None else Path(path)
        try:
            return read_bounded(path, limit=self.max_bytes, follow_symlinks=False, dir_fd=dir_fd)
        except FileNotFoundError:
            raise
        except UnusableFileError as exc:
            raise StoreError(f"cannot read {shown}: it {exc.problem}", reason=exc.reason) from None
        except OSError as exc:
            raise _os_error("read", shown, exc) from exc

    # -- writing ----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the per-token directories and check everything a write needs."""
        self._walk(create=True)
        self.check()

    def locked(self) -> AbstractContextManager[None]:
        """The writers' lock (call :meth:`prepare` first: the lock file lives in the
        directory)."""
        return exclusive_lock(self.lock_path, self.lock_timeout)

    def replace(self, contents: Mapping[str, bytes]) -> None:
        """Make every name hold its bytes, all at once; on failure change nothing readers see.

        The caller holds :meth:`locked`. ``contents`` has exactly :attr:`names`.
        """
        if set(contents) != set(self.names):
            raise ValueError(f"contents must name exactly {self.names}")
        self.prepare()
        previous = self._data_target()
        kinds = {name: self._visible(name) for name in self.names}
        if previous is None and "file" in kinds.values():
            previous = self._adopt_old_layout(kinds)
        self._link_names(kinds)
        new = self._write_generation(contents, groups=self._groups())
        self._swap(new)
        fsync_directory(self.directory)
        self._prune(keep={new, previous})

    def _adopt_old_layout(self, kinds: Mapping[str, str]) -> str:
        """Turn an older version's regular files into a generation of their own, unchanged,
        so that the names can become links without readers seeing any change."""
        current = {
            name: self._read_file(str(self.directory / name))
            for name, kind in kinds.items()
            if kind == "file"
        }
        generation = self._write_generation(current)
        self._swap(generation)
        log.info("%s: converted to the linked layout (..data)", self.directory)
        return generation

    def _link_names(self, kinds: Mapping[str, str]) -> None:
        """Make each visible name the link ``..data/<name>`` (a no-op once it is one)."""
        for name, kind in kinds.items():
            if kind == "link":
                continue
            link = self.directory / name
            temp = self.directory / f".{name}.{os.urandom(6).hex()}.tmp"
            try:
                os.symlink(f"{DATA}/{name}", temp)
                os.replace(temp, link)
            except OSError as exc:
                with suppress(OSError):
                    os.unlink(temp)
                raise _os_error("write", link, exc) from exc

    def _groups(self) -> dict[str, int]:
        """The group of each current file and of its generation (key ``DATA``), which the
        next generation keeps (see :func:`keep_group`)."""
        groups = {}
        for name in (DATA, *self.names):
            with suppress(OSError):
                groups[name] = os.stat(self.directory / name).st_gid
        return groups

    def _write_generation(
        self, contents: Mapping[str, bytes], *, groups: Mapping[str, int] | None = None
    ) -> str:
        """A new generation directory holding ``contents``, fsynced; its name. Each file,
        and the directory, keep the group of the ones they replace (``groups``, by name;
        ``DATA`` for the directory). On failure nothing of it is left."""
        groups = groups or {}
        stamp = time.strftime(_STAMP, time.gmtime())
        try:
            path = Path(tempfile.mkdtemp(prefix=stamp, dir=self.directory))
        except OSError as exc:
            raise _os_error("write", self.directory, exc) from exc
        try:
            for name, data in contents.items():
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                try:
                    fd = os.open(path / name, flags, self.mode)
                    try:
                        write_whole(fd, data, mode=self.mode, group=groups.get(name))
                    finally:
                        os.close(fd)
                except OSError as exc:
                    raise _os_error("write", self.directory / name, exc) from exc
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    if DATA in groups:
                        keep_group(fd, groups[DATA])
                    os.fchmod(fd, self.dir_mode)
                    os.fsync(fd)  # its entries are durable before ..data may point at it
                finally:
                    os.close(fd)
            except OSError as exc:
                raise _os_error("write", self.directory, exc) from exc
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return path.name

    def _swap(self, generation: str) -> None:
        """Point ``..data`` at ``generation``: the one step readers can observe."""
        temp = self.directory / DATA_TMP
        try:
            with suppress(FileNotFoundError):
                os.unlink(temp)  # left by a write that crashed before its rename
            os.symlink(generation, temp)
            os.replace(temp, self.directory / DATA)
        except BaseException as exc:
            with suppress(OSError):
                os.unlink(temp)
            shutil.rmtree(self.directory / generation, ignore_errors=True)
            if isinstance(exc, OSError):
                raise _os_error("write", self.directory / DATA, exc) from exc
            raise

    def _prune(self, *, keep: set[str | None]) -> None:
        """Remove generations but ``keep``, and temporary links a crashed write left."""
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return
        for entry in entries:
            try:
                if _GENERATION.match(entry.name) and entry.name not in keep:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                elif entry.name.endswith(".tmp") and entry.is_symlink():
                    os.unlink(entry.path)  # a visible name's link a crash left half made
            except OSError as exc:
                log.warning("could not remove %s: %s", entry.path, exc.strerror or exc)
