"""Configuration: valid files parse; every mistake names the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from harbor_secrets.config import Config, load_config
from harbor_secrets.errors import ConfigError
from harbor_secrets.registry import Registry
from harbor_secrets.runtime import Runtime
from harbor_secrets.testing.memory import MemoryProvider

BASE = """
[credentials.main]
client_id = "id"
client_secret = "env:SECRET"

[sinks.mem]
provider = "memory"

[[targets]]
environments = ["sandbox"]
"""

REGISTRY = Registry(extra={"memory": MemoryProvider})


def load(text: str, tmp_path: Path, environ: dict[str, str] | None = None) -> Config:
    path = tmp_path / "harbor.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ=environ or {})


def error_for(text: str, tmp_path: Path, environ: dict[str, str] | None = None) -> ConfigError:
    def build() -> None:
        Runtime(load(text, tmp_path, environ), registry=REGISTRY, environ=environ or {}).close()

    with pytest.raises(ConfigError) as caught:
        build()
    assert caught.value.exit_code == 2
    return caught.value


def test_minimal_config_expands_to_both_scopes(tmp_path: Path) -> None:
    config = load_config(tmp_path / "x.toml", text=BASE, environ={})
    jobs = config.jobs()
    assert [(j.credentials, j.environment, j.scope) for j in jobs] == [
        ("main", "sandbox", "service_provider"),
        ("main", "sandbox", "tower_access"),
    ]
    assert jobs[0].sinks == ("mem",)
    assert config.refresh.refresh_before == 150
    assert config.environments["sandbox"].token_url == (
        "https://accounts.sandbox.harborlockers.com/realms/harbor/protocol/openid-connect/token"
    )
    assert config.environments["production"].test_token_url == (
        "https://api.harborlockers.com/api/v1/login/test-token"
    )


def test_durations_accept_strings_and_numbers(tmp_path: Path) -> None:
    config = load_config(
        text='[refresh]\nrefresh_before = "2m"\nschedule_period = 30\n' + BASE, environ={}
    )
    assert config.refresh.refresh_before == 120
    assert config.refresh.schedule_period == 30


def test_tower_ids_resolve_to_environments(tmp_path: Path) -> None:
    towers = 'tower_ids = ["1000000000000042", "0100000000000A3F"]'
    text = BASE.replace('environments = ["sandbox"]', towers)
    config = load_config(text=text, environ={})
    assert {j.environment for j in config.jobs()} == {"production", "sandbox"}


def test_a_target_can_keep_development_tokens(tmp_path: Path) -> None:
    text = BASE.replace('environments = ["sandbox"]', 'environments = ["development"]')
    config = load_config(text=text, environ={})
    assert {j.environment for j in config.jobs()} == {"development"}
    assert config.environments["development"].accounts_url == (
        "https://accounts.dev.harborlockers.com"
    )


def test_environment_variables_override_urls(tmp_path: Path) -> None:
    text = BASE + '\n[environments.sandbox]\naccounts_url = "https://idp.example.com"\n'
    config = load_config(
        text=text, environ={"HARBOR_SANDBOX_ACCOUNTS_URL": "http://127.0.0.1:9999/"}
    )
    assert config.environments["sandbox"].accounts_url == "http://127.0.0.1:9999"
    assert config.environments["sandbox"].api_url == "https://api.sandbox.harborlockers.com"


@pytest.mark.parametrize(
    ("text", "key", "fix_fragment"),
    [
        (BASE + "\n[refreshh]\n", "refreshh", "spelling"),
        ('[refresh]\nrefresh_before = "soon"\n' + BASE, "refresh.refresh_before", "150s"),
        (
            BASE.replace('"env:SECRET"', '"hunter2-literal-value"'),
            "credentials.main.client_secret",
            "env:HARBOR_CLIENT_SECRET",
        ),
        (
            BASE + '\n[environments.sandbox]\naccounts_url = "http://idp.example.com"\n',
            "environments.sandbox.accounts_url",
            "https://",
        ),
        (
            BASE.replace('environments = ["sandbox"]', 'tower_ids = ["2000000000000001"]'),
            "targets[0].tower_ids",
            "10 (production) or 01 (sandbox)",
        ),
        (
            BASE.replace('environments = ["sandbox"]', 'tower_ids = ["0100000123"]'),
            "targets[0].tower_ids",
            "16 hexadecimal characters",
        ),
        (
            BASE.replace('environments = ["sandbox"]', 'environments = ["staging"]'),
            "targets[0].environments",
            "[environments.staging]",
        ),
        (
            BASE.replace('environments = ["sandbox"]', 'environments = ["sandbox"]\nsinks = ["x"]'),
            "targets[0].sinks",
            "[sinks.x]",
        ),
        (BASE.split("[[targets]]")[0], "targets", "[[targets]]"),
        ('[refresh]\ntoken_lifetime = "25h"\n' + BASE, "refresh.token_lifetime", "300s"),
        (
            BASE.replace('provider = "memory"', 'provider = "memory"\nkey = "h/{env}"'),
            "sinks.mem.key",
            "{environment}",
        ),
        (
            BASE.replace('provider = "memory"', 'provider = "memory"\nkey = "h/{scope}"').replace(
                '["sandbox"]', '["sandbox", "production"]'
            ),
            "sinks.mem.key",
            "placeholders",
        ),
        (BASE.replace('provider = "memory"', 'provider = "nosuch"'), "sinks.mem.provider", "use"),
        (
            BASE.replace("[[targets]]", "[credentials.main.extra]\n[[targets]]"),
            "credentials.main.extra",
            "spelling",
        ),
        (
            BASE.replace('client_id = "id"', 'client_id = "id"\nauth_method = "jwt"'),
            "credentials.main.auth_method",
            "client_secret_basic",
        ),
    ],
)
def test_errors_name_file_key_and_fix(
    tmp_path: Path, text: str, key: str, fix_fragment: str
) -> None:
    error = error_for(text, tmp_path)
    message = str(error)
    assert str(tmp_path / "harbor.toml") in message
    assert error.key == key, message
    assert fix_fragment in message


def test_literal_secret_is_never_echoed(tmp_path: Path) -> None:
    error = error_for(BASE.replace('"env:SECRET"', '"hunter2-literal-value"'), tmp_path)
    assert "hunter2" not in str(error)


def test_invalid_toml_points_at_the_line(tmp_path: Path) -> None:
    error = error_for("[refresh\n", tmp_path)
    assert "line 1" in str(error)


def test_missing_file_and_no_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml", environ={})
    with pytest.raises(ConfigError, match="HARBOR_SECRETS_CONFIG"):
        load_config(None, environ={})


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(BASE, encoding="utf-8")
    config = load_config(None, environ={"HARBOR_SECRETS_CONFIG": str(path)})
    assert config.source == str(path)


def test_local_references_fail_before_any_network(tmp_path: Path) -> None:
    config = load(BASE, tmp_path)
    with (
        Runtime(config, registry=REGISTRY, environ={}) as runtime,
        pytest.raises(ConfigError) as caught,
    ):
        runtime.resolve_local_secrets()
    assert caught.value.key == "credentials.main.client_secret"
    assert "export SECRET" in str(caught.value)


def test_file_reference_is_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("s3cret-from-file\n", encoding="utf-8")
    config = load(BASE.replace("env:SECRET", "file:secret.txt"), tmp_path)
    with Runtime(config, registry=REGISTRY, environ={}) as runtime:
        secrets = runtime.resolve_local_secrets()
    assert secrets["main"].reveal() == "s3cret-from-file"


def test_policy_warnings(tmp_path: Path) -> None:
    text = '[refresh]\nrefresh_before = "30s"\n' + BASE
    with Runtime(load(text, tmp_path), registry=REGISTRY, environ={}) as runtime:
        assert any("schedule period" in note for note in runtime.warnings())
    with Runtime(load(text, tmp_path), registry=REGISTRY, environ={}, watching=True) as runtime:
        assert runtime.warnings() == []  # watch mode wakes when due, not on a schedule
    text = '[refresh]\nrefresh_before = "300s"\n' + BASE
    with Runtime(load(text, tmp_path), registry=REGISTRY, environ={}) as runtime:
        assert any("every run rewrites every token" in note for note in runtime.warnings())
    with Runtime(load(BASE, tmp_path), registry=REGISTRY, environ={}) as runtime:
        assert runtime.warnings() == []


def test_shipped_example_is_valid(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "config.example.toml"
    config = load_config(example, environ={"HARBOR_CLIENT_SECRET": "x-secret"})
    with Runtime(config, environ={"HARBOR_CLIENT_SECRET": "x-secret"}) as runtime:
        assert runtime.resolve_local_secrets()["main"].reveal() == "x-secret"
        assert runtime.warnings() == []
        assert [s.key_for(j) for j in config.jobs() for s in runtime.sinks.values()] == [
            "HARBOR_SANDBOX_SERVICE_PROVIDER",
            "HARBOR_SANDBOX_TOWER_ACCESS",
        ]


def test_a_reference_only_provider_is_checked_before_any_network(tmp_path: Path) -> None:
    # client_secret lives in Vault, but no Vault address is configured anywhere: that is a
    # configuration error (exit 2) found while building, not a failure of the first job.
    text = BASE.replace('"env:SECRET"', '"vault:secret/harbor/credentials#client_secret"')
    config = load(text, tmp_path)
    with pytest.raises(ConfigError) as caught:
        Runtime(config, registry=Registry(extra={"memory": MemoryProvider}), environ={})
    assert caught.value.exit_code == 2
    assert (caught.value.key or "").startswith("providers.vault")


# --- mistakes caught with the configuration, before any token is requested ------------------


def test_a_misspelled_scope_is_refused_naming_harbors_scopes(tmp_path: Path) -> None:
    text = BASE.replace(
        'environments = ["sandbox"]',
        'environments = ["sandbox"]\nscopes = ["service_provider", "tower-access"]',
    )
    error = error_for(text, tmp_path)
    assert error.key == "targets[0].scopes"
    message = str(error)
    assert "'tower-access' is not one of Harbor's scopes" in message
    assert "service_provider" in message
    assert "did you mean tower_access?" in message


@pytest.mark.parametrize(
    ("text", "key", "suggestion"),
    [
        ('[refresh]\nrefresh_befor = "2m"\n' + BASE, "refresh.refresh_befor", "refresh_before"),
        (BASE.replace("[[targets]]", "[[targets]]\nscope = []"), "targets[0].scope", "scopes"),
        ("[credential.main]\n" + BASE.split("\n", 2)[2], "credential", "credentials"),
        (
            BASE.replace('provider = "memory"', 'provider = "memory"\non_writ = ["true"]'),
            "sinks.mem.on_writ",
            "on_write",
        ),
    ],
)
def test_an_unknown_key_gets_a_did_you_mean(
    tmp_path: Path, text: str, key: str, suggestion: str
) -> None:
    error = error_for(text, tmp_path)
    assert error.key == key, str(error)
    assert f"did you mean {suggestion}?" in str(error)


def test_an_unknown_key_far_from_every_option_gets_no_guess(tmp_path: Path) -> None:
    error = error_for('[refresh]\ncolour = "blue"\n' + BASE, tmp_path)
    assert error.key == "refresh.colour"
    assert "did you mean" not in str(error)


def test_a_missing_required_key_beside_a_misspelled_one_names_the_misspelling(
    tmp_path: Path,
) -> None:
    error = error_for(BASE.replace('client_id = "id"', 'clientid = "id"'), tmp_path)
    assert error.key == "credentials.main.client_id"
    assert "is required" in str(error)
    assert "clientid" in str(error)


def test_a_providers_missing_required_key_names_the_misspelling_too(tmp_path: Path) -> None:
    """The provider's own options go through the same Options mechanism."""
    text = BASE.replace('provider = "memory"', 'provider = "envfile"\npth = "harbor.env"')
    with pytest.raises(ConfigError) as caught:
        Runtime(load(text, tmp_path), environ={}).close()
    assert caught.value.key == "sinks.mem.path"
    assert "pth" in str(caught.value)


def test_a_missing_required_key_beside_correct_ones_guesses_nothing(tmp_path: Path) -> None:
    error = error_for(BASE.replace('client_id = "id"\n', ""), tmp_path)
    assert error.key == "credentials.main.client_id"
    assert "client_secret" not in str(error).split("is required", 1)[1]


TOKEN_URL = "https://accounts.sandbox.harborlockers.com/realms/harbor/protocol/openid-connect/token"
TEST_TOKEN_URL = "https://api.sandbox.harborlockers.com/api/v1/login/test-token"


def test_full_endpoint_urls_pasted_from_harbors_page_are_understood(tmp_path: Path) -> None:
    text = BASE + f'\n[environments.sandbox]\naccounts_url = "{TOKEN_URL}"\n'
    text += f'api_url = "{TEST_TOKEN_URL}/"\n'
    sandbox = load(text, tmp_path).environments["sandbox"]
    assert sandbox.token_url == TOKEN_URL
    assert sandbox.test_token_url == TEST_TOKEN_URL
    from_environment = load(
        BASE, tmp_path, environ={"HARBOR_SANDBOX_ACCOUNTS_URL": TOKEN_URL}
    ).environments["sandbox"]
    assert from_environment.token_url == TOKEN_URL


@pytest.mark.parametrize(
    ("field", "url", "fix"),
    [
        (
            "accounts_url",
            "https://accounts.sandbox.harborlockers.com/realms/harbor",
            'accounts_url = "https://accounts.sandbox.harborlockers.com"',
        ),
        (
            "accounts_url",
            "https://idp.example.com/auth/realms/master/protocol/openid-connect/token",
            'accounts_url = "https://idp.example.com/auth"',
        ),
        (
            "api_url",
            "https://api.sandbox.harborlockers.com/api/v1",
            'api_url = "https://api.sandbox.harborlockers.com"',
        ),
    ],
)
def test_other_endpoint_paths_are_refused_with_the_exact_fix(
    tmp_path: Path, field: str, url: str, fix: str
) -> None:
    error = error_for(BASE + f'\n[environments.sandbox]\n{field} = "{url}"\n', tmp_path)
    assert error.key == f"environments.sandbox.{field}"
    assert fix in str(error)


def test_an_endpoint_path_in_the_environment_variable_is_refused_with_the_exact_fix(
    tmp_path: Path,
) -> None:
    error = error_for(
        BASE, tmp_path, {"HARBOR_SANDBOX_API_URL": "https://api.sandbox.harborlockers.com/api/"}
    )
    assert error.key == "HARBOR_SANDBOX_API_URL"
    assert "HARBOR_SANDBOX_API_URL=https://api.sandbox.harborlockers.com" in str(error)
