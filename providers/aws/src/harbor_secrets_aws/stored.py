"""What the two AWS stores share: parsing stored values, tags, and idempotency tokens."""

from __future__ import annotations

import hashlib
import uuid

from harbor_secrets import MANAGED_BY, Options, TokenRecord

#: The tag that marks a secret or parameter as written by harbor-secrets.
MANAGED_TAG = "managed-by"

#: Fixed namespace so every process derives the same request token for the same record.
_TOKEN_NAMESPACE = uuid.UUID("6f1d3c1e-8a57-4c38-9d0e-2b8f0b1a7c41")


def parse_stored(text: object) -> TokenRecord | None:
    """The record in a stored value, or ``None`` if it is not a harbor-secrets record."""
    if not isinstance(text, str):
        return None
    try:
        record = TokenRecord.from_json(text)
    except ValueError:
        return None
    return record if record.managed_by == MANAGED_BY else None


def request_token(name: str, value: str) -> str:
    """A ``ClientRequestToken`` that is the same for the same record under the same name.

    Secrets Manager makes a put with a known token and identical value a no-op, so a write
    retried by the SDK, by the next run, or by another process adds no version. The token
    is hashed first: the value itself never leaves in a header or log line.
    """
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()
    return str(uuid.uuid5(_TOKEN_NAMESPACE, f"{name}\n{digest}"))


def read_tags(options: Options) -> dict[str, str]:
    """The sink's ``tags`` table plus the managed-by tag (which a user may not change)."""
    table = options.raw("tags", {})
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k for k, v in table.items()
    ):
        raise options.error("tags", "must be a table of strings", 'write tags = { team = "…" }')
    if table.get(MANAGED_TAG, MANAGED_BY) != MANAGED_BY:
        raise options.error(
            "tags",
            f"the {MANAGED_TAG} tag is reserved",
            f"remove {MANAGED_TAG} from tags; harbor-secrets sets it to {MANAGED_BY!r}",
        )
    return {**table, MANAGED_TAG: MANAGED_BY}


def aws_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def is_managed(tags: list[dict[str, str]] | None) -> bool:
    return any(t.get("Key") == MANAGED_TAG and t.get("Value") == MANAGED_BY for t in tags or [])
