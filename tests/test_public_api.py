"""Pin the public API: providers and users may rely on exactly these names."""

from __future__ import annotations

import harbor_secrets
import harbor_secrets.testing


def test_public_api_is_pinned() -> None:
    assert sorted(harbor_secrets.__all__) == sorted(
        [
            "CONFIG_ENV_VAR",
            "AtomicFile",
            "AtomicFileSet",
            "Config",
            "DEFAULT_MIN_REMAINING",
            "ENTRY_POINT_GROUP",
            "ENV_PREFIX_TEMPLATE",
            "MANAGED_BY",
            "SCHEMA_VERSION",
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
            "load_config",
            "run_sync",
            "scrub_handlers",
            "format_time",
            "is_local_reference",
            "is_loopback_host",
            "is_shell_name",
            "parse_time",
            "read_credential_file",
            "read_text_file",
            "scrub",
            "shell_name",
        ]
    )
    for name in harbor_secrets.__all__:
        assert hasattr(harbor_secrets, name), name
    assert harbor_secrets.ENTRY_POINT_GROUP == "harbor_secrets.providers"


def test_testing_api_is_pinned() -> None:
    assert sorted(harbor_secrets.testing.__all__) == [
        "MemoryProvider",
        "MemoryStore",
        "ProviderContract",
        "reset_memory_stores",
        "sink_from_options",
    ]
    assert harbor_secrets.testing.ProviderContract.__name__ == "ProviderContract"
