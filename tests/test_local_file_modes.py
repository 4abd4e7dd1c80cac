"""Who may read what this tool reads and writes: a client-secret file readable by every user
is used with a warning; a rewritten file keeps its group, and ``config check`` says when
``file_mode`` will change a file's mode (or when its group cannot be kept).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import harbor_secrets_envfile
import pytest
from harbor_secrets_envfile import EnvFileProvider, TokenFilesProvider

import harbor_secrets
import harbor_testkit
from conftest import CLIENT_SECRET, Result, envfile_config
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_testkit.records import make_record

Run = Callable[..., Result]
GROUP = 4242  # no such group here: root may give a file any group id
NOBODY = 65534
KEY = "HARBOR_SANDBOX_SERVICE_PROVIDER"


@pytest.mark.parametrize(
    ("mode", "warned"), [(0o644, True), (0o604, True), (0o640, False)], ids=["0644", "0604", "0640"]
)
def test_a_client_secret_file_others_can_read_is_used_with_a_warning(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run, mode: int, warned: bool
) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    secret.chmod(mode)
    config = tmp_path / "harbor.toml"
    config.write_text(envfile_config(issuer.url, secret_ref=f"file:{secret}"), encoding="utf-8")
    check = run_cli("-c", str(config), "config", "check")
    synced = run_cli("-c", str(config), "sync")
    assert check.code == 0, check.output
    assert synced.code == 0, synced.output  # used: a warning, not a refusal
    warning = f"credentials.main.client_secret: {secret} is mode {mode:04o}"
    for result in (check, synced):
        assert (warning in result.output) is warned, result.output
    if warned:
        assert "every user on this host can read the secret" in check.stdout
        assert f"chmod o-rwx {secret}" in check.stdout


def test_a_rewritten_env_file_keeps_its_group(tmp_path: Path) -> None:
    path = tmp_path / "harbor.env"
    path.write_text("OTHER='kept'\n")
    os.chown(path, -1, GROUP)
    path.chmod(0o640)
    EnvFileProvider(path, file_mode=0o640).write(KEY, make_record())
    info = path.stat()
    assert info.st_gid == GROUP  # a service reading through this group still can
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert "OTHER='kept'" in path.read_text()


def test_the_token_files_keep_their_group_from_one_generation_to_the_next(
    tmp_path: Path,
) -> None:
    provider = TokenFilesProvider(tmp_path, file_mode=0o640)
    provider.write("sandbox/service_provider", make_record(-60))
    folder = tmp_path / "sandbox" / "service_provider"
    for name in ("..data", "access_token", "record.json"):
        os.chown(folder / name, -1, GROUP)  # follows the links to the generation
    provider.write("sandbox/service_provider", make_record())
    for name in ("..data", "access_token", "record.json"):
        assert (folder / name).stat().st_gid == GROUP, name


def test_config_check_says_file_mode_decides_the_mode(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    env_file = tmp_path / "harbor.env"
    env_file.write_text("")
    env_file.chmod(0o640)
    config = tmp_path / "harbor.toml"
    config.write_text(envfile_config(issuer.url), encoding="utf-8")
    check = run_cli("-c", str(config), "config", "check")
    assert check.code == 0
    assert f"{env_file} is mode 0640, and every write makes it 0600: file_mode decides" in (
        check.stdout
    )


def importable_by_anyone(directory: Path) -> dict[str, str]:
    """An environment in which another user's Python imports the code under test from a
    copy in ``directory``: the checkout itself may be unreadable to that user (a clone made
    with ``mktemp -d`` is 0700), and the editable installs point into it."""
    for package in (harbor_secrets, harbor_secrets_envfile, harbor_testkit):
        assert package.__file__ is not None
        source = Path(package.__file__).parent
        shutil.copytree(
            source, directory / source.name, ignore=shutil.ignore_patterns("__pycache__")
        )
    return {**os.environ, "PYTHONPATH": str(directory), "PYTHONDONTWRITEBYTECODE": "1"}


def test_a_group_the_writer_is_not_in_is_warned_about_and_the_write_still_happens(
    shared_directory: Path,
) -> None:
    path = shared_directory / "harbor.env"
    path.write_text("")
    os.chown(path, NOBODY, GROUP)  # the writer's own file, in a group it is not in
    path.chmod(0o666)
    script = textwrap.dedent(
        f"""
        import logging, sys
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
        from harbor_secrets_envfile import EnvFileProvider
        from harbor_testkit.records import make_record
        provider = EnvFileProvider({str(path)!r})
        print("\\n".join(provider.warnings(None)))
        print(provider.write({KEY!r}, make_record()).value)
        """
    )
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    done = subprocess.run(
        [*as_nobody, sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=importable_by_anyone(shared_directory / "code"),
    )
    assert done.returncode == 0, done.stderr
    assert f"belongs to group {GROUP}, which the user running harbor-secrets is not in" in (
        done.stdout
    )
    assert "written" in done.stdout
    assert "could not keep group 4242 of a rewritten file" in done.stderr
    assert path.stat().st_gid == NOBODY
