"""The shared local servers start, answer, stop, and explain themselves when they cannot."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from harbor_testkit.servers import (
    MotoServer,
    OpenBaoDevServer,
    ServerStartError,
    free_port,
)


def _get(url: str, token: str | None = None) -> bytes:
    headers = {"X-Vault-Token": token} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
        body: bytes = response.read()
        return body


def _refused(url: str) -> bool:
    try:
        _get(url)
    except OSError:
        return True
    return False


def test_openbao_dev_server_answers_with_its_root_token_then_stops(tmp_path: Path) -> None:
    with OpenBaoDevServer(root_token="root-servers-test", workdir=tmp_path) as bao:
        assert bao.url == f"http://127.0.0.1:{bao.port}"
        lookup = json.loads(_get(f"{bao.url}/v1/auth/token/lookup-self", bao.root_token))
        assert lookup["data"]["id"] == "root-servers-test"
        assert bao.unseal_key()
        assert "Root Token: root-servers-test" in bao.log_text()
        assert (tmp_path / "home").is_dir()
        url = bao.url
    assert _refused(f"{url}/v1/sys/health")


def test_moto_server_answers_resets_and_stops() -> None:
    with MotoServer() as moto:
        assert json.loads(_get(f"{moto.url}/moto-api/data.json")) is not None
        moto.reset()
        url, workdir = moto.url, moto.log_path.parent
        assert workdir.is_dir()
    assert _refused(f"{url}/moto-api/data.json")
    assert not workdir.exists()  # its temporary directory went with it


@pytest.mark.parametrize("server", [OpenBaoDevServer, MotoServer])
def test_a_missing_binary_is_a_clear_error(server: type[MotoServer], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-binary"
    with pytest.raises(ServerStartError, match=r"not found at .*no-such-binary: pip install"):
        server(executable=missing).start()


def test_a_server_that_exits_reports_its_log(tmp_path: Path) -> None:
    with pytest.raises(ServerStartError, match=r"(?s)bao exited with \d+.*log tail:\n.*flag"):
        OpenBaoDevServer(workdir=tmp_path, extra_args=["-no-such-flag"]).start()


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    assert _refused(f"http://127.0.0.1:{port}/")


def test_starting_a_running_server_again_leaves_no_second_process(tmp_path: Path) -> None:
    """``start()`` then ``with server:`` (as a bench did) must not orphan a server."""
    server = MotoServer(workdir=tmp_path).start()
    url = server.url
    with server as same:
        assert same.url == url  # the same process, the same port
    assert _refused(url)  # and it is stopped: nothing left behind
