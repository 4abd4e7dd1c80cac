"""The three Secret requests this provider makes (get, create, replace), through lightkube.

Why lightkube: bench/k8s_clients.py measured it adding ~100 ms of imports and ~8 MB over
``requests`` (the official client: ~740 ms and ~38 MB; kr8s: ~200 ms, ~16 MB, and a file left
in TMPDIR), with kubeconfig contexts, in-cluster config, CA bundles, client certificates,
exec plugins and a token file re-read after a 401, the way client-go picks up a rotated
service-account token. lightkube retries the request once after that re-read, PUT and POST
included (verified against the stand-in API server in tests/test_kubernetes_auth.py).

The client is built on first use, not by ``from_options``: constructing the sink stays
offline. It never trusts the environment (``trust_env=False``): no ``SSL_CERT_FILE``,
``REQUESTS_CA_BUNDLE``, ``HTTPS_PROXY`` or ``.netrc`` changes what is trusted or where
requests go; only the kubeconfig's (or the service account's) CA is. Secret objects are
never logged or put in a message: their repr includes the data.
"""

from __future__ import annotations

import logging
import threading
from typing import cast

import httpx2
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Secret as KubeSecret

from harbor_secrets import Secret, read_credential_file
from harbor_secrets_kubernetes._config import KubernetesSettings
from harbor_secrets_kubernetes._errors import CREDENTIALS, NotFoundError, Operation, guard

#: Loggers of lightkube's HTTP stack; their DEBUG output carries request headers.
QUIET_LOGGERS = ("lightkube", "httpx2", "httpcore2", "hpack", "h2", "anyio")
FIELD_MANAGER = "harbor-secrets"
_CONNECT_TIMEOUT = 5.0

for _name in QUIET_LOGGERS:
    logging.getLogger(_name).setLevel(logging.WARNING)


class SecretsApi:
    """Secrets in one namespace of one cluster, as the settings name them."""

    def __init__(self, settings: KubernetesSettings) -> None:
        self.settings = settings
        self._client: Client | None = None
        self._lock = threading.Lock()

    def op(self, verb: str, name: str) -> Operation:
        s = self.settings
        return Operation(verb, s.namespace, name, s.server, s.identity.describe())

    def get(self, name: str) -> KubeSecret | None:
        """The Secret, or None when there is none by that name."""
        try:
            with guard(self.op("get", name)):
                return self._api().get(KubeSecret, name, namespace=self.settings.namespace)
        except NotFoundError:
            return None

    def create(self, secret: KubeSecret) -> KubeSecret:
        """POST a new Secret; a 409 (AlreadyExists) is raised as :class:`ConflictError`."""
        assert secret.metadata is not None
        assert secret.metadata.name is not None
        with guard(self.op("create", secret.metadata.name)):
            return self._api().create(secret, namespace=self.settings.namespace)

    def replace(self, secret: KubeSecret) -> KubeSecret:
        """PUT the Secret carrying its resourceVersion: compare-and-swap, 409 when stale."""
        assert secret.metadata is not None
        assert secret.metadata.name is not None
        with guard(self.op("update", secret.metadata.name)):
            return self._api().replace(secret)  # into metadata.namespace

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _api(self) -> Client:
        read_credentials(self.settings)  # before every request, not only the first
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> Client:
        settings = self.settings
        config = settings.client_config()
        timeout = httpx2.Timeout(settings.timeout, connect=min(_CONNECT_TIMEOUT, settings.timeout))
        return Client(
            config,
            namespace=settings.namespace,
            field_manager=FIELD_MANAGER,
            timeout=timeout,
            trust_env=False,
        )


def new_secret(name: str, namespace: str) -> KubeSecret:
    return KubeSecret(metadata=ObjectMeta(name=name, namespace=namespace), type="Opaque")


def copy_secret(secret: KubeSecret) -> KubeSecret:
    """A deep copy to change and PUT back (every field kept: owners, finalizers, type)."""
    return cast(KubeSecret, KubeSecret.from_dict(secret.to_dict()))


def read_credentials(settings: KubernetesSettings) -> None:
    """Put the bearer token on the scrub list, so no log line or message can carry it.

    A token file (the pod's service-account token, a kubeconfig ``tokenFile``) is read
    before every request, through the core's bounded reader: the kubelet rotates it, so
    the token lightkube re-reads after a 401 is on the list too, and a file that turned
    into a FIFO, a directory or something that is not text fails this request clearly
    instead of hanging (or crashing) inside lightkube's own read.
    """
    user = settings.client_config().user
    if user is None:
        return
    if user.token:
        Secret(user.token)
    if user.token_file:
        _read_token_file(user.token_file, settings)
    if user.password:
        Secret(user.password)


def _read_token_file(path: str, settings: KubernetesSettings) -> None:
    identity = settings.identity
    where = (
        "check the pod's service-account token mount (automountServiceAccountToken, or "
        "the projected volume)"
        if identity.in_cluster
        else f"fix the user's tokenFile in {identity.path}"
    )
    read_credential_file(
        path, what=f"token file {path} of {identity.describe()}", fix=where, reason=CREDENTIALS
    )
