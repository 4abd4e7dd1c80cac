"""The one place where hvac and requests failures become :class:`StoreError`.

Every Vault call runs inside :func:`guard`, which names what was attempted (the API path
and the policy capability it needs) so the message says what to fix. hvac's own exception
text carries the request URL and Vault's response body; neither is passed on verbatim, and
whatever server text is kept goes through :func:`scrub` so no registered secret (the
Vault token, a JWT, a secret_id) can leak into an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import hvac.exceptions
import requests

from harbor_secrets import StoreError, describe_connection_failure, scrub

# StoreError.reason values this provider uses; the sync report shows them per sink.
PERMISSION_DENIED = "permission-denied"
SEALED = "sealed"
UNAVAILABLE = "unavailable"
MISSING_MOUNT = "missing-mount"
WRONG_KV_VERSION = "wrong-kv-version"
CAS_CONFLICT = "cas-conflict"
CAS_MISMATCH = "cas-mismatch"  # one failed check-and-set; retried, never surfaces
UNREACHABLE = "unreachable"
TLS = "tls"
REDIRECT = "redirect"
AUTH_FAILED = "auth-failed"
NO_CREDENTIALS = "no-credentials"
TOKEN_INVALID = "token-invalid"  # a given token expired or was revoked; it cannot be replaced
NOT_MANAGED = "not-managed"
NOT_FOUND = "not-found"
RATE_LIMITED = "rate-limited"
SERVER_ERROR = "server-error"

_MAX_DETAIL = 300
_STATUS = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}


@dataclass(frozen=True)
class Operation:
    """What a Vault call was for, in the words an error message and a policy need."""

    action: str  # "read", "write", "update the metadata of", "log in at", ...
    path: str  # API path without /v1/, e.g. "secret/data/harbor/sandbox/tower_access"
    capabilities: tuple[str, ...]  # what the token's policy must grant on ``path``
    address: str
    namespace: str | None = None
    login: bool = False  # an auth method's login path: 400/403 mean bad credentials


class SecretNotFoundError(StoreError):
    """404 on a secret path. ``body`` keeps Vault's JSON: KV v2 describes deleted versions."""

    def __init__(self, op: Operation, body: dict[str, Any] | None) -> None:
        super().__init__(f"no secret at {op.path}", reason=NOT_FOUND)
        self.body = body or {}


@contextmanager
def guard(op: Operation) -> Iterator[None]:
    """Run a Vault call; any hvac or requests failure leaves as a :class:`StoreError`."""
    try:
        yield
    except hvac.exceptions.VaultError as exc:
        raise from_vault_error(exc, op) from None
    except requests.exceptions.RequestException as exc:
        raise from_request_error(exc, op) from None


def _detail(exc: hvac.exceptions.VaultError) -> str:
    errors = exc.errors if isinstance(exc.errors, list) else []
    text = "; ".join(" ".join(str(e).split()) for e in errors if str(e).strip())
    text = text.replace("1 error occurred: * ", "")
    return scrub(text)[:_MAX_DETAIL]


def _where(op: Operation) -> str:
    return f"{op.path} (namespace {op.namespace})" if op.namespace else op.path


def from_vault_error(exc: hvac.exceptions.VaultError, op: Operation) -> StoreError:
    """Map Vault's answer to the reason and hint an operator can act on."""
    status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), None)
    detail = _detail(exc)
    said = f": {detail}" if detail else ""
    if status == 400 and "check-and-set" in detail:
        return StoreError(f"check-and-set failed on {_where(op)}", reason=CAS_MISMATCH)
    if op.login and status in (400, 401, 403):
        return StoreError(
            f"Vault at {op.address} rejected the login at {_where(op)}{said}",
            hint="check the role name and the credentials it was given, and that the auth "
            "method is enabled at that mount point (auth.mount_point)",
            reason=AUTH_FAILED,
        )
    if status == 503:
        if "sealed" in detail.lower():
            return StoreError(
                f"Vault at {op.address} is sealed",
                hint="unseal it (bao operator unseal / vault operator unseal); stored tokens "
                "were left as they were",
                reason=SEALED,
            )
        return StoreError(
            f"Vault at {op.address} is unavailable (503){said}",
            hint="check the server's health (bao status); it may be a standby or in maintenance",
            reason=UNAVAILABLE,
        )
    if status == 403:
        capabilities = " and ".join(f'"{c}"' for c in op.capabilities)
        return StoreError(
            f"permission denied: cannot {op.action} {_where(op)}",
            hint=f'the token\'s policy needs {capabilities} on path "{op.path}"; if it has '
            "them, the token is invalid or expired",
            reason=PERMISSION_DENIED,
        )
    if status == 404:
        if "no handler for route" in detail:
            mount = op.path.split("/", 1)[0]
            return StoreError(
                f"no secrets engine is mounted at {mount}/ on {op.address}",
                hint=f"enable one (bao secrets enable -path={mount} kv-v2) or fix mount",
                reason=MISSING_MOUNT,
            )
        body = exc.json if isinstance(exc.json, dict) else None
        return SecretNotFoundError(op, body)
    if status == 429:
        return StoreError(
            f"Vault at {op.address} rate-limited the request to {op.action} {_where(op)}",
            hint="raise the rate-limit quota for this path, or run less often",
            reason=RATE_LIMITED,
        )
    shown = status if status is not None else "an unexpected status"
    return StoreError(
        f"Vault at {op.address} answered {shown} when asked to {op.action} {_where(op)}{said}",
        hint="see the Vault server log for details",
        reason=SERVER_ERROR,
    )


def from_request_error(exc: requests.exceptions.RequestException, op: Operation) -> StoreError:
    """Transport failures: nothing reached Vault, or nothing usable came back."""
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        response = exc.response
        location = response.headers.get("Location", "?") if response is not None else "?"
        target = scrub(location.split("?", 1)[0])
        return StoreError(
            f"Vault at {op.address} redirected the request to {target}; redirects are not "
            "followed because they would resend the Vault token",
            hint="set address to the active node, or to a load balancer that forwards requests",
            reason=REDIRECT,
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return StoreError(
            f"TLS connection to Vault at {op.address} failed (certificate not trusted or "
            "client certificate rejected)",
            hint="set ca_cert (or VAULT_CACERT) to the CA that signed Vault's certificate; "
            "check client_cert/client_key if Vault requires one",
            reason=TLS,
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return StoreError(
            f"Vault at {op.address} did not answer in time (while trying to {op.action} "
            f"{_where(op)})",
            hint="check the address and the network path, or raise timeout",
            reason=UNREACHABLE,
        )
    return StoreError(
        f"cannot reach Vault at {op.address}: {describe_connection_failure(exc)}",
        hint="check address (or VAULT_ADDR) and that the server is running",
        reason=UNREACHABLE,
    )
