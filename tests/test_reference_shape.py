"""A pasted secret is refused without being echoed, even when it looks like ``word:rest``.

A secret such as ``k7q2m9x4v8:Zp3Wn6Rt1Ys5`` passed the reference check (a lower-case
"scheme", a colon, the rest), and the tool then said "no provider resolves k7q2m9x4v8:
references": part of the secret, in a terminal and a CI log. A scheme is now a word of
letters (or words joined by hyphens), and a scheme nobody resolves is never repeated: the
known schemes are listed instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result, minimal_config
from harbor_secrets.errors import ConfigError
from harbor_secrets.references import ReferenceResolver

Run = Callable[..., Result]


def check(tmp_path: Path, run_cli: Run, secret: str) -> Result:
    path = tmp_path / "harbor.toml"
    path.write_text(minimal_config(secret=secret), encoding="utf-8")
    return run_cli("config", "check", "-c", str(path), "-o", "json")


def test_a_pasted_secret_shaped_like_a_reference_is_refused_unseen(
    tmp_path: Path, run_cli: Run
) -> None:
    result = check(tmp_path, run_cli, "k7q2m9x4v8:Zp3Wn6Rt1Ys5")
    assert result.code == 2
    assert "credentials.main.client_secret: must be a secret reference" in result.stderr
    assert "rotate it" in result.stderr
    for part in ("k7q2m9x4v8", "Zp3Wn6Rt1Ys5"):
        assert part not in result.output


@pytest.mark.parametrize("skip", [False, True])
def test_a_scheme_no_provider_resolves_is_not_repeated_and_the_known_ones_are_listed(
    tmp_path: Path, run_cli: Run, skip: bool
) -> None:
    path = tmp_path / "harbor.toml"
    path.write_text(minimal_config(secret="qwertyzx:Zp3Wn6Rt1Ys5"), encoding="utf-8")
    result = run_cli("config", "check", "-c", str(path), *(["--skip-references"] if skip else []))
    assert result.code == 2
    assert "is not a reference any installed provider resolves" in result.stderr
    assert "env:, file:, vault:, aws-sm:, ssm:" in result.stderr
    assert "qwertyzx" not in result.output
    assert "Zp3Wn6Rt1Ys5" not in result.output


def test_a_misspelt_scheme_gets_a_known_one_as_its_guess(tmp_path: Path, run_cli: Run) -> None:
    result = check(tmp_path, run_cli, "vualt:secret/harbor#client_secret")
    assert result.code == 2
    assert "did you mean vault:?" in result.stderr
    assert "vualt" not in result.output


def test_a_sink_options_reference_is_judged_the_same_way(tmp_path: Path) -> None:
    resolver = ReferenceResolver(
        environ={},
        base_dir=tmp_path,
        provider_for_scheme=lambda scheme: None,
        known_schemes=lambda: ["env", "file", "vault"],
    )
    with pytest.raises(ConfigError) as caught:
        resolver.resolve("qwertyzx:Zp3Wn6Rt1Ys5", key="sinks.vault.auth.token")
    assert "qwertyzx" not in str(caught.value)
    assert "none of env:, file:, vault:" in str(caught.value)
