"""The provider contract from harbor_secrets.testing, against real KV v2 and KV v1 mounts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from vault_support import MakeProvider

from harbor_secrets import Provider
from harbor_secrets.testing import ProviderContract


class TestVaultKv2Contract(ProviderContract):
    @pytest.fixture
    def make_provider(self, make_vault: MakeProvider) -> Callable[[], Provider]:
        return lambda: make_vault(mount="secret")


class TestVaultKv2ExplicitVersionContract(ProviderContract):
    @pytest.fixture
    def make_provider(self, make_vault: MakeProvider) -> Callable[[], Provider]:
        return lambda: make_vault(
            mount="secret", kv_version=2, path="team/{credentials}/{environment}/{scope}"
        )


class TestVaultKv1Contract(ProviderContract):
    @pytest.fixture
    def make_provider(self, make_vault: MakeProvider) -> Callable[[], Provider]:
        return lambda: make_vault(mount="kv1", kv_version=1)
