"""Env-file provider for harbor-secrets (placeholder until implemented)."""

from harbor_secrets_envfile.provider import EnvFileProvider

__all__ = ["EnvFileProvider"]
