"""Read and write the stored record in a KV v2 or KV v1 mount, monotonically.

KV v2 makes the write atomic with check-and-set: it writes with ``cas`` = the version it
read, so a concurrent change fails the write, which re-reads and decides again (never
forces). The version read by :meth:`KvV2Store.read` is remembered for the following
``write`` of the same key, so a due record costs one read, one data write and one metadata
write.

KV v1 has no check-and-set. Writes re-read under a per-process lock, which makes one
process monotonic, but two hosts writing the same path at the same instant can still race:
best effort, documented in the README.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from harbor_secrets import MANAGED_BY, StoreError, TokenRecord, WriteOutcome, format_time
from harbor_secrets_vault.connection import VaultConnection
from harbor_secrets_vault.errors import CAS_CONFLICT, CAS_MISMATCH, NOT_MANAGED, SecretNotFoundError

log = logging.getLogger("harbor_secrets.vault")

MANAGED_BY_KEY = "managed-by"  # custom_metadata key; the record itself says "managed_by"
EXPIRES_AT_KEY = "expires_at"


@dataclass(frozen=True)
class Entry:
    """What a read found at one path: enough to decide a write and to check-and-set it."""

    exists: bool
    version: int = 0  # KV v2 current version (0: none yet); always 0 on KV v1
    data: dict[str, Any] | None = None
    custom_metadata: dict[str, str] = field(default_factory=dict)

    @property
    def managed(self) -> bool:
        """Written by harbor-secrets: marked in custom_metadata or in the record itself."""
        return self.custom_metadata.get(MANAGED_BY_KEY) == MANAGED_BY or (
            self.data is not None and self.data.get("managed_by") == MANAGED_BY
        )

    def record(self) -> TokenRecord | None:
        """The stored record, or None when there is none or it does not parse."""
        if self.data is None:
            return None
        try:
            return TokenRecord.from_dict(self.data)
        except ValueError:
            return None


class KvStore(Protocol):
    """What the provider needs from either KV version."""

    def load(self, path: str) -> Entry: ...

    def read(self, path: str) -> TokenRecord | None: ...

    def write(self, path: str, record: TokenRecord) -> WriteOutcome: ...


def check_owned(entry: Entry, location: str, adopt: bool) -> None:
    """Refuse to touch a secret someone else put there, unless the sink says ``adopt``."""
    if entry.exists and not entry.managed and not adopt:
        raise StoreError(
            f"{location} exists but is not managed by harbor-secrets; refusing to overwrite it",
            hint="point path at another location, or set adopt = true in the sink to take it over",
            reason=NOT_MANAGED,
        )


def newer_than_stored(entry: Entry, record: TokenRecord) -> bool:
    return record.is_newer_than(entry.record())


class KvV2Store:
    """Versioned KV: check-and-set writes, ``max_versions`` and ownership in custom_metadata."""

    def __init__(
        self,
        connection: VaultConnection,
        mount: str,
        *,
        max_versions: int,
        cas_retries: int,
        adopt: bool,
    ) -> None:
        self.connection = connection
        self.mount = mount
        self.max_versions = max_versions
        self.cas_retries = cas_retries
        self.adopt = adopt
        self._seen: dict[str, Entry] = {}  # path -> entry from the last read(), used once
        self._lock = threading.Lock()

    def load(self, path: str) -> Entry:
        op = self.connection.operation("read", f"{self.mount}/data/{path}", "read")
        try:
            body = self.connection.get(op)
        except SecretNotFoundError as exc:  # missing, or latest version deleted/destroyed
            body = exc.body
        section = body.get("data") or {}
        metadata = section.get("metadata") or {}
        data = section.get("data")
        version = int(metadata.get("version") or 0)
        custom = metadata.get("custom_metadata") or {}
        return Entry(
            exists=version > 0,
            version=version,
            data=data if isinstance(data, dict) else None,
            custom_metadata={str(k): str(v) for k, v in custom.items()},
        )

    def read(self, path: str) -> TokenRecord | None:
        entry = self.load(path)
        check_owned(entry, f"{self.mount}/{path}", self.adopt)
        with self._lock:
            self._seen[path] = entry
        return entry.record()

    def write(self, path: str, record: TokenRecord) -> WriteOutcome:
        with self._lock:
            entry = self._seen.pop(path, None)
        if entry is None:
            entry = self.load(path)
        location = f"{self.mount}/{path}"
        op = self.connection.operation("write", f"{self.mount}/data/{path}", "create", "update")
        conflicts = 0
        while True:
            check_owned(entry, location, self.adopt)
            if not newer_than_stored(entry, record):
                return WriteOutcome.KEPT_NEWER
            body = {"options": {"cas": entry.version}, "data": record.to_dict()}
            try:
                written = self.connection.post(op, body)
                break
            except StoreError as exc:
                if exc.reason != CAS_MISMATCH:
                    raise
            conflicts += 1
            log.debug("check-and-set conflict on %s (%d), re-reading", location, conflicts)
            if conflicts > self.cas_retries:
                raise StoreError(
                    f"{location} kept changing while this run wrote it (check-and-set failed "
                    f"{conflicts} times); the stored record was left as it was",
                    hint="another writer is updating the same path; if runs overlap heavily, "
                    "raise cas_retries",
                    reason=CAS_CONFLICT,
                )
            entry = self.load(path)
        current = (written.get("data") or {}).get("custom_metadata") or entry.custom_metadata
        self._update_metadata(path, record, current)
        return WriteOutcome.WRITTEN

    def _update_metadata(self, path: str, record: TokenRecord, current: dict[str, Any]) -> None:
        """Set max_versions and the ownership marks, keeping every other metadata setting.

        Vault's metadata POST changes only the fields sent, but replaces custom_metadata
        as a whole, so the keys just seen are merged in. (hvac's ``update_metadata`` is
        not used: it always sends ``delete_version_after``, resetting an operator's value.)
        """
        custom = {str(k): str(v) for k, v in current.items()}
        custom[MANAGED_BY_KEY] = MANAGED_BY
        custom[EXPIRES_AT_KEY] = format_time(record.expires_at)
        op = self.connection.operation(
            "update the metadata of", f"{self.mount}/metadata/{path}", "update"
        )
        try:
            self.connection.post(op, {"max_versions": self.max_versions, "custom_metadata": custom})
        except StoreError as exc:
            raise StoreError(
                f"the token was written to {self.mount}/{path}, but its metadata could not be "
                f"updated: {exc.message}",
                hint=exc.hint,
                reason=exc.reason,
            ) from None


class KvV1Store:
    """Unversioned KV: plain read-compare-write, serialised per path within the process."""

    _path_locks: ClassVar[dict[tuple[str, str, str], threading.Lock]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, connection: VaultConnection, mount: str, *, adopt: bool) -> None:
        self.connection = connection
        self.mount = mount
        self.adopt = adopt

    def load(self, path: str) -> Entry:
        op = self.connection.operation("read", f"{self.mount}/{path}", "read")
        try:
            body = self.connection.get(op)
        except SecretNotFoundError:
            return Entry(exists=False)
        data = body.get("data")
        return Entry(exists=True, data=data if isinstance(data, dict) else None)

    def read(self, path: str) -> TokenRecord | None:
        entry = self.load(path)
        check_owned(entry, f"{self.mount}/{path}", self.adopt)
        return entry.record()

    def write(self, path: str, record: TokenRecord) -> WriteOutcome:
        with self._lock_for(path):
            entry = self.load(path)  # re-read under the lock: a cached read could be stale
            check_owned(entry, f"{self.mount}/{path}", self.adopt)
            if not newer_than_stored(entry, record):
                return WriteOutcome.KEPT_NEWER
            op = self.connection.operation("write", f"{self.mount}/{path}", "create", "update")
            self.connection.post(op, record.to_dict())
        return WriteOutcome.WRITTEN

    def _lock_for(self, path: str) -> threading.Lock:
        settings = self.connection.settings
        key = (settings.address, settings.namespace or "", f"{self.mount}/{path}")
        with self._registry_lock:
            return self._path_locks.setdefault(key, threading.Lock())
