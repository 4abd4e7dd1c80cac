"""One hvac client per sink: built and authenticated on first use, released by ``close``.

The client is configured only from :class:`VaultSettings`: hvac's own fallbacks to
``VAULT_TOKEN``, ``~/.vault-token`` and the ``VAULT_CLIENT_*`` variables are bypassed by
building the adapter explicitly. Redirects are refused (``max_redirects = 0``) because
requests would resend the ``X-Vault-Token`` header to wherever the redirect points.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import hvac
import hvac.adapters
import requests

from harbor_secrets import StoreError
from harbor_secrets_vault import auth
from harbor_secrets_vault.config import VaultSettings
from harbor_secrets_vault.errors import (
    MISSING_MOUNT,
    NOT_FOUND,
    PERMISSION_DENIED,
    TLS,
    Operation,
    guard,
)


@dataclass(frozen=True)
class MountInfo:
    """A secrets engine mount as Vault describes it."""

    path: str  # with a trailing slash, e.g. "secret/"
    type: str
    kv_version: int | None  # None when the engine is not KV


class VaultConnection:
    """Lazily authenticated access to one Vault server for one sink (thread-safe)."""

    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self._client: hvac.Client | None = None
        self._owns_token = False
        self._lock = threading.Lock()
        self._mounts: dict[str, MountInfo] = {}

    def operation(self, action: str, path: str, *capabilities: str) -> Operation:
        return Operation(action, path, capabilities, self.settings.address, self.settings.namespace)

    def client(self) -> hvac.Client:
        """The authenticated client, logging in on the first call."""
        with self._lock:
            if self._client is None:
                client = self._build()
                try:
                    self._owns_token = auth.login(client, self.settings)
                except BaseException:
                    client.adapter.close()
                    raise
                self._client = client
            return self._client

    def get(self, op: Operation) -> dict[str, Any]:
        """GET ``/v1/<op.path>``; a 404 raises :class:`SecretNotFoundError` with Vault's body."""
        client = self.client()
        with guard(op):
            response = client.adapter.get(f"/v1/{quote(op.path)}")
        return response if isinstance(response, dict) else {}

    def post(self, op: Operation, body: dict[str, Any]) -> dict[str, Any]:
        client = self.client()
        with guard(op):
            response = client.adapter.post(f"/v1/{quote(op.path)}", json=body)
        return response if isinstance(response, dict) else {}

    def mount(self, path: str, *, is_mount: bool = False) -> MountInfo:
        """The mount that ``path`` lives in, via the endpoint the Vault CLI uses for ``kv``.

        ``sys/internal/ui/mounts/<path>`` answers for any token with some capability
        under the mount, unlike ``sys/mounts`` which needs a privileged policy. With
        ``is_mount`` the whole path is the expected mount (a sink's ``mount`` option);
        otherwise its first segment is the best guess for messages.
        """
        head = path if is_mount else path.split("/", 1)[0]
        with self._lock:
            for known in self._mounts.values():
                if (path + "/").startswith(known.path):
                    return known
        op = self.operation("look up the mount of", f"sys/internal/ui/mounts/{path}", "read")
        try:
            body = self.get(op)
        except StoreError as exc:
            if exc.reason in (PERMISSION_DENIED, NOT_FOUND):
                raise StoreError(
                    f"no secrets engine is mounted at {head}/ on {self.settings.address}, or "
                    "the token's policy grants nothing under it",
                    hint=f"enable it (bao secrets enable -path={head} kv-v2), or grant the "
                    f'policy access to "{head}/data/…" (KV v2) or "{head}/…" (KV v1)',
                    reason=MISSING_MOUNT,
                ) from None
            raise
        data = body.get("data") or {}
        options = data.get("options") or {}
        engine = str(data.get("type", ""))
        version = None
        if engine in ("kv", "generic"):
            version = 2 if str(options.get("version", "1")) == "2" else 1
        info = MountInfo(path=str(data.get("path", head + "/")), type=engine, kv_version=version)
        with self._lock:
            self._mounts[info.path] = info
        return info

    def close(self) -> None:
        """Revoke a token this run logged in for, then drop the client."""
        with self._lock:
            client, self._client = self._client, None
            owns, self._owns_token = self._owns_token, False
        if client is None:
            return
        try:
            if owns:
                auth.revoke(client, self.settings)
        finally:
            client.token = None
            client.adapter.close()

    def _build(self) -> hvac.Client:
        tls = self.settings.tls
        for option, path in (
            ("ca_cert", tls.ca_cert),
            ("ca_path", tls.ca_path),
            ("client_cert", tls.client_cert),
            ("client_key", tls.client_key),
        ):
            if path and not os.path.exists(path):
                raise StoreError(
                    f"{option} {path} does not exist",
                    hint=f"fix {option} (or the matching VAULT_* variable)",
                    reason=TLS,
                )
        session = requests.Session()
        session.max_redirects = 0
        session.verify = tls.verify
        session.cert = tls.cert
        return hvac.Client(
            url=self.settings.address,
            token="",  # not None: hvac would fall back to VAULT_TOKEN and ~/.vault-token
            verify=tls.verify,
            timeout=self.settings.timeout,
            session=session,
            namespace=self.settings.namespace,
            adapter=_SessionTlsAdapter,
        )


class _SessionTlsAdapter(hvac.adapters.JSONAdapter):  # type: ignore[misc]
    """hvac's JSON adapter with TLS settings taken from the session alone.

    ``hvac.Client`` fills in a client certificate from ``VAULT_CLIENT_CERT``/``_KEY`` as
    captured when hvac was imported; the sink's own settings must win, so they travel on
    the session. (Swapping ``client.adapter`` afterwards is no alternative: hvac does not
    pass a new adapter on to the auth method classes.)
    """

    def __init__(self, **kwargs: Any) -> None:
        session = kwargs["session"]
        kwargs.update(cert=session.cert, verify=session.verify)
        super().__init__(**kwargs)
