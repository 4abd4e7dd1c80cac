"""Obtain a Vault token: the one the job was given, or one from an auth method's login.

A token the provider logs in for belongs to this run and is revoked by
:func:`revoke` when the provider closes; a token it was given belongs to whoever gave it
and is never revoked. Every credential read here is wrapped in :class:`Secret` at once, so
it is registered for scrubbing before any request can fail with it in flight.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import hvac

from harbor_secrets import HarborSecretsError, Secret, StoreError, scrub
from harbor_secrets_vault.config import VaultSettings
from harbor_secrets_vault.errors import NO_CREDENTIALS, Operation, guard

log = logging.getLogger("harbor_secrets.vault")


def login(client: hvac.Client, settings: VaultSettings) -> bool:
    """Put a token on ``client``. True when this run created it (and so must revoke it)."""
    auth = settings.auth
    if auth.method == "token":
        client.token = _given_token(settings).reveal()
        return False
    op = Operation(
        "log in at",
        f"auth/{auth.mount_point}/login",
        ("update",),
        settings.address,
        settings.namespace,
        login=True,
    )
    with guard(op):
        if auth.method == "approle":
            role_id, secret_id = _secret(settings, "role_id"), _secret(settings, "secret_id")
            response = client.auth.approle.login(
                role_id=role_id.reveal(),
                secret_id=secret_id.reveal(),
                mount_point=auth.mount_point,
            )
        elif auth.method == "kubernetes":
            jwt = _service_account_token(settings)
            response = client.auth.kubernetes.login(
                role=auth.role, jwt=jwt.reveal(), mount_point=auth.mount_point
            )
        else:
            jwt = _secret(settings, "jwt")
            response = client.auth.jwt.jwt_login(
                role=auth.role or "", jwt=jwt.reveal(), path=auth.mount_point
            )
    _register(response)
    return True


def revoke(client: hvac.Client, settings: VaultSettings) -> None:
    """Revoke the run's own token (revoke-self); a failure is logged, never raised."""
    op = Operation(
        "revoke", "auth/token/revoke-self", ("update",), settings.address, settings.namespace
    )
    try:
        with guard(op):
            client.auth.token.revoke_self()
    except Exception as exc:  # closing must not fail the run; the token still expires by TTL
        log.warning(
            "could not revoke the Vault token this run logged in with (%s); it stays valid "
            "until its TTL ends",
            scrub(str(exc)) if isinstance(exc, HarborSecretsError) else type(exc).__name__,
        )


def _register(response: Any) -> None:
    with contextlib.suppress(KeyError, TypeError):  # hvac refused a response without one
        Secret(str(response["auth"]["client_token"]))


def _given_token(settings: VaultSettings) -> Secret:
    auth = settings.auth
    if auth.token is not None:
        return auth.token
    if "token" in auth.references:
        return _secret(settings, "token")
    assert auth.token_file is not None
    return _read_file(
        Path(auth.token_file), f"token file {auth.token_file}", "set VAULT_TOKEN or log in again"
    )


def _service_account_token(settings: VaultSettings) -> Secret:
    assert settings.auth.token_path is not None
    return _read_file(
        Path(settings.auth.token_path),
        f"Kubernetes service-account token {settings.auth.token_path}",
        "mount the service-account token (automountServiceAccountToken) or set auth.token_path",
    )


def _read_file(path: Path, what: str, fix: str) -> Secret:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise StoreError(
            f"cannot read the {what} ({exc.strerror})", hint=fix, reason=NO_CREDENTIALS
        ) from None
    if not value:
        raise StoreError(f"the {what} is empty", hint=fix, reason=NO_CREDENTIALS)
    return Secret(value)


def _secret(settings: VaultSettings, name: str) -> Secret:
    """A credential option's value: resolved up front if local, otherwise now."""
    auth = settings.auth
    if name in auth.resolved:
        return auth.resolved[name]
    reference = auth.references[name]
    if settings.resolve is None:
        raise StoreError(f"auth.{name} cannot be resolved here", reason=NO_CREDENTIALS)
    try:
        return settings.resolve(reference)
    except HarborSecretsError as exc:
        raise StoreError(
            f"cannot resolve auth.{name} ({reference.partition(':')[0]}: reference): {exc.message}",
            hint=exc.hint,
            reason=NO_CREDENTIALS,
        ) from None
