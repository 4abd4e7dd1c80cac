"""Env-file and token-file providers for harbor-secrets (standard library only).

``envfile``: tokens as ``KEY='value'`` lines that shells and python-dotenv read.
``files``: one directory per token holding the raw token (``access_token``) and the record.
"""

from harbor_secrets_envfile.files import TokenFilesProvider
from harbor_secrets_envfile.provider import EnvFileProvider

__all__ = ["EnvFileProvider", "TokenFilesProvider"]
