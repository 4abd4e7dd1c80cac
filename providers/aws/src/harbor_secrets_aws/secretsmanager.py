"""The ``aws-secretsmanager`` provider: one Secrets Manager secret per token.

Secrets Manager has no conditional put, but moving the ``AWSCURRENT`` label is a
compare-and-set: ``UpdateSecretVersionStage`` fails unless ``RemoveFromVersionId`` names the
version that holds the label now. So a write adds the new version under a private label
(``AWSCURRENT`` stays where it is), then moves ``AWSCURRENT`` from the version it compared
against; if another writer got there first the move fails, the provider re-reads and
compares again. A newer record is therefore never replaced, even by overlapping runs.

Every version's ``ClientRequestToken`` is derived from the record, so a retried put adds no
version. Secrets Manager keeps versions younger than 24 h and AWS asks for at most one
``PutSecretValue`` per secret every 10 minutes: :meth:`warnings` says so and names
``aws-ssm`` when the refresh policy writes more often.

API calls: a fresh token costs one ``GetSecretValue``; a due one costs ``GetSecretValue``
(the read) + ``DescribeSecret`` (ownership, once per run and secret) + ``PutSecretValue`` +
``UpdateSecretVersionStage``; a new secret costs ``GetSecretValue`` + ``CreateSecret``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Unpack

from botocore.exceptions import ClientError

from harbor_secrets import (
    InvalidKeyError,
    RefreshPolicy,
    Secret,
    StoreError,
    TokenRecord,
    WriteOutcome,
)
from harbor_secrets_aws._base import AwsCommonArgs, _AwsProvider
from harbor_secrets_aws.errors import aws_errors, error_code
from harbor_secrets_aws.references import resolve_secretsmanager
from harbor_secrets_aws.stored import aws_tags, is_managed, parse_stored, request_token

CURRENT = "AWSCURRENT"
#: Private label a new version carries until it becomes AWSCURRENT (one version holds it).
PENDING = "harbor-secrets-pending"
#: AWS's guidance: at most one PutSecretValue per secret every 10 minutes.
RECOMMENDED_WRITE_INTERVAL = 600.0
MAX_ATTEMPTS = 5
_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")


@dataclass(frozen=True)
class _Current:
    """What ``GetSecretValue`` returned: the version holding AWSCURRENT and its record."""

    version_id: str
    record: TokenRecord | None  # None: the value is not a harbor-secrets record


_MISSING: Final = "missing"  # cached: the secret (or its current value) does not exist


class SecretsManagerProvider(_AwsProvider):
    """Tokens as Secrets Manager secrets; prefer ``aws-ssm`` for 5-minute tokens."""

    name: ClassVar[str] = "aws-secretsmanager"
    summary: ClassVar[str] = "AWS Secrets Manager, one secret per token (see aws-ssm)"
    default_key_template: ClassVar[str] = "harbor/{environment}/{scope}"
    reference_schemes: ClassVar[tuple[str, ...]] = ("aws-sm",)
    service: ClassVar[str] = "secretsmanager"

    def __init__(self, **common: Unpack[AwsCommonArgs]) -> None:
        super().__init__(**common)
        # Per-instance (one run) knowledge: the last read of each secret, and ownership.
        self._seen: dict[str, _Current | str] = {}
        self._owned: dict[str, bool] = {}
        self._lock = threading.Lock()

    # -- keys -----------------------------------------------------------------------------

    def normalize_key(self, key: str) -> str:
        if not _NAME.match(key):
            raise InvalidKeyError(
                "is not a valid Secrets Manager secret name",
                "use 1-512 letters, digits and /_+=.@- (e.g. harbor/{environment}/{scope})",
            )
        return key

    # -- reading --------------------------------------------------------------------------

    @staticmethod
    def _what(name: str) -> str:
        return f"Secrets Manager secret {name!r}"

    def _fetch(self, name: str) -> _Current | str:
        """The current version, or ``_MISSING`` when there is no secret or no current value."""
        with aws_errors("read", self._what(name)):
            try:
                # Naming the stage is what AWS does by default; moto needs it said.
                response = self._client().get_secret_value(SecretId=name, VersionStage=CURRENT)
            except ClientError as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    return _MISSING
                raise
        return _Current(str(response["VersionId"]), parse_stored(response.get("SecretString")))

    def read(self, key: str) -> TokenRecord | None:
        current = self._fetch(key)
        with self._lock:
            self._seen[key] = current
        if isinstance(current, str):
            return None
        if current.record is None:
            # Not a record: fine to replace only if the secret is ours (or adopted).
            self._require_owned(key, action="use")
            return None
        return current.record

    # -- writing --------------------------------------------------------------------------

    def write(self, key: str, record: TokenRecord) -> WriteOutcome:
        value = record.to_json()
        token = request_token(key, value)
        with self._lock:
            cached = self._seen.pop(key, None)
        # A read earlier in this run is a safe starting point: if it showed a newer record the
        # store still has one (stores never go back), and the label move below fails if the
        # secret changed since.
        current = cached if cached is not None else self._fetch(key)
        for _ in range(MAX_ATTEMPTS):
            if isinstance(current, str):
                if self._create(key, value, token, record):
                    return WriteOutcome.WRITTEN
                current = self._fetch(key)
                if isinstance(current, str):
                    # The secret exists without a current value (e.g. made by Terraform);
                    # its first version becomes AWSCURRENT automatically.
                    self._require_owned(key, action="overwrite")
                    if CURRENT in self._put(key, value, token, record):
                        return WriteOutcome.WRITTEN
                    current = self._fetch(key)
                continue
            if current.version_id == token:  # an earlier attempt of this very write landed
                return WriteOutcome.WRITTEN
            if current.record is not None and not record.is_newer_than(current.record):
                return WriteOutcome.KEPT_NEWER
            self._require_owned(key, action="overwrite")
            if CURRENT in self._put(key, value, token, record):
                return WriteOutcome.WRITTEN
            failure = self._promote(key, token, current.version_id, record)
            if failure is None:
                return WriteOutcome.WRITTEN
            latest = self._fetch(key)
            if not isinstance(latest, str) and latest.version_id == current.version_id:
                # Nothing moved, so the label move failed for another reason: report it.
                with aws_errors("write", self._what(key), redact=(record.access_token.reveal(),)):
                    raise failure
            current = latest
        raise StoreError(
            f"{self._what(key)} kept changing while writing ({MAX_ATTEMPTS} attempts)",
            hint="several writers are updating it at once; the next run tries again",
            reason="conflict",
        )

    def _create(self, name: str, value: str, token: str, record: TokenRecord) -> bool:
        """Create the secret with its first value; ``False`` if it already exists."""
        request: dict[str, Any] = {
            "Name": name,
            "SecretString": value,
            "ClientRequestToken": token,
            "Description": self.description,
            "Tags": aws_tags(self.tags),
        }
        if self.kms_key_id:
            request["KmsKeyId"] = self.kms_key_id
        with aws_errors("create", self._what(name), redact=(value, record.access_token.reveal())):
            try:
                self._client().create_secret(**request)
            except ClientError as exc:
                if error_code(exc) == "ResourceExistsException":
                    return False
                raise
        with self._lock:
            self._owned[name] = True
        return True

    def _put(self, name: str, value: str, token: str, record: TokenRecord) -> list[str]:
        """Add the version under the private label; returns the labels it carries."""
        redact = (value, record.access_token.reveal())
        with aws_errors("write", self._what(name), redact=redact):
            response = self._client().put_secret_value(
                SecretId=name,
                SecretString=value,
                ClientRequestToken=token,
                VersionStages=[PENDING],
            )
        return [str(stage) for stage in response.get("VersionStages", [])]

    def _promote(
        self, name: str, token: str, expected: str, record: TokenRecord
    ) -> ClientError | None:
        """Move AWSCURRENT from ``expected`` to our version; the failure if it moved meanwhile."""
        with aws_errors("write", self._what(name), redact=(record.access_token.reveal(),)):
            try:
                self._client().update_secret_version_stage(
                    SecretId=name,
                    VersionStage=CURRENT,
                    MoveToVersionId=token,
                    RemoveFromVersionId=expected,
                )
            except ClientError as exc:
                if error_code(exc) in ("InvalidParameterException", "InvalidRequestException"):
                    return exc
                raise
        return None

    def _is_managed(self, name: str) -> bool:
        """Asked once per run and secret (DescribeSecret); a secret we created is ours."""
        with self._lock:
            owned = self._owned.get(name)
        if owned is None:
            with aws_errors("inspect", self._what(name)):
                response = self._client().describe_secret(SecretId=name)
            owned = is_managed(response.get("Tags"))
            with self._lock:
                self._owned[name] = owned
        return owned

    # -- everything else ------------------------------------------------------------------

    def resolve_reference(self, reference: str) -> Secret:
        return resolve_secretsmanager(self._client(), reference)

    def warnings(self, policy: RefreshPolicy) -> list[str]:
        interval = policy.write_interval
        if interval >= RECOMMENDED_WRITE_INTERVAL:
            return []
        return [
            f"this policy rewrites each secret about every {interval:g}s, but AWS recommends "
            "at most one PutSecretValue per secret every 10 minutes, and Secrets Manager never "
            "removes versions younger than 24 hours, so frequent writes run into its versions "
            'quota. Keep short-lived Harbor tokens in Parameter Store: provider = "aws-ssm".'
        ]
