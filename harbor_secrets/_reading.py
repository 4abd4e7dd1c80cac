"""Reading a local file that may not be what it claims: bounded, regular files only, no hang.

The configuration, ``file:`` secrets and the files the stores keep are named by paths that
someone else controls. Such a path can lead to a FIFO (an ordinary ``open`` blocks until a
writer comes, forever), to ``/dev/zero`` (a read never ends), to a symbolic link loop, to a
file of hundreds of MiB or to bytes that are not text. So the file is opened with
``O_NONBLOCK`` (which makes opening a FIFO return at once), checked with ``fstat`` on that
very descriptor (no race with a rename), and read up to a limit. Every caller maps the
errors raised here to its own error type (a configuration error, a store error) with words
fit for its users; none of them ever carries the file's content.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from harbor_secrets.errors import StoreError
from harbor_secrets.secrets import Secret

_CHUNK = 1 << 16

#: What a file that is not a regular file is, in words (``st_mode`` type → description).
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class UnusableFileError(Exception):
    """The file exists but is not one to read: not a regular file, too large, not text.

    ``problem`` completes "the file …" ("is a named pipe (FIFO), not a regular file");
    ``reason`` is a short fixed word for programs ("not-a-file", "too-large", "not-text").
    """

    def __init__(self, problem: str, reason: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.reason = reason


def describe_size(size: int) -> str:
    """``size`` bytes in the largest whole binary unit (``1 MiB``, ``64 KiB``, ``300 bytes``)."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


def kind_of(mode: int) -> str | None:
    """What a file of ``mode`` is, in words, when it is not a regular file (else None)."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def read_bounded(
    path: str | os.PathLike[str],
    *,
    limit: int,
    follow_symlinks: bool = True,
    dir_fd: int | None = None,
) -> bytes:
    """The whole content of the regular file at ``path``, at most ``limit`` bytes.

    Raises ``OSError`` as the system reports it (``FileNotFoundError``, ``PermissionError``,
    ``ELOOP`` for a symlink loop, or for any symlink when ``follow_symlinks`` is false) and
    :class:`UnusableFileError` for anything but a regular file, or a larger one. Never
    blocks on a FIFO or a device, and never reads more than ``limit + 1`` bytes. A relative
    ``path`` with ``dir_fd`` is opened in that directory (``openat``).
    """
    return _read(path, limit=limit, follow_symlinks=follow_symlinks, dir_fd=dir_fd)[0]


def _read(
    path: str | os.PathLike[str],
    *,
    limit: int,
    follow_symlinks: bool,
    dir_fd: int | None = None,
) -> tuple[bytes, os.stat_result]:
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    fd = os.open(path, flags, dir_fd=dir_fd)
    try:
        info = os.fstat(fd)
        kind = kind_of(info.st_mode)
        if kind is not None:
            raise UnusableFileError(f"is {kind}, not a regular file", "not-a-file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise UnusableFileError(
                f"is larger than {describe_size(limit)}, more than such a file ever needs",
                "too-large",
            )
        return b"".join(chunks), info
    finally:
        os.close(fd)


def decode_utf8(data: bytes) -> str:
    """``data`` as UTF-8 text, else :class:`UnusableFileError`. The error says nothing of
    where or what the bad bytes are: the file may be a secret, and a byte of it, or its
    length up to that byte, is a piece of the secret."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnusableFileError("is not UTF-8 text", "not-text") from None


#: The most a file holding one secret or credential is read (a client secret, a Vault token,
#: a service-account JWT, a namespace name): each is a line of text, so a path to anything
#: bigger is a mistake.
MAX_SECRET_FILE_BYTES = 64 << 10


class LocalFileError(Exception):
    """A configuration, secret or credential file that cannot be used, in words for the
    person fixing it.

    ``problem`` completes "the file …" ("does not exist", "is a symbolic link loop");
    ``fix`` says what to do; ``reason`` is a short fixed word for programs: "missing",
    "not-a-file", "too-large", "not-text", "symlink-loop", "permission" or "io". Neither
    ever holds any of the file's content.
    """

    def __init__(self, problem: str, fix: str, reason: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix
        self.reason = reason


@dataclass(frozen=True)
class TextFile:
    """A text file's content and its permission bits (``stat.S_IMODE``)."""

    text: str
    mode: int


def read_text_file(path: str | os.PathLike[str], *, limit: int = MAX_SECRET_FILE_BYTES) -> TextFile:
    """A small UTF-8 text file someone else controls: the configuration, a ``file:``
    secret, a provider's credential or configuration file (a token file, a kubeconfig).

    Bounded (at most ``limit`` bytes), regular files only, never blocking on a FIFO or a
    device. Symbolic links are followed (Kubernetes mounts ConfigMaps, Secrets and
    service-account tokens through them); every way the file can be unusable is one
    :class:`LocalFileError`. Part of the public API, so providers read their files the
    same way the core does.
    """
    try:
        data, info = _read(path, limit=limit, follow_symlinks=True)
        return TextFile(decode_utf8(data), stat.S_IMODE(info.st_mode))
    except FileNotFoundError:
        raise LocalFileError("does not exist", "check the path", "missing") from None
    except UnusableFileError as exc:
        fixes = {
            "not-a-file": "point it at a regular file",
            "too-large": "point it at the right file",
            "not-text": "save it as UTF-8 text",
        }
        raise LocalFileError(exc.problem, fixes[exc.reason], exc.reason) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LocalFileError(
                "is a symbolic link loop (or a chain of more than 40 links)",
                "point the path, or the link, at the real file",
                "symlink-loop",
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            fix, reason = (
                "let the user running harbor-secrets read it (and search its directories)",
                "permission",
            )
        elif exc.errno == errno.ENOTDIR:  # a path through something that is no directory
            fix, reason = "check the path", "missing"
        else:
            fix, reason = "check the path and the file", "io"
        raise LocalFileError(f"cannot be read ({exc.strerror or exc})", fix, reason) from None


def read_credential_file(
    path: str | os.PathLike[str], *, what: str, fix: str, reason: str
) -> Secret:
    """A credential a store's client reads at run time (a Vault token file, a Kubernetes
    service-account token), through :func:`read_text_file`: its stripped content, already
    on the scrub list.

    Anything that makes it unusable (missing, unreadable, a FIFO, not text, empty) is a
    :class:`StoreError` of this run with ``reason``, saying "cannot read the ``what``";
    ``fix`` says where the file comes from, and is the hint unless the file is there but
    is no text file (then the reader's own fix comes first).
    """
    try:
        value = read_text_file(path).text.strip()
    except LocalFileError as exc:
        raise StoreError(
            f"cannot read the {what}: the file {exc.problem}",
            hint=fix if exc.reason in ("missing", "permission") else f"{exc.fix}; {fix}",
            reason=reason,
        ) from None
    if not value:
        raise StoreError(f"the {what} is empty", hint=fix, reason=reason)
    return Secret(value)
