"""A Vault sink's options, validated offline into one frozen :class:`VaultSettings`.

Defaults follow the Vault CLI's environment variables (``VAULT_ADDR``, ``VAULT_NAMESPACE``,
``VAULT_CACERT`` …) read from the context's environment, never from ``os.environ``
directly, so tests and the Lambda handler control them. hvac itself reads some of these
variables but not all (not ``VAULT_NAMESPACE``), which is why nothing is left to it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from harbor_secrets import (
    ConfigError,
    Options,
    ProviderContext,
    Secret,
    check_reference_syntax,
    is_local_reference,
    is_loopback_host,
)

AUTH_METHODS = ("token", "approle", "kubernetes", "jwt")
DEFAULT_MOUNT = "secret"
DEFAULT_MAX_VERSIONS = 5
DEFAULT_CAS_RETRIES = 3
DEFAULT_TIMEOUT = 10.0
DEFAULT_TOKEN_FILE = "~/.vault-token"
DEFAULT_K8S_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"

# Options of the [sinks.<name>.auth] table, by the method they belong to.
_METHOD_OPTIONS = {
    "token": ("token", "token_file"),
    "approle": ("role_id", "secret_id", "mount_point"),
    "kubernetes": ("role", "token_path", "mount_point"),
    "jwt": ("role", "jwt", "mount_point"),
}
_REFERENCE_EXAMPLES = {
    "token": "file:/run/secrets/vault-token",
    "role_id": "env:VAULT_ROLE_ID",
    "secret_id": "file:/run/secrets/vault-secret-id",
    "jwt": "env:VAULT_ID_TOKEN",
}
_FALSE_WORDS = ("", "0", "f", "false")  # Go's strconv.ParseBool, as the Vault CLI reads it


@dataclass(frozen=True)
class TlsSettings:
    ca_cert: str | None = None
    ca_path: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    skip_verify: bool = False

    @property
    def verify(self) -> bool | str:
        """What requests' ``verify`` takes: a CA file or directory, or a flag."""
        if self.skip_verify:
            return False
        return self.ca_cert or self.ca_path or True

    @property
    def cert(self) -> str | tuple[str, str] | None:
        if self.client_cert and self.client_key:
            return (self.client_cert, self.client_key)
        return self.client_cert


@dataclass(frozen=True)
class AuthSettings:
    """How to obtain a Vault token. References are resolved lazily unless they are local."""

    method: str = "token"
    mount_point: str = ""
    role: str | None = None
    token: Secret | None = None  # given outright in VAULT_TOKEN (fixed for the process)
    token_file: str | None = None
    token_path: str | None = None  # kubernetes service-account token file
    references: Mapping[str, str] = field(default_factory=dict)  # option -> reference
    resolved: Mapping[str, Secret] = field(default_factory=dict)  # option -> value


@dataclass(frozen=True)
class VaultSettings:
    address: str
    namespace: str | None
    mount: str
    kv_version: int | None  # None: detect from the mount
    max_versions: int
    adopt: bool
    cas_retries: int
    timeout: float
    tls: TlsSettings
    auth: AuthSettings
    allow_insecure_http: bool = False
    resolve: Callable[[str], Secret] | None = field(default=None, compare=False, repr=False)

    @property
    def plaintext(self) -> bool:
        return urlsplit(self.address).scheme == "http"


def parse_settings(options: Options, context: ProviderContext) -> VaultSettings:
    """Read every option (naming the key on any mistake) and refuse unknown ones."""
    environ = context.environ
    address = _address(options, environ)
    allow_http = options.boolean("allow_insecure_http", False)
    parts = urlsplit(address)
    if parts.scheme == "http" and not allow_http and not is_loopback_host(parts.hostname or ""):
        raise options.error(
            "address",
            f"{address} is plain http: the Vault token and every Harbor token would cross the "
            "network unencrypted",
            "use https://, or set allow_insecure_http = true if TLS is terminated by a "
            "sidecar or service mesh on the way",
        )
    namespace = (options.string("namespace") or environ.get("VAULT_NAMESPACE") or "").strip("/")
    mount = (options.string("mount", DEFAULT_MOUNT) or DEFAULT_MOUNT).strip("/")
    if not mount:
        raise options.error("mount", "must name a secrets engine mount", 'set mount = "secret"')
    settings = VaultSettings(
        address=address.rstrip("/"),
        namespace=namespace or None,
        mount=mount,
        kv_version=_kv_version(options),
        max_versions=options.integer("max_versions", DEFAULT_MAX_VERSIONS, minimum=1),
        adopt=options.boolean("adopt", False),
        cas_retries=options.integer("cas_retries", DEFAULT_CAS_RETRIES, minimum=0),
        timeout=_timeout(options),
        tls=_tls(options, environ),
        auth=_auth(options.table("auth"), context),
        allow_insecure_http=allow_http,
        resolve=context.resolve_reference,
    )
    options.finish()
    return settings


def _address(options: Options, environ: Mapping[str, str]) -> str:
    address = options.string("address") or environ.get("VAULT_ADDR", "").strip()
    if not address:
        raise options.error(
            "address",
            "no Vault address: the option is not set and VAULT_ADDR is not in the environment",
            'set address = "https://vault.example.com:8200" or export VAULT_ADDR',
        )
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise options.error(
            "address", f"{address!r} is not an http(s) URL", 'use "https://host:8200"'
        )
    if parts.path.strip("/") or parts.query:
        raise options.error(
            "address",
            f"{address!r} has a path; the Vault address is scheme, host and port only",
            "remove the path (the API prefix /v1 is added by the client)",
        )
    return address


def _kv_version(options: Options) -> int | None:
    value = options.raw("kv_version", "auto")
    if value in (1, 2, "1", "2"):
        return int(value)
    if value == "auto":
        return None
    raise options.error(
        "kv_version",
        f"{json.dumps(value)} is not a KV version",
        'use 1, 2 or "auto" (detect from the mount)',
    )


def _timeout(options: Options) -> float:
    timeout = options.duration("timeout", DEFAULT_TIMEOUT)
    if timeout <= 0:
        raise options.error("timeout", "must be more than zero", 'set timeout = "10s"')
    return timeout


def _tls(options: Options, environ: Mapping[str, str]) -> TlsSettings:
    skip = options.boolean("tls_skip_verify", False)
    env_skip = environ.get("VAULT_SKIP_VERIFY")
    if env_skip is not None and env_skip.strip().lower() not in _FALSE_WORDS and not skip:
        raise options.error(
            "tls_skip_verify",
            "VAULT_SKIP_VERIFY is set in the environment, but this sink verifies Vault's TLS "
            "certificate (a job holding Harbor credentials must not trust any server by accident)",
            "unset VAULT_SKIP_VERIFY and point ca_cert (or VAULT_CACERT) at Vault's CA; "
            "only if you accept the risk, set tls_skip_verify = true in the sink",
        )
    tls = TlsSettings(
        ca_cert=options.string("ca_cert") or environ.get("VAULT_CACERT") or None,
        ca_path=options.string("ca_path") or environ.get("VAULT_CAPATH") or None,
        client_cert=options.string("client_cert") or environ.get("VAULT_CLIENT_CERT") or None,
        client_key=options.string("client_key") or environ.get("VAULT_CLIENT_KEY") or None,
        skip_verify=skip,
    )
    if tls.client_key and not tls.client_cert:
        raise options.error(
            "client_key",
            "is set without client_cert",
            "set client_cert (or VAULT_CLIENT_CERT) to the matching certificate",
        )
    return tls


def _auth(options: Options, context: ProviderContext) -> AuthSettings:
    method = options.choice("method", AUTH_METHODS, "token")
    for name in sorted({n for names in _METHOD_OPTIONS.values() for n in names}):
        if name in options and name not in _METHOD_OPTIONS[method]:
            owners = " or ".join(f'"{m}"' for m, names in _METHOD_OPTIONS.items() if name in names)
            raise options.error(
                name, f'applies to auth method {owners}, not "{method}"', "remove it"
            )
    if method == "token":
        return _token_auth(options, context)
    mount_point = (options.string("mount_point", method) or method).strip("/")
    references: dict[str, str] = {}
    role: str | None = None
    token_path: str | None = None
    if method == "approle":
        references["role_id"] = _reference(options, "role_id")
        references["secret_id"] = _reference(options, "secret_id")
    elif method == "kubernetes":
        role = options.required_str("role")
        token_path = options.string("token_path", DEFAULT_K8S_TOKEN_PATH)
    else:  # jwt
        role = options.string("role")  # optional: the auth method's default_role applies
        references["jwt"] = _reference(options, "jwt")
    options.finish()
    return AuthSettings(
        method=method,
        mount_point=mount_point,
        role=role,
        token_path=token_path,
        references=references,
        resolved=_resolve_local(references, context),
    )


def _token_auth(options: Options, context: ProviderContext) -> AuthSettings:
    reference = _reference(options, "token") if "token" in options else None
    token_file = options.string("token_file", DEFAULT_TOKEN_FILE)
    options.finish()
    references = {"token": reference} if reference else {}
    resolved = _resolve_local(references, context)
    given = None
    if not reference:
        value = context.environ.get("VAULT_TOKEN", "").strip()
        given = Secret(value) if value else None
    assert token_file is not None
    token_file = expand_home(token_file, context.environ)
    absent = given is None and not reference and not os.path.isfile(token_file)
    if absent and not context.skip_credentials:  # offline checks need no token here
        raise options.error(
            "method",
            f"no Vault token: VAULT_TOKEN is not set and {token_file} does not exist",
            "export VAULT_TOKEN, set token = \"file:/path\", run 'bao login' / "
            "'vault login', or use another auth method (approle, kubernetes, jwt)",
        )
    return AuthSettings(
        method="token",
        token=given,
        token_file=token_file,
        references=references,
        resolved=resolved,
    )


def _reference(options: Options, name: str) -> str:
    """A credential option: a reference (``env:``, ``file:``, ``vault:`` …), never a value.

    A pasted token or secret_id is refused here, before it can reach a resolver or an
    error message; the core's check never echoes the value.
    """
    reference = options.required_str(name)
    try:
        check_reference_syntax(reference, options, name)
    except ConfigError:  # same verdict, with an example that fits a Vault credential
        raise options.error(
            name,
            "must be a secret reference, not a value (the value is not shown)",
            f'write {name} = "{_REFERENCE_EXAMPLES[name]}" (or "env:NAME"), and treat the '
            "pasted value as exposed: revoke or rotate it",
        ) from None
    return reference


def _resolve_local(references: Mapping[str, str], context: ProviderContext) -> dict[str, Secret]:
    """Resolve env:/file: references now so a missing one is a configuration error (exit 2)."""
    return {
        name: context.resolve_reference(reference)
        for name, reference in references.items()
        if is_local_reference(reference)  # resolvable offline, so resolved (checked) up front
    }


def expand_home(path: str, environ: Mapping[str, str]) -> str:
    """``~`` from the context's HOME, so a test's temporary HOME is honoured."""
    if path.startswith("~") and environ.get("HOME"):
        return environ["HOME"] + path[1:]
    return os.path.expanduser(path)
