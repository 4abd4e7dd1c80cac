"""The ``files`` store: one directory per token, holding the raw token and the record.

``<directory>/<key>/access_token`` is the token itself (no newline, mode ``file_mode``) and
``record.json`` the stored record (schema 1). Readers open ``access_token`` on every use, as
Kubernetes clients do with a projected service-account token, or as Vault Agent's file sink
expects, and never need to parse anything.

The two files change together or not at all: the core's :class:`AtomicFileSet` writes both
into a new hidden generation directory and swaps one ``..data`` link to it (the kubelet's
scheme for projected volumes); ``access_token`` and ``record.json`` are links through
``..data``. A full disk, a file-size limit or ``kill -9`` at any step leaves the old pair or
the new one, never one of each. Directories written by older versions (two regular files,
replaced one after the other) are read as they are and converted on the next write.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path, PurePosixPath
from typing import Any

from harbor_secrets import (
    AtomicFileSet,
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
#: The writers' lock: the name older versions locked too, so a run of each never overlap.
LOCK_FILE = "record.json.lock"


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

    # -- files --------------------------------------------------------------------------

    def _files(self, key: str) -> AtomicFileSet:
        return AtomicFileSet(
            self.directory,
            PurePosixPath(self.normalize_key(key)).parts,
            (TOKEN_FILE, RECORD_FILE),
            lock_name=LOCK_FILE,
            mode=self.file_mode,
            dir_mode=self.dir_mode,
            lock_timeout=self.lock_timeout,
        )

    def location(self, key: str) -> str:
        return str(self._files(key).location(TOKEN_FILE))

    # -- the contract -----------------------------------------------------------------------

    def read(self, key: str) -> TokenRecord | None:
        return self._current(self._files(key))

    def write(self, key: str, record: TokenRecord) -> WriteOutcome:
        """Lock, compare with the stored record, and replace both files if newer."""
        files = self._files(key)
        files.prepare()
        with files.locked():
            # Under the lock no writer of this version is mid-write; a disagreeing pair is a
            # crash's leftover from an older version, so there is nothing to wait for.
            current = self._current(files, settle=0.0)
            if current is not None and not record.is_newer_than(current):
                return WriteOutcome.KEPT_NEWER
            files.replace(
                {
                    TOKEN_FILE: record.access_token.reveal().encode("utf-8"),
                    RECORD_FILE: record.to_json().encode("utf-8"),
                }
            )
        return WriteOutcome.WRITTEN

    def _current(self, files: AtomicFileSet, *, settle: float = 1.0) -> TokenRecord | None:
        """The stored record, or None when absent or unusable (then it is due: rewritten).

        A pair read from one generation cannot disagree because of a write in progress. One
        written by an older version (two files replaced one after the other, read without a
        lock) can, for a moment: it is read again until it agrees, for up to ``settle``
        seconds; one that still disagrees is what a crash mid-write left.
        """
        deadline = time.monotonic() + settle
        while True:
            snapshot = files.read()
            if snapshot is None or snapshot.files[RECORD_FILE] is None:
                return None
            data = snapshot.files[RECORD_FILE]
            assert data is not None
            try:
                record = TokenRecord.from_json(data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                log.warning(
                    "%s cannot be used (%s); treating the token as due",
                    files.location(RECORD_FILE),
                    exc,
                )
                return None
            token = snapshot.files[TOKEN_FILE]
            if (
                token is not None
                and token.decode("utf-8", "replace") == record.access_token.reveal()
            ):
                return record
            if snapshot.atomic or time.monotonic() >= deadline:
                log.warning(
                    "%s does not match %s; treating the token as due",
                    files.location(TOKEN_FILE),
                    RECORD_FILE,
                )
                return None
            time.sleep(0.01)

    def describe(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "directory": str(self.directory),
            "file_mode": f"{self.file_mode:04o}",
            "lock_timeout_seconds": self.lock_timeout,
        }

    def cannot_write(self, key: str) -> StoreError | None:
        return self._files(key).problem()

    def warnings(self, policy: RefreshPolicy) -> list[str]:
        # The part of every token's check that needs no key: `directory` and its file system.
        problem = AtomicFileSet(self.directory, (), (), lock_name=LOCK_FILE).problem()
        if problem is not None:
            return [f"{problem.message}; writes will be refused until it is fixed"]
        return []

    def __repr__(self) -> str:
        return f"TokenFilesProvider(directory={str(self.directory)!r})"
