"""Secrets this tool reads from the environment never reach the commands it starts."""

from __future__ import annotations

from harbor_secrets.config import load_config
from harbor_secrets.runtime import Runtime

CONFIG = """
[credentials.main]
client_id = "id"
client_secret = "env:MY_HARBOR_SECRET"

[sinks.vault]
provider = "vault"
address = "https://vault.example.com:8200"

[sinks.params]
provider = "aws-ssm"
region = "eu-west-1"

[sinks.local]
provider = "envfile"
path = "/tmp/harbor.env"
on_write = ["true"]

[[targets]]
environments = ["sandbox"]
"""


def test_references_and_the_stores_own_credential_variables_are_hidden() -> None:
    config = load_config(text=CONFIG, environ={})
    environ = {"MY_HARBOR_SECRET": "s", "VAULT_TOKEN": "t"}
    with Runtime(config, environ=environ) as runtime:
        hidden = runtime.hidden_variables()
    assert {"MY_HARBOR_SECRET", "VAULT_TOKEN"} <= hidden
    assert {"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"} <= hidden
    assert "PATH" not in hidden
