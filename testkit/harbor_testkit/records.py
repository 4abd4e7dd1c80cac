"""Stored records for tests: one factory instead of one per test file.

Every record is what the sync engine would write: issued at a whole second, ``expires_in``
later it expires, a random token unless the test names one (a canary, say).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from harbor_secrets import TokenRecord

ISSUER = "http://127.0.0.1:1/realms/harbor/protocol/openid-connect/token"


def make_record(
    offset: float = 0.0,
    *,
    token: str | None = None,
    issued_at: datetime | None = None,
    expires_in: int = 300,
    environment: str = "sandbox",
    scope: str = "service_provider",
    client_id: str = "harbor-test-client",
) -> TokenRecord:
    """A record issued at ``issued_at`` (default: now) plus ``offset`` seconds.

    A negative offset makes an older record: ``make_record(-100)`` is a previous good token
    that any new one replaces.
    """
    base = issued_at if issued_at is not None else datetime.now(UTC).replace(microsecond=0)
    return TokenRecord.issue(
        access_token=token if token is not None else f"tok-{uuid.uuid4().hex}",
        issued_at=base + timedelta(seconds=offset),
        expires_in=expires_in,
        scope=scope,
        environment=environment,
        client_id=client_id,
        issuer=ISSUER,
    )
