"""harbor-secrets: mint Harbor Lockers API tokens and keep them fresh in your secret stores.

This module is the public API for provider authors and library users; everything not
listed in ``__all__`` is private and may change. ``tests/test_public_api.py`` pins it.
"""

from typing import TYPE_CHECKING, Any

from harbor_secrets._version import __version__
from harbor_secrets.environments import is_loopback_host
from harbor_secrets.errors import (
    ConfigError,
    HarborSecretsError,
    IssuerError,
    SecretReferenceError,
    StoreError,
    describe_connection_failure,
)
from harbor_secrets.options import Options
from harbor_secrets.provider import (
    ENTRY_POINT_GROUP,
    InvalidKeyError,
    Provider,
    ProviderContext,
    WriteOutcome,
)
from harbor_secrets.record import MANAGED_BY, SCHEMA_VERSION, TokenRecord, format_time, parse_time
from harbor_secrets.secrets import Secret, scrub

if TYPE_CHECKING:
    from harbor_secrets._file_set import AtomicFileSet
    from harbor_secrets._files import AtomicFile
    from harbor_secrets._reading import LocalFileError, read_credential_file, read_text_file
    from harbor_secrets.config import (
        CONFIG_ENV_VAR,
        Config,
        check_reference_syntax,
        load_config,
    )
    from harbor_secrets.freshness import DEFAULT_MIN_REMAINING, RefreshPolicy
    from harbor_secrets.keys import ENV_PREFIX_TEMPLATE, env_names, is_shell_name, shell_name
    from harbor_secrets.logs import configure as configure_logging
    from harbor_secrets.logs import scrub_handlers
    from harbor_secrets.references import is_local as is_local_reference
    from harbor_secrets.sync import SyncReport, run_sync

# Running a sync pulls in more of the package; these load on first use so that importing
# harbor_secrets (every provider does, and so does `harbor-secrets --version`) stays cheap.
_LAZY = {
    "AtomicFile": ("harbor_secrets._files", "AtomicFile"),
    "AtomicFileSet": ("harbor_secrets._file_set", "AtomicFileSet"),
    "LocalFileError": ("harbor_secrets._reading", "LocalFileError"),
    "read_text_file": ("harbor_secrets._reading", "read_text_file"),
    "read_credential_file": ("harbor_secrets._reading", "read_credential_file"),
    "RefreshPolicy": ("harbor_secrets.freshness", "RefreshPolicy"),
    "DEFAULT_MIN_REMAINING": ("harbor_secrets.freshness", "DEFAULT_MIN_REMAINING"),
    "ENV_PREFIX_TEMPLATE": ("harbor_secrets.keys", "ENV_PREFIX_TEMPLATE"),
    "env_names": ("harbor_secrets.keys", "env_names"),
    "is_shell_name": ("harbor_secrets.keys", "is_shell_name"),
    "shell_name": ("harbor_secrets.keys", "shell_name"),
    "is_local_reference": ("harbor_secrets.references", "is_local"),
    "CONFIG_ENV_VAR": ("harbor_secrets.config", "CONFIG_ENV_VAR"),
    "Config": ("harbor_secrets.config", "Config"),
    "check_reference_syntax": ("harbor_secrets.config", "check_reference_syntax"),
    "load_config": ("harbor_secrets.config", "load_config"),
    "SyncReport": ("harbor_secrets.sync", "SyncReport"),
    "run_sync": ("harbor_secrets.sync", "run_sync"),
    "configure_logging": ("harbor_secrets.logs", "configure"),
    "scrub_handlers": ("harbor_secrets.logs", "scrub_handlers"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_MIN_REMAINING",
    "ENTRY_POINT_GROUP",
    "ENV_PREFIX_TEMPLATE",
    "MANAGED_BY",
    "SCHEMA_VERSION",
    "AtomicFile",
    "AtomicFileSet",
    "Config",
    "ConfigError",
    "HarborSecretsError",
    "InvalidKeyError",
    "IssuerError",
    "LocalFileError",
    "Options",
    "Provider",
    "ProviderContext",
    "RefreshPolicy",
    "Secret",
    "SecretReferenceError",
    "StoreError",
    "SyncReport",
    "TokenRecord",
    "WriteOutcome",
    "__version__",
    "check_reference_syntax",
    "configure_logging",
    "describe_connection_failure",
    "env_names",
    "format_time",
    "is_local_reference",
    "is_loopback_host",
    "is_shell_name",
    "load_config",
    "parse_time",
    "read_credential_file",
    "read_text_file",
    "run_sync",
    "scrub",
    "scrub_handlers",
    "shell_name",
]
