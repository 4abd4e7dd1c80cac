"""Secret references into AWS: ``aws-sm:NAME#field`` and ``ssm:NAME``.

This is how the Lambda gets the Harbor client secret without an environment variable:
``client_secret = "aws-sm:harbor/client#client_secret"``. A Secrets Manager secret holding a
JSON object needs ``#field`` (the console's key/value secrets are JSON); a plain string is
returned whole. ``NAME`` may be a name or an ARN. Values are wrapped in :class:`Secret` at
once and never appear in an error.
"""

from __future__ import annotations

import json

from botocore.exceptions import BotoCoreError, ClientError

from harbor_secrets import Secret, SecretReferenceError
from harbor_secrets_aws.clients import Client
from harbor_secrets_aws.errors import reference_error

SM_SCHEME = "aws-sm"
SSM_SCHEME = "ssm"


def parse_secretsmanager_reference(reference: str) -> tuple[str, str | None]:
    """``aws-sm:NAME#field`` → (NAME, field); secret names cannot contain ``#``."""
    scheme, _, rest = reference.partition(":")
    if scheme != SM_SCHEME or not rest:
        raise SecretReferenceError(
            "malformed Secrets Manager reference",
            hint="write aws-sm:NAME or aws-sm:NAME#field (NAME may be an ARN)",
        )
    name, sep, field = rest.partition("#")
    if not name or (sep and not field):
        raise SecretReferenceError(
            f"malformed Secrets Manager reference aws-sm:{name or '…'}{sep}",
            hint="write aws-sm:NAME or aws-sm:NAME#field",
        )
    return name, field or None


def resolve_secretsmanager(client: Client, reference: str) -> Secret:
    name, field = parse_secretsmanager_reference(reference)
    what = f"Secrets Manager secret {name!r}"
    try:
        response = client.get_secret_value(SecretId=name)
    except (ClientError, BotoCoreError) as exc:
        raise reference_error(exc, what=what) from None
    text = response.get("SecretString")
    if not isinstance(text, str):
        raise SecretReferenceError(
            f"{what} holds binary data, not a string",
            hint="store the client secret as a string (or a JSON object and use #field)",
        )
    return Secret(_pick(text, field, name))


def _pick(text: str, field: str | None, name: str) -> str:
    """The whole string, or one field of a JSON object (required when it is one)."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        if field is None:
            fields = ", ".join(sorted(str(k) for k in data)) or "none"
            raise SecretReferenceError(
                f"Secrets Manager secret {name!r} holds a JSON object; say which field to use",
                hint=f"write aws-sm:{name}#FIELD (fields: {fields})",
            )
        value = data.get(field)
        if not isinstance(value, str) or not value:
            raise SecretReferenceError(
                f"Secrets Manager secret {name!r} has no non-empty string field {field!r}",
                hint="check the field name (it is case-sensitive)",
            )
        return value
    if field is not None:
        raise SecretReferenceError(
            f"Secrets Manager secret {name!r} is a plain string, not a JSON object",
            hint=f"drop #{field}: write aws-sm:{name}",
        )
    if not text:
        raise SecretReferenceError(f"Secrets Manager secret {name!r} is empty")
    return text


def resolve_parameter(client: Client, reference: str) -> Secret:
    """``ssm:NAME`` → the (decrypted) value of that parameter."""
    scheme, _, name = reference.partition(":")
    if scheme != SSM_SCHEME or not name:
        raise SecretReferenceError(
            "malformed Parameter Store reference", hint="write ssm:/path/to/parameter"
        )
    what = f"SSM parameter {name!r}"
    try:
        response = client.get_parameter(Name=name, WithDecryption=True)
    except (ClientError, BotoCoreError) as exc:
        raise reference_error(exc, what=what) from None
    value = response.get("Parameter", {}).get("Value")
    if not isinstance(value, str) or not value:
        raise SecretReferenceError(f"{what} is empty")
    return Secret(value)
