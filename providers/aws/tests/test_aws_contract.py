"""The provider contract, run for both AWS providers against a real moto_server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from harbor_secrets_aws import ParameterStoreProvider, SecretsManagerProvider

from harbor_secrets.testing import ProviderContract
from harbor_testkit.servers import free_port


class _AwsContract(ProviderContract):
    unreachable_within = 90.0  # botocore's standard retries (5 attempts) with backoff

    @pytest.fixture
    def provider_environ(self, aws_env: dict[str, str]) -> Mapping[str, str]:
        return aws_env

    @pytest.fixture
    def sink_options(self, moto_url: str, aws_env: dict[str, str]) -> dict[str, Any]:
        return {"region": aws_env["AWS_REGION"], "endpoint_url": moto_url}

    @pytest.fixture
    def unreachable_options(self, aws_env: dict[str, str]) -> dict[str, Any]:
        closed = f"http://127.0.0.1:{free_port()}"
        return {"region": aws_env["AWS_REGION"], "endpoint_url": closed}


class TestSecretsManagerContract(_AwsContract):
    provider_class = SecretsManagerProvider


class TestParameterStoreContract(_AwsContract):
    provider_class = ParameterStoreProvider
