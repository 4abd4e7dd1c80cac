"""harbor-secrets: mint Harbor Lockers API tokens and keep them fresh in your secret stores.

This module is the public API for provider authors and library users; everything not
listed in ``__all__`` is private and may change. ``tests/test_public_api.py`` pins it.
"""

from harbor_secrets._version import __version__
from harbor_secrets.errors import (
    ConfigError,
    HarborSecretsError,
    IssuerError,
    SecretReferenceError,
    StoreError,
)
from harbor_secrets.options import Options
from harbor_secrets.provider import (
    ENTRY_POINT_GROUP,
    Provider,
    ProviderContext,
    RefreshPolicy,
    WriteOutcome,
)
from harbor_secrets.record import MANAGED_BY, SCHEMA_VERSION, TokenRecord, format_time, parse_time
from harbor_secrets.secrets import Secret, scrub

__all__ = [
    "ENTRY_POINT_GROUP",
    "MANAGED_BY",
    "SCHEMA_VERSION",
    "ConfigError",
    "HarborSecretsError",
    "IssuerError",
    "Options",
    "Provider",
    "ProviderContext",
    "RefreshPolicy",
    "Secret",
    "SecretReferenceError",
    "StoreError",
    "TokenRecord",
    "WriteOutcome",
    "__version__",
    "format_time",
    "parse_time",
    "scrub",
]
