"""The ``files`` store: one directory per token, holding the raw token and the record.

``<directory>/<key>/access_token`` is the token itself (no newline, mode 0600) and
``record.json`` the stored record (schema 1). Readers open ``access_token`` on every use, as
Kubernetes clients do with a projected service-account token, or as Vault Agent's file sink
expects; each file is replaced atomically by the core's writer, so a reader always sees a
whole, current token and never needs to parse anything.

Order matters for a crash between the two replacements: the token is written first, the
record (which decides due-ness) last. A crash in between leaves a record that still names
the old expiry, so the next run finds the token due and writes both again; the reverse
order could leave a record promising a later expiry than the token on disk has.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path, PurePosixPath
from typing import Any

from harbor_secrets import (
    AtomicFile,
    InvalidKeyError,
    Options,
    Provider,
    ProviderContext,
    RefreshPolicy,
    StoreError,
    TokenRecord,
    WriteOutcome,
)
from harbor_secrets_envfile.provider import DEFAULT_LOCK_TIMEOUT, file_options

log = logging.getLogger("harbor_secrets.files")

TOKEN_FILE = "access_token"
RECORD_FILE = "record.json"


class TokenFilesProvider(Provider):
    """Sink options: ``directory`` (required), ``path`` (the per-token directory template),
    ``file_mode``, ``lock_timeout``."""

    name = "files"
    distribution = "harbor-secrets-envfile"
    summary = "One directory per token: the raw token in access_token (re-read on use)."
    key_option = "path"
    default_key_template = "{environment}/{scope}"
    stores_full_record = True
    shared = False  # a file on this host: each host's refresher keeps its own

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        file_mode: int = 0o600,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        self.directory = Path(os.path.abspath(directory))
        self.file_mode = file_mode
        # Directories get the file mode's read bits plus search: 0600 -> 0700, 0640 -> 0750.
        self.dir_mode = file_mode | ((file_mode & 0o444) >> 2)
        self.lock_timeout = lock_timeout

    @classmethod
    def from_options(cls, options: Options, context: ProviderContext) -> TokenFilesProvider:
        directory, mode, lock_timeout = file_options(options, context, "directory")
        return cls(directory, file_mode=mode, lock_timeout=lock_timeout)

    def normalize_key(self, key: str) -> str:
        """A relative directory below ``directory``: no ``..``, no empty segment."""
        parts = key.split("/")
        if key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise InvalidKeyError(
                "is not a relative directory (empty, '.', '..' or absolute)",
                'use a relative path such as "{environment}/{scope}"',
            )
        if "\\" in key or any(not p.isprintable() for p in parts):
            raise InvalidKeyError(
                "holds a backslash or a control character",
                'use letters, digits, "-", "_" and "/" (e.g. "{environment}/{scope}")',
            )
        return key

    # -- paths ------------------------------------------------------------------------------

    def _token_dir(self, key: str) -> Path:
        return self.directory.joinpath(*PurePosixPath(self.normalize_key(key)).parts)

    def _files(self, key: str) -> tuple[AtomicFile, AtomicFile]:
        folder = self._token_dir(key)
        token = AtomicFile(folder / TOKEN_FILE, mode=self.file_mode, lock_timeout=self.lock_timeout)
        record = AtomicFile(
            folder / RECORD_FILE, mode=self.file_mode, lock_timeout=self.lock_timeout
        )
        return token, record

    def location(self, key: str) -> str:
        return str(self._token_dir(key) / TOKEN_FILE)

    def _check_directories(self, key: str, *, create: bool) -> None:
        """Every directory from ``directory`` down is a real directory, never a symlink.

        ``directory`` itself must exist (creating it silently would hide a typo); the
        per-token directories below it are created on first write.
        """
        if not self.directory.is_dir():
            raise StoreError(
                f"directory {self.directory} does not exist",
                hint=f"create it (mkdir -p {self.directory}) or fix `directory`",
                reason="missing-directory",
            )
        current = self.directory
        for part in PurePosixPath(self.normalize_key(key)).parts:
            current = current / part
            try:
                info = os.lstat(current)
            except FileNotFoundError:
                if not create:
                    return
                try:
                    os.mkdir(current, self.dir_mode)
                except FileExistsError:
                    pass  # a concurrent writer made it; checked below
                except OSError as exc:
                    raise StoreError(
                        f"cannot create directory {current}: {exc.strerror or exc}",
                        hint=f"let this user create directories in {current.parent}",
                        reason="permission",
                    ) from None
                info = os.lstat(current)
            if stat.S_ISLNK(info.st_mode):
                raise StoreError(
                    f"refusing to use {current}: it is a symbolic link",
                    hint="point `directory` at the real directory; a link could redirect the "
                    "token anywhere",
                    reason="symlink",
                )
            if not stat.S_ISDIR(info.st_mode):
                raise StoreError(f"{current} is not a directory", reason="not-a-directory")

    # -- the contract -----------------------------------------------------------------------

    def read(self, key: str) -> TokenRecord | None:
        self._check_directories(key, create=False)
        token_file, record_file = self._files(key)
        return self._current(token_file, record_file)

    def write(self, key: str, record: TokenRecord) -> WriteOutcome:
        """Lock, compare with the stored record, and replace token then record if newer."""
        self._check_directories(key, create=True)
        token_file, record_file = self._files(key)
        token_file.check()
        record_file.check()
        with record_file.locked():
            # Under the lock no writer is between its two replacements: a disagreeing pair
            # is a crash's leftover, so there is nothing to wait for.
            current = self._current(token_file, record_file, settle=0.0)
            if current is not None and not record.is_newer_than(current):
                return WriteOutcome.KEPT_NEWER
            token_file.replace(record.access_token.reveal().encode("utf-8"))
            record_file.replace(record.to_json().encode("utf-8"))
        return WriteOutcome.WRITTEN

    def _current(
        self, token_file: AtomicFile, record_file: AtomicFile, *, settle: float = 1.0
    ) -> TokenRecord | None:
        """The stored record, or None when absent or unusable (then it is due: rewritten).

        Reads take no lock (a reader may not be allowed to create one), so a read can fall
        between a writer's two replacements; the pair is read again until it agrees. A
        pair that still disagrees after ``settle`` seconds is what a crash mid-write leaves.
        """
        deadline = time.monotonic() + settle
        while True:
            data = record_file.read()
            if data is None:
                return None
            try:
                record = TokenRecord.from_json(data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                log.warning(
                    "%s cannot be used (%s); treating the token as due", record_file.path, exc
                )
                return None
            token = token_file.read()
            if (
                token is not None
                and token.decode("utf-8", "replace") == record.access_token.reveal()
            ):
                return record
            if time.monotonic() >= deadline:
                log.warning(
                    "%s does not match %s; treating the token as due", token_file.path, RECORD_FILE
                )
                return None
            time.sleep(0.01)

    def describe(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "directory": str(self.directory),
            "file_mode": f"{self.file_mode:04o}",
            "lock_timeout": self.lock_timeout,
        }

    def warnings(self, policy: RefreshPolicy) -> list[str]:
        if not self.directory.is_dir():
            return [f"directory {self.directory} does not exist; create it before the first sync"]
        return []

    def __repr__(self) -> str:
        return f"TokenFilesProvider(directory={str(self.directory)!r})"
