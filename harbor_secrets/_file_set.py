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
redirect a token anywhere.

**No step acts on a path checked earlier.** ``root`` is opened once; each directory below
it is opened through its parent's descriptor without following a link (``O_NOFOLLOW``);
every later step (the lock, the reads, the new generation, the links, the swap, the
pruning) goes through the token directory's descriptor (``dir_fd``). Whoever can write a
directory on the way can swap it for a link at any moment: that makes a write fail, never
act anywhere else. Below ``root`` a writer uses only directories its own user or root
owns: a directory's owner decides, through its setgid bit, the group of the files in it.

**Only this writer's own generations count.** A generation is this writer's when it is a
directory named as this module names them and owned by the writer's user. Only such a
one is kept as the previous generation (the one ``..data`` pointed to, or else the newest
of them), passes its group on (:func:`~harbor_secrets._files.own_group`), or is removed
when old. A generation someone else put there is left alone, and named in a warning.

**Regular files under the visible names** (an older version's, or written by one rolled
back to) are what the store holds unless the generation ``..data`` points to was written
after them: the later of the two wins, for readers and writers alike. The next write first
turns what the store holds into a generation of its own (keeping the files' group), so a
crash during the conversion never leaves two names that disagree.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from harbor_secrets._files import (
    MAX_FILE_BYTES,
    PRIVATE_MODE,
    _os_error,
    _user_name,
    exclusive_lock,
    fsync_directory,
    keep_group,
    own_group,
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
#: A directory below ``root``, opened through its parent: never through a link.
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


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

    ``root`` must exist (a link to it is followed: it is the configured directory); the
    directories ``parts`` below it are created on the first write (mode ``dir_mode``) and
    must be real directories, never symbolic links. ``root_option`` names the option that
    sets ``root`` in errors.
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
        # The directory's descriptor while this thread holds locked(): the read, the
        # compare and the write it protects all happen in the directory it locked.
        self._held = threading.local()

    def __repr__(self) -> str:
        return f"AtomicFileSet({str(self.directory)!r}, {self.names!r})"

    def location(self, name: str) -> Path:
        """The path a reader opens for ``name``."""
        return self.directory / name

    # -- directories ------------------------------------------------------------------------

    @contextmanager
    def _opened(self, *, create: bool = False, writing: bool = False) -> Iterator[int | None]:
        """The token directory's descriptor; None when it is missing and not ``create``d.
        ``writing`` also refuses directories someone else owns. In the thread holding
        :meth:`locked`, the locked directory."""
        held: int | None = getattr(self._held, "fd", None)
        if held is not None:
            yield held
            return
        fd = self._open(create=create, writing=writing or create)
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    def _open(self, *, create: bool, writing: bool) -> int | None:
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StoreError(
                f"directory {self.root} does not exist",
                hint=f"create it (mkdir -p {self.root}) or fix `{self.root_option}`"
                if create
                else f"check `{self.root_option}` (sync writes below it once it exists)",
                reason="missing-directory",
            ) from None
        except NotADirectoryError:
            raise StoreError(f"{self.root} is not a directory", reason="not-a-directory") from None
        except OSError as exc:
            raise _os_error("write" if writing else "read", self.root, exc) from exc
        path = self.root
        for part in self.parts:
            path = path / part
            try:
                child = self._open_part(fd, part, path, create=create, writing=writing)
            finally:
                os.close(fd)
            if child is None:
                return None
            fd = child
        return fd

    def _open_part(
        self, parent: int, part: str, path: Path, *, create: bool, writing: bool
    ) -> int | None:
        """``part`` of the directory open as ``parent``, opened without following a link."""
        action = "write" if writing else "read"
        made = False
        try:
            fd = os.open(part, _DIRECTORY, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
            made = self._make_directory(parent, part, path)
            try:
                fd = os.open(part, _DIRECTORY, dir_fd=parent)
            except OSError as exc:
                raise self._not_a_directory(parent, part, path, action, exc) from None
        except OSError as exc:
            raise self._not_a_directory(parent, part, path, action, exc) from None
        try:
            info = os.fstat(fd)
            if writing and info.st_uid not in (0, os.geteuid()):
                raise StoreError(
                    f"refusing to write in {path}: it belongs to user "
                    f"{_user_name(info.st_uid)}, neither the user running harbor-secrets "
                    "nor root",
                    hint="the owner of a directory decides who can read the files written in "
                    "it (its setgid group); remove it (the next sync creates it again) or "
                    "chown it to the user running harbor-secrets",
                    reason="foreign-owner",
                )
            if made:  # whatever the umask; a setgid bit stays, passing its group on
                with suppress(OSError):
                    os.fchmod(fd, self.dir_mode | (info.st_mode & stat.S_ISGID))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _not_a_directory(
        self, parent: int, part: str, path: Path, action: str, exc: OSError
    ) -> StoreError:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            return _os_error(action, path, exc)
        try:
            is_link = stat.S_ISLNK(os.stat(part, dir_fd=parent, follow_symlinks=False).st_mode)
        except OSError:
            is_link = exc.errno == errno.ELOOP
        if is_link:
            return StoreError(
                f"refusing to use {path}: it is a symbolic link",
                hint=f"point `{self.root_option}` at the real directory; a link could "
                "redirect the token anywhere",
                reason="symlink",
            )
        return StoreError(f"{path} is not a directory", reason="not-a-directory")

    def _make_directory(self, parent: int, part: str, path: Path) -> bool:
        """Create ``part``; False when a concurrent writer made it first."""
        try:
            os.mkdir(part, self.dir_mode, dir_fd=parent)
        except FileExistsError:
            return False  # the caller opens it and checks what it is
        except OSError as exc:
            raise StoreError(
                f"cannot create directory {path}: {exc.strerror or exc}",
                hint=f"let the user running harbor-secrets create directories in {path.parent}",
                reason="permission" if exc.errno in (errno.EACCES, errno.EPERM) else "io",
            ) from None
        return True

    # -- checks -----------------------------------------------------------------------------

    def check(self) -> None:
        """Raise the :class:`StoreError` a write would certainly end in, known without trying:
        a missing ``root``, a symbolic link, a foreign file or someone else's directory in
        the way, a read-only file system. A missing per-token directory is fine (the write
        creates it)."""
        with self._opened(writing=True) as fd:
            self._check(fd)

    def _check(self, fd: int | None) -> None:
        if fd is None:
            read_only = read_only_problem(self.root, str(self.directory))
        else:
            read_only = read_only_problem(self.directory, str(self.directory), fd=fd)
        if read_only is not None:
            raise read_only
        if fd is not None:
            self._data_target(fd)
            for name in self.names:
                self._visible(fd, name)

    def problem(self) -> StoreError | None:
        """What :meth:`check` would raise, or None."""
        try:
            self.check()
        except StoreError as exc:
            return exc
        return None

    def _data_target(self, fd: int) -> str | None:
        """The generation ``..data`` points to (None: no ``..data`` yet); refuses anything
        but a link to a generation directory beside it."""
        data = self.directory / DATA
        try:
            target = os.readlink(DATA, dir_fd=fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # not a link
                raise self._foreign(data) from None
            raise _os_error("read", data, exc) from exc
        if not _GENERATION.match(target):
            raise self._foreign(data)
        try:
            info = os.stat(target, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            raise self._foreign(data) from None
        except OSError as exc:
            raise _os_error("read", self.directory / target, exc) from exc
        if not stat.S_ISDIR(info.st_mode):
            raise self._foreign(data)
        return target

    def _visible(self, fd: int, name: str) -> str:
        """What the visible ``name`` is: "absent", "link" (ours) or "file" (a regular file,
        an older version's); anything else is refused."""
        path = self.directory / name
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return "absent"
        except OSError as exc:
            raise _os_error("read", path, exc) from exc
        if stat.S_ISLNK(info.st_mode):
            try:
                target = os.readlink(name, dir_fd=fd)
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

    def _files_win(self, fd: int, generation: int | None, kinds: Mapping[str, str]) -> bool:
        """Whether the regular files among the visible names hold what the store holds:
        there are some, and the generation ``..data`` points to (open as ``generation``)
        was not written after them (a version rolled back to writes regular files beside
        the generation it left behind)."""
        regular = [name for name, kind in kinds.items() if kind == "file"]
        if not regular:
            return False
        if generation is None:
            return True
        written = [self._modified(fd, name) for name in regular]
        linked = [self._modified(generation, name) for name in self.names]
        latest_written = max((t for t in written if t is not None), default=None)
        latest_linked = max((t for t in linked if t is not None), default=None)
        if latest_written is None or latest_linked is None:
            return latest_linked is None  # one side vanished meanwhile: the other holds it
        return latest_written >= latest_linked

    def _modified(self, fd: int, name: str) -> int | None:
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False).st_mtime_ns
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _os_error("read", self.directory / name, exc) from exc

    # -- reading ----------------------------------------------------------------------------

    def read(self) -> Snapshot | None:
        """What readers of the visible names see now; None when nothing was ever stored."""
        with self._opened() as fd:
            if fd is None:
                return None
            for attempt in range(_READ_ATTEMPTS):
                try:
                    return self._read_once(fd)
                except FileNotFoundError:
                    if attempt == _READ_ATTEMPTS - 1:
                        raise StoreError(
                            f"{self.directory} kept changing while it was read",
                            hint="another writer replaces it continuously; check for a second "
                            "writer of this directory",
                            reason="io",
                        ) from None
        raise AssertionError("unreachable")

    def _read_once(self, fd: int) -> Snapshot:
        """One look; FileNotFoundError when a write swapped generations meanwhile."""
        target = self._data_target(fd)
        kinds = {name: self._visible(fd, name) for name in self.names}
        files: dict[str, bytes | None] = {}
        generation = self._open_generation(fd, target) if target is not None else None
        try:
            files_win = self._files_win(fd, generation, kinds)
            for name, kind in kinds.items():
                files[name] = None  # absent, or a link to a file the generation lacks
                if kind == "file" and files_win:
                    files[name] = self._read_file(fd, name)
                elif kind != "absent" and generation is not None:
                    try:
                        files[name] = self._read_file(generation, name)
                    except FileNotFoundError:
                        if self._data_target(fd) != target:
                            raise  # swapped and pruned while we read: look again
        finally:
            if generation is not None:
                os.close(generation)
        return Snapshot(files, atomic=not files_win)

    def _open_generation(self, fd: int, name: str) -> int:
        try:
            return os.open(name, _DIRECTORY, dir_fd=fd)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise _os_error("read", self.directory / name, exc) from exc

    def _read_file(self, fd: int, name: str) -> bytes:
        shown = self.directory / name
        try:
            return read_bounded(name, limit=self.max_bytes, follow_symlinks=False, dir_fd=fd)
        except FileNotFoundError:
            raise
        except UnusableFileError as exc:
            raise StoreError(f"cannot read {shown}: it {exc.problem}", reason=exc.reason) from None
        except OSError as exc:
            raise _os_error("read", shown, exc) from exc

    # -- writing ----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the per-token directories and check everything a write needs."""
        with self._opened(create=True) as fd:
            self._check(fd)

    def locked(self) -> AbstractContextManager[None]:
        """The writers' lock, in the token directory (created if missing). Until it is
        released, :meth:`read` and :meth:`replace` in this thread act in the directory
        that was locked, whatever happens to its path meanwhile."""
        return self._locked()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._opened(create=True) as fd:
            assert fd is not None
            with exclusive_lock(self.lock_path, self.lock_timeout, directory=fd):
                self._held.fd = fd
                try:
                    yield
                finally:
                    self._held.fd = None

    def replace(self, contents: Mapping[str, bytes]) -> None:
        """Make every name hold its bytes, all at once; on failure change nothing readers see.

        The caller holds :meth:`locked`. ``contents`` has exactly :attr:`names`.
        """
        if set(contents) != set(self.names):
            raise ValueError(f"contents must name exactly {self.names}")
        with self._opened(create=True) as fd:
            assert fd is not None
            self._check(fd)
            target = self._data_target(fd)
            kinds = {name: self._visible(fd, name) for name in self.names}
            if "file" in kinds.values():
                target = self._adopt_regular_files(fd, target, kinds)
            previous = self._previous(fd, target)
            self._link_names(fd, kinds)
            new = self._write_generation(fd, contents, groups=self._groups(fd, previous))
            self._swap(fd, new)
            fsync_directory(fd, self.directory)
            self._prune(fd, keep={new, previous})

    def _adopt_regular_files(self, fd: int, target: str | None, kinds: Mapping[str, str]) -> str:
        """Regular files are visible (an older version's, or a rolled-back one's): make what
        the store holds a generation of its own, unchanged and with the files' groups, and
        point ``..data`` at it, so that the names can become links without readers seeing
        any change. When ``..data``'s generation was written after the files, it is what
        the store holds already."""
        generation = self._open_generation_for_write(fd, target)
        try:
            if target is not None and not self._files_win(fd, generation, kinds):
                return target
            contents: dict[str, bytes] = {}
            groups: dict[str, int] = {}
            for name, kind in kinds.items():
                source = fd if kind == "file" else generation
                if kind == "absent" or source is None:
                    continue
                try:
                    contents[name] = self._read_file(source, name)
                except FileNotFoundError:
                    continue  # a link to a file the generation lacks: readers see none
                group = own_group(source, name)
                if group is not None:
                    groups.setdefault(DATA, group)  # readers must enter the directory too
                    groups[name] = group
        finally:
            if generation is not None:
                os.close(generation)
        adopted = self._write_generation(fd, contents, groups=groups)
        self._swap(fd, adopted)
        log.info("%s: converted to the linked layout (..data)", self.directory)
        return adopted

    def _open_generation_for_write(self, fd: int, target: str | None) -> int | None:
        if target is None:
            return None
        try:
            return self._open_generation(fd, target)
        except FileNotFoundError as exc:  # under the lock nothing of ours removes it
            raise _os_error("read", self.directory / target, exc) from exc

    def _previous(self, fd: int, target: str | None) -> str | None:
        """The generation kept beside the new one for readers resolving the links during
        the swap: the one ``..data`` points to when this writer's user made it, else the
        newest one it made (never one someone else put there)."""
        own = self._own_generations(fd)
        if target in own:
            return target
        return max(own, key=lambda name: own[name], default=None)

    def _own_generations(self, fd: int) -> dict[str, tuple[str, int]]:
        """This writer's generations: name -> (the time in its name, its mtime)."""
        own: dict[str, tuple[str, int]] = {}
        for name, info in self._generations(fd):
            if info.st_uid == os.geteuid():
                own[name] = (name.rsplit(".", 1)[0], info.st_mtime_ns)
        return own

    def _generations(self, fd: int) -> list[tuple[str, os.stat_result]]:
        """Every directory named as a generation, with its ``lstat``."""
        found = []
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    if _GENERATION.match(entry.name):
                        with suppress(OSError):
                            info = entry.stat(follow_symlinks=False)
                            if stat.S_ISDIR(info.st_mode):
                                found.append((entry.name, info))
        except OSError as exc:
            log.warning("could not list %s: %s", self.directory, exc.strerror or exc)
        return found

    def _groups(self, fd: int, previous: str | None) -> dict[str, int]:
        """The groups the new generation keeps (see :func:`own_group`): of the previous
        generation's directory (key ``DATA``) and of each of its files, when this writer's
        user owns them."""
        if previous is None:
            return {}
        groups: dict[str, int] = {}
        group = own_group(fd, previous, kind=stat.S_IFDIR)
        if group is not None:
            groups[DATA] = group
        try:
            generation = os.open(previous, _DIRECTORY, dir_fd=fd)
        except OSError:
            return groups
        try:
            for name in self.names:
                group = own_group(generation, name)
                if group is not None:
                    groups[name] = group
        finally:
            os.close(generation)
        return groups

    def _link_names(self, fd: int, kinds: Mapping[str, str]) -> None:
        """Make each visible name the link ``..data/<name>`` (a no-op once it is one)."""
        for name, kind in kinds.items():
            if kind == "link":
                continue
            temp = f".{name}.{secrets.token_hex(6)}.tmp"
            try:
                os.symlink(f"{DATA}/{name}", temp, dir_fd=fd)
                os.replace(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except OSError as exc:
                with suppress(OSError):
                    os.unlink(temp, dir_fd=fd)
                raise _os_error("write", self.directory / name, exc) from exc

    def _write_generation(
        self, fd: int, contents: Mapping[str, bytes], *, groups: Mapping[str, int]
    ) -> str:
        """A new generation directory holding ``contents``, fsynced; its name. Each file,
        and the directory, keep the group of the ones they replace (``groups``, by name;
        ``DATA`` for the directory). On failure nothing of it is left."""
        name = self._make_generation(fd)
        try:
            try:
                generation = os.open(name, _DIRECTORY, dir_fd=fd)
            except OSError as exc:
                raise _os_error("write", self.directory / name, exc) from exc
            try:
                info = os.fstat(generation)
                if info.st_uid != os.geteuid():  # swapped for someone else's in between
                    raise StoreError(
                        f"{self.directory / name} was replaced while it was written",
                        hint="someone else writes in this directory; make it writable by the "
                        "user running harbor-secrets only",
                        reason="io",
                    )
                for file, data in contents.items():
                    try:
                        out = os.open(file, _NEW_FILE, self.mode, dir_fd=generation)
                        try:
                            write_whole(out, data, mode=self.mode, group=groups.get(file))
                        finally:
                            os.close(out)
                    except OSError as exc:
                        raise _os_error("write", self.directory / file, exc) from exc
                try:
                    if DATA in groups:
                        keep_group(generation, groups[DATA])
                    os.fchmod(generation, self.dir_mode | (info.st_mode & stat.S_ISGID))
                    os.fsync(generation)  # its entries are durable before ..data may point at it
                except OSError as exc:
                    raise _os_error("write", self.directory, exc) from exc
            finally:
                os.close(generation)
        except BaseException:
            self._remove_own(fd, name)
            raise
        return name

    def _make_generation(self, fd: int) -> str:
        """A new, empty generation directory (mode 0700 until it is complete): its name."""
        stamp = time.strftime(_STAMP, time.gmtime())
        for _ in range(100):
            name = stamp + secrets.token_hex(4)
            try:
                os.mkdir(name, 0o700, dir_fd=fd)
            except FileExistsError:
                continue
            except OSError as exc:
                raise _os_error("write", self.directory, exc) from exc
            return name
        raise StoreError(f"cannot find an unused generation name in {self.directory}", reason="io")

    def _swap(self, fd: int, generation: str) -> None:
        """Point ``..data`` at ``generation``: the one step readers can observe."""
        try:
            with suppress(FileNotFoundError):
                os.unlink(DATA_TMP, dir_fd=fd)  # left by a write that crashed before its rename
            os.symlink(generation, DATA_TMP, dir_fd=fd)
            os.replace(DATA_TMP, DATA, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException as exc:
            with suppress(OSError):
                os.unlink(DATA_TMP, dir_fd=fd)
            self._remove_own(fd, generation)
            if isinstance(exc, OSError):
                raise _os_error("write", self.directory / DATA, exc) from exc
            raise

    def _remove_own(self, fd: int, name: str) -> None:
        """Remove the generation ``name`` if it is a directory this writer's user owns."""
        if own_group(fd, name, kind=stat.S_IFDIR) is not None:
            shutil.rmtree(name, dir_fd=fd, ignore_errors=True)

    def _prune(self, fd: int, *, keep: set[str | None]) -> None:
        """Remove this writer's generations but ``keep``, and temporary links a crashed
        write left; leave anyone else's generation alone, and say so."""
        for name, info in self._generations(fd):
            if name in keep:
                continue
            if info.st_uid != os.geteuid():
                log.warning(
                    "%s: left %s alone: it belongs to user %s, not to the user running "
                    "harbor-secrets (remove it if nobody should have put it there)",
                    self.directory,
                    name,
                    _user_name(info.st_uid),
                )
                continue
            try:
                shutil.rmtree(name, dir_fd=fd)
            except OSError as exc:
                log.warning("could not remove %s: %s", self.directory / name, exc.strerror or exc)
        try:
            with os.scandir(fd) as entries:
                stale = [e.name for e in entries if e.name.endswith(".tmp") and e.is_symlink()]
        except OSError:
            return
        for name in stale:  # a visible name's link a crash left half made
            with suppress(OSError):
                os.unlink(name, dir_fd=fd)
