"""Vault / OpenBao provider for harbor-secrets: Harbor tokens in KV v1 or v2 (hvac)."""

from harbor_secrets_vault.provider import VaultProvider

__all__ = ["VaultProvider"]
