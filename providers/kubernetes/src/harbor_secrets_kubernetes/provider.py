"""The ``kubernetes`` provider: each Harbor token in its own Secret, which pods mount.

A due token costs one GET (the sync engine's read) and one PUT: the Secret the read fetched
is remembered, and the write replaces it carrying its resourceVersion, so the API server
itself makes read-compare-write atomic. When another writer got there first, the PUT gets
409 Conflict and the write reads again and decides again with the record now stored, up to
``conflict_retries`` times; an older token therefore never replaces a newer one, however
runs overlap. A Secret without the managed-by label is never written unless the sink says
``adopt = true``; a missing Secret is created only with ``create = true`` (the least-
privilege setup pre-creates them, because RBAC cannot limit ``create`` to names).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

from lightkube.resources.core_v1 import Secret as KubeSecret

from harbor_secrets import (
    MANAGED_BY,
    Options,
    Provider,
    ProviderContext,
    RefreshPolicy,
    StoreError,
    TokenRecord,
    WriteOutcome,
)
from harbor_secrets_kubernetes import _layout
from harbor_secrets_kubernetes._client import SecretsApi, copy_secret, new_secret
from harbor_secrets_kubernetes._config import KubernetesSettings, parse_settings
from harbor_secrets_kubernetes._errors import (
    CONFLICT,
    NOT_FOUND,
    NOT_MANAGED,
    ConflictError,
    NotFoundError,
)
from harbor_secrets_kubernetes._kubelet import volume_warnings
from harbor_secrets_kubernetes._names import secret_name

log = logging.getLogger("harbor_secrets.kubernetes")

_BACKOFF = 0.05  # seconds, times the attempt number, jittered: overlapping runs spread out


class KubernetesProvider(Provider):
    """Sink options: see the README (namespace, name, kubeconfig, context, adopt, create …)."""

    name = "kubernetes"
    distribution = "harbor-secrets-kubernetes"
    summary = "Kubernetes Secrets, one per token, for pods to mount (resourceVersion CAS)."
    key_option = "name"
    default_key_template = "harbor-{environment}-{scope}"
    stores_full_record = True

    def __init__(self, settings: KubernetesSettings) -> None:
        self.settings = settings
        self._api = SecretsApi(settings)
        # name -> what read() found last (None: no such Secret), for the write that follows
        self._seen: dict[str, KubeSecret | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, options: Options, context: ProviderContext) -> KubernetesProvider:
        return cls(parse_settings(options, context))

    def __repr__(self) -> str:
        s = self.settings
        return f"KubernetesProvider(server={s.server!r}, namespace={s.namespace!r})"

    def normalize_key(self, key: str) -> str:
        """The Secret name: ``_`` becomes ``-``; anything else invalid is refused."""
        return secret_name(key)

    # -- reading ------------------------------------------------------------------------

    def read(self, key: str) -> TokenRecord | None:
        secret = self._api.get(key)
        with self._lock:
            self._seen[key] = secret
        if secret is None:
            return None
        return self._record_in(secret, key, action="use")

    def _record_in(self, secret: KubeSecret, key: str, *, action: str) -> TokenRecord | None:
        """The record a fetched Secret holds; refuses one that is not ours (unless adopted)."""
        meta = secret.metadata
        owned = meta is not None and _layout.is_managed(meta.labels)
        if not owned and not self.settings.adopt:
            raise self._not_managed(key, action, has_data=bool(secret.data))
        try:
            return _layout.decode(secret.data)
        except ValueError as exc:  # ours (or adopted), but unusable: the next write replaces it
            log.warning(
                'Secret "%s" in namespace "%s": %s; treating the token as due',
                key,
                self.settings.namespace,
                exc,
            )
            return None

    # -- writing ------------------------------------------------------------------------

    def write(self, key: str, record: TokenRecord) -> WriteOutcome:
        with self._lock:
            known = key in self._seen
            secret = self._seen.pop(key, None)
        if not known:
            secret = self._api.get(key)
        retries = self.settings.conflict_retries
        for attempt in range(retries + 1):
            try:
                if secret is None:
                    self._api.create(self._new(key, record))
                    return WriteOutcome.WRITTEN
                stored = self._record_in(secret, key, action="overwrite")
                if not record.is_newer_than(stored):
                    return WriteOutcome.KEPT_NEWER
                self._api.replace(self._updated(secret, record))
                return WriteOutcome.WRITTEN
            except ConflictError:
                pass  # someone else wrote it (or created it) first: read and decide again
            except NotFoundError as exc:
                if exc.kind == "namespaces":
                    raise
                # deleted since it was read: decide again on what is there now
            if attempt < retries:
                time.sleep(_BACKOFF * (attempt + 1) * (0.5 + random.random()))  # noqa: S311
                secret = self._api.get(key)
        raise StoreError(
            f'Secret "{key}" in namespace "{self.settings.namespace}" kept changing while it '
            f"was being written ({retries + 1} attempts, each lost to another writer: a 409 "
            "Conflict, or the Secret deleted or created under it)",
            hint="another writer updates it continuously; check for a second job or "
            "controller writing the same Secret, or raise conflict_retries",
            reason=CONFLICT,
        )

    def _new(self, key: str, record: TokenRecord) -> KubeSecret:
        if not self.settings.create:
            raise self._missing(key)
        secret = new_secret(key, self.settings.namespace)
        assert secret.metadata is not None
        secret.metadata.labels = _layout.managed_labels()
        secret.metadata.annotations = _layout.record_annotations(record)
        secret.type = _layout.SECRET_TYPE
        secret.data = _layout.encode(record)
        return secret

    @staticmethod
    def _updated(secret: KubeSecret, record: TokenRecord) -> KubeSecret:
        """The fetched Secret with our data, label and annotation; everything else kept."""
        updated = copy_secret(secret)
        meta = updated.metadata
        assert meta is not None
        meta.labels = {**(meta.labels or {}), **_layout.managed_labels()}
        meta.annotations = {**(meta.annotations or {}), **_layout.record_annotations(record)}
        updated.data = {**(updated.data or {}), **_layout.encode(record)}
        updated.stringData = None
        return updated

    # -- errors -------------------------------------------------------------------------

    def _not_managed(self, key: str, action: str, *, has_data: bool) -> StoreError:
        ns = self.settings.namespace
        content = "" if has_data else " (it is empty)"
        return StoreError(
            f'Secret "{key}" in namespace "{ns}" exists{content} but is not labelled '
            f"{_layout.MANAGED_LABEL}={MANAGED_BY}; refusing to {action} it",
            hint=f"label it (kubectl -n {ns} label secret {key} "
            f"{_layout.MANAGED_LABEL}={MANAGED_BY}) if harbor-secrets should own it, set "
            f"adopt = true in sinks.{self.settings.sink_name} to take it over, or choose "
            "another name",
            reason=NOT_MANAGED,
        )

    def _missing(self, key: str) -> StoreError:
        ns = self.settings.namespace
        return StoreError(
            f'Secret "{key}" does not exist in namespace "{ns}" on {self.settings.server} '
            "(or the namespace does not exist), and this sink does not create Secrets",
            hint=f"pre-create it (kubectl -n {ns} create secret generic {key} && kubectl -n "
            f"{ns} label secret {key} {_layout.MANAGED_LABEL}=harbor-secrets) and allow "
            f"get/update/patch on it in the Role, or set create = true in "
            f"sinks.{self.settings.sink_name} (needs the create verb on secrets)",
            reason=NOT_FOUND,
        )

    # -- the rest of the contract -------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "provider": self.name,
            "server": s.server,
            "namespace": s.namespace,
            "credentials": s.identity.describe(),
            "adopt": s.adopt,
            "create": s.create,
        }

    def warnings(self, policy: RefreshPolicy) -> list[str]:
        s = self.settings
        return [*s.notes, *volume_warnings(policy, s.volume_propagation, s.sink_name)]

    def reader_delay(self) -> float:
        """A pod reading the Secret from a volume sees a write this much later."""
        return self.settings.volume_propagation

    def close(self) -> None:
        self._api.close()
