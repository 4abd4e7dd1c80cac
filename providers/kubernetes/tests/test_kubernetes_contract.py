"""The provider contract from harbor_secrets.testing, through lightkube, against the stand-in
API server over HTTPS: once with a kubeconfig, once as a pod's service account."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from harbor_secrets_kubernetes import KubernetesProvider
from kube_support import Cluster, Pod

from harbor_secrets.testing import ProviderContract
from harbor_testkit.kube_apiserver import KubeconfigContext
from harbor_testkit.servers import free_port


class _KubernetesContract(ProviderContract):
    provider_class = KubernetesProvider
    custom_template = "custom-{credentials}-{environment}-{scope}"
    unreachable_within = 10.0

    @pytest.fixture
    def unreachable_options(self, cluster: Cluster, tmp_path: Path) -> dict[str, Any]:
        """A kubeconfig whose current context points at a port nothing listens on."""
        path = cluster.server.write_kubeconfig(
            tmp_path / "unreachable",
            token=cluster.token,
            namespace="apps",
            extra_contexts=[
                KubeconfigContext(
                    "closed",
                    token=cluster.token,
                    namespace="apps",
                    server=f"https://127.0.0.1:{free_port()}",
                )
            ],
            current_context="closed",
        )
        return {"kubeconfig": str(path), "timeout": "2s"}


class TestKubeconfigContract(_KubernetesContract):
    @pytest.fixture
    def provider_environ(self, cluster: Cluster) -> Mapping[str, str]:
        return cluster.environ()

    @pytest.fixture
    def sink_options(self, cluster: Cluster) -> dict[str, Any]:
        return {"kubeconfig": str(cluster.kubeconfig), "create": True}


class TestInClusterContract(_KubernetesContract):
    @pytest.fixture
    def provider_environ(self, pod: Pod) -> Mapping[str, str]:
        return pod.environ

    @pytest.fixture
    def sink_options(self, pod: Pod) -> dict[str, Any]:
        return {"service_account_dir": str(pod.directory), "create": True}
