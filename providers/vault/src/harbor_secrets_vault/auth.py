"""Obtain a Vault token: the one the job was given, or one from an auth method's login.

A token the provider logs in for belongs to the provider: it is renewed, replaced by a
new login when it expires, and revoked by :func:`revoke` when the provider closes. A token
it was given belongs to whoever gave it and is never renewed or revoked. Every credential
read here is wrapped in :class:`Secret` at once, so it is registered for scrubbing before
any request can fail with it in flight.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac

from harbor_secrets import (
    HarborSecretsError,
    Secret,
    StoreError,
    read_credential_file,
    scrub,
)
from harbor_secrets_vault.config import VaultSettings
from harbor_secrets_vault.errors import NO_CREDENTIALS, PERMISSION_DENIED, Operation, guard

log = logging.getLogger("harbor_secrets.vault")

_SCHEME = re.compile(r"[a-z0-9][a-z0-9-]*")


@dataclass(frozen=True)
class Lease:
    """The token on a client and what is known of its lifetime (monotonic clock)."""

    owned: bool  # this provider logged in for it, so it revokes it
    ttl: float = 0.0  # seconds granted at login or the last renewal; 0: unknown, or given
    renewable: bool = False
    expires: float = math.inf

    def due(self, now: float) -> bool:
        """Less than a third of the TTL left: renew (or log in again) before it runs out."""
        return self.owned and self.ttl > 0 and self.expires - now < self.ttl / 3

    def expired(self, now: float) -> bool:
        return now >= self.expires


def login(client: hvac.Client, settings: VaultSettings, *, again: bool = False) -> Lease:
    """Put a token on ``client`` and describe it.

    ``again`` is a repeat login in a long-lived process (the previous token expired or was
    rotated): credentials are read again from their files and references, not reused.
    """
    auth = settings.auth
    if auth.method == "token":
        client.token = given_token(settings, again=again).reveal()
        return Lease(owned=False)
    op = Operation(
        "log in at",
        f"auth/{auth.mount_point}/login",
        ("update",),
        settings.address,
        settings.namespace,
        login=True,
    )
    started = time.monotonic()
    with guard(op):
        if auth.method == "approle":
            role_id = _secret(settings, "role_id", again)
            secret_id = _secret(settings, "secret_id", again)
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
            jwt = _secret(settings, "jwt", again)
            response = client.auth.jwt.jwt_login(
                role=auth.role or "", jwt=jwt.reveal(), path=auth.mount_point
            )
    _register(response)
    return _lease(response, started)


def renew(client: hvac.Client, settings: VaultSettings) -> Lease | None:
    """renew-self; None when Vault refused (the caller logs in again instead)."""
    op = Operation(
        "renew", "auth/token/renew-self", ("update",), settings.address, settings.namespace
    )
    started = time.monotonic()
    try:
        with guard(op):
            response = client.auth.token.renew_self()
    except StoreError as exc:
        log.debug("could not renew the Vault token (%s); logging in again", exc.message)
        return None
    return _lease(response, started)


def is_valid(client: hvac.Client, settings: VaultSettings) -> bool | None:
    """lookup-self: does Vault still know the client's token? None when it cannot tell.

    Tells an expired or revoked token (replace it) from a policy that lacks a capability
    (logging in again would not help). A token whose policy omits the ``default`` policy
    cannot look itself up either and counts as invalid; the worst case is one extra login.
    """
    op = Operation(
        "look up", "auth/token/lookup-self", ("read",), settings.address, settings.namespace
    )
    try:
        with guard(op):
            client.auth.token.lookup_self()
    except StoreError as exc:
        return False if exc.reason == PERMISSION_DENIED else None
    return True


def revoke(client: hvac.Client, settings: VaultSettings, *, replaced: bool = False) -> None:
    """Revoke the client's token (revoke-self); a failure is logged, never raised.

    A ``replaced`` token is one a new login superseded; it has usually expired already, so
    a refusal is expected and only logged for debugging.
    """
    op = Operation(
        "revoke", "auth/token/revoke-self", ("update",), settings.address, settings.namespace
    )
    try:
        with guard(op):
            client.auth.token.revoke_self()
    except Exception as exc:  # closing must not fail the run; the token still expires by TTL
        why = scrub(str(exc)) if isinstance(exc, HarborSecretsError) else type(exc).__name__
        if replaced:
            log.debug("could not revoke the replaced Vault token (%s)", why)
            return
        log.warning(
            "could not revoke the Vault token this run logged in with (%s); it stays valid "
            "until its TTL ends",
            why,
        )


def token_source(settings: VaultSettings) -> str:
    """Where a given token comes from, in the words of the configuration."""
    auth = settings.auth
    if auth.token is not None:
        return "from VAULT_TOKEN"
    if "token" in auth.references:
        return f"from auth.token{_scheme_of(auth.references['token'])}"
    return f"in {auth.token_file}"


def token_is_a_file(settings: VaultSettings) -> bool:
    """The given token is read from a file, which Vault Agent may rewrite."""
    reference = settings.auth.references.get("token")
    if reference is not None:
        return reference.startswith("file:")
    return settings.auth.token is None


def given_token(settings: VaultSettings, *, again: bool = False) -> Secret:
    """The token the job was given; files (token_file, ``file:``) are read every time."""
    auth = settings.auth
    if auth.token is not None:
        return auth.token
    if "token" in auth.references:
        return _secret(settings, "token", again)
    assert auth.token_file is not None
    return _read_file(
        Path(auth.token_file), f"token file {auth.token_file}", "set VAULT_TOKEN or log in again"
    )


def _lease(response: Any, started: float) -> Lease:
    details = response.get("auth") if isinstance(response, dict) else None
    details = details if isinstance(details, dict) else {}
    try:
        ttl = float(details.get("lease_duration") or 0)
    except (TypeError, ValueError):
        ttl = 0.0
    return Lease(
        owned=True,
        ttl=ttl,
        renewable=bool(details.get("renewable")),
        expires=started + ttl if ttl > 0 else math.inf,
    )


def _register(response: Any) -> None:
    with contextlib.suppress(KeyError, TypeError):  # hvac refused a response without one
        Secret(str(response["auth"]["client_token"]))


def _service_account_token(settings: VaultSettings) -> Secret:
    assert settings.auth.token_path is not None
    return _read_file(
        Path(settings.auth.token_path),
        f"Kubernetes service-account token {settings.auth.token_path}",
        "mount the service-account token (automountServiceAccountToken) or set auth.token_path",
    )


def _read_file(path: Path, what: str, fix: str) -> Secret:
    """A credential file, read at run time: a bad one is a credentials failure of this run."""
    return read_credential_file(path, what=what, fix=fix, reason=NO_CREDENTIALS)


def _secret(settings: VaultSettings, name: str, again: bool = False) -> Secret:
    """A credential option's value: resolved up front if local (unless ``again``), else now."""
    auth = settings.auth
    if name in auth.resolved and not again:
        return auth.resolved[name]
    reference = auth.references[name]
    if settings.resolve is None:
        raise StoreError(f"auth.{name} cannot be resolved here", reason=NO_CREDENTIALS)
    try:
        return settings.resolve(reference)
    except HarborSecretsError as exc:
        raise StoreError(
            f"cannot resolve auth.{name}{_scheme_of(reference)}: {exc.message}",
            hint=exc.hint,
            reason=NO_CREDENTIALS,
        ) from None


def _scheme_of(reference: str) -> str:
    """`` (env: reference)`` for messages; nothing unless it is a well-formed scheme.

    Only the scheme is ever named: if the option holds a pasted secret instead of a
    reference, no part of it may reach a log.
    """
    scheme, sep, _ = reference.partition(":")
    return f" ({scheme}: reference)" if sep and _SCHEME.fullmatch(scheme) else ""
