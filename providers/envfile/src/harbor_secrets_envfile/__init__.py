"""Env-file provider for harbor-secrets: tokens as ``KEY='value'`` lines (standard library only)."""

from harbor_secrets_envfile.provider import EnvFileProvider

__all__ = ["EnvFileProvider"]
