"""The ``aws-ssm`` provider: one SSM Parameter Store ``SecureString`` per token.

Parameter Store suits 5-minute tokens: it keeps the newest 100 versions and drops the
oldest by itself, as long as no version carries a label (so this provider never adds one).
Tags can only be set when a parameter is created (``PutParameter`` refuses ``Tags`` together
with ``Overwrite``), so a missing parameter is created without overwrite and with tags, and
later writes overwrite without them.

Parameter Store has no conditional write, so the read-compare-write runs under a
:class:`ParameterLock` (an atomic create-only lock parameter next to the token): two
overlapping runs cannot put an older record over a newer one.

API calls: a fresh token costs one ``GetParameter``; a due one costs ``GetParameter`` (the
read) + ``PutParameter`` (lock) + ``GetParameter`` + ``PutParameter`` + ``DeleteParameter``
(unlock).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Unpack

from botocore.exceptions import ClientError

from harbor_secrets import (
    InvalidKeyError,
    Options,
    Secret,
    StoreError,
    TokenRecord,
    WriteOutcome,
)
from harbor_secrets_aws._base import AwsCommonArgs, _AwsProvider
from harbor_secrets_aws.errors import aws_errors, error_code
from harbor_secrets_aws.parameter_lock import LOCK_SUFFIX, ParameterLock
from harbor_secrets_aws.references import resolve_parameter
from harbor_secrets_aws.stored import aws_tags, is_managed, parse_stored

STANDARD_LIMIT = 4096  # bytes of value in the Standard tier
ADVANCED_LIMIT = 8192  # bytes of value in the Advanced tier
MAX_NAME_LENGTH = 1011 - len(LOCK_SUFFIX)  # the lock parameter must fit too
MAX_DEPTH = 15
_NAME = re.compile(r"^/?[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_RESERVED = re.compile(r"^/?(aws|ssm)", re.IGNORECASE)


class ParameterStoreProvider(_AwsProvider):
    """Tokens as SecureString parameters: the right AWS store for short-lived tokens."""

    name: ClassVar[str] = "aws-ssm"
    summary: ClassVar[str] = "AWS SSM Parameter Store, one SecureString per token"
    default_key_template: ClassVar[str] = "/harbor/{environment}/{scope}"
    reference_schemes: ClassVar[tuple[str, ...]] = ("ssm",)
    service: ClassVar[str] = "ssm"
    unowned: ClassVar[str] = "holds something that is not a harbor-secrets record and"

    def __init__(
        self,
        *,
        allow_advanced_tier: bool = False,
        lock_wait: float = 10.0,
        **common: Unpack[AwsCommonArgs],
    ) -> None:
        super().__init__(**common)
        self.allow_advanced_tier = allow_advanced_tier
        self.lock_wait = lock_wait

    @classmethod
    def _own_options(cls, options: Options) -> dict[str, Any]:
        return {
            "allow_advanced_tier": options.boolean("allow_advanced_tier", False),
            "lock_wait": options.duration("lock_wait", 10.0),
        }

    # -- keys -----------------------------------------------------------------------------

    def normalize_key(self, key: str) -> str:
        """A valid parameter name; a hierarchical name gets its required leading ``/``."""
        name = "/" + key if "/" in key and not key.startswith("/") else key
        problem = _name_problem(name)
        if problem:
            raise InvalidKeyError(
                f"is not a valid SSM parameter name: {problem}",
                'use a path such as "/harbor/{environment}/{scope}"',
            )
        return name

    # -- reading --------------------------------------------------------------------------

    @staticmethod
    def _what(name: str) -> str:
        return f"SSM parameter {name!r}"

    def _get(self, name: str) -> tuple[bool, TokenRecord | None]:
        """(exists, record); record is None when the value is not a harbor-secrets record."""
        with aws_errors("read", self._what(name)):
            try:
                response = self._client().get_parameter(Name=name, WithDecryption=True)
            except ClientError as exc:
                if error_code(exc) == "ParameterNotFound":
                    return False, None
                raise
        return True, parse_stored(response.get("Parameter", {}).get("Value"))

    def read(self, key: str) -> TokenRecord | None:
        exists, record = self._get(key)
        if exists and record is None:
            self._require_owned(key, action="use")  # ours but unreadable: rewrite it
        return record

    # -- writing --------------------------------------------------------------------------

    def write(self, key: str, record: TokenRecord) -> WriteOutcome:
        value = record.to_json()
        tier = self._tier(key, value)  # before any request: an oversized record fails early
        redact = (value, record.access_token.reveal())
        with ParameterLock(self._client(), key, wait=self.lock_wait) as lock:
            for _ in range(2):
                exists, current = self._get(key)
                if not exists:
                    lock.check_time_to_write(self._what(key))
                    if self._put(key, value, tier, create=True, redact=redact):
                        return WriteOutcome.WRITTEN
                    continue  # created meanwhile by someone not using the lock: compare again
                if current is None:
                    self._require_owned(key, action="overwrite")
                elif not record.is_newer_than(current):
                    return WriteOutcome.KEPT_NEWER
                lock.check_time_to_write(self._what(key))
                self._put(key, value, tier, create=False, redact=redact)
                return WriteOutcome.WRITTEN
        raise StoreError(
            f"{self._what(key)} appeared and changed while writing",
            hint="something other than harbor-secrets writes it; choose another name",
            reason="conflict",
        )

    def _tier(self, name: str, value: str) -> str:
        size = len(value.encode("utf-8"))
        if size > ADVANCED_LIMIT or (size > STANDARD_LIMIT and not self.allow_advanced_tier):
            allowed = self.allow_advanced_tier
            raise StoreError(
                f"the record for {self._what(name)} is {size} bytes, over the "
                f"{'Advanced' if allowed else 'Standard'} tier's "
                f"{ADVANCED_LIMIT if allowed else STANDARD_LIMIT}-byte limit; nothing was written",
                hint=(
                    "the token is too large for Parameter Store; use aws-secretsmanager"
                    if allowed
                    else f"set allow_advanced_tier = true in sinks.{self.sink_name} (Advanced "
                    "parameters are charged per parameter and API call) or use "
                    "aws-secretsmanager"
                ),
                reason="too-large",
            )
        if size > STANDARD_LIMIT:
            return "Advanced"
        # Intelligent-Tiering stays Standard while the value fits, and never tries to move a
        # parameter that once went Advanced back down (which AWS refuses).
        return "Intelligent-Tiering" if self.allow_advanced_tier else "Standard"

    def _put(
        self, name: str, value: str, tier: str, *, create: bool, redact: tuple[str, ...]
    ) -> bool:
        """Create (with tags) or overwrite; ``False`` if creating found it already there."""
        request: dict[str, Any] = {
            "Name": name,
            "Value": value,
            "Type": "SecureString",
            "Tier": tier,
            "Overwrite": not create,
        }
        if self.kms_key_id:
            request["KeyId"] = self.kms_key_id
        if create:
            request["Tags"] = aws_tags(self.tags)
            request["Description"] = self.description
        with aws_errors("create" if create else "write", self._what(name), redact=redact):
            try:
                self._client().put_parameter(**request)
            except ClientError as exc:
                if create and error_code(exc) == "ParameterAlreadyExists":
                    return False
                raise
        return True

    def _is_managed(self, name: str) -> bool:
        with aws_errors("inspect", self._what(name)):
            response = self._client().list_tags_for_resource(
                ResourceType="Parameter", ResourceId=name
            )
        return is_managed(response.get("TagList"))

    # -- everything else ------------------------------------------------------------------

    def resolve_reference(self, reference: str) -> Secret:
        return resolve_parameter(self._client(), reference)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "allow_advanced_tier": self.allow_advanced_tier}


def _name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid parameter name, or None."""
    if not name or len(name) > MAX_NAME_LENGTH:
        return f"it must be 1-{MAX_NAME_LENGTH} characters"
    if not _NAME.match(name):
        return "use letters, digits and . - _ separated by single slashes, with no trailing /"
    if name.count("/") > MAX_DEPTH:
        return f"it may have at most {MAX_DEPTH} levels"
    if _RESERVED.match(name):
        return 'names may not begin with "aws" or "ssm"'
    return None
