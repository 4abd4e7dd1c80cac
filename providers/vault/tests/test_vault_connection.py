"""Transport: TLS verification, namespaces, redirects, unreachable and silent servers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
import urllib3.exceptions
from vault_support import BaoServer, MakeProvider, make_record, start_bao, unique

from harbor_secrets import StoreError, WriteOutcome
from harbor_testkit.servers import free_port


@pytest.fixture(scope="module")
def tls_bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    server = start_bao(tmp_path_factory.mktemp("bao-tls"), tls=True)
    yield server
    server.stop()


def test_tls_with_the_ca_from_vault_cacert(tls_bao: BaoServer, make_vault: MakeProvider) -> None:
    assert tls_bao.address.startswith("https://")
    environ = {"VAULT_TOKEN": tls_bao.root_token, "VAULT_CACERT": str(tls_bao.ca_cert)}
    provider = make_vault(address=tls_bao.address, environ=environ)
    path = f"harbor/{unique()}/a"
    assert provider.write(path, make_record()) is WriteOutcome.WRITTEN
    assert make_vault(
        address=tls_bao.address,
        environ={"VAULT_TOKEN": tls_bao.root_token},
        ca_cert=tls_bao.ca_cert,
    ).read(path)


def test_tls_with_an_unknown_ca_is_refused(tls_bao: BaoServer, make_vault: MakeProvider) -> None:
    provider = make_vault(address=tls_bao.address, environ={"VAULT_TOKEN": tls_bao.root_token})
    with pytest.raises(StoreError) as caught:
        provider.write(f"harbor/{unique()}/a", make_record())
    assert caught.value.reason == "tls"
    assert "ca_cert" in str(caught.value)


def test_tls_skip_verify_when_explicitly_allowed(
    tls_bao: BaoServer, make_vault: MakeProvider
) -> None:
    provider = make_vault(
        address=tls_bao.address,
        environ={"VAULT_TOKEN": tls_bao.root_token, "VAULT_SKIP_VERIFY": "true"},
        tls_skip_verify=True,
    )
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        assert provider.write(f"harbor/{unique()}/a", make_record()) is WriteOutcome.WRITTEN


def test_missing_ca_file_is_named(make_vault: MakeProvider, tmp_path: Path) -> None:
    provider = make_vault(ca_cert=str(tmp_path / "nope.pem"))
    with pytest.raises(StoreError) as caught:
        provider.read("harbor/x/y")
    assert caught.value.reason == "tls"
    assert "nope.pem" in str(caught.value)


def test_namespace_from_vault_namespace(bao: BaoServer, make_vault: MakeProvider) -> None:
    """OpenBao namespaces: the secret lands in the namespace's mount, not the root one."""
    namespace = unique("ns")
    bao.client().adapter.post(f"/v1/sys/namespaces/{namespace}")
    scoped = hvac.Client(url=bao.address, token=bao.root_token, namespace=namespace)
    try:
        scoped.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
        provider = make_vault(environ={"VAULT_TOKEN": bao.root_token, "VAULT_NAMESPACE": namespace})
        path = f"harbor/{unique()}/a"
        record = make_record()
        assert provider.write(path, record) is WriteOutcome.WRITTEN
        body = scoped.secrets.kv.v2.read_secret_version(
            path=path, mount_point="secret", raise_on_deleted_version=True
        )
        assert body["data"]["data"] == record.to_dict()
        with pytest.raises(hvac.exceptions.InvalidPath):
            bao.client().secrets.kv.v2.read_secret_version(
                path=path, mount_point="secret", raise_on_deleted_version=True
            )
    finally:
        scoped.adapter.close()


def test_unreachable_server(make_vault: MakeProvider) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreError) as caught:
        make_vault(address=address).write("harbor/x/y", make_record())
    assert caught.value.reason == "unreachable"
    assert address in str(caught.value)
    assert "connection refused" in str(caught.value)


def test_silent_server_times_out(make_vault: MakeProvider) -> None:
    """Accepts connections (the kernel does) but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        address = f"http://127.0.0.1:{listener.getsockname()[1]}"
        provider = make_vault(address=address, timeout="0.3s")
        with pytest.raises(StoreError) as caught:
            provider.read("harbor/x/y")
    assert caught.value.reason == "unreachable"
    assert "did not answer in time" in str(caught.value)


class Redirector:
    """Answers every request with a 307 to a second server that records what reaches it."""

    def __init__(self) -> None:
        self.reached: list[dict[str, str]] = []
        target = self

        class Target(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                target.reached.append(dict(self.headers))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.target = ThreadingHTTPServer(("127.0.0.1", 0), Target)
        location = f"http://127.0.0.1:{self.target.server_address[1]}"

        class Redirect(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(307)
                self.send_header("Location", location + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.redirect = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
        self.address = f"http://127.0.0.1:{self.redirect.server_address[1]}"
        self.target_address = location
        for server in (self.target, self.redirect):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for server in (self.target, self.redirect):
            server.shutdown()
            server.server_close()


def test_redirects_are_not_followed(make_vault: MakeProvider) -> None:
    redirector = Redirector()
    try:
        provider = make_vault(
            address=redirector.address, environ={"VAULT_TOKEN": "s.canary-redirect"}
        )
        with pytest.raises(StoreError) as caught:
            provider.read("harbor/x/y")
    finally:
        redirector.close()
    assert caught.value.reason == "redirect"
    assert redirector.target_address in str(caught.value)
    assert redirector.reached == []  # the Vault token never went to the redirect target
