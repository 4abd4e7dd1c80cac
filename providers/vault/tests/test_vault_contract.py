"""The provider contract from harbor_secrets.testing, against real KV v2 and KV v1 mounts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from harbor_secrets_vault import VaultProvider
from vault_support import BaoServer

from harbor_secrets.testing import ProviderContract
from harbor_testkit.servers import free_port


class _VaultContract(ProviderContract):
    provider_class = VaultProvider
    unreachable_within = 30.0

    @pytest.fixture
    def provider_environ(self, bao: BaoServer) -> Mapping[str, str]:
        return {"HOME": str(bao.home), "VAULT_TOKEN": bao.root_token}

    @pytest.fixture
    def unreachable_options(self) -> dict[str, Any]:
        """Nothing listens on the port; a short timeout keeps the test quick."""
        return {"address": f"http://127.0.0.1:{free_port()}", "timeout": "2s"}


class TestVaultKv2Contract(_VaultContract):
    @pytest.fixture
    def sink_options(self, bao: BaoServer) -> dict[str, Any]:
        return {"address": bao.address, "mount": "secret"}


class TestVaultKv2ExplicitVersionContract(_VaultContract):
    @pytest.fixture
    def sink_options(self, bao: BaoServer) -> dict[str, Any]:
        return {
            "address": bao.address,
            "mount": "secret",
            "kv_version": 2,
            "path": "team/{credentials}/{environment}/{scope}",
        }


class TestVaultKv1Contract(_VaultContract):
    @pytest.fixture
    def sink_options(self, bao: BaoServer) -> dict[str, Any]:
        return {"address": bao.address, "mount": "kv1", "kv_version": 1}
