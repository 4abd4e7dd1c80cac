"""Key templates belong to the core: parsed and rendered once, only normalised by providers."""

from __future__ import annotations

import pytest
from harbor_secrets_envfile import EnvFileProvider

from harbor_secrets import ConfigError
from harbor_secrets.config import load_config
from harbor_secrets.keys import KeyTemplate, store_key
from harbor_secrets.registry import Registry
from harbor_secrets.runtime import Runtime
from harbor_secrets.testing.memory import MemoryProvider


@pytest.mark.parametrize(
    ("text", "problem"),
    [("harbor/{tenant}", "unknown placeholder {tenant}"), ("harbor/{scope", "invalid template")],
)
def test_a_bad_template_names_the_option_and_the_placeholders(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        KeyTemplate.parse(text, key="sinks.a.key", source="harbor.toml")
    assert problem in str(caught.value)
    assert "harbor.toml: sinks.a.key" in str(caught.value)
    assert "{environment}, {scope} and {credentials}" in str(caught.value)


def test_rendering_fills_every_placeholder() -> None:
    template = KeyTemplate.parse("{credentials}/{environment}/{scope}", key="k")
    assert template.render(environment="e", scope="s", credentials="c") == "c/e/s"


def test_a_key_the_store_cannot_hold_names_sink_template_and_rendered_name() -> None:
    with pytest.raises(ConfigError) as caught:
        store_key(
            EnvFileProvider("/x"),
            KeyTemplate.parse("9_{scope}", key="sinks.local.prefix"),
            environment="sandbox",
            scope="tower_access",
            credentials="main",
            option="sinks.local.prefix",
        )
    message = str(caught.value)
    assert message.startswith("sinks.local.prefix: template '9_{scope}' renders '9_tower_access'")
    assert "main/sandbox/tower_access" in message
    assert "letter or underscore" in message
    assert caught.value.exit_code == 2


def test_a_runtime_refuses_a_bad_rendered_key_before_any_network_call() -> None:
    text = """
[credentials.main]
client_id = "id"
client_secret = "env:S"

[sinks.local]
provider = "envfile"
path = "harbor.env"
prefix = "1_{environment}"

[[targets]]
environments = ["sandbox"]
scopes = ["tower_access"]
"""
    config = load_config(text=text, environ={})
    with pytest.raises(ConfigError) as caught:
        Runtime(config, environ={"S": "x"})
    assert caught.value.key == "sinks.local.prefix"
    assert "template '1_{environment}' renders '1_sandbox'" in str(caught.value)


def test_providers_never_see_the_template_option() -> None:
    """The memory provider refuses unknown options; a `key` template still builds."""
    text = """
[credentials.main]
client_id = "id"
client_secret = "env:S"

[sinks.mem]
provider = "memory"
key = "x/{credentials}/{environment}/{scope}"

[[targets]]
environments = ["sandbox"]
"""
    config = load_config(text=text, environ={})
    registry = Registry(extra={"memory": MemoryProvider})
    with Runtime(config, registry=registry, environ={"S": "x"}) as runtime:
        (job, _) = config.jobs()
        assert runtime.sinks["mem"].key_for(job) == "x/main/sandbox/service_provider"
