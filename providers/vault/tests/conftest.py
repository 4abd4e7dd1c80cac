"""Fixtures for the Vault provider's tests: one shared OpenBao dev server per session."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from harbor_secrets_vault import VaultProvider
from vault_support import (
    READ_ONLY_POLICY,
    BaoServer,
    MakeProvider,
    readme_policy,
    start_bao,
)

from harbor_secrets.testing import sink_from_options


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    """The shared server: KV v2 at secret/ (dev default) and KV v1 at kv1/."""
    server = start_bao(tmp_path_factory.mktemp("bao"))
    try:
        server.client().sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
        server.write_policy("harbor-read-only", READ_ONLY_POLICY)
        server.write_policy("harbor-secrets-writer", readme_policy("harbor-secrets-writer"))
        server.write_policy("harbor-secrets-writer-kv1", readme_policy("harbor-secrets-writer-kv1"))
        server.write_policy("harbor-token-reader", readme_policy("harbor-token-reader"))
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_vault(bao: BaoServer) -> Iterator[MakeProvider]:
    """Build providers from sink options, as the core would; closes them all afterwards.

    By default the provider talks to the shared server with the root token from
    VAULT_TOKEN; pass ``environ`` to replace the whole environment it sees.
    """
    made: list[VaultProvider] = []

    def make(*, environ: Mapping[str, str] | None = None, **options: Any) -> VaultProvider:
        if environ is None:
            environ = {"HOME": str(bao.home), "VAULT_TOKEN": bao.root_token}
        table = {"address": bao.address, **options}
        sink = sink_from_options(
            VaultProvider, table, environ=environ, name="vault", source="harbor-secrets.toml"
        )
        provider = sink.provider
        assert isinstance(provider, VaultProvider)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()
