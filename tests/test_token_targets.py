"""``token`` and ``verify`` work only on the tokens the configuration keeps, as ``get`` does.

An environment no target names is not listed by ``config check``: sending the client secret
there (``token -e development`` on the demo's configuration went to Harbor's development
issuer) is refused with exit 2 before any network call. The development environment is
pointed at a live stand-in here, so "no request" is counted, not assumed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result, envfile_config
from harbor_secrets.stand_in_issuer import StandInIssuer

Run = Callable[..., Result]


@pytest.mark.parametrize(
    "args",
    [
        ("token", "-e", "development"),
        ("token", "-e", "development", "-o", "json"),
        ("verify", "-e", "development"),
        ("verify", "-e", "development", "--sink", "local"),
    ],
)
def test_an_environment_no_target_keeps_is_refused_before_the_network(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run, args: tuple[str, ...]
) -> None:
    config = tmp_path / "harbor.toml"
    config.write_text(envfile_config(issuer.url), encoding="utf-8")  # production, sandbox
    elsewhere = {
        "HARBOR_DEVELOPMENT_ACCOUNTS_URL": issuer.url,
        "HARBOR_DEVELOPMENT_API_URL": issuer.url,
    }
    result = run_cli("-c", str(config), *args, env=elsewhere)
    assert result.code == 2, result.output
    assert "--environment: no target keeps a token for environment development" in result.stderr
    assert "ask for one of: main/production/service_provider" in result.stderr
    assert issuer.token_requests == 0
    assert issuer.test_token_requests == 0


def test_a_kept_token_is_still_minted(tmp_path: Path, issuer: StandInIssuer, run_cli: Run) -> None:
    config = tmp_path / "harbor.toml"
    config.write_text(envfile_config(issuer.url), encoding="utf-8")
    result = run_cli("-c", str(config), "token", "-e", "sandbox", "-s", "tower_access")
    assert result.code == 0, result.output
    assert issuer.token_requests == 1
