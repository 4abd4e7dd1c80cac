"""The ``vault`` provider: Harbor tokens in HashiCorp Vault or OpenBao KV (v1 and v2).

Each token is one secret whose data is exactly the stored record (schema 1), so consumers
run ``vault kv get -field=access_token secret/harbor/sandbox/tower_access``. Nothing
touches the network until the first read, write or reference: the mount's KV version is
checked once per provider, the login (if any) happens on first use and again only when the
token dies (watch mode keeps one provider for hours), and ``close`` revokes the token the
provider logged in for.
"""

from __future__ import annotations

import threading
from typing import Any

from harbor_secrets import (
    InvalidKeyError,
    Options,
    Provider,
    ProviderContext,
    RefreshPolicy,
    Secret,
    StoreError,
    TokenRecord,
    WriteOutcome,
)
from harbor_secrets_vault import references
from harbor_secrets_vault.config import VaultSettings, parse_settings
from harbor_secrets_vault.connection import VaultConnection
from harbor_secrets_vault.errors import MISSING_MOUNT, WRONG_KV_VERSION
from harbor_secrets_vault.kv import KvStore, KvV1Store, KvV2Store


class VaultProvider(Provider):
    """Sink options: see the README (address, mount, path, kv_version, auth, TLS …)."""

    name = "vault"
    distribution = "harbor-secrets-vault"
    summary = "HashiCorp Vault / OpenBao KV v1 and v2 (check-and-set, ownership metadata)."
    key_option = "path"
    default_key_template = "harbor/{environment}/{scope}"
    reference_schemes = ("vault",)
    stores_full_record = True
    credential_variables = ("VAULT_TOKEN",)

    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self._connection = VaultConnection(settings)
        self._store: KvStore | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, options: Options, context: ProviderContext) -> VaultProvider:
        return cls(parse_settings(options, context))

    def __repr__(self) -> str:
        return (
            f"VaultProvider(address={self.settings.address!r}, mount={self.settings.mount!r}, "
            f"auth={self.settings.auth.method!r})"
        )

    def normalize_key(self, key: str) -> str:
        """A secret path relative to the mount: no leading or trailing ``/``, no empty,
        ``.`` or ``..`` segment."""
        path = key.strip("/")
        if not path or any(part in ("", ".", "..") for part in path.split("/")):
            raise InvalidKeyError(
                "is not a usable secret path (empty, '.' or '..' segments)",
                'use a relative path under the mount, e.g. "harbor/{environment}/{scope}"',
            )
        return path

    def read(self, key: str) -> TokenRecord | None:
        return self._kv().read(key)

    def write(self, key: str, record: TokenRecord) -> WriteOutcome:
        return self._kv().write(key, record)

    def resolve_reference(self, reference: str) -> Secret:
        return references.resolve(self._connection, reference)

    def describe(self) -> dict[str, Any]:
        settings = self.settings
        described: dict[str, Any] = {"provider": self.name, "address": settings.address}
        if settings.namespace:
            described["namespace"] = settings.namespace
        return described | {
            "mount": settings.mount,
            "kv_version": settings.kv_version or "auto",
            "auth": settings.auth.method,
            "max_versions": settings.max_versions,
            "adopt": settings.adopt,
        }

    def warnings(self, policy: RefreshPolicy) -> list[str]:
        notes = []
        if self.settings.tls.skip_verify:
            notes.append(
                "tls_skip_verify = true: Vault's TLS certificate is not checked, so anyone on "
                "the network path can capture the Vault token and every Harbor token; set "
                "ca_cert instead"
            )
        if self.settings.plaintext and self.settings.allow_insecure_http:
            notes.append(
                f"{self.settings.address} is plain http (allow_insecure_http = true): tokens "
                "cross the network unencrypted unless a sidecar or mesh encrypts them"
            )
        if self.settings.kv_version == 1:
            notes.append(
                "KV v1 has no check-and-set: runs overlapping on different hosts can race; "
                "KV v2 makes every write atomic"
            )
        return notes

    def close(self) -> None:
        self._connection.close()

    def _kv(self) -> KvStore:
        """The store for the configured mount, after checking it is KV of the right version."""
        with self._lock:
            if self._store is None:
                self._store = self._open_store()
            return self._store

    def _open_store(self) -> KvStore:
        settings = self.settings
        mount = self._connection.mount(settings.mount, is_mount=True)
        if mount.path.strip("/") != settings.mount:
            raise StoreError(
                f"mount {settings.mount!r} is a path inside the mount {mount.path}",
                hint=f'set mount = "{mount.path.strip("/")}" and put the rest in path',
                reason=MISSING_MOUNT,
            )
        if mount.kv_version is None:
            raise StoreError(
                f"{mount.path} is a {mount.type or 'non-KV'} secrets engine, not KV",
                hint="point mount at a KV v2 (or v1) secrets engine",
                reason=WRONG_KV_VERSION,
            )
        if settings.kv_version is not None and settings.kv_version != mount.kv_version:
            raise StoreError(
                f"{mount.path} is a KV v{mount.kv_version} mount, but the sink says "
                f"kv_version = {settings.kv_version}",
                hint=f'set kv_version = {mount.kv_version} (or "auto"), or use a KV '
                f"v{settings.kv_version} mount",
                reason=WRONG_KV_VERSION,
            )
        if mount.kv_version == 2:
            return KvV2Store(
                self._connection,
                settings.mount,
                max_versions=settings.max_versions,
                cas_retries=settings.cas_retries,
                adopt=settings.adopt,
            )
        return KvV1Store(self._connection, settings.mount, adopt=settings.adopt)
