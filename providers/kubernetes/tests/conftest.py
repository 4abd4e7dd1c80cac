"""Fixtures for the Kubernetes provider's tests: one stand-in API server per session.

The server (harbor_testkit.kube_apiserver) speaks HTTPS with its own CA on loopback and is
driven through the real lightkube client. If it cannot start, the tests fail; they never
skip. Faults and conflicts a test queues are cleared after it, and the server is brought
back up if a test took it down, so tests sharing it stay independent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harbor_secrets_kubernetes import KubernetesProvider
from kube_support import NAMESPACE, USER, Cluster, MakeProvider, Pod, unique

from harbor_testkit.kube_apiserver import KubeApiServer, Rule
from harbor_testkit.servers import ServerStartError

#: What the contract suite needs: its tests write Secrets under fresh names, so create too.
BROAD = Rule(("get", "update", "patch", "create"), namespace=NAMESPACE)


@pytest.fixture(scope="session")
def kube_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApiServer]:
    server = KubeApiServer(namespaces=(NAMESPACE, "other"), workdir=tmp_path_factory.mktemp("kube"))
    try:
        server.start()
    except ServerStartError as error:
        pytest.fail(str(error))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cluster(kube_server: KubeApiServer, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    home = tmp_path_factory.mktemp("home")
    token = kube_server.add_token(USER)
    kube_server.set_rules(USER, [BROAD])
    kubeconfig = kube_server.write_kubeconfig(home / "kubeconfig", token=token, namespace=NAMESPACE)
    return Cluster(kube_server, home, kubeconfig, token)


@pytest.fixture(autouse=True)
def _clean_server(request: pytest.FixtureRequest) -> Iterator[None]:
    """Undo what a test did to the shared server (faults, outages, narrowed rules)."""
    yield
    if "cluster" not in request.fixturenames and "kube_server" not in request.fixturenames:
        return
    server: KubeApiServer = request.getfixturevalue("kube_server")
    server.clear_faults()
    server.up()
    server.set_rules(USER, [BROAD])


@pytest.fixture
def make_kube(cluster: Cluster) -> Iterator[MakeProvider]:
    """Providers over the shared server; all closed after the test."""
    made: list[KubernetesProvider] = []

    def make(**options: Any) -> KubernetesProvider:
        provider = cluster.provider(**options)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def pod(cluster: Cluster, tmp_path: Path) -> Pod:
    """A pod's service-account mount (token, ca.crt, namespace) for a service account of its
    own, so a test may rotate or revoke its token without touching the session's."""
    user = f"system:serviceaccount:{NAMESPACE}:{unique('job')}"
    cluster.server.set_rules(user, [BROAD])
    directory = cluster.server.write_service_account(tmp_path / "serviceaccount", user)
    environ = cluster.environ(**cluster.server.in_cluster_environ())
    return Pod(directory, user, environ)
