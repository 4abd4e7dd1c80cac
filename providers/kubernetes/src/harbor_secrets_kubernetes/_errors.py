"""The one place where lightkube and httpx2 failures become :class:`StoreError`.

Every API call runs inside :func:`guard` with an :class:`Operation` naming the verb, the
namespace and the Secret, so a message says what was attempted and what to change (a 403
names the Role rule to add). Expected answers the caller acts on (404 on a read, 409 on a
compare-and-swap write) are raised as :class:`NotFoundError` and :class:`ConflictError`, still
StoreErrors, so one that escapes is a clean failure rather than a traceback.

What the API server said is kept only after :func:`scrub` (every token the process knows,
also in base64, is removed) and is cut short; request bodies, headers and Secret data never
reach a message. lightkube turns only ``Content-Type: application/json`` error answers into
``ApiError``; any other error answer (an HTML 502 from a load balancer, a JSON one with a
charset) is an ``httpx2.HTTPStatusError`` and is mapped here too.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
from lightkube import ApiError
from lightkube.core.exceptions import ConfigError as LightkubeConfigError

from harbor_secrets import StoreError, describe_connection_failure, scrub

# StoreError.reason values; the sync report shows them per sink.
UNAUTHORIZED = "unauthorized"
PERMISSION_DENIED = "permission-denied"
NOT_FOUND = "not-found"
NOT_MANAGED = "not-managed"
INVALID = "invalid"
CONFLICT = "conflict"
RATE_LIMITED = "rate-limited"
UNAVAILABLE = "unavailable"
SERVER_ERROR = "server-error"
TIMEOUT = "timeout"
TLS = "tls"
CREDENTIALS = "credentials"

_MAX_DETAIL = 300
_USER = re.compile(r'User "([^"]+)"')


@dataclass(frozen=True)
class Operation:
    """One API request, in the words an error message and a Role rule need."""

    verb: str  # the RBAC verb: "get", "update", "create"
    namespace: str
    name: str
    server: str
    identity: str  # where the credentials came from (Identity.describe())

    @property
    def what(self) -> str:
        return f'Secret "{self.name}" in namespace "{self.namespace}"'


class NotFoundError(StoreError):
    """404: no such Secret (or, for a create, no such namespace)."""

    def __init__(self, op: Operation, kind: str | None) -> None:
        self.kind = kind or "secrets"
        if self.kind == "namespaces":
            message = f'namespace "{op.namespace}" does not exist on {op.server}'
            hint = f"create it (kubectl create namespace {op.namespace}) or fix the namespace"
        else:
            message = f"{op.what} does not exist on {op.server}"
            hint = None
        super().__init__(message, hint=hint, reason=NOT_FOUND)


class ConflictError(StoreError):
    """409: a stale resourceVersion (``Conflict``) or a taken name (``AlreadyExists``)."""

    def __init__(self, op: Operation, status_reason: str) -> None:
        super().__init__(
            f"{op.what} changed while it was being written ({status_reason})", reason=CONFLICT
        )
        self.already_exists = status_reason == "AlreadyExists"


@contextmanager
def guard(op: Operation) -> Iterator[None]:
    """Run one API call; any lightkube or httpx2 failure leaves as a :class:`StoreError`."""
    try:
        yield
    except StoreError:
        raise
    except ApiError as exc:
        raise from_status(op, _status_dict(exc)) from None
    except httpx2.HTTPStatusError as exc:
        raise from_response(op, exc.response) from None
    except KeyError as exc:
        # lightkube reads the error answer's Content-Type with [] and fails on an answer
        # that has none; the HTTPStatusError it was handling is the real failure.
        cause = exc.__context__
        if isinstance(cause, httpx2.HTTPStatusError):
            raise from_response(op, cause.response) from None
        raise
    except httpx2.TimeoutException:
        raise StoreError(
            f"the Kubernetes API server at {op.server} did not answer in time (while trying "
            f"to {op.verb} {op.what})",
            hint="check the network path to the API server (a NetworkPolicy's egress rules, "
            "a firewall), or raise timeout",
            reason=TIMEOUT,
        ) from None
    except httpx2.TransportError as exc:
        raise from_transport(op, exc) from None
    except LightkubeConfigError as exc:
        raise StoreError(
            f"cannot load the credentials of {op.identity}: {_clean(str(exc))}",
            hint="check the token file or the exec plugin of the kubeconfig user",
            reason=CREDENTIALS,
        ) from None


def _status_dict(exc: ApiError) -> dict[str, Any]:
    status = exc.status
    details = status.details
    code = status.code
    if code is None and exc.response is not None:
        code = exc.response.status_code
    return {
        "code": code,
        "reason": status.reason or "",
        "message": status.message or "",
        "details": {
            "kind": getattr(details, "kind", None),
            "name": getattr(details, "name", None),
            "causes": [
                {"field": c.field, "reason": c.reason, "message": c.message}
                for c in (getattr(details, "causes", None) or [])
            ],
        },
    }


def from_response(op: Operation, response: httpx2.Response) -> StoreError:
    """An error answer lightkube did not decode: a Status with another media type, or a
    proxy's or load balancer's own page."""
    content_type = response.headers.get("Content-Type", "")
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            document = json.loads(response.content)
        except ValueError:
            document = None
        if isinstance(document, dict) and document.get("kind") == "Status":
            document.setdefault("code", response.status_code)
            return from_status(op, document)
    code = response.status_code
    what = f"{code} {response.reason_phrase}".strip()
    shown = f" ({content_type.split(';')[0]})" if content_type else ""
    reason = UNAVAILABLE if code in (502, 503, 504) else SERVER_ERROR
    return StoreError(
        f"the Kubernetes API server at {op.server} answered {what} with a body that is not "
        f"a Kubernetes Status{shown} when asked to {op.verb} {op.what}",
        hint="a proxy or load balancer in front of the API server may be failing; stored "
        "tokens were left as they were",
        reason=reason,
    )


def from_status(op: Operation, status: Mapping[str, Any]) -> StoreError:
    """Map the API server's Status to the reason and hint an operator can act on."""
    code = status.get("code")
    kind_reason = str(status.get("reason") or "")
    message = _clean(str(status.get("message") or ""))
    details = status.get("details") or {}
    said = f": {message}" if message else ""
    if code == 401:
        return StoreError(
            f"the Kubernetes API server at {op.server} rejected the credentials of "
            f"{op.identity} (401 Unauthorized)",
            hint=_unauthorized_hint(op),
            reason=UNAUTHORIZED,
        )
    if code == 403:
        user = _USER.search(message)
        who = f" as {user.group(1)}" if user else ""
        return StoreError(
            f"permission denied: cannot {op.verb} {op.what}{who}",
            hint=role_rule_hint(op),
            reason=PERMISSION_DENIED,
        )
    if code == 404:
        return NotFoundError(op, details.get("kind"))
    if code == 409:
        return ConflictError(op, kind_reason or "Conflict")
    if code == 422:
        return StoreError(
            f"the Kubernetes API server refused {op.what} as invalid{_causes(details) or said}",
            hint="an immutable Secret cannot be updated: delete it and pre-create it without "
            "immutable: true; otherwise see the API server's message",
            reason=INVALID,
        )
    if code == 429:
        return StoreError(
            f"the Kubernetes API server at {op.server} is throttling requests (429){said}",
            hint="it is overloaded or API Priority and Fairness limits this service account; "
            "the next run retries",
            reason=RATE_LIMITED,
        )
    reason = UNAVAILABLE if code in (502, 503, 504) else SERVER_ERROR
    return StoreError(
        f"the Kubernetes API server at {op.server} answered {code} {kind_reason} when asked "
        f"to {op.verb} {op.what}{said}".replace("  ", " "),
        hint="stored tokens were left as they were; see the API server's health "
        "(kubectl get --raw /readyz)",
        reason=reason,
    )


def from_transport(op: Operation, exc: httpx2.TransportError) -> StoreError:
    """Nothing reached the API server, or nothing usable came back."""
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        detail = getattr(cause, "verify_message", None) or _after(text, "verify failed: ")
        return StoreError(
            f"TLS verification of the Kubernetes API server at {op.server} failed "
            f"({_clean(detail)}): its certificate is not signed by the CA that "
            f"{op.identity} names",
            hint="set the cluster's certificate-authority(-data) in the kubeconfig to the "
            "cluster CA; in a pod it is ca.crt in the service-account mount",
            reason=TLS,
        )
    if isinstance(cause, ssl.SSLError) or "SSL" in text:
        return StoreError(
            f"TLS connection to the Kubernetes API server at {op.server} failed ({_clean(text)})",
            hint="check that the server URL is the API server's https:// address",
            reason=TLS,
        )
    reason = describe_connection_failure(exc)
    return StoreError(
        f"cannot reach the Kubernetes API server at {op.server}: {reason}",
        hint="check the server address and that the API server is up (kubectl get --raw "
        "/readyz); stored tokens were left as they were",
        reason=UNAVAILABLE,
    )


def role_rule_hint(op: Operation) -> str:
    """The Role rule that grants ``op`` (what a 403 asks the operator to add)."""
    if op.verb == "create":
        return (
            f'the Role in namespace "{op.namespace}" bound to this identity needs '
            '{apiGroups: [""], resources: ["secrets"], verbs: ["create"]} (RBAC cannot limit '
            "create to names); or pre-create the Secret and set create = false"
        )
    return (
        f'the Role in namespace "{op.namespace}" bound to this identity needs '
        f'{{apiGroups: [""], resources: ["secrets"], resourceNames: ["{op.name}"], '
        'verbs: ["get", "update", "patch"]}'
    )


def _unauthorized_hint(op: Operation) -> str:
    if op.identity.startswith("the pod's service account"):
        return (
            "the token file was re-read and retried once; check that the ServiceAccount "
            "exists, that its token is mounted (automountServiceAccountToken) and that the "
            "pod's service account is the one the Role is bound to"
        )
    return "refresh the kubeconfig user's credentials (log in again, or check its exec plugin)"


def _causes(details: Mapping[str, Any]) -> str:
    causes = details.get("causes") or []
    shown = []
    for cause in causes[:5]:
        field = cause.get("field") or "?"
        text = _clean(str(cause.get("message") or cause.get("reason") or ""))
        shown.append(f"{field}: {text}")
    return (": " + "; ".join(shown)) if shown else ""


def _clean(text: str) -> str:
    """Server or library text, safe and short enough for one line."""
    return scrub(" ".join(text.split()))[:_MAX_DETAIL]


def _after(text: str, marker: str) -> str:
    return text.split(marker, 1)[1].split(" (_ssl", 1)[0] if marker in text else text
