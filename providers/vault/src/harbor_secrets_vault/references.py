"""``vault:<mount>/<path>#<field>`` references, so the Harbor client secret can live in Vault.

The mount is found the way ``vault kv get`` finds it (``sys/internal/ui/mounts``), so the
reference is written exactly like the CLI path, for KV v1 and v2 alike. The field is
required: a secret usually holds more than one value, and guessing would be a trap.
"""

from __future__ import annotations

from harbor_secrets import Secret, SecretReferenceError, StoreError
from harbor_secrets_vault.connection import VaultConnection
from harbor_secrets_vault.errors import SecretNotFoundError

SCHEME = "vault"
EXAMPLE = "vault:secret/harbor/credentials#client_secret"


def parse(reference: str) -> tuple[str, str]:
    """Split a reference into (path, field); raises naming the expected form."""
    scheme, _, rest = reference.partition(":")
    path, _, name = rest.rpartition("#")
    path = path.strip("/")
    if scheme != SCHEME or not path or not name or "/" not in path:
        raise SecretReferenceError(
            "a vault: reference must look like vault:<mount>/<path>#<field>",
            hint=f"e.g. {EXAMPLE}",
        )
    return path, name


def resolve(connection: VaultConnection, reference: str) -> Secret:
    """Read one string field of a KV secret; every failure is a SecretReferenceError."""
    path, name = parse(reference)
    shown = f"vault:{path}#{name}"
    try:
        mount = connection.mount(path)
        relative = (path + "/").removeprefix(mount.path).strip("/")
        if mount.kv_version is None or not relative:
            raise SecretReferenceError(
                f"{shown} does not name a secret in a KV secrets engine "
                f"({mount.path} is a {mount.type or 'unknown'} engine)"
            )
        if mount.kv_version == 2:
            api_path = f"{mount.path}data/{relative}"
        else:
            api_path = f"{mount.path}{relative}"
        body = connection.get(connection.operation("read", api_path, "read"))
    except SecretNotFoundError:
        raise SecretReferenceError(f"{shown}: no secret at {path}") from None
    except StoreError as exc:
        raise SecretReferenceError(f"{shown}: {exc.message}", hint=exc.hint) from None
    data = body.get("data") or {}
    if mount.kv_version == 2:
        data = data.get("data") or {}
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise SecretReferenceError(
            f"{shown}: the secret has no non-empty string field {name!r}",
            hint=f"fields there: {', '.join(sorted(map(str, data))) or 'none'}",
        )
    return Secret(value)
