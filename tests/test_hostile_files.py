"""Files that are not text, or not files, where the configuration or a ``file:`` secret is read.

Each one is a clear configuration error (exit 2, naming the file, the key and the fix)
before any network call, from the real CLI process: never "internal error", a MemoryError
or a hang. The process runs with a 2 GiB address-space limit, so a regression that reads
``/dev/zero`` whole fails fast instead of eating the machine's memory, and with a timeout,
so a regression that blocks on a FIFO fails instead of hanging the suite.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CLIENT_SECRET, envfile_config
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_testkit.environ import clean_environ

CLOSED_PORT_ISSUER = "http://127.0.0.1:9"  # nothing listens: a token request would fail (exit 1)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harbor_secrets", *args],
        capture_output=True,
        text=True,
        env=clean_environ({"HARBOR_CLIENT_SECRET": CLIENT_SECRET}),
        cwd=cwd,
        timeout=30,
        check=False,
        preexec_fn=_limit_memory,  # runs in the child before exec
    )


def _non_utf8(path: Path) -> None:
    path.write_bytes(b"# caf\xe9\n")


def _symlink_loop(path: Path) -> None:
    other = path.with_name(path.name + ".other")
    path.symlink_to(other)
    other.symlink_to(path)


def _dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.mkdir()


def _too_large(size: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(b"#" * (size + 1))

    return make


# (id, how to make the file, what the message must say, the fix it must give)
REGULAR = "point it at a regular file"
CONFIG_FILES = [
    ("non-utf8", _non_utf8, "is not UTF-8 text", "save it as UTF-8"),
    ("symlink-loop", _symlink_loop, "is a symbolic link loop", "point the path"),
    ("dev-zero", _dev_zero, "is a character device, not a regular file", REGULAR),
    ("fifo", _fifo, "is a named pipe (FIFO), not a regular file", REGULAR),
    ("directory", _directory, "is a directory, not a regular file", REGULAR),
    ("too-large", _too_large(1 << 20), "is larger than 1 MiB", "point it at the right file"),
]


@pytest.mark.parametrize(
    ("make", "problem", "fix"),
    [case[1:] for case in CONFIG_FILES],
    ids=[case[0] for case in CONFIG_FILES],
)
def test_an_unusable_configuration_file_is_a_configuration_error(
    tmp_path: Path, make: Callable[[Path], None], problem: str, fix: str
) -> None:
    config = tmp_path / "harbor.toml"
    make(config)
    result = run("-c", str(config), "config", "check", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"{config}: the file {problem}" in result.stderr
    assert f"fix: {fix}" in result.stderr
    assert "bug" not in result.stderr
    assert "Traceback" not in result.stderr


SECRET_FILES = [case for case in CONFIG_FILES if case[0] != "too-large"] + [
    ("too-large", _too_large(64 << 10), "is larger than 64 KiB", "point it at the right file"),
]


@pytest.mark.parametrize(
    ("make", "problem", "fix"),
    [case[1:] for case in SECRET_FILES],
    ids=[case[0] for case in SECRET_FILES],
)
def test_an_unusable_secret_file_is_a_configuration_error_before_any_request(
    tmp_path: Path, make: Callable[[Path], None], problem: str, fix: str
) -> None:
    secret = tmp_path / "client-secret"
    make(secret)
    config = tmp_path / "harbor.toml"
    config.write_text(
        envfile_config(CLOSED_PORT_ISSUER, secret_ref=f"file:{secret}"), encoding="utf-8"
    )
    result = run("-c", str(config), "sync", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"credentials.main.client_secret: refers to {secret}, which {problem}" in (result.stderr)
    assert f"fix: {fix}" in result.stderr
    assert "bug" not in result.stderr
    assert not (tmp_path / "harbor.env").exists()  # nothing fetched, nothing written


def test_a_secret_file_that_is_not_text_shows_nothing_of_its_content(tmp_path: Path) -> None:
    """Not one byte of the secret, nor where the bad byte sits (its length so far)."""
    secret = tmp_path / "client-secret"
    secret.write_bytes(b"s3cr\xe9t-" + b"k" * 40 + b"\xff\xfe")
    config = tmp_path / "harbor.toml"
    config.write_text(
        envfile_config(CLOSED_PORT_ISSUER, secret_ref=f"file:{secret}"), encoding="utf-8"
    )
    result = run("-c", str(config), "sync", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"refers to {secret}, which is not UTF-8 text (fix: save it as UTF-8" in result.stderr
    for piece in ("0xe9", "0xff", "offset", "position", "s3cr", "kkkk"):
        assert piece not in result.stdout + result.stderr


def _sparse(size: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        with path.open("wb") as handle:
            handle.truncate(size)  # no disk used: the read is what must stay bounded

    return make


# (id, how to make the previous metrics file, what the warning says, whether sync succeeds)
METRICS_FILES = [
    ("fifo", _fifo, "cannot read the metrics file {path}: it is a named pipe (FIFO)", False),
    ("too-large", _sparse(17 << 20), "cannot read the metrics file {path}: it is larger", True),
    ("non-utf8", _non_utf8, "the previous metrics file {path} is not UTF-8 text", True),
]


@pytest.mark.parametrize(
    ("make", "warning", "written"),
    [case[1:] for case in METRICS_FILES],
    ids=[case[0] for case in METRICS_FILES],
)
def test_an_unusable_previous_metrics_file_only_restarts_the_counters(
    tmp_path: Path, issuer: StandInIssuer, make: Callable[[Path], None], warning: str, written: bool
) -> None:
    """``sync --metrics-file`` reads the previous file through the bounded reader: a FIFO
    there used to hang every run, and a huge file was read whole."""
    metrics = tmp_path / "harbor.prom"
    make(metrics)
    config = tmp_path / "harbor.toml"
    config.write_text(envfile_config(issuer.url), encoding="utf-8")
    result = run("-c", str(config), "sync", "--metrics-file", str(metrics), cwd=tmp_path)
    assert f"{warning.format(path=metrics)}" in result.stderr, result.stderr
    assert "counters restart" in result.stderr
    assert "bug" not in result.stderr
    assert "Traceback" not in result.stderr
    if written:  # replaced by this run's metrics
        assert result.returncode == 0, result.stderr
        assert "harbor_secrets_writes_total" in metrics.read_text()
    else:  # the tokens are written; the metrics file cannot be, and the run says so
        assert result.returncode == 1, result.stderr
        assert f"the metrics file {metrics} is not a regular file" in result.stderr
    assert (tmp_path / "harbor.env").exists()
