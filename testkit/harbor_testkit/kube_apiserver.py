"""A stand-in Kubernetes API server for core/v1 Secrets, over HTTPS on loopback.

No kube-apiserver, kind or k3s can run where these tests run, yet the Kubernetes Secret
store provider must be tested against a real client library (kubectl, the official or the
lightkube Python client) doing real TLS, real bearer-token authentication and real optimistic
concurrency. :class:`KubeApiServer` answers the requests those clients make for Secrets the way
a real API server does: the same URLs, the same ``Status`` bodies (reasons, messages, details)
for 401/403/404/409/422, resourceVersion compare-and-swap, RBAC ``Role`` semantics (including
``resourceNames`` never granting ``create`` or ``list``), ``stringData``, merge, strategic
merge and JSON patches, and the discovery documents kubectl reads first. What it does not do
is listed in :data:`NOT_IMPLEMENTED`, so a test never silently relies on a gap.

    with KubeApiServer(namespaces={"apps"}) as kube:
        token = kube.add_token("system:serviceaccount:apps:harbor-secrets")
        kube.grant("system:serviceaccount:apps:harbor-secrets", Rule(("get", "update")))
        kube.write_kubeconfig(tmp_path / "kubeconfig", token=token, namespace="apps")
        kube.conflicts(1)            # the next write finds that another writer got there first
        ... run the client ...
        assert kube.secret("apps", "harbor-token")["data"]["token"] == ...

Request bodies and ``Authorization`` headers are never logged or recorded: they carry Harbor
tokens and service-account tokens. :attr:`KubeApiServer.requests` holds only the method, the
path (no query string), the user name and the status.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import email.message
import json
import logging
import os
import re
import secrets
import socket
import ssl
import struct
import tempfile
import threading
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qs, unquote, urlsplit

from harbor_testkit.servers import ServerStartError
from harbor_testkit.tls import TlsMaterial, issue_loopback_tls

__all__ = [
    "NOT_IMPLEMENTED",
    "SERVICE_ACCOUNT_DIR",
    "Fault",
    "KubeApiServer",
    "KubeconfigContext",
    "RequestRecord",
    "Rule",
]

log = logging.getLogger(__name__)

#: Where a pod's service-account token, CA and namespace are mounted (real clients read it).
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

#: The version ``/version`` reports: the kubectl in the virtualenv's minor, within skew.
GIT_VERSION = "v1.37.0"

#: Deliberate gaps: a test that needs one of these must not pretend it was exercised.
NOT_IMPLEMENTED = (
    "watch (?watch=true answers 405)",
    "server-side apply (application/apply-patch+yaml answers 415)",
    "YAML and CBOR request bodies (415); protobuf only for Secret and DeleteOptions bodies",
    "protobuf, CBOR or YAML responses: responses are always JSON (every client accepts it)",
    "managedFields",
    "deletecollection",
    "resources other than secrets and namespaces (404)",
    "aggregated discovery (the legacy documents are served; clients fall back)",
    "continue tokens expiring (410 Gone) and resourceVersion/resourceVersionMatch on reads",
    "SelfSubjectAccessReview/SelfSubjectReview (kubectl auth can-i/whoami answer 404)",
    "admission webhooks, quotas, audit, impersonation, client certificates, HTTP/2",
)

JSON = Any  # a decoded JSON value

_MAX_REQUEST_BYTES = 3 * 1024 * 1024  # kube-apiserver's request body limit
_MAX_SECRET_BYTES = 1024 * 1024  # core.MaxSecretSize
_MAX_ANNOTATIONS_BYTES = 256 * 1024  # TotalAnnotationSizeLimitB
_OPTIMISTIC_LOCK = (
    "the object has been modified; please apply your changes to the latest version and try again"
)
_SECRETS = "secrets"
_NAMESPACES = "namespaces"
_JSON_CONTENT = "application/json"
_MERGE_PATCH = "application/merge-patch+json"
_STRATEGIC_PATCH = "application/strategic-merge-patch+json"
_JSON_PATCH = "application/json-patch+json"
_PATCH_TYPES = (_JSON_PATCH, _MERGE_PATCH, _STRATEGIC_PATCH)
_SECRET_FIELDS = ("apiVersion", "kind", "metadata", "immutable", "data", "stringData", "type")
_META_FIELDS = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)
_TYPE_META_SERVED = {"kind": "Secret", "apiVersion": "v1"}
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apiserver's name generator
_POLL = 0.05
_QUERY = re.compile(r"\?\S*")


# -- public value types ----------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One RBAC ``PolicyRule`` granted to a user, as a RoleBinding would grant it.

    ``namespace=None`` grants in every namespace and at the cluster scope (a ClusterRole bound
    by a ClusterRoleBinding); a namespace name grants only there (a Role and RoleBinding in
    it). ``resource_names`` restricts the rule to requests that name one of those objects, so,
    as in Kubernetes, such a rule never allows ``create``, ``list``, ``watch`` or
    ``deletecollection`` (their URLs name no object). ``"*"`` matches every verb or resource.
    """

    verbs: tuple[str, ...]
    resources: tuple[str, ...] = (_SECRETS,)
    namespace: str | None = None
    resource_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("verbs", "resources", "resource_names"):
            value = getattr(self, name)
            if isinstance(value, str):  # Rule("get") would otherwise grant "g", "e", "t"
                raise TypeError(f"Rule.{name} must be a sequence of strings, not a string")
            object.__setattr__(self, name, tuple(value))

    def allows(self, verb: str, resource: str, namespace: str | None, name: str | None) -> bool:
        """Whether this rule authorizes the request attributes, exactly as RBAC matches them."""
        if "*" not in self.verbs and verb not in self.verbs:
            return False
        if "*" not in self.resources and resource not in self.resources:
            return False
        if self.namespace is not None and self.namespace != namespace:
            return False
        return not self.resource_names or (bool(name) and name in self.resource_names)


@dataclass(frozen=True)
class Fault:
    """What the server does to one Secret or Namespace request instead of (or before) serving it.

    ``delay`` waits first (to push a request past a client's timeout); then ``reset`` aborts
    the connection with a TCP reset, or ``status`` answers with that code (a Kubernetes Status
    body, or ``body`` verbatim with ``content_type``, e.g. a load balancer's HTML 502); with
    neither, the request is served normally once the delay is over. ``retry_after`` adds a
    Retry-After header (as API priority and fairness does with 429). ``methods`` limits the
    fault to those HTTP methods; other requests pass it by and leave it queued. Discovery,
    OpenAPI and ``/version`` requests are never faulted, so kubectl's start-up does not eat
    the queue.
    """

    status: int | None = None
    delay: float = 0.0
    reset: bool = False
    message: str | None = None
    retry_after: int | None = None
    body: bytes | None = None
    content_type: str = "text/plain"
    methods: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.delay < 0:
            raise ValueError("a fault's delay cannot be negative")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"{self.status} is not an HTTP status")
        object.__setattr__(self, "methods", tuple(m.upper() for m in self.methods))

    def matches(self, method: str) -> bool:
        return not self.methods or method in self.methods


class RequestRecord(NamedTuple):
    """One request the server answered: never a body, a header or a query string."""

    method: str
    path: str
    user: str | None
    status: int  # 0: the connection was reset instead of answered


@dataclass(frozen=True)
class KubeconfigContext:
    """Another context for :meth:`KubeApiServer.write_kubeconfig` (its own user and token).

    ``server`` points the context at another URL (a stopped server, say) to prove a client
    honours the selected context; by default it shares the stand-in's cluster entry.
    """

    name: str
    token: str | None = None
    token_file: Path | None = None
    namespace: str | None = None
    server: str | None = None


# -- Kubernetes Status errors ------------------------------------------------------------------


class ApiError(Exception):
    """A request the API server refuses: ``status`` is the Kubernetes ``Status`` object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: Mapping[str, JSON] | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status: dict[str, JSON] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
        }
        if details is not None:
            self.status["details"] = dict(details)
        self.status["code"] = code
        self.headers = tuple(headers)


def _details(resource: str | None, name: str | None = None, **more: JSON) -> dict[str, JSON]:
    details: dict[str, JSON] = {}
    if name:
        details["name"] = name
    if resource:
        details["kind"] = resource
    details.update(more)
    return details


def _not_found(resource: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource} "{name}" not found', _details(resource, name))


def _already_exists(name: str) -> ApiError:
    return ApiError(
        409, "AlreadyExists", f'secrets "{name}" already exists', _details(_SECRETS, name)
    )


def _conflict(name: str, why: str = _OPTIMISTIC_LOCK) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on secrets "{name}": {why}',
        _details(_SECRETS, name),
    )


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def _forbidden(
    user: str, verb: str, resource: str, namespace: str | None, name: str | None
) -> ApiError:
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    reason = f'User "{user}" cannot {verb} resource "{resource}" in API group "" {where}'
    subject = f'{resource} "{name}"' if name else resource
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {reason}", _details(resource, name))


def _method_not_allowed() -> ApiError:
    return ApiError(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        {},
    )


def _unsupported_media_type(accepted: Iterable[str]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
        {},
    )


def _no_such_resource() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


@dataclass(frozen=True)
class _FieldError:
    """One ``field.Error``: its cause entry and its line in the aggregate message."""

    kind: str  # FieldValueInvalid, FieldValueRequired, ...
    field: str
    body: str  # field.Error.ErrorBody()

    @classmethod
    def invalid(cls, path: str, value: object, detail: str) -> _FieldError:
        shown = json.dumps(value) if isinstance(value, str) else str(value)
        return cls("FieldValueInvalid", path, f"Invalid value: {shown}: {detail}")

    @classmethod
    def required(cls, path: str, detail: str = "") -> _FieldError:
        return cls("FieldValueRequired", path, "Required value" + (f": {detail}" if detail else ""))

    @classmethod
    def forbidden(cls, path: str, detail: str) -> _FieldError:
        return cls("FieldValueForbidden", path, f"Forbidden: {detail}")

    @classmethod
    def too_long(cls, path: str, limit: int) -> _FieldError:
        return cls("FieldValueTooLong", path, f"Too long: must have at most {limit} bytes")

    def __str__(self) -> str:
        return f"{self.field}: {self.body}"


def _invalid(kind: str, name: str, errors: Sequence[_FieldError]) -> ApiError:
    """``errors.NewInvalid``: 422, reason Invalid, one cause per field error."""
    unique = list(dict.fromkeys(str(error) for error in errors))
    aggregate = unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"
    details: dict[str, JSON] = {}
    if name:
        details["name"] = name
    if kind:
        details["kind"] = kind
    details["causes"] = [
        {"reason": error.kind, "message": error.body, "field": error.field} for error in errors
    ]
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {aggregate}', details)


_FAULT_REASONS = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("NotFound", "the server could not find the requested resource"),
    409: ("Conflict", "the server reported a conflict"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected fault"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: (
        "Timeout",
        "Timeout: request did not complete within requested timeout - context deadline exceeded",
    ),
}


# -- validation ----------------------------------------------------------------------------------

_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + "(\\." + _DNS1123_LABEL + ")*"
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{_DNS1123_SUBDOMAIN}$")
_CONFIG_KEY = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_RE = re.compile(f"^{_CONFIG_KEY}$")
_LABEL_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_NAME_RE = re.compile(f"^{_LABEL_NAME}$")
_LABEL_VALUE = f"({_LABEL_NAME})?"
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE}$")


def _regex_error(message: str, pattern: str, *examples: str) -> str:
    """``validation.RegexError``: the wording kubectl users see, examples and regex included."""
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{pattern}')"


def _subdomain_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 253:
        errors.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errors.append(
            _regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character",
                _DNS1123_SUBDOMAIN,
                "example.com",
            )
        )
    return errors


def _config_key_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 253:
        errors.append("must be no more than 253 characters")
    if not _CONFIG_KEY_RE.match(value):
        errors.append(
            _regex_error(
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                _CONFIG_KEY,
                "key.name",
                "KEY_NAME",
                "key-name",
            )
        )
    if value == ".":
        errors.append("must not be '.'")
    elif value == "..":
        errors.append("must not be '..'")
    elif value.startswith(".."):
        errors.append("must not start with '..'")
    return errors


def _label_key_errors(value: str) -> list[str]:
    name_rule = _regex_error(
        "must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
        "with an alphanumeric character",
        _LABEL_NAME,
        "MyName",
        "my.name",
        "123-abc",
    )
    parts = value.split("/")
    if len(parts) > 2:
        return [
            f"a valid label key {name_rule} with an optional DNS subdomain prefix and '/' "
            "(e.g. 'example.com/MyName')"
        ]
    errors = []
    if len(parts) == 2:
        if not parts[0]:
            errors.append("prefix part must be non-empty")
        else:
            errors.extend("prefix part " + error for error in _subdomain_errors(parts[0]))
    name = parts[-1]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    if not _LABEL_NAME_RE.match(name):
        errors.append("name part " + name_rule)
    return errors


def _label_value_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _LABEL_VALUE_RE.match(value):
        errors.append(
            _regex_error(
                "a valid label must be an empty string or consist of alphanumeric characters, "
                "'-', '_' or '.', and must start and end with an alphanumeric character",
                _LABEL_VALUE,
                "MyValue",
                "my_value",
                "12345",
            )
        )
    return errors


def _validate_secret(secret: Mapping[str, JSON]) -> list[_FieldError]:
    """``ValidateSecret``: metadata, data keys and size, and the per-type required keys."""
    meta = secret["metadata"]
    errors: list[_FieldError] = []
    name = meta.get("name", "")
    if not name:
        errors.append(_FieldError.required("metadata.name", "name or generateName is required"))
    else:
        errors.extend(
            _FieldError.invalid("metadata.name", name, e) for e in _subdomain_errors(name)
        )
    for key, value in meta.get("labels", {}).items():
        errors.extend(
            _FieldError.invalid("metadata.labels", key, e) for e in _label_key_errors(key)
        )
        errors.extend(
            _FieldError.invalid("metadata.labels", value, e) for e in _label_value_errors(value)
        )
    annotations = meta.get("annotations", {})
    for key in annotations:
        errors.extend(
            _FieldError.invalid("metadata.annotations", key, e)
            for e in _label_key_errors(key.lower())
        )
    if sum(len(k) + len(v) for k, v in annotations.items()) > _MAX_ANNOTATIONS_BYTES:
        errors.append(_FieldError.too_long("metadata.annotations", _MAX_ANNOTATIONS_BYTES))
    data = secret.get("data", {})
    total = 0
    for key, value in data.items():
        errors.extend(_FieldError.invalid(f"data[{key}]", key, e) for e in _config_key_errors(key))
        total += len(base64.b64decode(value))
    if total > _MAX_SECRET_BYTES:
        errors.append(_FieldError.too_long("data", _MAX_SECRET_BYTES))
    errors.extend(_validate_type(secret["type"], data, annotations))
    return errors


def _validate_type(
    kind: str, data: Mapping[str, str], annotations: Mapping[str, str]
) -> list[_FieldError]:
    def required(*keys: str) -> list[_FieldError]:
        return [_FieldError.required(f"data[{key}]") for key in keys if key not in data]

    def json_in(key: str) -> list[_FieldError]:
        if key not in data:
            return [_FieldError.required(f"data[{key}]")]
        try:
            json.loads(base64.b64decode(data[key]))
        except ValueError as exc:
            return [_FieldError.invalid(f"data[{key}]", "<secret contents redacted>", str(exc))]
        return []

    if kind == "kubernetes.io/service-account-token":
        if not annotations.get("kubernetes.io/service-account.name"):
            return [
                _FieldError.required("metadata.annotations[kubernetes.io/service-account.name]")
            ]
    elif kind == "kubernetes.io/dockercfg":
        return json_in(".dockercfg")
    elif kind == "kubernetes.io/dockerconfigjson":
        return json_in(".dockerconfigjson")
    elif kind == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            return required("username", "password")
    elif kind == "kubernetes.io/ssh-auth":
        if not data.get("ssh-privatekey"):
            return [_FieldError.required("data[ssh-privatekey]")]
    elif kind == "kubernetes.io/tls":
        return required("tls.crt", "tls.key")
    return []


def _validate_update(new: Mapping[str, JSON], old: Mapping[str, JSON]) -> list[_FieldError]:
    """``ValidateSecretUpdate``: immutable identity and type, and ``immutable: true`` data."""
    errors: list[_FieldError] = []
    new_uid, old_uid = new["metadata"].get("uid"), old["metadata"].get("uid")
    if new_uid != old_uid:
        errors.append(_FieldError.invalid("metadata.uid", new_uid, "field is immutable"))
    if new["type"] != old["type"]:
        errors.append(_FieldError.invalid("type", new["type"], "field is immutable"))
    if old.get("immutable"):
        if not new.get("immutable"):
            errors.append(
                _FieldError.forbidden("immutable", "field is immutable when `immutable` is set")
            )
        if new.get("data", {}) != old.get("data", {}):
            errors.append(
                _FieldError.forbidden("data", "field is immutable when `immutable` is set")
            )
    return errors + _validate_secret(new)


# -- decoding a Secret body ----------------------------------------------------------------------


class _DecodeError(Exception):
    """The body could not be decoded into a v1 Secret (the server's 400, or 422 for a patch)."""


def _go_type(value: JSON) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _string_map(value: JSON, field_name: str, go_type: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _DecodeError(
            f"json: cannot unmarshal {_go_type(value)} into Go struct field {field_name} "
            f"of type {go_type}"
        )
    for item in value.values():
        if item is not None and not isinstance(item, str):
            raise _DecodeError(
                f"json: cannot unmarshal {_go_type(item)} into Go struct field {field_name} "
                f"of type string"
            )
    return {key: item or "" for key, item in value.items()}


def _canonical_base64(value: str) -> str:
    """Decode as Go's ``encoding/json`` decodes ``[]byte`` (StdEncoding, CR/LF ignored)."""
    stripped = value.replace("\r", "").replace("\n", "")
    try:
        raw = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError) as exc:
        bad = next(
            (
                i
                for i, c in enumerate(stripped)
                if not (c.isascii() and (c.isalnum() or c in "+/="))
            ),
            len(stripped) - len(stripped) % 4,
        )
        raise _DecodeError(f"illegal base64 data at input byte {bad}") from exc
    return base64.b64encode(raw).decode("ascii")


def _decode_secret(body: JSON, directive: str) -> tuple[dict[str, JSON], list[str]]:
    """A wire Secret as the server stores it, and the unknown-field warnings (``Warn`` mode).

    Defaulting happens here as in the real decoder: ``type`` becomes ``Opaque`` when empty,
    ``stringData`` is merged over ``data`` (base64) and dropped.
    """
    if not isinstance(body, dict):
        raise _DecodeError(
            f"json: cannot unmarshal {_go_type(body)} into Go value of type v1.Secret"
        )
    unknown = [f'unknown field "{key}"' for key in body if key not in _SECRET_FIELDS]
    raw_meta = body.get("metadata") or {}
    if not isinstance(raw_meta, dict):
        raise _DecodeError(
            f"json: cannot unmarshal {_go_type(raw_meta)} into Go struct field Secret.metadata "
            "of type v1.ObjectMeta"
        )
    unknown += [f'unknown field "metadata.{key}"' for key in raw_meta if key not in _META_FIELDS]
    if unknown and directive == "Strict":
        raise _DecodeError("strict decoding error: " + ", ".join(unknown))
    meta: dict[str, JSON] = {}
    for key in _META_FIELDS:
        value = raw_meta.get(key)
        if value is None or key == "managedFields":
            continue
        if key in ("labels", "annotations"):
            mapped = _string_map(value, f"ObjectMeta.metadata.{key}", "map[string]string")
            if mapped:
                meta[key] = mapped
            continue
        if key in ("ownerReferences", "finalizers"):
            if not isinstance(value, list):
                raise _DecodeError(
                    f"json: cannot unmarshal {_go_type(value)} into Go struct field "
                    f"ObjectMeta.metadata.{key} of type []"
                )
            if value:
                meta[key] = copy.deepcopy(value)
            continue
        if key in ("generation", "deletionGracePeriodSeconds"):
            if not isinstance(value, int) or isinstance(value, bool):
                raise _DecodeError(
                    f"json: cannot unmarshal {_go_type(value)} into Go struct field "
                    f"ObjectMeta.metadata.{key} of type int64"
                )
        elif not isinstance(value, str):
            raise _DecodeError(
                f"json: cannot unmarshal {_go_type(value)} into Go struct field "
                f"ObjectMeta.metadata.{key} of type string"
            )
        if value != "":
            meta[key] = value
    raw_data = _string_map(body.get("data"), "Secret.data", "map[string][]uint8")
    data = {key: _canonical_base64(value) for key, value in raw_data.items()}
    string_data = _string_map(body.get("stringData"), "Secret.stringData", "map[string]string")
    for key, text in string_data.items():
        data[key] = base64.b64encode(text.encode("utf-8")).decode("ascii")
    kind = body.get("type") or "Opaque"
    if not isinstance(kind, str):
        raise _DecodeError(
            f"json: cannot unmarshal {_go_type(kind)} into Go struct field Secret.type of type "
            "v1.SecretType"
        )
    immutable = body.get("immutable")
    if immutable is not None and not isinstance(immutable, bool):
        raise _DecodeError(
            f"json: cannot unmarshal {_go_type(immutable)} into Go struct field "
            "Secret.immutable of type bool"
        )
    secret: dict[str, JSON] = {"metadata": meta}
    if immutable is not None:
        secret["immutable"] = immutable
    if data:
        secret["data"] = data
    secret["type"] = kind
    return secret, unknown if directive == "Warn" else []


def _check_type_meta(body: JSON) -> None:
    """The body's apiVersion and kind, when given, must be v1 Secret (else 400)."""
    if not isinstance(body, dict):
        return
    kind, version = body.get("kind"), body.get("apiVersion")
    if version not in (None, "", "v1"):
        raise _bad_request(
            f"the API version in the data ({version}) does not match the expected API version (v1)"
        )
    if kind not in (None, "", "Secret"):
        raise _bad_request(
            f'{kind} in version "v1" cannot be handled as a Secret: the object provided '
            f"is a {kind}, not a Secret"
        )


# -- protobuf request bodies ----------------------------------------------------------------------
#
# kubectl's typed clients (``kubectl create secret``, ``kubectl delete``) send bodies as
# ``application/vnd.kubernetes.protobuf`` and do not fall back to JSON on a 415, so the server
# reads that encoding for the two messages it accepts and turns them into their JSON form.
# Responses are always JSON: every client lists it in Accept.

_PROTOBUF = "application/vnd.kubernetes.protobuf"
_PROTOBUF_MAGIC = b"k8s\x00"


def _varint(buffer: bytes, index: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if index >= len(buffer) or shift > 63:
            raise _DecodeError("proto: truncated varint")
        byte = buffer[index]
        index += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, index


def _proto_fields(buffer: bytes) -> list[tuple[int, int | bytes]]:
    """The (field number, value) pairs of one message: varints as ints, the rest as bytes."""
    fields: list[tuple[int, int | bytes]] = []
    index = 0
    while index < len(buffer):
        key, index = _varint(buffer, index)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, index = _varint(buffer, index)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, index = buffer[index : index + size], index + size
        elif wire == 2:
            length, index = _varint(buffer, index)
            if index + length > len(buffer):
                raise _DecodeError("proto: unexpected EOF")
            value, index = buffer[index : index + length], index + length
        else:
            raise _DecodeError(f"proto: illegal wireType {wire}")
        fields.append((number, value))
    return fields


def _proto_text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise _DecodeError("proto: wrong wireType for a string field")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _DecodeError("proto: invalid UTF-8 in a string field") from exc


def _proto_bytes(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise _DecodeError("proto: wrong wireType for a bytes field")
    return value


def _proto_entry(value: int | bytes) -> tuple[str, bytes]:
    key, item = "", b""
    for number, part in _proto_fields(_proto_bytes(value)):
        if number == 1:
            key = _proto_text(part)
        elif number == 2:
            item = _proto_bytes(part)
    return key, item


def _proto_time(value: int | bytes) -> str:
    seconds = 0
    for number, part in _proto_fields(_proto_bytes(value)):
        if number == 1 and isinstance(part, int):
            seconds = part
    return _now_rfc3339(datetime.fromtimestamp(seconds, UTC)) if seconds else ""


def _proto_signed(value: int | bytes) -> int:
    if not isinstance(value, int):
        raise _DecodeError("proto: wrong wireType for an integer field")
    return value - (1 << 64) if value >= 1 << 63 else value


_PROTO_META_STRINGS = {1: "name", 2: "generateName", 3: "namespace", 4: "selfLink", 5: "uid"}
_PROTO_META_STRINGS |= {6: "resourceVersion"}
_PROTO_OWNER_FIELDS = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}


def _proto_object_meta(buffer: bytes) -> dict[str, JSON]:
    meta: dict[str, JSON] = {}
    for number, value in _proto_fields(buffer):
        if number in _PROTO_META_STRINGS:
            meta[_PROTO_META_STRINGS[number]] = _proto_text(value)
        elif number == 7:
            meta["generation"] = _proto_signed(value)
        elif number in (8, 9):
            stamp = _proto_time(value)
            if stamp:
                meta["creationTimestamp" if number == 8 else "deletionTimestamp"] = stamp
        elif number == 10:
            meta["deletionGracePeriodSeconds"] = _proto_signed(value)
        elif number in (11, 12):
            key, item = _proto_entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = item.decode()
        elif number == 13:
            owner: dict[str, JSON] = {}
            for owner_number, part in _proto_fields(_proto_bytes(value)):
                if owner_number in _PROTO_OWNER_FIELDS:
                    owner[_PROTO_OWNER_FIELDS[owner_number]] = _proto_text(part)
                elif owner_number in (6, 7):
                    owner["controller" if owner_number == 6 else "blockOwnerDeletion"] = bool(part)
            meta.setdefault("ownerReferences", []).append(owner)
        elif number == 14:
            meta.setdefault("finalizers", []).append(_proto_text(value))
    return meta


def _proto_secret(buffer: bytes) -> dict[str, JSON]:
    """``k8s.io.api.core.v1.Secret`` as its JSON form (data base64, as on the wire in JSON)."""
    secret: dict[str, JSON] = {}
    for number, value in _proto_fields(buffer):
        if number == 1:
            secret["metadata"] = _proto_object_meta(_proto_bytes(value))
        elif number == 2:
            key, item = _proto_entry(value)
            secret.setdefault("data", {})[key] = base64.b64encode(item).decode("ascii")
        elif number == 3:
            secret["type"] = _proto_text(value)
        elif number == 4:
            key, item = _proto_entry(value)
            secret.setdefault("stringData", {})[key] = item.decode("utf-8")
        elif number == 5:
            secret["immutable"] = bool(value)
    return secret


def _proto_delete_options(buffer: bytes) -> dict[str, JSON]:
    """``k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions`` as its JSON form."""
    options: dict[str, JSON] = {}
    for number, value in _proto_fields(buffer):
        if number == 1:
            options["gracePeriodSeconds"] = _proto_signed(value)
        elif number == 2:
            preconditions: dict[str, JSON] = {}
            for inner, part in _proto_fields(_proto_bytes(value)):
                if inner in (1, 2):
                    preconditions["uid" if inner == 1 else "resourceVersion"] = _proto_text(part)
            options["preconditions"] = preconditions
        elif number == 3:
            options["orphanDependents"] = bool(value)
        elif number == 4:
            options["propagationPolicy"] = _proto_text(value)
        elif number == 5:
            options.setdefault("dryRun", []).append(_proto_text(value))
    return options


def _decode_protobuf(body: bytes) -> dict[str, JSON]:
    """A ``k8s\\0``-prefixed ``runtime.Unknown`` holding a Secret or DeleteOptions."""
    if not body.startswith(_PROTOBUF_MAGIC):
        raise _DecodeError(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
        )
    api_version = kind = ""
    raw = b""
    for number, value in _proto_fields(body[len(_PROTOBUF_MAGIC) :]):
        if number == 1:
            for inner, part in _proto_fields(_proto_bytes(value)):
                if inner == 1:
                    api_version = _proto_text(part)
                elif inner == 2:
                    kind = _proto_text(part)
        elif number == 2:
            raw = _proto_bytes(value)
    if kind == "Secret":
        document = _proto_secret(raw)
    elif kind == "DeleteOptions":
        document = _proto_delete_options(raw)
    else:
        raise _DecodeError(f"no kind {kind!r} is registered for version {api_version!r}")
    return {"apiVersion": api_version, "kind": kind, **document}


# -- patches ----------------------------------------------------------------------------------


class _PatchError(Exception):
    """A JSON patch that does not apply (the server's 422)."""


def _merge_patch(target: JSON, patch: JSON) -> JSON:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


#: List fields of a Secret that a strategic merge patch merges (by key), not replaces.
_SMP_LIST_KEYS: dict[tuple[str, ...], str | None] = {
    ("metadata", "finalizers"): None,  # a set of strings
    ("metadata", "ownerReferences"): "uid",
}


def _strategic_merge_patch(target: JSON, patch: JSON, path: tuple[str, ...] = ()) -> JSON:
    """Strategic merge patch with a Secret's schema: maps merge (``$patch: replace|delete``
    and ``$retainKeys`` honoured), finalizers and ownerReferences merge, other lists replace."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    patch = dict(patch)
    directive = patch.pop("$patch", None)
    if directive == "replace":
        return {k: v for k, v in patch.items() if not k.startswith("$")}
    if directive == "delete":
        return None
    if directive is not None:
        raise _bad_request(f"Unknown patch type: {directive}")
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.pop("$retainKeys", None)
    for key in [k for k in patch if k.startswith("$setElementOrder/")]:
        patch.pop(key)
    for key in [k for k in patch if k.startswith("$deleteFromPrimitiveList/")]:
        doomed = patch.pop(key) or []
        name = key.split("/", 1)[1]
        if isinstance(result.get(name), list):
            result[name] = [item for item in result[name] if item not in doomed]
    for key, value in patch.items():
        here = (*path, key)
        if value is None:
            result.pop(key, None)
        elif here in _SMP_LIST_KEYS and isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, _SMP_LIST_KEYS[here])
        else:
            merged = _strategic_merge_patch(result.get(key), value, here)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(current: JSON, patch: list[JSON], merge_key: str | None) -> list[JSON]:
    merged = list(current) if isinstance(current, list) else []
    for item in patch:
        if merge_key is None:
            if item not in merged:
                merged.append(item)
            continue
        if not isinstance(item, dict):
            raise _bad_request("strategic merge patch: list item is not an object")
        deleting = item.get("$patch") == "delete"
        for index, existing in enumerate(merged):
            if isinstance(existing, dict) and existing.get(merge_key) == item.get(merge_key):
                if deleting:
                    del merged[index]
                else:
                    merged[index] = _merge_patch(existing, item)
                break
        else:
            if not deleting:
                merged.append(copy.deepcopy(item))
    return merged


def _pointer(path: JSON) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise _PatchError(f'JSON pointer must be empty or start with a "/": {path!r}')
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def _resolve(doc: JSON, parts: list[str], op: str, path: str) -> tuple[JSON, str]:
    """The container holding the last part of ``parts`` (which must exist), and that part."""
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _PatchError(f'{op} operation does not apply: doc is missing path: "{path}"')
    if not isinstance(node, dict | list):
        raise _PatchError(f'{op} operation does not apply: doc is missing path: "{path}"')
    return node, parts[-1]


def _get(container: JSON, key: str, op: str, path: str) -> JSON:
    if isinstance(container, dict) and key in container:
        return container[key]
    if isinstance(container, list) and key.isdigit() and int(key) < len(container):
        return container[int(key)]
    raise _PatchError(f"{op} operation does not apply: doc is missing key: {path}")


def _remove(container: JSON, key: str, op: str, path: str) -> JSON:
    value = _get(container, key, op, path)
    if isinstance(container, dict):
        del container[key]
    else:
        del container[int(key)]
    return value


def _add(container: JSON, key: str, value: JSON, path: str) -> None:
    if isinstance(container, dict):
        container[key] = value
        return
    if key == "-":
        container.append(value)
    elif key.isdigit() and int(key) <= len(container):
        container.insert(int(key), value)
    else:
        raise _PatchError(f"add operation does not apply: index out of bounds: {path}")


def _json_patch(doc: JSON, operations: JSON) -> JSON:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test) on a copy of ``doc``."""
    if not isinstance(operations, list):
        raise _bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for operation in operations:
        if not isinstance(operation, dict):
            raise _bad_request(
                "json: cannot unmarshal value into Go value of type jsonpatch.Operation"
            )
        op, path = operation.get("op"), operation.get("path", "")
        parts = _pointer(path)
        if not parts:
            raise _PatchError(f"{op} operation does not apply: the whole document is not patchable")
        if op in ("add", "replace", "test") and "value" not in operation:
            raise _PatchError(f"{op} operation has no value")
        if op == "add":
            container, key = _resolve(doc, parts, op, path)
            _add(container, key, copy.deepcopy(operation["value"]), path)
        elif op == "remove":
            container, key = _resolve(doc, parts, op, path)
            _remove(container, key, op, path)
        elif op == "replace":
            container, key = _resolve(doc, parts, op, path)
            _get(container, key, op, path)
            if isinstance(container, dict):
                container[key] = copy.deepcopy(operation["value"])
            else:
                container[int(key)] = copy.deepcopy(operation["value"])
        elif op in ("move", "copy"):
            source = _pointer(operation.get("from", ""))
            if not source:
                raise _PatchError(f"{op} operation does not apply: from is the whole document")
            holder, source_key = _resolve(doc, source, op, operation["from"])
            if op == "move":
                value = _remove(holder, source_key, op, operation["from"])
            else:
                value = copy.deepcopy(_get(holder, source_key, op, operation["from"]))
            container, key = _resolve(doc, parts, op, path)
            _add(container, key, value, path)
        elif op == "test":
            container, key = _resolve(doc, parts, op, path)
            if _get(container, key, op, path) != operation["value"]:
                raise _PatchError(f"testing value {path} failed: test failed")
        else:
            raise _PatchError(f"Unexpected kind: {op}")
    return doc


# -- selectors ----------------------------------------------------------------------------------

_SET_REQUIREMENT = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s+\(([^()]*)\)\s*$")
_EQUALITY_REQUIREMENT = re.compile(r"^([^\s!=]+)\s*(==|=|!=)\s*([^\s!=]*)$")
_EXISTS_REQUIREMENT = re.compile(r"^(!?)\s*([^\s!=()]+)$")


@dataclass(frozen=True)
class _Requirement:
    """One selector requirement: ``key`` compared with ``values`` by ``operator``."""

    key: str
    operator: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!exists":
            return self.key not in labels
        found = labels.get(self.key) in self.values
        return found if self.operator == "in" else not found


def _split_selector(selector: str) -> list[str]:
    parts: list[str] = []
    depth, current = 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts if part.strip()]


def _parse_selector(selector: str) -> list[_Requirement]:
    """Equality-based and set-based label selector requirements (``a=b,c!=d,e in (f),!g``)."""
    requirements: list[_Requirement] = []
    for term in _split_selector(selector):
        if found := _SET_REQUIREMENT.match(term):
            values = frozenset(v.strip() for v in found.group(3).split(",") if v.strip())
            requirements.append(_Requirement(found.group(1), found.group(2), values))
        elif found := _EQUALITY_REQUIREMENT.match(term):
            key, operator, value = found.groups()
            requirements.append(
                _Requirement(key, "notin" if operator == "!=" else "in", frozenset({value}))
            )
        elif found := _EXISTS_REQUIREMENT.match(term):
            negated, key = found.groups()
            requirements.append(_Requirement(key, "!exists" if negated else "exists"))
        else:
            raise _bad_request(f"unable to parse requirement: found '{term}', expected: identifier")
    return requirements


def _parse_field_selector(selector: str) -> list[_Requirement]:
    """``metadata.name``, ``metadata.namespace`` and ``type`` with ``=``, ``==`` or ``!=``."""
    requirements: list[_Requirement] = []
    for term in _split_selector(selector):
        found = re.match(r"^([^!=]+)(==|=|!=)(.*)$", term)
        if not found:
            raise _bad_request(f"invalid selector: '{selector}'; can't understand '{term}'")
        name, operator, value = found.group(1).strip(), found.group(2), found.group(3).strip()
        if name not in ("metadata.name", "metadata.namespace", "type"):
            raise _bad_request(f"field label not supported: {name}")
        requirements.append(
            _Requirement(name, "notin" if operator == "!=" else "in", frozenset({value}))
        )
    return requirements


# -- the server ----------------------------------------------------------------------------------


@dataclass
class _Request:
    method: str
    raw_path: str
    parts: list[str]
    query: dict[str, list[str]]
    headers: email.message.Message
    body: bytes

    def param(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = _JSON_CONTENT
    headers: list[tuple[str, str]] = field(default_factory=list)
    reset: bool = False
    user: str | None = None


def _json_response(
    status: int, document: JSON, headers: Sequence[tuple[str, str]] = ()
) -> _Response:
    body = json.dumps(document, separators=(",", ":")).encode("utf-8") + b"\n"
    return _Response(status, body, headers=list(headers))


def _error_response(error: ApiError) -> _Response:
    return _json_response(error.code, error.status, error.headers)


def _warning(text: str) -> str:
    """A ``Warning`` header value as the API server writes it (RFC 7234 code 299)."""
    return '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _now_rfc3339(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(created: str, now: datetime) -> str:
    """``duration.HumanDuration``, coarsely: what kubectl's AGE column shows."""
    try:
        then = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    seconds = max(int((now - then).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600 * 3:
        return f"{seconds // 60}m"
    if seconds < 86400 * 2:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


class KubeApiServer:
    """A Kubernetes API server for Secrets (and Namespace reads) on ``https://127.0.0.1:PORT``.

    Its own CA signs its certificate (:attr:`ca_file`, :attr:`ca_pem`); bearer tokens map to
    user names (:meth:`add_token`, :meth:`set_tokens`, :meth:`rotate`); each user holds RBAC
    :class:`Rule` s (:meth:`grant`), and a user with none may do nothing. Secrets live in
    memory behind one lock, so concurrent compare-and-swap writes behave as against etcd:
    exactly one PUT carrying a given resourceVersion wins. Faults (:meth:`inject`,
    :meth:`conflicts`, :meth:`slow`, :meth:`down`) are thread-safe and apply while it runs.
    """

    def __init__(
        self,
        *,
        namespaces: Iterable[str] = ("default",),
        tokens: Mapping[str, str] | None = None,
        rules: Mapping[str, Sequence[Rule]] | None = None,
        now: Callable[[], datetime] | None = None,
        workdir: Path | None = None,
        request_timeout: float = 60.0,
    ) -> None:
        self._lock = threading.RLock()
        self._now = now or (lambda: datetime.now(UTC))
        self._tokens: dict[str, str] = dict(tokens or {})
        self._rules: dict[str, list[Rule]] = {user: list(r) for user, r in (rules or {}).items()}
        self._namespaces: dict[str, dict[str, JSON]] = {}
        self._secrets: dict[tuple[str, str], dict[str, JSON]] = {}
        self._revision = 1
        self._faults: deque[Fault] = deque()
        self._conflicts = 0
        self._records: list[RequestRecord] = []
        self._service_accounts: dict[Path, str] = {}
        self.request_timeout = request_timeout
        self._workdir = workdir
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._tls: TlsMaterial | None = None
        self._ssl: ssl.SSLContext | None = None
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._port = 0
        for namespace in namespaces:
            self.add_namespace(namespace)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        """Where the CA and the server key are written (a temporary directory by default)."""
        if self._workdir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="kube-apiserver-")
            self._workdir = Path(self._tempdir.name)
        return self._workdir

    def start(self) -> Self:
        """Generate the TLS material, bind 127.0.0.1 on a free port and serve in a thread."""
        if self._httpd is not None:
            raise RuntimeError("the stand-in API server is already running")
        try:
            self._tls = issue_loopback_tls()
            _, cert, key = self._tls.write(self.workdir / "pki")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(cert, key)
            context.set_alpn_protocols(["http/1.1"])
            self._ssl = context
            self._stopping.clear()
            self._serve(port=0)
        except BaseException as exc:
            self.stop()
            if isinstance(exc, OSError | ssl.SSLError):
                raise ServerStartError(
                    f"the stand-in Kubernetes API server did not start: {exc}"
                ) from exc
            raise
        return self

    def _serve(self, port: int) -> None:
        assert self._ssl is not None
        httpd = _HttpServer(("127.0.0.1", port), self, self._ssl)
        self._port = int(httpd.server_address[1])
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": _POLL},
            name=f"kube-apiserver:{self._port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, drop every connection, remove the temporary directory; idempotent."""
        self._stopping.set()
        self._close_listener()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = self._workdir = None

    def _close_listener(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.drop_connections()
        if thread is not None:
            thread.join(timeout=5)

    def down(self) -> None:
        """Stop accepting and cut open connections: clients see refused connections until
        :meth:`up`. Stored state (Secrets, tokens, rules) is kept."""
        if self._port == 0:
            raise RuntimeError("the stand-in API server was never started")
        self._close_listener()

    def up(self) -> None:
        """Listen again on the same port after :meth:`down`."""
        if self._httpd is not None:
            return
        if self._port == 0:
            raise RuntimeError("the stand-in API server was never started")
        try:
            self._serve(port=self._port)
        except OSError as exc:
            raise ServerStartError(f"cannot listen on 127.0.0.1:{self._port} again: {exc}") from exc

    @property
    def is_up(self) -> bool:
        return self._httpd is not None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses and trust --------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the stand-in API server has no port yet; call start() first")
        return self._port

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``: the cluster's server URL."""
        return f"https://{self.host}:{self.port}"

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate (PEM) clients must trust; the server's certificate chains to it."""
        if self._tls is None:
            raise RuntimeError("the stand-in API server has no CA yet; call start() first")
        return self._tls.ca_pem

    @property
    def ca_file(self) -> str:
        """A PEM file of :attr:`ca_pem`: ``verify=`` for requests, kubectl's CA file."""
        if self._tls is None:
            raise RuntimeError("the stand-in API server has no CA yet; call start() first")
        return str(self.workdir / "pki" / "ca.crt")

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts only this server's CA (hostname checks on)."""
        return ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))

    # -- credentials --------------------------------------------------------------------------

    def set_tokens(self, tokens: Mapping[str, str]) -> None:
        """Replace every bearer token: ``{token: user name}``. Unknown tokens answer 401."""
        with self._lock:
            self._tokens = dict(tokens)

    def add_token(self, user: str, token: str | None = None) -> str:
        """Let ``token`` (a fresh random one by default) authenticate as ``user``; return it."""
        token = token or f"sa-{secrets.token_urlsafe(24)}"
        with self._lock:
            self._tokens[token] = user
        return token

    def revoke_token(self, token: str) -> None:
        """``token`` answers 401 from now on."""
        with self._lock:
            self._tokens.pop(token, None)

    def tokens_for(self, user: str) -> list[str]:
        with self._lock:
            return [token for token, owner in self._tokens.items() if owner == user]

    def rotate(self, user: str) -> str:
        """Issue ``user`` a new token and revoke the old ones, as the kubelet's token refresh
        does when a bound token expires. Service-account directories written for ``user``
        (:meth:`write_service_account`) get the new token file atomically."""
        with self._lock:
            for token in self.tokens_for(user):
                del self._tokens[token]
            token = self.add_token(user)
            directories = [path for path, owner in self._service_accounts.items() if owner == user]
        for directory in directories:
            _write_atomically(directory / "token", token.encode("ascii"))
        return token

    def user_for(self, token: str) -> str | None:
        with self._lock:
            return self._tokens.get(token)

    # -- RBAC --------------------------------------------------------------------------------

    def grant(self, user: str, *rules: Rule) -> None:
        """Add rules to ``user``'s (as more RoleBindings would)."""
        with self._lock:
            self._rules.setdefault(user, []).extend(rules)

    def set_rules(self, user: str, rules: Sequence[Rule]) -> None:
        """Replace ``user``'s rules; an empty list leaves them allowed nothing."""
        with self._lock:
            self._rules[user] = list(rules)

    def rules_for(self, user: str) -> list[Rule]:
        with self._lock:
            return list(self._rules.get(user, ()))

    def authorized(
        self, user: str, verb: str, resource: str, namespace: str | None, name: str | None = None
    ) -> bool:
        """What ``kubectl auth can-i`` would answer for ``user``."""
        with self._lock:
            return any(
                rule.allows(verb, resource, namespace, name) for rule in self._rules.get(user, ())
            )

    # -- namespaces -----------------------------------------------------------------------------

    def add_namespace(self, name: str) -> None:
        """Create the namespace (an Active Namespace object); existing ones are kept."""
        if _subdomain_errors(name) or len(name) > 63:
            raise ValueError(f"{name!r} is not a valid namespace name")
        with self._lock:
            if name in self._namespaces:
                return
            self._namespaces[name] = {
                "metadata": {
                    "name": name,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": self._bump(),
                    "creationTimestamp": _now_rfc3339(self._now()),
                    "labels": {"kubernetes.io/metadata.name": name},
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }

    def remove_namespace(self, name: str) -> None:
        """Delete the namespace and every Secret in it."""
        with self._lock:
            self._namespaces.pop(name, None)
            for key in [key for key in self._secrets if key[0] == name]:
                del self._secrets[key]
            self._bump()

    @property
    def namespaces(self) -> list[str]:
        with self._lock:
            return sorted(self._namespaces)

    # -- the store, directly ----------------------------------------------------------------------

    def _bump(self) -> str:
        self._revision += 1
        return str(self._revision)

    @property
    def resource_version(self) -> str:
        """The store's current revision (what a list would report)."""
        with self._lock:
            return str(self._revision)

    def secret(self, namespace: str, name: str) -> dict[str, JSON] | None:
        """The stored Secret exactly as a GET would return it, or None; a copy."""
        with self._lock:
            stored = self._secrets.get((namespace, name))
            return _render(stored) if stored is not None else None

    def secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """The stored Secret's data, base64-decoded."""
        stored = self.secret(namespace, name)
        if stored is None:
            return None
        return {key: base64.b64decode(value) for key, value in stored.get("data", {}).items()}

    def secrets(self, namespace: str | None = None) -> list[dict[str, JSON]]:
        """Every stored Secret (in ``namespace``), sorted as a list returns them; copies."""
        with self._lock:
            return [
                _render(self._secrets[key])
                for key in sorted(self._secrets)
                if namespace is None or key[0] == namespace
            ]

    def put_secret(
        self,
        namespace: str,
        name: str,
        *,
        data: Mapping[str, bytes | str] | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        type: str = "Opaque",
        immutable: bool | None = None,
    ) -> dict[str, JSON]:
        """Create or overwrite a Secret bypassing authentication, RBAC, validation and faults,
        as another controller would have written it (say, a foreign Secret without the
        managed-by label). The namespace is created if missing. Returns the stored Secret."""
        encoded = {
            key: base64.b64encode(value.encode() if isinstance(value, str) else value).decode()
            for key, value in (data or {}).items()
        }
        with self._lock:
            self.add_namespace(namespace)
            existing = self._secrets.get((namespace, name))
            meta: dict[str, JSON] = {
                "name": name,
                "namespace": namespace,
                "uid": existing["metadata"]["uid"] if existing else str(uuid.uuid4()),
                "resourceVersion": self._bump(),
                "creationTimestamp": existing["metadata"]["creationTimestamp"]
                if existing
                else _now_rfc3339(self._now()),
            }
            if labels:
                meta["labels"] = dict(labels)
            if annotations:
                meta["annotations"] = dict(annotations)
            stored: dict[str, JSON] = {"metadata": meta}
            if immutable is not None:
                stored["immutable"] = immutable
            if encoded:
                stored["data"] = encoded
            stored["type"] = type
            self._secrets[(namespace, name)] = stored
            return _render(stored)

    def delete_secret(self, namespace: str, name: str) -> bool:
        """Remove a Secret directly (no RBAC, finalizers or faults); whether it existed."""
        with self._lock:
            if self._secrets.pop((namespace, name), None) is None:
                return False
            self._bump()
            return True

    # -- faults and records ---------------------------------------------------------------------

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each later Secret/Namespace request takes the oldest one it matches."""
        with self._lock:
            self._faults.extend(faults)

    def slow(self, seconds: float, count: int = 1) -> None:
        """Delay the next ``count`` Secret/Namespace requests by ``seconds``, then serve them."""
        self.inject(*[Fault(delay=seconds) for _ in range(count)])

    def conflicts(self, count: int = 1) -> None:
        """Before each of the next ``count`` writes (PUT, PATCH, DELETE) to an existing Secret,
        another writer updates it first, bumping its resourceVersion. A write carrying the
        old resourceVersion (a PUT body, a patch's metadata, a delete precondition) then gets
        the genuine 409 Conflict; an unconditional write still succeeds, as it would."""
        with self._lock:
            self._conflicts += count

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._conflicts = 0

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults) + self._conflicts

    @property
    def requests(self) -> list[RequestRecord]:
        """Every answered request so far (discovery included), oldest first; a copy."""
        with self._lock:
            return list(self._records)

    def clear_requests(self) -> None:
        with self._lock:
            self._records.clear()

    def _take_fault(self, method: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method):
                    self._faults.remove(fault)
                    return fault
        return None

    def _record(self, request: _Request, response: _Response) -> None:
        with self._lock:
            self._records.append(
                RequestRecord(request.method, request.raw_path, response.user, response.status)
            )

    # -- client configuration --------------------------------------------------------------------

    def write_kubeconfig(
        self,
        path: Path,
        *,
        token: str | None = None,
        token_file: Path | None = None,
        namespace: str | None = None,
        context_name: str = "stand-in",
        extra_contexts: Sequence[KubeconfigContext] = (),
        current_context: str | None = None,
        embed_ca: bool = True,
    ) -> Path:
        """A kubeconfig (JSON, which every YAML loader reads) for this server.

        The main context authenticates with ``token`` or ``token_file`` (which client-go
        re-reads, to test rotation); ``extra_contexts`` add more, ``current_context`` picks
        one (default: the main context). The CA goes in ``certificate-authority-data``, or as
        a ``certificate-authority`` path with ``embed_ca=False``. The file is owner-only.
        """
        main = KubeconfigContext(context_name, token, token_file, namespace)
        contexts = [main, *extra_contexts]
        names = [context.name for context in contexts]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate context names in {names}")
        cluster: dict[str, JSON] = {"server": self.url}
        if embed_ca:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        else:
            cluster["certificate-authority"] = self.ca_file
        document: dict[str, JSON] = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": "stand-in", "cluster": cluster}],
            "users": [],
            "contexts": [],
            "current-context": current_context or context_name,
        }
        for context in contexts:
            if (context.token is None) == (context.token_file is None):
                raise ValueError(f"context {context.name!r} needs exactly one of token, token_file")
            user: dict[str, JSON] = (
                {"token": context.token}
                if context.token is not None
                else {"tokenFile": str(context.token_file)}
            )
            cluster_name = "stand-in"
            if context.server is not None:
                cluster_name = f"{context.name}-cluster"
                document["clusters"].append(
                    {"name": cluster_name, "cluster": {**cluster, "server": context.server}}
                )
            entry: dict[str, JSON] = {"cluster": cluster_name, "user": f"{context.name}-user"}
            if context.namespace:
                entry["namespace"] = context.namespace
            document["users"].append({"name": f"{context.name}-user", "user": user})
            document["contexts"].append({"name": context.name, "context": entry})
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, (json.dumps(document, indent=2) + "\n").encode())
        return path

    def write_service_account(
        self, directory: Path, user: str, *, namespace: str | None = None
    ) -> Path:
        """Lay out a pod's service-account mount (``token``, ``ca.crt``, ``namespace``) for
        ``user`` in ``directory`` (real pods have it at :data:`SERVICE_ACCOUNT_DIR`).

        The token is ``user``'s first (one is added if it has none); :meth:`rotate` rewrites
        it. ``namespace`` defaults to the one in ``system:serviceaccount:NS:NAME``.
        """
        if namespace is None:
            parts = user.split(":")
            namespace = parts[2] if len(parts) == 4 and parts[1] == "serviceaccount" else "default"
        with self._lock:
            existing = self.tokens_for(user)
            token = existing[0] if existing else self.add_token(user)
            self._service_accounts[directory] = user
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(directory / "ca.crt", self.ca_pem)
        _write_atomically(directory / "namespace", namespace.encode())
        _write_atomically(directory / "token", token.encode("ascii"))
        return directory

    def in_cluster_environ(self) -> dict[str, str]:
        """The variables the kubelet sets in every pod, pointing at this server."""
        port = str(self.port)
        return {
            "KUBERNETES_SERVICE_HOST": self.host,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
        }

    # -- request handling ----------------------------------------------------------------------

    def _handle(self, request: _Request) -> _Response:
        """Answer one request; never raises for anything a client can send."""
        try:
            return self._route(request)
        except ApiError as error:
            return _error_response(error)
        except Exception as exc:  # a bug here must surface as a 500, not a dropped connection
            # The frames, never the exception's message: it could quote part of a body.
            log.error(
                "stand-in API server: internal error %s\n%s",
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
            return _error_response(
                ApiError(500, "InternalError", f"Internal error occurred: {type(exc).__name__}")
            )

    def _user_of(self, request: _Request) -> str | None:
        """The user a ``Bearer`` token authenticates, or None (no other scheme is accepted)."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.user_for(token.strip())

    def _route(self, request: _Request) -> _Response:
        parts = request.parts
        resource_request = parts[:2] == ["api", "v1"] and len(parts) > 2
        user = self._user_of(request)
        if resource_request:
            fault = self._take_fault(request.method)
            if fault is not None:
                response = self._apply_fault(fault)
                if response is not None:
                    response.user = user
                    return response
        try:
            if user is None:
                raise _unauthorized()
            if resource_request:
                response = self._resource(request, user)
            else:
                response = self._discovery(request)
        except ApiError as error:
            response = _error_response(error)
        response.user = user
        return response

    def _apply_fault(self, fault: Fault) -> _Response | None:
        if fault.delay and self._stopping.wait(fault.delay):
            return _Response(503, reset=True)
        if fault.reset:
            return _Response(0, reset=True)
        if fault.status is None:
            return None
        headers = [("Retry-After", str(fault.retry_after))] if fault.retry_after is not None else []
        if fault.body is not None:
            return _Response(fault.status, fault.body, fault.content_type, headers)
        reason, message = _FAULT_REASONS.get(fault.status, ("", f"injected {fault.status}"))
        details: dict[str, JSON] | None = None
        if fault.retry_after is not None:
            details = {"retryAfterSeconds": fault.retry_after}
        error = ApiError(fault.status, reason, fault.message or message, details, headers)
        return _error_response(error)

    def _resource(self, request: _Request, user: str) -> _Response:
        parts, method = request.parts[2:], request.method
        if parts == [_SECRETS]:  # across namespaces
            if method != "GET":
                raise _method_not_allowed()
            return self._list(request, user, None)
        if parts[0] != _NAMESPACES:
            raise _no_such_resource()
        if len(parts) == 1:
            if method != "GET":
                raise _method_not_allowed()
            self._authorize(user, self._read_verb(request, "list"), _NAMESPACES, None, None)
            return self._list_namespaces(request)
        namespace = parts[1]
        if len(parts) == 2:
            if method != "GET":
                raise _method_not_allowed()
            self._authorize(user, "get", _NAMESPACES, namespace, namespace)
            with self._lock:
                stored = self._namespaces.get(namespace)
                if stored is None:
                    raise _not_found(_NAMESPACES, namespace)
                return self._object_response(request, _render_namespace(stored))
        if parts[2] != _SECRETS or len(parts) > 4:
            raise _no_such_resource()
        if len(parts) == 3:
            if method == "GET":
                return self._list(request, user, namespace)
            if method == "POST":
                self._authorize(user, "create", _SECRETS, namespace, None)
                return self._create(request, namespace)
            raise _method_not_allowed()
        name = parts[3]
        verbs = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
        if method not in verbs:
            raise _method_not_allowed()
        self._authorize(user, verbs[method], _SECRETS, namespace, name)
        if method == "GET":
            with self._lock:
                stored = self._secrets.get((namespace, name))
                if stored is None:
                    raise _not_found(_SECRETS, name)
                return self._object_response(request, _render(stored))
        if method == "PUT":
            return self._replace(request, namespace, name)
        if method == "PATCH":
            return self._patch(request, namespace, name)
        return self._delete(request, namespace, name)

    def _read_verb(self, request: _Request, verb: str) -> str:
        return "watch" if request.param("watch") in ("true", "1") else verb

    def _authorize(
        self, user: str, verb: str, resource: str, namespace: str | None, name: str | None
    ) -> None:
        if not self.authorized(user, verb, resource, namespace, name):
            raise _forbidden(user, verb, resource, namespace, name)

    # -- reads ----------------------------------------------------------------------------------

    def _wants_table(self, request: _Request) -> bool:
        accept = request.headers.get("Accept", "")
        first = accept.split(",")[0]
        return "as=Table" in first and "g=meta.k8s.io" in first

    def _object_response(self, request: _Request, document: dict[str, JSON]) -> _Response:
        if self._wants_table(request):
            return _json_response(200, self._table([document], request, single=True))
        return _json_response(200, document)

    def _list(self, request: _Request, user: str, namespace: str | None) -> _Response:
        verb = self._read_verb(request, "list")
        self._authorize(user, verb, _SECRETS, namespace, None)
        if verb == "watch":
            raise ApiError(
                405,
                "MethodNotAllowed",
                "watch is not supported by the stand-in Kubernetes API server",
                _details(_SECRETS),
            )
        labels = _parse_selector(request.param("labelSelector"))
        fields = _parse_field_selector(request.param("fieldSelector"))
        limit_text = request.param("limit", "0")
        if not limit_text.isdigit():
            raise _bad_request(f'invalid limit: "{limit_text}"')
        limit, start = int(limit_text), ("", "")
        if request.param("continue"):
            try:
                decoded = json.loads(base64.urlsafe_b64decode(request.param("continue")))
                start = (str(decoded["start"][0]), str(decoded["start"][1]))
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                raise _bad_request("continue key is not valid: incorrect encoded start") from exc
        with self._lock:
            matching = []
            for key in sorted(self._secrets):
                if namespace is not None and key[0] != namespace:
                    continue
                if start != ("", "") and key <= start:
                    continue
                stored = self._secrets[key]
                meta = stored["metadata"]
                selectable = {
                    "metadata.name": meta["name"],
                    "metadata.namespace": meta["namespace"],
                    "type": stored["type"],
                }
                if all(r.matches(meta.get("labels", {})) for r in labels) and all(
                    r.matches(selectable) for r in fields
                ):
                    matching.append(key)
            page = matching[:limit] if limit else matching
            list_meta: dict[str, JSON] = {"resourceVersion": str(self._revision)}
            if len(page) < len(matching):
                token = json.dumps({"start": list(page[-1]), "rv": self._revision})
                list_meta["continue"] = base64.urlsafe_b64encode(token.encode()).decode()
                list_meta["remainingItemCount"] = len(matching) - len(page)
            items = [_render(self._secrets[key], type_meta=False) for key in page]
        if self._wants_table(request):
            return _json_response(200, self._table(items, request, single=False, meta=list_meta))
        return _json_response(
            200, {"kind": "SecretList", "apiVersion": "v1", "metadata": list_meta, "items": items}
        )

    def _list_namespaces(self, request: _Request) -> _Response:
        with self._lock:
            items = [
                _render_namespace(self._namespaces[n], type_meta=False)
                for n in sorted(self._namespaces)
            ]
            revision = str(self._revision)
        return _json_response(
            200,
            {
                "kind": "NamespaceList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": revision},
                "items": items,
            },
        )

    def _table(
        self,
        items: Sequence[dict[str, JSON]],
        request: _Request,
        *,
        single: bool,
        meta: dict[str, JSON] | None = None,
    ) -> dict[str, JSON]:
        """A ``meta.k8s.io/v1`` Table, which ``kubectl get`` asks for to print its columns."""
        now = self._now()
        include = request.param("includeObject", "PartialObjectMetadata")
        rows = []
        for item in items:
            item_meta = item["metadata"]
            is_secret = "type" in item
            cells: list[JSON] = [item_meta["name"]]
            if is_secret:
                cells += [item["type"], len(item.get("data", {}))]
            else:
                cells += [item.get("status", {}).get("phase", "")]
            cells.append(_age(item_meta.get("creationTimestamp", ""), now))
            row: dict[str, JSON] = {"cells": cells}
            if include == "Object":
                row["object"] = {**_TYPE_META_SERVED, **item} if is_secret else item
            elif include == "PartialObjectMetadata":
                row["object"] = {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": item_meta,
                }
            rows.append(row)
        is_secret_table = not items or "type" in items[0]
        columns = [("Name", "string", "name")]
        columns += (
            [("Type", "string", ""), ("Data", "string", "")]
            if is_secret_table
            else [("Status", "string", "")]
        )
        columns.append(("Age", "string", ""))
        return {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {} if single else (meta or {}),
            "columnDefinitions": [
                {"name": name, "type": kind, "format": fmt, "description": "", "priority": 0}
                for name, kind, fmt in columns
            ],
            "rows": rows,
        }

    # -- writes ---------------------------------------------------------------------------------

    def _directive(self, request: _Request) -> str:
        directive = request.param("fieldValidation", "Warn")
        if directive not in ("Ignore", "Warn", "Strict"):
            raise _bad_request(
                f'fieldValidation parameter unsupported: {directive}, must be one of "Ignore", '
                '"Warn", "Strict"'
            )
        return directive

    def _dry_run(self, request: _Request) -> bool:
        values = request.query.get("dryRun", [])
        for value in values:
            if value != "All":
                raise _bad_request(f'Invalid dryRun value: "{value}"; supported: "All"')
        return bool(values)

    def _body_json(self, request: _Request, *, patch: bool = False) -> JSON:
        """The body as JSON: JSON or protobuf for objects, the three patch types for PATCH."""
        content_type = request.headers.get("Content-Type", "") or _JSON_CONTENT
        media = content_type.split(";")[0].strip().lower()
        if patch:
            if media not in _PATCH_TYPES:
                raise _unsupported_media_type(_PATCH_TYPES)
        elif media == _PROTOBUF:
            try:
                return _decode_protobuf(request.body)
            except _DecodeError as exc:
                raise _bad_request(
                    f"the object provided is unrecognized (must be of type Secret): {exc}"
                ) from exc
        elif media not in (_JSON_CONTENT, "*/*"):
            raise _unsupported_media_type([_JSON_CONTENT, _PROTOBUF])
        try:
            return json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            if patch:
                raise _bad_request(f"error decoding patch: {exc}") from exc
            raise _bad_request(
                "the object provided is unrecognized (must be of type Secret): couldn't get "
                f"version/kind; json parse error: {exc}"
            ) from exc

    def _decode(self, body: JSON, directive: str) -> tuple[dict[str, JSON], list[str]]:
        _check_type_meta(body)
        try:
            return _decode_secret(body, directive)
        except _DecodeError as exc:
            raise _bad_request(
                f'Secret in version "v1" cannot be handled as a Secret: {exc}'
            ) from exc

    def _write_response(
        self, status: int, stored: dict[str, JSON], warnings: Sequence[str]
    ) -> _Response:
        headers = [("Warning", _warning(text)) for text in warnings]
        return _json_response(status, _render(stored), headers)

    def _create(self, request: _Request, namespace: str) -> _Response:
        directive, dry_run = self._directive(request), self._dry_run(request)
        secret, warnings = self._decode(self._body_json(request), directive)
        meta = secret["metadata"]
        if meta.get("namespace", namespace) != namespace:
            raise _bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        with self._lock:
            if namespace not in self._namespaces:
                raise _not_found(_NAMESPACES, namespace)
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + "".join(
                    secrets.choice(_GENERATE_ALPHABET) for _ in range(5)
                )
            meta["namespace"] = namespace
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now_rfc3339(self._now())
            for system_field in ("deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
                meta.pop(system_field, None)
            errors = _validate_secret(secret)
            if errors:
                raise _invalid("Secret", meta.get("name", ""), errors)
            if meta.get("resourceVersion"):
                raise _bad_request("resourceVersion should not be set on objects to be created")
            name = meta["name"]
            if (namespace, name) in self._secrets:
                raise _already_exists(name)
            if not dry_run:
                meta["resourceVersion"] = self._bump()
                self._secrets[(namespace, name)] = secret
            return self._write_response(201, secret, warnings)

    def _foreign_write(self, key: tuple[str, str]) -> None:
        """A pending :meth:`conflicts` fault: another writer updates the object first."""
        if self._conflicts > 0 and key in self._secrets:
            self._conflicts -= 1
            self._secrets[key]["metadata"]["resourceVersion"] = self._bump()

    def _replace(self, request: _Request, namespace: str, name: str) -> _Response:
        directive, dry_run = self._directive(request), self._dry_run(request)
        secret, warnings = self._decode(self._body_json(request), directive)
        meta = secret["metadata"]
        if meta.get("name", "") != name:
            raise _bad_request(
                f"the name of the object ({meta.get('name', '')}) does not match the name on the "
                f"URL ({name})"
            )
        if meta.get("namespace", namespace) != namespace:
            raise _bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        with self._lock:
            key = (namespace, name)
            if key not in self._secrets:
                raise _not_found(_SECRETS, name)
            self._foreign_write(key)
            return self._commit_update(key, secret, warnings, dry_run)

    def _commit_update(
        self,
        key: tuple[str, str],
        secret: dict[str, JSON],
        warnings: Sequence[str],
        dry_run: bool,
    ) -> _Response:
        """The registry's Update: CAS on resourceVersion, then validation, then the write."""
        existing = self._secrets[key]
        old_meta, meta = existing["metadata"], secret["metadata"]
        wanted = meta.get("resourceVersion")
        if wanted and wanted != old_meta["resourceVersion"]:
            raise _conflict(key[1])
        meta["namespace"] = key[0]
        meta.setdefault("uid", old_meta["uid"])
        meta["creationTimestamp"] = old_meta["creationTimestamp"]
        for system_field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            if system_field in old_meta:
                meta[system_field] = old_meta[system_field]
            else:
                meta.pop(system_field, None)
        meta.pop("generation", None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        errors = _validate_update(secret, existing)
        if errors:
            raise _invalid("Secret", key[1], errors)
        if "deletionTimestamp" in old_meta and not meta.get("finalizers"):
            if not dry_run:  # the last finalizer went: the deletion completes
                del self._secrets[key]
                self._bump()
            return self._write_response(200, secret, warnings)
        if secret == existing or dry_run:  # etcd is not written: the resourceVersion stays
            return self._write_response(200, secret, warnings)
        meta["resourceVersion"] = self._bump()
        self._secrets[key] = secret
        return self._write_response(200, secret, warnings)

    def _patch(self, request: _Request, namespace: str, name: str) -> _Response:
        directive, dry_run = self._directive(request), self._dry_run(request)
        media = (request.headers.get("Content-Type", "") or "").split(";")[0].strip().lower()
        patch = self._body_json(request, patch=True)
        if media != _JSON_PATCH and not isinstance(patch, dict):
            raise _bad_request("Invalid JSON Patch")
        with self._lock:
            key = (namespace, name)
            if key not in self._secrets:
                raise _not_found(_SECRETS, name)
            self._foreign_write(key)
            current = _render(self._secrets[key])
            try:
                if media == _JSON_PATCH:
                    patched = _json_patch(current, patch)
                elif media == _MERGE_PATCH:
                    patched = _merge_patch(current, patch)
                else:
                    patched = _strategic_merge_patch(current, patch)
            except _PatchError as exc:  # the real server drops jsonpatch's message too
                log.debug("kube stand-in: JSON patch does not apply: %s", exc)
                raise ApiError(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request",
                    {},
                ) from exc
            try:
                _check_type_meta(patched)
                secret, warnings = _decode_secret(patched, directive)
            except (_DecodeError, ApiError) as exc:
                message = str(exc)
                shown = json.dumps(patched, separators=(",", ":"))
                raise _invalid("", "", [_FieldError.invalid("patch", shown, message)]) from exc
            meta = secret["metadata"]
            if meta.get("namespace", namespace) != namespace:
                raise _bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            if meta.get("name", "") != name:
                raise _bad_request(
                    f"the name of the object ({meta.get('name', '')}) does not match the name "
                    f"on the URL ({name})"
                )
            return self._commit_update(key, secret, warnings, dry_run)

    def _delete(self, request: _Request, namespace: str, name: str) -> _Response:
        dry_run = self._dry_run(request)
        options: JSON = self._body_json(request) if request.body.strip() else {}
        if not isinstance(options, dict):
            raise _bad_request("DeleteOptions must be an object")
        preconditions = options.get("preconditions") or {}
        if options.get("dryRun"):
            dry_run = True
        with self._lock:
            key = (namespace, name)
            if key not in self._secrets:
                raise _not_found(_SECRETS, name)
            self._foreign_write(key)
            stored = self._secrets[key]
            meta = stored["metadata"]
            failed = ""
            if preconditions.get("uid") and preconditions["uid"] != meta["uid"]:
                failed = (
                    f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                    f"UID in object meta: {meta['uid']}"
                )
            elif (
                preconditions.get("resourceVersion")
                and preconditions["resourceVersion"] != meta["resourceVersion"]
            ):
                failed = (
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{preconditions['resourceVersion']}, ResourceVersion in object meta: "
                    f"{meta['resourceVersion']}"
                )
            if failed:
                raise _conflict(
                    name,
                    "StorageError: invalid object, Code: 4, Key: "
                    f"/registry/secrets/{namespace}/{name}, ResourceVersion: 0, "
                    f"AdditionalErrorMsg: {failed}",
                )
            if meta.get("finalizers"):  # deletion waits for the finalizers to be removed
                if dry_run:
                    return _json_response(200, _render(stored))
                meta.setdefault("deletionTimestamp", _now_rfc3339(self._now()))
                meta.setdefault("deletionGracePeriodSeconds", 0)
                meta["resourceVersion"] = self._bump()
                return _json_response(200, _render(stored))
            if not dry_run:
                del self._secrets[key]
                self._bump()
            return _json_response(
                200,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {"name": name, "kind": _SECRETS, "uid": meta["uid"]},
                },
            )

    # -- discovery --------------------------------------------------------------------------------

    def _discovery(self, request: _Request) -> _Response:
        path = "/" + "/".join(request.parts)
        if path in ("/healthz", "/livez", "/readyz"):
            return _Response(200, b"ok", "text/plain; charset=utf-8")
        documents: dict[str, Callable[[], JSON]] = {
            "/api": self._api_versions,
            "/api/v1": _api_resources,
            "/apis": lambda: {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
            "/version": _version,
            "/openapi/v3": _openapi_root,
            "/openapi/v3/api/v1": _openapi_core_v1,
        }
        if path not in documents:
            raise _no_such_resource()
        if request.method != "GET":
            raise _method_not_allowed()
        return _json_response(200, documents[path]())

    def _api_versions(self) -> JSON:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}
            ],
        }


def _render(stored: Mapping[str, JSON], *, type_meta: bool = True) -> dict[str, JSON]:
    """A stored Secret as the API returns it: kind and apiVersion first, Go's field order."""
    meta = stored["metadata"]
    rendered: dict[str, JSON] = dict(_TYPE_META_SERVED) if type_meta else {}
    rendered["metadata"] = {key: copy.deepcopy(meta[key]) for key in _META_FIELDS if key in meta}
    for key in ("immutable", "data", "type"):
        if key in stored:
            rendered[key] = copy.deepcopy(stored[key])
    return rendered


def _render_namespace(stored: Mapping[str, JSON], *, type_meta: bool = True) -> dict[str, JSON]:
    rendered: dict[str, JSON] = {"kind": "Namespace", "apiVersion": "v1"} if type_meta else {}
    rendered.update(copy.deepcopy(dict(stored)))
    return rendered


def _api_resources() -> JSON:
    return {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": _NAMESPACES,
                "singularName": "namespace",
                "namespaced": False,
                "kind": "Namespace",
                "verbs": ["get", "list"],
                "shortNames": ["ns"],
            },
            {
                "name": _SECRETS,
                "singularName": "secret",
                "namespaced": True,
                "kind": "Secret",
                "verbs": ["create", "delete", "get", "list", "patch", "update"],
            },
        ],
    }


def _version() -> JSON:
    major, minor, _ = GIT_VERSION.lstrip("v").split(".")
    return {
        "major": major,
        "minor": minor,
        "gitVersion": GIT_VERSION,
        "gitCommit": "0" * 40,
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.26.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def _openapi_root() -> JSON:
    """Enough OpenAPI v3 for kubectl to see that the server validates fields itself
    (``fieldValidation``), so ``kubectl create/replace`` need no client-side schema."""
    return {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=STANDIN"}}}


def _openapi_core_v1() -> JSON:
    gvk = {"group": "", "version": "v1", "kind": "Secret"}
    params = [
        {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
        for name in ("dryRun", "fieldManager", "fieldValidation")
    ]
    operation = {"x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {}}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": {
            "/api/v1/namespaces/{namespace}/secrets": {"post": operation},
            "/api/v1/namespaces/{namespace}/secrets/{name}": {
                "put": operation,
                "patch": operation,
            },
        },
        "components": {"schemas": {}},
    }


def _write_atomically(path: Path, content: bytes) -> None:
    """Readers never see a half-written token (the kubelet swaps its files atomically too)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    temporary.replace(path)


# -- HTTP plumbing --------------------------------------------------------------------------------


class _HttpServer(ThreadingHTTPServer):
    """Threads per connection; the TLS handshake runs in the connection's thread, so a client
    that connects and stalls never blocks the accept loop."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], api: KubeApiServer, context: ssl.SSLContext
    ) -> None:
        self.api = api
        self.tls_context = context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        raw: socket.socket = request
        raw.settimeout(self.api.request_timeout)
        try:
            tls = self.tls_context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as exc:  # a client that did not trust us, or went away
            log.debug("stand-in API server: TLS handshake failed: %s", exc)
            return
        with self._connections_lock:
            self._connections.add(tls)
        try:
            _Handler(tls, client_address, self)
        except OSError as exc:
            log.debug("stand-in API server: connection ended: %s", exc)
        finally:
            with self._connections_lock:
                self._connections.discard(tls)
            with contextlib.suppress(OSError):
                tls.close()

    def drop_connections(self) -> None:
        """Cut every open connection (keep-alive ones too), as a server that went away would."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(connection, socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("stand-in API server: error on a connection", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; logs method, path (no query) and status at DEBUG only."""

    server: _HttpServer
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-stand-in"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > _MAX_REQUEST_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_REQUEST_BYTES:
            return None
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        api = self.server.api
        split = urlsplit(self.path)
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(400, "bad request body")
            return
        request = _Request(
            method=self.command,
            raw_path=split.path,
            parts=[unquote(part) for part in split.path.split("/") if part],
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self.headers,
            body=body or b"",
        )
        if body is None:
            self.close_connection = True
            response = _error_response(
                ApiError(
                    413,
                    "RequestEntityTooLarge",
                    f"Request entity too large: limit is {_MAX_REQUEST_BYTES}",
                )
            )
        else:
            response = api._handle(request)
        api._record(request, response)
        if response.reset:
            self._reset()
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def _reset(self) -> None:
        """Close with SO_LINGER 0: the client sees a TCP reset, not an answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("kube stand-in: %s %s -> %s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:
        """Only BaseHTTPRequestHandler's own errors come here; a request line they quote
        loses its query string, and headers are never passed."""
        shown = tuple(_QUERY.sub("?…", arg) if isinstance(arg, str) else arg for arg in args)
        log.debug("kube stand-in: " + format, *shown)
