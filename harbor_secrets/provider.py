"""The provider contract: what a secret store must do for harbor-secrets.

A provider is a class registered on the entry-point group ``harbor_secrets.providers``.
The core builds one instance per configured sink with :meth:`Provider.from_options` (which
validates and must not touch the network), renders each token's key from the sink's
template (:mod:`harbor_secrets.keys`; the provider only normalises it), then calls
:meth:`Provider.read` so the freshness policy can decide whether the token is due, and
:meth:`Provider.write` to store a fresh one.

``write`` owns the monotonic guarantee because only the store can make read-compare-write
atomic (a file lock, Vault's check-and-set, ...): under that lock or check-and-set it reads
what is stored and replaces it only if ``record.is_newer_than(stored)`` says so, and it
reports which happened. A provider never compares expiries itself: ``is_newer_than`` is
true for a later expiry, and also when the writer's freshness policy does not trust the
stored record (one written under a clock far ahead, which would otherwise block every
write until that false expiry passed). Every provider's tests subclass
:class:`harbor_secrets.testing.ProviderContract`, which checks both.
"""

from __future__ import annotations

import enum
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from harbor_secrets.errors import SecretReferenceError, StoreError
from harbor_secrets.options import Options
from harbor_secrets.record import TokenRecord
from harbor_secrets.secrets import Secret

if TYPE_CHECKING:
    from harbor_secrets.freshness import RefreshPolicy

ENTRY_POINT_GROUP = "harbor_secrets.providers"


class WriteOutcome(enum.Enum):
    """What :meth:`Provider.write` did."""

    WRITTEN = "written"
    KEPT_NEWER = "kept-newer"  # the store held one ours is not newer than (is_newer_than)


class InvalidKeyError(ValueError):
    """Raised by :meth:`Provider.normalize_key`: the store cannot hold a key by that name.

    ``problem`` completes "the rendered key ..." ("is not a valid SSM parameter name: ...");
    ``fix`` says what to write instead. Neither ever carries a secret.
    """

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


def _no_references(reference: str) -> Secret:
    raise SecretReferenceError(f"cannot resolve secret reference {reference.split(':', 1)[0]}:…")


@dataclass(frozen=True)
class ProviderContext:
    """What the core hands a provider when building it from a sink's options."""

    sink_name: str
    source: str | None = None  # the configuration file, for error messages
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    resolve_reference: Callable[[str], Secret] = _no_references
    #: True for ``config check --skip-references``, run where the job's credentials do not
    #: exist (CI, a laptop): a provider checks names and policy and does not fail because
    #: the credentials it would read at run time (a pod's service-account token, a
    #: kubeconfig, secret files) are absent here.
    skip_credentials: bool = False

    def key(self, option: str) -> str:
        """The dotted configuration key of one of this sink's options."""
        return f"sinks.{self.sink_name}.{option}"


class Provider(ABC):
    """Base class of every secret store. Subclasses set the class attributes below."""

    #: Entry-point name, used as ``provider = "<name>"`` in a sink.
    name: ClassVar[str]
    #: The distribution that ships it, for install hints.
    distribution: ClassVar[str] = "harbor-secrets"
    #: One line for ``harbor-secrets providers``.
    summary: ClassVar[str] = ""
    #: The sink option holding the key template, and its default. The core reads, checks
    #: and renders it; ``from_options`` never sees that option.
    key_option: ClassVar[str] = "key"
    default_key_template: ClassVar[str] = "harbor/{environment}/{scope}"
    #: Secret-reference schemes this provider resolves, e.g. ``("vault",)``: lower-case
    #: words joined by hyphens (:data:`harbor_secrets.references.REFERENCE_PATTERN`), or
    #: the configuration check refuses every reference to them.
    reference_schemes: ClassVar[tuple[str, ...]] = ()
    #: True when ``read`` returns every field ``write`` was given (not just token + expiry).
    stores_full_record: ClassVar[bool] = True
    #: False for a store that lives on the refresher's own host (a file): refreshers on
    #: other hosts cannot keep it fresh, so availability means one refresher per host, next
    #: to its readers. ``config check`` says so for such sinks.
    shared: ClassVar[bool] = True
    #: Environment variables the store's client reads credentials from by itself (no
    #: ``env:`` reference names them), e.g. ``VAULT_TOKEN``. Commands this tool starts
    #: (``exec``, ``on_write``) never inherit them.
    credential_variables: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abstractmethod
    def from_options(cls, options: Options, context: ProviderContext) -> Provider:
        """Validate the sink's options and build the provider. No network calls here.

        Read options through ``options`` (it names the key in errors) and call
        ``options.finish()`` at the end so unknown keys are reported.
        """

    def normalize_key(self, key: str) -> str:
        """This store's form of a key the core rendered from the sink's template.

        Override to normalise it (upper case, a leading ``/``) and to refuse, with
        :class:`InvalidKeyError`, a name the store cannot hold: the core calls this for every
        token before any network call, so a bad template exits 2 naming the sink. Pure: no
        network, no state.
        """
        return key

    @abstractmethod
    def read(self, key: str) -> TokenRecord | None:
        """The stored record under ``key``, or ``None`` if there is none.

        A record that exists but cannot be parsed is returned as ``None`` only if the
        provider is sure it owns the key; otherwise raise :class:`StoreError`.
        """

    @abstractmethod
    def write(self, key: str, record: TokenRecord) -> WriteOutcome:
        """Store ``record`` if ``record.is_newer_than(stored)``, atomically; else keep it.

        Read what the store holds under the same lock or check-and-set as the write, and
        ask :meth:`TokenRecord.is_newer_than` (never compare expiries here): it keeps a
        stored record expiring at or after ``record``, except one the writer does not
        trust. Return :attr:`WriteOutcome.KEPT_NEWER` when the stored one stays. Store every
        field :meth:`TokenRecord.to_dict` gives (``written_by`` included) when the store
        keeps whole records.
        """

    def cannot_write(self, key: str) -> StoreError | None:
        """Why a write of ``key`` is certain to fail, known without trying it, or None.

        Offline and cheap (no network): a missing directory, a read-only file system, a
        target this store refuses. The engine asks before it requests a token: when no due
        sink of a token can store it, no token is requested (minting one it cannot store
        would only cost the issuer a request each run). The default, None, says only trying
        can tell, which is always safe; never guess (a wrong answer here loses a write that
        would have worked), and leave a denial that only the store can reveal to ``write``.
        """
        return None

    def resolve_reference(self, reference: str) -> Secret:
        """Resolve ``<scheme>:…`` for a scheme in :attr:`reference_schemes`."""
        return _no_references(reference)

    def location(self, key: str) -> str | None:
        """The file a reader opens for ``key``, for stores that have one (else None).

        ``on_write`` commands get it as ``HARBOR_SECRETS_PATH``.
        """
        return None

    def describe(self) -> dict[str, Any]:
        """Where this sink writes, for ``config check`` and ``status``. No secrets.

        Values are JSON types (strings, numbers, booleans, lists, tables); a duration goes
        under a name ending in ``_seconds``, which the text output shows as e.g. ``10s``.
        """
        return {"provider": self.name}

    def warnings(self, policy: RefreshPolicy) -> list[str]:
        """Offline advice about this sink under ``policy`` (shown by ``config check``/``sync``)."""
        return []

    def reader_delay(self) -> float:
        """How much later than a write its readers may see it, in seconds (e.g. a pod
        reading a mounted Kubernetes Secret); ``config check``'s availability budget takes
        it off what such readers find. 0 when readers read the store itself."""
        return 0.0

    def close(self) -> None:  # noqa: B027 - optional hook; most providers hold nothing
        """Release clients and credentials (e.g. revoke a Vault token the provider created)."""
