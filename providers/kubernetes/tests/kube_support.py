"""Shared helpers of the Kubernetes provider's tests (fixtures are in conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harbor_secrets_kubernetes import KubernetesProvider

from harbor_secrets import TokenRecord
from harbor_secrets.testing import sink_from_options
from harbor_testkit.environ import clean_environ
from harbor_testkit.kube_apiserver import KubeApiServer, RequestRecord

NAMESPACE = "apps"
#: The job's service account, as the API server names it.
USER = f"system:serviceaccount:{NAMESPACE}:harbor-secrets"
SINK = "cluster"
SOURCE = "harbor-secrets.toml"
MANAGED = {"app.kubernetes.io/managed-by": "harbor-secrets"}
#: Variables that would make a provider think it runs in a pod.
IN_CLUSTER_VARIABLES = (
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "KUBERNETES_SERVICE_PORT_HTTPS",
)


def unique(stem: str) -> str:
    """A Secret name no other test uses (the server is shared by the session)."""
    return f"{stem}-{uuid.uuid4().hex[:10]}"


def base_environ(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without Kubernetes, Harbor, Vault or AWS settings."""
    environ = clean_environ(home=home)
    for name in IN_CLUSTER_VARIABLES:
        environ.pop(name, None)
    environ.update(extra or {})
    return environ


@dataclass
class Cluster:
    """The session's stand-in API server, and a kubeconfig that reaches it as :data:`USER`."""

    server: KubeApiServer
    home: Path
    kubeconfig: Path
    token: str

    def environ(self, **extra: str) -> dict[str, str]:
        return base_environ(self.home, extra)

    def provider(
        self, *, environ: Mapping[str, str] | None = None, **options: Any
    ) -> KubernetesProvider:
        """A provider built as the core builds a sink ``[sinks.cluster]`` with ``options``."""
        table: dict[str, Any] = {"kubeconfig": str(self.kubeconfig), **options}
        table = {key: value for key, value in table.items() if value is not None}
        sink = sink_from_options(
            KubernetesProvider,
            table,
            environ=self.environ() if environ is None else environ,
            name=SINK,
            source=SOURCE,
        )
        provider = sink.provider
        assert isinstance(provider, KubernetesProvider)
        return provider

    def stored(self, name: str, namespace: str = NAMESPACE) -> TokenRecord | None:
        """The record the server holds in ``record.json`` (read directly, no RBAC)."""
        data = self.server.secret_data(namespace, name)
        if data is None or "record.json" not in data:
            return None
        return TokenRecord.from_json(data["record.json"].decode())

    def requests_since(self, mark: int, name: str | None = None) -> list[RequestRecord]:
        """Secret requests answered after ``mark`` (an index into the request log); with
        ``name``, only those for that Secret (a create is a POST to the collection).

        The server is shared by the whole session, and a request another test started (a
        thread a bounded-time check stopped waiting for, say) can land late: a test that
        counts its own Secret's requests passes ``name`` so such a stray never counts.
        """
        requests = [r for r in self.server.requests[mark:] if "/secrets" in r.path]
        if name is None:
            return requests
        return [
            r
            for r in requests
            if r.path.endswith(f"/secrets/{name}")
            or (r.method == "POST" and r.path.endswith("/secrets"))
        ]


@dataclass
class Pod:
    """What a pod gives the job: the service-account mount and the kubelet's variables."""

    directory: Path
    user: str
    environ: dict[str, str]

    def options(self, **more: Any) -> dict[str, Any]:
        """Sink options for the in-cluster path (no kubeconfig)."""
        return {"kubeconfig": None, "service_account_dir": str(self.directory), **more}


MakeProvider = Callable[..., KubernetesProvider]
