"""What the two AWS stores share: the options both take, where their client comes from, and
the ownership rule (never overwrite an entry harbor-secrets did not create, unless adopted).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar, Self, TypedDict

from harbor_secrets import Options, Provider, ProviderContext, StoreError
from harbor_secrets_aws.clients import AwsSettings, Client, ClientCache, shared_clients
from harbor_secrets_aws.stored import MANAGED_TAG, read_tags

DEFAULT_DESCRIPTION = "Harbor Lockers access token, kept fresh by harbor-secrets"


class AwsCommonArgs(TypedDict, total=False):
    """The keyword arguments every AWS provider takes (see :class:`_AwsProvider`)."""

    settings: AwsSettings | None
    client: Client | None
    clients: ClientCache | None
    kms_key_id: str | None
    tags: dict[str, str] | None
    description: str
    adopt: bool
    sink_name: str | None


class _AwsProvider(Provider):
    """Base of ``aws-ssm`` and ``aws-secretsmanager``; subclasses set ``service``."""

    distribution: ClassVar[str] = "harbor-secrets-aws"
    key_option: ClassVar[str] = "name"
    stores_full_record: ClassVar[bool] = True
    credential_variables: ClassVar[tuple[str, ...]] = (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
    )
    #: The boto3 service name of the client this provider uses.
    service: ClassVar[str]
    #: How an entry that is not ours is described before "is not tagged …".
    unowned: ClassVar[str] = "exists but"

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
        sink_name: str | None = None,
    ) -> None:
        self.settings = settings or AwsSettings()
        self._client_override = client
        self._clients = clients or shared_clients()
        self.kms_key_id = kms_key_id
        self.tags = {**(tags or {}), MANAGED_TAG: "harbor-secrets"}
        self.description = description
        self.adopt = adopt
        self.sink_name = sink_name or self.name

    @classmethod
    def from_options(cls, options: Options, context: ProviderContext) -> Self:
        settings = AwsSettings.from_options(options, context.environ)
        kms_key_id = options.string("kms_key_id")
        tags = read_tags(options)
        description = options.string("description", DEFAULT_DESCRIPTION)
        assert description is not None
        adopt = options.boolean("adopt", False)
        own = cls._own_options(options)
        options.finish()
        return cls(
            settings=settings,
            kms_key_id=kms_key_id,
            tags=tags,
            description=description,
            adopt=adopt,
            sink_name=context.sink_name,
            **own,
        )

    @classmethod
    def _own_options(cls, options: Options) -> dict[str, Any]:
        """Options only this store takes, as keyword arguments of ``__init__``."""
        return {}

    def _client(self) -> Client:
        if self._client_override is not None:
            return self._client_override
        return self._clients.client(self.service, self.settings)

    @staticmethod
    @abstractmethod
    def _what(name: str) -> str:
        """The entry named for people, e.g. ``SSM parameter '/harbor/x'``."""

    @abstractmethod
    def _is_managed(self, name: str) -> bool:
        """Whether the existing entry carries the ``managed-by=harbor-secrets`` tag."""

    def _require_owned(self, name: str, *, action: str) -> None:
        """Refuse to ``action`` ("use", "overwrite") an entry that is not ours or adopted."""
        if self.adopt or self._is_managed(name):
            return
        raise StoreError(
            f"{self._what(name)} {self.unowned} is not tagged {MANAGED_TAG}=harbor-secrets; "
            f"refusing to {action} it",
            hint=f"tag it {MANAGED_TAG}=harbor-secrets if harbor-secrets should own it, "
            f"set adopt = true in sinks.{self.sink_name} to take it over, or choose another name",
            reason="not-managed",
        )

    def describe(self) -> dict[str, Any]:
        data: dict[str, Any] = {"provider": self.name, **self.settings.describe()}
        if self.kms_key_id:
            data["kms_key_id"] = self.kms_key_id
        data["adopt"] = self.adopt
        data["tags"] = dict(sorted(self.tags.items()))
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sink={self.sink_name!r}, region={self.settings.region!r})"
