"""docs/READING.md's snippets run here, against the real test servers, as a reader would.

One sync writes a token into every store (env file, token files, OpenBao KV v2, moto's SSM
and Secrets Manager; tests/doc_servers.py); each snippet then reads it back and calls the
stand-in issuer's test-token endpoint with it, which answers 200 only for a live token it
issued. A snippet that drifted from what the stores hold fails here. READING.md's other
blocks, like every document's, are checked by tests/test_docs.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from doc_blocks import all_blocks, snippet
from doc_servers import Stores, run_block

from conftest import CLIENT_SECRET
from harbor_secrets.record import format_time

READING = "docs/READING.md"


def snippets() -> dict[str, tuple[str, str]]:
    """READING.md's named blocks: name -> (language, code)."""
    found = {
        block.snippet: (block.lang, block.code)
        for block in all_blocks()
        if block.path == READING and block.snippet
    }
    assert found, "READING.md has no snippets"
    return found


def run_snippet(stores: Stores, name: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return run_block(stores, snippet(name), extra=extra)


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
    # pod-spec-fragment is shared with the Kubernetes provider's README: tests/test_docs.py
    assert set(snippets()) - {"pod-spec-fragment"} == tested


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
