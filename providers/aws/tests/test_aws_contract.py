"""The provider contract, run for both AWS providers against a real moto_server."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from harbor_secrets_aws import ParameterStoreProvider, SecretsManagerProvider
from harbor_secrets_aws.clients import AwsSettings, ClientCache

from harbor_secrets import Provider
from harbor_secrets.testing import ProviderContract


class TestSecretsManagerContract(ProviderContract):
    @pytest.fixture
    def make_provider(
        self, aws_settings: AwsSettings, aws_clients: ClientCache
    ) -> Callable[[], Provider]:
        return lambda: SecretsManagerProvider(settings=aws_settings, clients=aws_clients)


class TestParameterStoreContract(ProviderContract):
    @pytest.fixture
    def make_provider(
        self, aws_settings: AwsSettings, aws_clients: ClientCache
    ) -> Callable[[], Provider]:
        return lambda: ParameterStoreProvider(settings=aws_settings, clients=aws_clients)
