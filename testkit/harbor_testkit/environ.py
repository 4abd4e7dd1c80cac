"""Child processes of the tests must never reach a real Harbor, Vault or AWS account.

:func:`clean_environ` is this process's environment without any of their settings, plus
what the caller adds, so a developer's ``VAULT_ADDR`` or ``AWS_PROFILE`` can never leak
into a test run (and a test never depends on them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: Variables with these prefixes point at real accounts; they never reach a child process.
DROPPED_PREFIXES = ("HARBOR_", "VAULT_", "BAO_", "AWS_", "KUBECONFIG")

#: moto accepts any credentials; these keep the AWS SDK away from a developer's AWS setup.
AWS_TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def clean_environ(
    extra: Mapping[str, str] | None = None,
    *,
    home: Path | None = None,
    aws: bool = False,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``base`` (default: ``os.environ``) without Harbor/Vault/OpenBao/AWS/Kubernetes settings.

    ``home`` also points HOME (and the AWS config files) into a temporary directory; ``aws``
    adds moto's test credentials; ``extra`` is added last.
    """
    source = os.environ if base is None else base
    environ = {key: value for key, value in source.items() if not key.startswith(DROPPED_PREFIXES)}
    if home is not None:
        environ["HOME"] = str(home)
        if aws:
            environ["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "no-aws-credentials")
            environ["AWS_CONFIG_FILE"] = str(home / "no-aws-config")
    if aws:
        environ.update(AWS_TEST_ENVIRONMENT)
    environ.update(extra or {})
    return environ
