"""One hvac client per sink: authenticated on first use, re-authenticated when its token
dies, released by ``close``.

The client is configured only from :class:`VaultSettings`: hvac's own fallbacks to
``VAULT_TOKEN``, ``~/.vault-token`` and the ``VAULT_CLIENT_*`` variables are bypassed by
building the adapter explicitly. Redirects are refused (``max_redirects = 0``) because
requests would resend the ``X-Vault-Token`` header to wherever the redirect points.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import hvac
import hvac.adapters
import requests

from harbor_secrets import StoreError, scrub
from harbor_secrets_vault import auth
from harbor_secrets_vault.config import VaultSettings
from harbor_secrets_vault.errors import (
    MISSING_MOUNT,
    NOT_FOUND,
    PERMISSION_DENIED,
    TLS,
    TOKEN_INVALID,
    Operation,
    guard,
)

log = logging.getLogger("harbor_secrets.vault")


@dataclass(frozen=True)
class MountInfo:
    """A secrets engine mount as Vault describes it."""

    path: str  # with a trailing slash, e.g. "secret/"
    type: str
    kv_version: int | None  # None when the engine is not KV


class VaultConnection:
    """Authenticated access to one Vault server for one sink (thread-safe).

    The provider lives as long as the process, which in watch mode outlasts any Vault
    token. A login token is renewed when less than a third of its TTL is left, and
    replaced by a new login (the old one revoked) once renewal no longer extends it. A
    call refused with 403 is retried once with a new token if the old one turns out to be
    dead: a new login, or the token file read again (Vault Agent rotates it). A token
    given outright (``VAULT_TOKEN``) cannot be replaced, so its expiry is reported as such.
    """

    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self._client: hvac.Client | None = None
        self._lease = auth.Lease(owned=False)
        self._lock = threading.Lock()
        self._mounts: dict[str, MountInfo] = {}

    def operation(self, action: str, path: str, *capabilities: str) -> Operation:
        return Operation(action, path, capabilities, self.settings.address, self.settings.namespace)

    def client(self) -> hvac.Client:
        """The authenticated client: logs in on the first call, renews a token near its end."""
        with self._lock:
            if self._client is None:
                self._client, self._lease = self._log_in(again=False)
            elif self._lease.due(time.monotonic()):
                self._extend()
            return self._client

    def get(self, op: Operation) -> dict[str, Any]:
        """GET ``/v1/<op.path>``; a 404 raises :class:`SecretNotFoundError` with Vault's body."""
        return self._send(op, lambda client: client.adapter.get(f"/v1/{quote(op.path)}"))

    def post(self, op: Operation, body: dict[str, Any]) -> dict[str, Any]:
        return self._send(
            op, lambda client: client.adapter.post(f"/v1/{quote(op.path)}", json=body)
        )

    def _send(self, op: Operation, call: Callable[[hvac.Client], Any]) -> dict[str, Any]:
        """One request; a 403 caused by a dead token is retried once with a new token."""
        client = self.client()
        try:
            with guard(op):
                response = call(client)
        except StoreError as exc:
            if exc.reason != PERMISSION_DENIED:
                raise
            client = self._replace(client, exc, op)
            with guard(op):
                response = call(client)
        return response if isinstance(response, dict) else {}

    def _replace(self, rejected: hvac.Client, error: StoreError, op: Operation) -> hvac.Client:
        """A client with a new token after ``rejected`` got a 403, or raise if none helps."""
        with self._lock:
            current, lease = self._client, self._lease
            if current is None:  # closed meanwhile
                raise error
            if current is not rejected:  # another thread has replaced the token already
                return current
            if lease.owned:
                now = time.monotonic()
                dead = lease.expired(now) or auth.is_valid(current, self.settings) is False
                if not dead:  # the token works: its policy lacks the capability
                    raise error
                self._swap(*self._log_in(again=True))
                return self._client
            client, fresh = self._log_in(again=True)  # reads the token file or reference again
            if client.token == current.token:
                client.adapter.close()
                raise self._given_token_error(current, error, op)
            self._swap(client, fresh)
            return client

    def _given_token_error(
        self, client: hvac.Client, error: StoreError, op: Operation
    ) -> StoreError:
        if auth.is_valid(client, self.settings) is not False:
            return error  # the token works: its policy lacks the capability
        settings = self.settings
        source = auth.token_source(settings)
        if auth.token_is_a_file(settings):
            hint = (
                "the file was read again and still holds this token: check that Vault Agent "
                "(or whatever writes the file) is running and renewing it"
            )
        else:
            hint = (
                "a token given to harbor-secrets is used as it is and never renewed: give it a "
                "TTL that outlasts the job (or make it periodic), let Vault Agent keep a token "
                "file current (auth.token_file), or log in with approle, kubernetes or jwt"
            )
        return StoreError(
            f"the Vault token {source} is invalid or expired (Vault refused to {op.action} "
            f"{op.path})",
            hint=hint,
            reason=TOKEN_INVALID,
        )

    def _extend(self) -> None:
        """Renew the login token, or log in again when renewal no longer helps (max TTL)."""
        assert self._client is not None
        lease = self._lease
        renewed = auth.renew(self._client, self.settings) if lease.renewable else None
        if renewed is not None:
            renewed = replace(renewed, ttl=lease.ttl)  # due() keeps the login's TTL as measure
            if not renewed.due(time.monotonic()):
                self._lease = renewed
                return
        try:
            self._swap(*self._log_in(again=True))
        except StoreError as exc:
            if lease.expired(time.monotonic()):
                raise
            # The old token still works until it expires; a 403 then logs in (or fails) again.
            log.warning(
                "could not log in to Vault again (%s); using the current token until it expires",
                scrub(str(exc)),
            )
            self._lease = replace(lease, ttl=0.0)

    def _log_in(self, *, again: bool) -> tuple[hvac.Client, auth.Lease]:
        client = self._build()
        try:
            lease = auth.login(client, self.settings, again=again)
        except BaseException:
            client.adapter.close()
            raise
        return client, lease

    def _swap(self, client: hvac.Client, lease: auth.Lease) -> None:
        """Make ``client`` current; revoke the token it replaces if it is ours and alive."""
        old, old_lease = self._client, self._lease
        self._client, self._lease = client, lease
        if old is None:
            return
        try:
            if old_lease.owned and not old_lease.expired(time.monotonic()):
                auth.revoke(old, self.settings, replaced=True)
        finally:
            # The old token stays on ``old``: a request still in flight on another thread
            # then fails with 403 and is retried by _replace with the current client.
            old.adapter.close()

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
        """Revoke the current token if this provider logged in for it, then drop the client."""
        with self._lock:
            client, self._client = self._client, None
            lease, self._lease = self._lease, auth.Lease(owned=False)
        if client is None:
            return
        try:
            if lease.owned and not lease.expired(time.monotonic()):
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
