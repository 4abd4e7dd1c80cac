"""The stored record (schema 1): the one JSON object every store holds per token.

Readers depend on these field names; see DESIGN.md "Contracts". A record never carries a
refresh token or the client secret. ``written_by`` (the host or pod name of the refresher
that wrote it, never a secret) is an optional addition to schema 1: it is stored only when
known, and readers of schema 1 ignore fields they do not know, as this parser does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from harbor_secrets.secrets import Secret
from harbor_secrets.writer import is_writer_name

SCHEMA_VERSION = 1
MANAGED_BY = "harbor-secrets"

FIELDS = (
    "access_token",
    "token_type",
    "scope",
    "environment",
    "expires_at",
    "issued_at",
    "expires_in",
    "client_id",
    "issuer",
    "managed_by",
    "schema",
    "written_by",
)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix and whole seconds, as stored."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (``Z`` or offset); naive input is taken as UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class TokenRecord:
    """One access token as stored. ``access_token`` is a :class:`Secret` so it never prints."""

    access_token: Secret
    expires_at: datetime
    issued_at: datetime
    scope: str
    environment: str
    token_type: str = "Bearer"
    client_id: str = ""
    issuer: str = ""
    managed_by: str = MANAGED_BY
    schema: int = SCHEMA_VERSION
    #: Which refresher wrote it (a host or pod name); "" when unknown (older records).
    written_by: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    #: Whether a stored record is trustworthy, as the writer of this one judges it: the
    #: sync engine sets the freshness policy's judgement (with its clock) here, so that
    #: :meth:`is_newer_than`, which every store calls, lets a record written under a clock
    #: far ahead be replaced. Never stored; None (records nobody judged) trusts everything.
    trusts: Callable[[TokenRecord], bool] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def issue(
        cls,
        *,
        access_token: str,
        issued_at: datetime,
        expires_in: int,
        scope: str,
        environment: str,
        client_id: str,
        issuer: str,
        token_type: str = "Bearer",
        written_by: str = "",
    ) -> TokenRecord:
        """Build a fresh record; ``issued_at`` is when the request was sent (conservative)."""
        issued = issued_at.astimezone(UTC).replace(microsecond=0)
        return cls(
            access_token=Secret(access_token, ephemeral=True),
            expires_at=issued + timedelta(seconds=expires_in),
            issued_at=issued,
            scope=scope,
            environment=environment,
            token_type=token_type,
            client_id=client_id,
            issuer=issuer,
            written_by=written_by,
        )

    @property
    def expires_in(self) -> int:
        """Lifetime granted at issue time, in seconds."""
        return int((self.expires_at - self.issued_at).total_seconds())

    @property
    def has_issue_time(self) -> bool:
        """False for a record from a store that keeps only the token and its expiry (the env
        file): its ``issued_at`` is then its ``expires_at``."""
        return self.issued_at < self.expires_at

    @property
    def granted_lifetime(self) -> float | None:
        """The lifetime the token was granted, or None where its store keeps no issue time
        (then only the freshness policy's ``token_lifetime`` bounds its expiry)."""
        return float(self.expires_in) if self.has_issue_time else None

    def is_newer_than(self, other: TokenRecord | None) -> bool:
        """True when this record may replace ``other`` (the monotonic-write rule).

        Every store calls this, under its lock or check-and-set, with what it holds. A stored
        record this one's writer does not trust (:attr:`trusts`: one the freshness policy
        calls implausible, written under a clock far ahead) is no obstacle; otherwise only a
        later expiry replaces a stored one.
        """
        if other is None or (self.trusts is not None and not self.trusts(other)):
            return True
        return self.expires_at > other.expires_at

    def to_dict(self) -> dict[str, Any]:
        """The schema-1 object, with the token revealed: only stores call this."""
        return {
            "access_token": self.access_token.reveal(),
            "token_type": self.token_type,
            "scope": self.scope,
            "environment": self.environment,
            "expires_at": format_time(self.expires_at),
            "issued_at": format_time(self.issued_at),
            "expires_in": self.expires_in,
            "client_id": self.client_id,
            "issuer": self.issuer,
            "managed_by": self.managed_by,
            "schema": self.schema,
            **({"written_by": self.written_by} if self.written_by else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def describe(self) -> dict[str, Any]:
        """The record without its token: safe to print and log."""
        data = self.to_dict()
        data["access_token"] = str(self.access_token)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenRecord:
        """Parse a stored object; raises ``ValueError`` naming the bad field (never its value)."""
        if not isinstance(data, dict):
            raise ValueError("stored record is not a JSON object")
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise ValueError("stored record has no access_token")
        try:
            expires_at = parse_time(str(data["expires_at"]))
        except (KeyError, ValueError) as exc:
            raise ValueError("stored record has no valid expires_at") from exc
        try:
            issued_at = parse_time(str(data["issued_at"])) if "issued_at" in data else expires_at
        except ValueError as exc:
            raise ValueError("stored record has an invalid issued_at") from exc
        schema = data.get("schema", SCHEMA_VERSION)
        if not isinstance(schema, int):
            raise ValueError("stored record has a non-integer schema")
        known = set(FIELDS)
        return cls(
            access_token=Secret(token, ephemeral=True),
            expires_at=expires_at,
            issued_at=issued_at,
            scope=str(data.get("scope", "")),
            environment=str(data.get("environment", "")),
            token_type=str(data.get("token_type", "Bearer")),
            client_id=str(data.get("client_id", "")),
            issuer=str(data.get("issuer", "")),
            managed_by=str(data.get("managed_by", "")),
            schema=schema,
            written_by=_written_by(data.get("written_by")),
            extra={k: v for k, v in data.items() if k not in known},
        )

    @classmethod
    def from_json(cls, text: str) -> TokenRecord:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("stored record is not valid JSON") from None
        return cls.from_dict(data)


def _written_by(value: object) -> str:
    """A stored ``written_by`` that passes the writer's own rule, else "" (unknown): anyone
    who can write the store could put a newline or an escape sequence there, and it is
    printed by ``status`` and the cycle log."""
    return value if isinstance(value, str) and is_writer_name(value) else ""
