"""What the provider writes, real readers read back exactly: dash/bash (`set -a; . file`)
and python-dotenv. Runs the shells for real."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dotenv import dotenv_values
from harbor_secrets_envfile import EnvFileProvider
from hypothesis import given, settings
from hypothesis import strategies as st

from harbor_secrets import StoreError, format_time
from harbor_secrets.testing.contract import AWKWARD_TOKENS, make_record_factory

NASTY = (
    *AWKWARD_TOKENS,
    "'",
    '"',
    "\\",
    "$",
    "`",
    "#",
    "=",
    " ",
    "'leading quote",
    "trailing quote'",
    "$(touch pwned)",
    "`touch pwned`",
    "; touch pwned",
    "a\\nb",
    "\\'",
    '\\"',
    "!!",
    "~root",
    "*",
    "--",
    "-n",
    "é" * 40,
    "x" * 4096,
)


def _shells() -> list[str]:
    """sh plus dash and bash when installed, each real binary once."""
    found: dict[str, str] = {}
    for shell in ("sh", "dash", "bash"):
        where = shutil.which(shell)
        if where:
            found.setdefault(str(Path(where).resolve()), shell)
    return list(found.values())


SHELLS = _shells()
PRINT_ALL = (
    'set -a; . "$1"; shift; for name do eval "value=\\${$name}"; printf "%s\\0" "$value"; done'
)
BASE = datetime(2030, 1, 1, tzinfo=UTC)


def test_a_posix_shell_is_available() -> None:
    assert "sh" in SHELLS, "these tests need a POSIX sh on PATH"


def _write_all(path: Path, tokens: list[str]) -> dict[str, str]:
    """Write each token under its own key; return variable name → expected value."""
    provider = EnvFileProvider(path)
    factory = make_record_factory("sandbox", BASE)
    expected: dict[str, str] = {}
    for index, token in enumerate(tokens):
        key = f"HARBOR_T{index}"
        provider.write(key, factory(token=token))
        expected[f"{key}_ACCESS_TOKEN"] = token
        expected[f"{key}_EXPIRES_AT"] = format_time(BASE + timedelta(seconds=300))
    return expected


def _shell_values(shell: str, path: Path, names: list[str]) -> list[str]:
    result = subprocess.run(
        [shell, "-c", PRINT_ALL, shell, str(path), *names],
        capture_output=True,
        check=True,
        cwd=path.parent,
        timeout=30,
    )
    assert result.stderr == b""
    return result.stdout.decode("utf-8").split("\0")[:-1]


def _assert_readers_agree(path: Path, expected: dict[str, str]) -> None:
    names = list(expected)
    for shell in SHELLS:
        assert _shell_values(shell, path, names) == list(expected.values()), shell
    assert dict(dotenv_values(path)) == expected
    assert not (path.parent / "pwned").exists()


@pytest.mark.parametrize("shell", SHELLS)
def test_shell_and_dotenv_read_back_nasty_values(tmp_path: Path, shell: str) -> None:
    path = tmp_path / "harbor.env"
    expected = _write_all(path, list(NASTY))
    assert _shell_values(shell, path, list(expected)) == list(expected.values())
    assert dict(dotenv_values(path)) == expected
    assert not (tmp_path / "pwned").exists()


_ALPHABET = "'\"$`\\{}#= \t!*?;|&<>()~%^.-_/+aZ9é東🔑"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(_ALPHABET), min_size=1, max_size=16), max_size=8))
def test_every_value_written_reads_back_exactly_or_is_refused(tokens: list[str]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "harbor.env"
        provider = EnvFileProvider(path)
        factory = make_record_factory("sandbox", BASE)
        expected: dict[str, str] = {}
        for index, token in enumerate(tokens):
            key = f"HARBOR_H{index}"
            try:
                provider.write(key, factory(token=token))
            except StoreError as exc:
                reason = exc.reason
            else:
                reason = "written"
            assert reason in ("written", "unrepresentable")
            if reason != "written":
                continue
            expected[f"{key}_ACCESS_TOKEN"] = token
            expected[f"{key}_EXPIRES_AT"] = format_time(BASE + timedelta(seconds=300))
        if expected:
            _assert_readers_agree(path, expected)
