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
from typing import Any, ClassVar, Final

from botocore.exceptions import ClientError

from harbor_secrets import (
    ConfigError,
    Options,
    Provider,
    ProviderContext,
    RefreshPolicy,
    Secret,
    StoreError,
    TokenRecord,
    WriteOutcome,
)
from harbor_secrets_aws.clients import AwsSettings, Client, ClientCache, shared_clients
from harbor_secrets_aws.errors import aws_errors, error_code
from harbor_secrets_aws.references import resolve_secretsmanager
from harbor_secrets_aws.stored import (
    MANAGED_TAG,
    aws_tags,
    is_managed,
    parse_stored,
    read_tags,
    request_token,
)

SERVICE = "secretsmanager"
CURRENT = "AWSCURRENT"
#: Private label a new version carries until it becomes AWSCURRENT (one version holds it).
PENDING = "harbor-secrets-pending"
DEFAULT_DESCRIPTION = "Harbor Lockers access token, kept fresh by harbor-secrets"
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


class SecretsManagerProvider(Provider):
    """Tokens as Secrets Manager secrets; prefer ``aws-ssm`` for 5-minute tokens."""

    name: ClassVar[str] = "aws-secretsmanager"
    distribution: ClassVar[str] = "harbor-secrets-aws"
    summary: ClassVar[str] = "AWS Secrets Manager, one secret per token (see aws-ssm)"
    key_option: ClassVar[str] = "name"
    default_key_template: ClassVar[str] = "harbor/{environment}/{scope}"
    reference_schemes: ClassVar[tuple[str, ...]] = ("aws-sm",)
    stores_full_record: ClassVar[bool] = True

    def __init__(
        self,
        *,
        settings: AwsSettings | None = None,
        client: Client | None = None,
        clients: ClientCache | None = None,
        kms_key_id: str | None = None,
        tags: dict[str, str] | None = None,
        description: str = DEFAULT_DESCRIPTION,
        adopt: bool = False,
        sink_name: str = "aws-secretsmanager",
        source: str | None = None,
    ) -> None:
        self.settings = settings or AwsSettings()
        self._client_override = client
        self._clients = clients or shared_clients()
        self.kms_key_id = kms_key_id
        self.tags = {**(tags or {}), MANAGED_TAG: "harbor-secrets"}
        self.description = description
        self.adopt = adopt
        self.sink_name = sink_name
        self._source = source
        # Per-instance (one run) knowledge: the last read of each secret, and ownership.
        self._seen: dict[str, _Current | str] = {}
        self._owned: dict[str, bool] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, options: Options, context: ProviderContext) -> SecretsManagerProvider:
        options.string(cls.key_option)  # the core renders it; read so finish() accepts it
        settings = AwsSettings.from_options(options, context.environ)
        kms_key_id = options.string("kms_key_id")
        tags = read_tags(options)
        description = options.string("description", DEFAULT_DESCRIPTION)
        assert description is not None
        adopt = options.boolean("adopt", False)
        options.finish()
        return cls(
            settings=settings,
            kms_key_id=kms_key_id,
            tags=tags,
            description=description,
            adopt=adopt,
            sink_name=context.sink_name,
            source=context.source,
        )

    # -- keys -----------------------------------------------------------------------------

    def render_key(self, template: str, *, environment: str, scope: str, credentials: str) -> str:
        name = template.format(environment=environment, scope=scope, credentials=credentials)
        if not _NAME.match(name):
            raise ConfigError(
                f"{name!r} is not a valid Secrets Manager secret name",
                source=self._source,
                key=f"sinks.{self.sink_name}.{self.key_option}",
                fix="use 1-512 letters, digits and /_+=.@- (e.g. harbor/{environment}/{scope})",
            )
        return name

    # -- reading --------------------------------------------------------------------------

    def _client(self) -> Client:
        if self._client_override is not None:
            return self._client_override
        return self._clients.client(SERVICE, self.settings)

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
            self._require_owned(key, action="read")
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
                    self._require_owned(key, action="write")
                    if CURRENT in self._put(key, value, token, record):
                        return WriteOutcome.WRITTEN
                    current = self._fetch(key)
                continue
            if current.version_id == token:  # an earlier attempt of this very write landed
                return WriteOutcome.WRITTEN
            if current.record is not None and current.record.expires_at >= record.expires_at:
                return WriteOutcome.KEPT_NEWER
            self._require_owned(key, action="write")
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

    def _require_owned(self, name: str, *, action: str) -> None:
        """Refuse to touch a secret harbor-secrets did not create, unless adopted."""
        if self.adopt:
            return
        with self._lock:
            owned = self._owned.get(name)
        if owned is None:
            with aws_errors("inspect", self._what(name)):
                response = self._client().describe_secret(SecretId=name)
            owned = is_managed(response.get("Tags"))
            with self._lock:
                self._owned[name] = owned
        if not owned:
            verb = "overwrite" if action == "write" else "use"
            raise StoreError(
                f"{self._what(name)} exists but is not tagged {MANAGED_TAG}=harbor-secrets; "
                f"refusing to {verb} it",
                hint=f"tag it {MANAGED_TAG}=harbor-secrets if harbor-secrets should own it, "
                f"set adopt = true in sinks.{self.sink_name}, or choose another name",
                reason="not-managed",
            )

    # -- everything else ------------------------------------------------------------------

    def resolve_reference(self, reference: str) -> Secret:
        return resolve_secretsmanager(self._client(), reference)

    def describe(self) -> dict[str, Any]:
        data: dict[str, Any] = {"provider": self.name, **self.settings.describe()}
        if self.kms_key_id:
            data["kms_key_id"] = self.kms_key_id
        data["adopt"] = self.adopt
        data["tags"] = dict(sorted(self.tags.items()))
        return data

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

    def __repr__(self) -> str:
        return f"SecretsManagerProvider(sink={self.sink_name!r}, region={self.settings.region!r})"
