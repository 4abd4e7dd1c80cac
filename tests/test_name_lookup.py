"""A name from a known set is looked up one way, in the configuration and on the command line.

``suggest.pick`` is the lookup: a known name passes, an unknown one is a usage error (exit 2)
at the key or option that gave it, with the closest known name as a guess. The configuration's
``[[targets]]`` and every command's ``-e``, ``-s``, ``--credentials`` and ``--sink`` ask it,
so they cannot drift apart again. And a misspelt key is named before the error it causes
(``tower_id`` for ``tower_ids`` is why a target "names no environment"), in every table,
because ``Options`` reports it before any error of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result, envfile_config, minimal_config
from harbor_secrets.config import load_config
from harbor_secrets.errors import ConfigError
from harbor_secrets.options import Options
from harbor_secrets.suggest import pick

Run = Callable[..., Result]


def config_error(text: str, tmp_path: Path) -> ConfigError:
    path = tmp_path / "harbor.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    return caught.value


def test_pick_passes_a_known_name_and_guesses_an_unknown_one() -> None:
    assert pick("sandbox", ["production", "sandbox"], key="-e", what="the environments") == (
        "sandbox"
    )
    with pytest.raises(ConfigError) as caught:
        pick("sandbx", ["production", "sandbox"], key="--environment", what="the environments")
    assert caught.value.exit_code == 2
    assert str(caught.value) == (
        "--environment: 'sandbx' is not one of the environments; did you mean sandbox? "
        "(fix: use one of: production, sandbox)"
    )
    with pytest.raises(ConfigError) as far:
        pick("qa", ["production", "sandbox"], key="-e", what="the environments")
    assert "did you mean" not in str(far.value)


@pytest.mark.parametrize(
    ("args", "option", "guess"),
    [
        (("get", "-e", "sandbx"), "--environment", "sandbox"),
        (("get", "-e", "sandbox", "--credentials", "mian"), "--credentials", "main"),
        (("get", "-e", "sandbox", "--sink", "locl"), "--sink", "local"),
        (("get", "-e", "sandbox", "-s", "service_provder"), "--scope", "service_provider"),
        (("verify", "-e", "sandbox", "--sink", "locl"), "--sink", "local"),
        (("token", "-e", "sandbx"), "--environment", "sandbox"),
        (("exec", "-e", "sandbx", "--", "true"), "--environment", "sandbox"),
    ],
)
def test_every_command_option_that_names_something_guesses_alike(
    tmp_path: Path, run_cli: Run, args: tuple[str, ...], option: str, guess: str
) -> None:
    """Offline: each is refused before any store or issuer is asked (nothing listens)."""
    config = tmp_path / "harbor.toml"
    config.write_text(envfile_config("http://127.0.0.1:9"), encoding="utf-8")
    result = run_cli("-c", str(config), *args)
    assert result.code == 2, result.output
    assert f"did you mean {guess}?" in result.stderr
    assert option in result.stderr


@pytest.mark.parametrize(
    ("target", "key", "guess"),
    [
        ('environment = ["sandbox"]', "targets[0].environment", "environments"),
        ('tower_id = ["0100000000000a3f"]', "targets[0].tower_id", "tower_ids"),
        ('enviroments = ["sandbox"]', "targets[0].enviroments", "environments"),
        ('environments = ["sandbox"]\ncredential = "mian"', "targets[0].credential", "credentials"),
    ],
)
def test_a_misspelt_key_is_named_before_the_error_it_causes(
    tmp_path: Path, target: str, key: str, guess: str
) -> None:
    """Without the typo the target would have had what it now lacks: say so, not "names no
    environment" (or "unknown credentials") about a key the user did write."""
    error = config_error(minimal_config(target=target), tmp_path)
    assert error.key == key, str(error)
    assert f"did you mean {guess}?" in str(error)


def test_the_configuration_guesses_as_the_commands_do(tmp_path: Path) -> None:
    error = config_error(minimal_config(target='environments = ["sandbx"]'), tmp_path)
    assert error.key == "targets[0].environments"
    assert "'sandbx' is not one of the environments; did you mean sandbox?" in str(error)
    sinks = config_error(
        minimal_config(target='environments = ["sandbox"]\nsinks = ["locl"]'), tmp_path
    )
    assert sinks.key == "targets[0].sinks"
    assert "did you mean local?" in str(sinks)


def test_every_table_names_its_misspelt_key_first() -> None:
    """The mechanism is Options', not the targets': a value error elsewhere in a table waits
    until the misspelt key (which may be its cause) is fixed."""
    table = Options(
        {"connect_timout": "5s", "read_timeout": "0s"}, prefix="http", source="harbor.toml"
    )
    table.duration("connect_timeout", 5)
    table.duration("read_timeout", 10)
    error = table.error("read_timeout", "must be more than 0", 'set read_timeout = "10s"')
    assert error.key == "http.connect_timout"
    assert "did you mean connect_timeout?" in str(error)
    # a key no option asked for resembles stays for finish(): it may be an option not read yet
    unrelated = Options({"scopes": ["x"], "read_timeout": "0s"}, prefix="t", source=None)
    unrelated.duration("read_timeout", 10)
    assert unrelated.error("read_timeout", "bad", "fix").key == "t.read_timeout"


def test_a_value_error_in_http_waits_for_the_misspelt_key(tmp_path: Path) -> None:
    text = '[http]\nconnect_timout = "5s"\nread_timeout = "0s"\n' + minimal_config(
        target='environments = ["sandbox"]'
    )
    error = config_error(text, tmp_path)
    assert error.key == "http.connect_timout"
