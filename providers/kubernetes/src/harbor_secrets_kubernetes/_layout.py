"""What one token's Secret holds, and how a record goes in and comes out.

A pod mounts the Secret as a volume and reads ``/var/run/harbor/access_token``; tools that
want the whole record read ``record.json`` (the schema-1 object, exactly what the Vault and
AWS stores hold). ``expires_at`` and ``token_type`` are there so a shell reader needs no JSON
parser. The record is the truth, but pods read the other keys: a Secret whose keys disagree
with ``record.json`` (edited by hand or by another tool) is unusable, so it is due and the
next run rewrites every key, as the files store does with files that disagree.

Secret data is base64 on the wire, so the base64 forms of the token and of the record are
registered as secrets too: an API error that echoes a request body can then be scrubbed even
though it never contains the token in plain text.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from harbor_secrets import MANAGED_BY, Secret, TokenRecord, format_time

#: The label that marks a Secret as written (and owned) by harbor-secrets.
MANAGED_LABEL = "app.kubernetes.io/managed-by"
#: The annotation that shows the stored token's expiry (``kubectl get secret -o yaml``).
EXPIRES_ANNOTATION = "harbor-secrets/expires-at"
#: The annotation that names the refresher (pod or host) that wrote it.
WRITTEN_BY_ANNOTATION = "harbor-secrets/written-by"
RECORD_KEY = "record.json"
TOKEN_KEY = "access_token"
SECRET_TYPE = "Opaque"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def encode(record: TokenRecord) -> dict[str, str]:
    """The Secret's ``data`` for ``record``: base64 values, as the API takes them."""
    token = record.access_token.reveal()
    document = record.to_json()
    data = {
        TOKEN_KEY: _b64(token),
        "expires_at": _b64(format_time(record.expires_at)),
        "token_type": _b64(record.token_type),
        RECORD_KEY: _b64(document),
    }
    Secret(data[TOKEN_KEY], ephemeral=True)  # registers the encoded forms for scrubbing
    Secret(data[RECORD_KEY], ephemeral=True)
    return data


def record_annotations(record: TokenRecord) -> dict[str, str]:
    """The stored token's expiry and, when known, its writer, for ``kubectl`` to show."""
    annotations = {EXPIRES_ANNOTATION: format_time(record.expires_at)}
    if record.written_by:
        annotations[WRITTEN_BY_ANNOTATION] = record.written_by
    return annotations


def managed_labels() -> dict[str, str]:
    return {MANAGED_LABEL: MANAGED_BY}


def is_managed(secret_labels: Mapping[str, str] | None) -> bool:
    return (secret_labels or {}).get(MANAGED_LABEL) == MANAGED_BY


def has_record(data: Mapping[str, str] | None) -> bool:
    return bool(data) and RECORD_KEY in (data or {})


def _text(data: Mapping[str, str], key: str) -> str:
    try:
        return base64.b64decode(data[key], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(f"{key} is not base64-encoded UTF-8") from None


def decode(data: Mapping[str, str] | None) -> TokenRecord | None:
    """The record in a Secret's ``data``; None when it holds none (a pre-created, empty one).

    Raises ``ValueError`` naming what is wrong (never a value) when ``record.json`` is there
    but unusable, or when a key pods read (``access_token``, ``expires_at``,
    ``token_type``) is missing or disagrees with it.
    """
    if not has_record(data):
        return None
    assert data is not None
    Secret(data[RECORD_KEY], ephemeral=True)
    if TOKEN_KEY in data:
        Secret(data[TOKEN_KEY], ephemeral=True)
    record = TokenRecord.from_json(_text(data, RECORD_KEY))
    expected = {
        TOKEN_KEY: record.access_token.reveal(),
        "expires_at": format_time(record.expires_at),
        "token_type": record.token_type,
    }
    for key, value in expected.items():
        if key not in data or _text(data, key) != value:
            raise ValueError(f"{key} does not match {RECORD_KEY}")
    return record
