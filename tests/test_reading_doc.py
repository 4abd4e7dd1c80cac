"""docs/READING.md's snippets run here, against the real test servers, as a reader would.

One sync writes a token into every store (env file, token files, OpenBao KV v2, moto's SSM
and Secrets Manager); each snippet then reads it back and calls the stand-in issuer's
test-token endpoint with it, which answers 200 only for a live token it issued. A snippet
that drifted from what the stores hold fails here.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import CLIENT_ID, CLIENT_SECRET
from harbor_secrets.record import format_time
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_testkit.environ import clean_environ
from harbor_testkit.servers import MotoServer, OpenBaoDevServer, ServerStartError

READING = Path(__file__).resolve().parents[1] / "docs" / "READING.md"
BIN = Path(sys.executable).parent
_SNIPPET = re.compile(
    r"<!-- snippet: (?P<name>[\w-]+) -->\n```(?P<lang>\w+)\n(?P<code>.*?)```", re.S
)


def snippets() -> dict[str, tuple[str, str]]:
    found = {m["name"]: (m["lang"], m["code"]) for m in _SNIPPET.finditer(READING.read_text())}
    assert found, "READING.md has no snippets"
    return found


@dataclass(frozen=True)
class Stores:
    directory: Path
    config: Path
    environ: dict[str, str]
    issuer: StandInIssuer


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    directory = tmp_path_factory.mktemp("reading")
    root_token = f"canary-vault-{secrets.token_hex(8)}"
    home = directory / "home"
    home.mkdir()
    try:
        bao = OpenBaoDevServer(root_token, workdir=directory / "bao").start()
    except ServerStartError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        try:
            moto = MotoServer(workdir=directory / "moto").start()
        except ServerStartError as error:
            pytest.fail(str(error), pytrace=False)
        try:
            with StandInIssuer(clients={CLIENT_ID: CLIENT_SECRET}) as issuer:
                yield _synced(directory, home, bao, moto, issuer)
        finally:
            moto.stop()
    finally:
        bao.stop()


def _synced(
    directory: Path, home: Path, bao: OpenBaoDevServer, moto: MotoServer, issuer: StandInIssuer
) -> Stores:
    (directory / "tokens").mkdir()
    config = directory / "harbor.toml"
    config.write_text(
        f"""
[environments.sandbox]
accounts_url = "{issuer.url}"
api_url = "{issuer.url}"

[credentials.main]
client_id = "{CLIENT_ID}"
client_secret = "env:HARBOR_CLIENT_SECRET"

[sinks.local]
provider = "envfile"
path = "harbor.env"

[sinks.files]
provider = "files"
directory = "tokens"

[sinks.vault]
provider = "vault"
address = "{bao.url}"
mount = "secret"

[sinks.params]
provider = "aws-ssm"
endpoint_url = "{moto.url}"

[sinks.secrets]
provider = "aws-secretsmanager"
endpoint_url = "{moto.url}"

[[targets]]
environments = ["sandbox"]
scopes = ["service_provider"]
""",
        encoding="utf-8",
    )
    environ = clean_environ(
        {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HARBOR_SECRETS_CONFIG": str(config),
            "HARBOR_API_URL": issuer.url,
            "HARBOR_ENV_FILE": str(directory / "harbor.env"),
            "HARBOR_TOKEN_DIR": str(directory / "tokens"),
            "VAULT_ADDR": bao.url,
            "VAULT_TOKEN": bao.root_token,
            "AWS_ENDPOINT_URL": moto.url,
        },
        home=home,
        aws=True,
    )
    sync = subprocess.run(
        [sys.executable, "-m", "harbor_secrets", "sync"],
        env={**environ, "HARBOR_CLIENT_SECRET": CLIENT_SECRET},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert sync.returncode == 0, sync.stdout + sync.stderr
    return Stores(directory, config, environ, issuer)


def run_snippet(stores: Stores, name: str, **extra: str) -> subprocess.CompletedProcess[str]:
    language, code = snippets()[name]
    command = ["bash", "-c", code] if language == "sh" else [sys.executable, "-c", code]
    return subprocess.run(
        command,
        env={**stores.environ, **extra},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_snippet_is_run_here() -> None:
    tested = {
        "shell-get",
        "shell-exec",
        "python-envfile",
        "python-files",
        "python-vault",
        "python-aws",
        "python-kubernetes-volume",
    }
    assert set(snippets()) == tested


@pytest.mark.parametrize(
    ("name", "answers"),
    [
        ("shell-get", 1),
        ("shell-exec", 1),
        ("python-envfile", 1),
        ("python-files", 1),
        ("python-vault", 1),
        ("python-aws", 2),
    ],
)
def test_the_snippet_reads_a_live_token(stores: Stores, name: str, answers: int) -> None:
    before = stores.issuer.test_token_requests
    result = run_snippet(stores, name)
    assert result.returncode == 0, result.stdout + result.stderr
    if name.startswith("shell"):
        assert json.loads(result.stdout)  # the test-token endpoint's JSON answer
    else:
        assert result.stdout.split() == ["200"] * answers
    assert stores.issuer.test_token_requests == before + answers
    assert CLIENT_SECRET not in result.stdout + result.stderr


def test_the_shell_readers_work_where_the_client_secret_cannot_be_resolved(
    stores: Stores,
) -> None:
    """A reader host's copy of the config points at a secret it does not have."""
    reader = stores.directory / "reader.toml"
    text = stores.config.read_text().replace("env:HARBOR_CLIENT_SECRET", "file:/nonexistent")
    reader.write_text(text, encoding="utf-8")
    for name in ("shell-get", "shell-exec"):
        result = run_snippet(stores, name, HARBOR_SECRETS_CONFIG=str(reader))
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_env_file_reader_caches_until_the_margin_then_rereads(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = stores.directory / "copy.env"
    env_file.write_text((stores.directory / "harbor.env").read_text())
    for name, value in {**stores.environ, "HARBOR_ENV_FILE": str(env_file)}.items():
        monkeypatch.setenv(name, value)
    namespace: dict[str, Any] = {}
    exec(snippets()["python-envfile"][1], namespace)  # noqa: S102 - our own document
    reader = namespace["EnvFileToken"](str(env_file))
    first = reader.get()
    later = format_time(datetime.now(UTC) + timedelta(seconds=240))
    env_file.write_text(
        "HARBOR_SANDBOX_SERVICE_PROVIDER_ACCESS_TOKEN='second'\n"
        f"HARBOR_SANDBOX_SERVICE_PROVIDER_EXPIRES_AT='{later}'\n"
    )
    assert reader.get() == first  # cached: its token has far more than the margin left
    reader.expires = time.time() + 30  # within the 60 s margin of its expiry
    assert reader.get() == "second"


def test_the_kubernetes_volume_reader_follows_the_kubelets_swap(stores: Stores) -> None:
    """The kubelet's layout: files are links into ..data, which it swaps atomically."""
    mount = stores.directory / "volume"
    mount.mkdir()
    token = stores.directory / "tokens" / "sandbox" / "service_provider" / "access_token"
    _project(mount, "..2026_01", {"access_token": "not-a-live-token"})
    (mount / "access_token").symlink_to("..data/access_token")
    refused = run_snippet(stores, "python-kubernetes-volume", HARBOR_TOKEN_DIR=str(mount))
    assert refused.stdout.split() == ["401"]
    _project(mount, "..2026_02", {"access_token": token.read_text()})
    accepted = run_snippet(stores, "python-kubernetes-volume", HARBOR_TOKEN_DIR=str(mount))
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.split() == ["200"]


def _project(mount: Path, version: str, files: dict[str, str]) -> None:
    """Write a new timestamped directory and swap ``..data`` to it, as the kubelet does."""
    folder = mount / version
    folder.mkdir()
    for name, value in files.items():
        (folder / name).write_text(value)
    temporary = mount / "..data_tmp"
    temporary.symlink_to(version)
    os.replace(temporary, mount / "..data")
