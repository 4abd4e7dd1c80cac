"""Real logins against OpenBao: token, AppRole, JWT and Kubernetes; revoke-self on close."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import hvac.exceptions
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from harbor_secrets_vault import VaultProvider
from vault_support import BaoServer, MakeProvider, make_record, unique

from harbor_secrets import StoreError, WriteOutcome
from harbor_testkit.fifo import call_beside_fifo
from harbor_testkit.servers import free_port

K8S_ROLE = "harbor-secrets"
K8S_NAMESPACE = "platform"
K8S_ACCOUNT = "harbor-secrets"


def login_token(provider: VaultProvider) -> str:
    """The token the provider is using right now (test-only peek)."""
    token = provider._connection.client().token
    assert isinstance(token, str)
    assert token
    return token


def token_is_valid(bao: BaoServer, token: str) -> bool:
    try:
        bao.client(token).auth.token.lookup_self()
    except hvac.exceptions.Forbidden:
        return False
    return True


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(key: rsa.RSAPrivateKey | None, claims: dict[str, Any]) -> str:
    """RS256 JWT; ``key=None`` gives a token with a junk signature (Kubernetes tests)."""
    head = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "test"}).encode())
    body = b64url(json.dumps(claims).encode())
    signing_input = f"{head}.{body}".encode()
    if key is None:
        signature = secrets.token_bytes(256)
    else:
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{b64url(signature)}"


def test_given_token_is_used_and_not_revoked(bao: BaoServer, make_vault: MakeProvider) -> None:
    token = bao.token("harbor-secrets-writer")
    provider = make_vault(environ={"VAULT_TOKEN": token})
    path = f"harbor/{unique()}/service_provider"
    assert provider.write(path, make_record()) is WriteOutcome.WRITTEN
    provider.close()
    assert token_is_valid(bao, token)


def test_token_from_the_token_file_and_from_a_reference(
    bao: BaoServer, make_vault: MakeProvider, tmp_path: Path
) -> None:
    token = bao.token("harbor-secrets-writer")
    (tmp_path / ".vault-token").write_text(token + "\n")
    from_file = make_vault(environ={"HOME": str(tmp_path)})
    assert from_file.write(f"harbor/{unique()}/a", make_record()) is WriteOutcome.WRITTEN
    (tmp_path / "token").write_text(token)
    referenced = make_vault(environ={}, auth={"token": f"file:{tmp_path / 'token'}"})
    assert referenced.write(f"harbor/{unique()}/a", make_record()) is WriteOutcome.WRITTEN
    from_file.close()
    referenced.close()
    assert token_is_valid(bao, token)


def test_writer_policy_from_the_readme_is_enough_for_kv1(
    bao: BaoServer, make_vault: MakeProvider
) -> None:
    token = bao.token("harbor-secrets-writer-kv1")
    provider = make_vault(mount="kv1", environ={"VAULT_TOKEN": token})
    path = f"harbor/{unique()}/a"
    assert provider.read(path) is None
    assert provider.write(path, make_record()) is WriteOutcome.WRITTEN


# -- AppRole --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def approle(bao: BaoServer) -> dict[str, str]:
    client = bao.client()
    mount = unique("approle")
    client.sys.enable_auth_method("approle", path=mount)
    client.auth.approle.create_or_update_approle(
        role_name="harbor",
        token_policies=["harbor-secrets-writer"],
        token_ttl="5m",
        mount_point=mount,
    )
    role_id = client.auth.approle.read_role_id(role_name="harbor", mount_point=mount)
    return {"mount": mount, "role_id": role_id["data"]["role_id"]}


def new_secret_id(bao: BaoServer, approle: dict[str, str]) -> str:
    created = bao.client().auth.approle.generate_secret_id(
        role_name="harbor", mount_point=approle["mount"]
    )
    return str(created["data"]["secret_id"])


def test_approle_login_writes_and_revokes_its_token(
    bao: BaoServer, make_vault: MakeProvider, approle: dict[str, str], tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(new_secret_id(bao, approle) + "\n")
    provider = make_vault(
        environ={"VAULT_ROLE_ID": approle["role_id"]},
        auth={
            "method": "approle",
            "role_id": "env:VAULT_ROLE_ID",
            "secret_id": f"file:{secret_file}",
            "mount_point": approle["mount"],
        },
    )
    path = f"harbor/{unique()}/tower_access"
    assert provider.read(path) is None
    assert provider.write(path, make_record()) is WriteOutcome.WRITTEN
    token = login_token(provider)
    info = bao.client(token).auth.token.lookup_self()["data"]
    assert "harbor-secrets-writer" in info["policies"]
    provider.close()
    assert not token_is_valid(bao, token)


def test_approle_token_is_revoked_after_a_failed_run(
    bao: BaoServer, make_vault: MakeProvider, approle: dict[str, str]
) -> None:
    provider = make_vault(
        environ={"SID": new_secret_id(bao, approle), "RID": approle["role_id"]},
        path="elsewhere/{environment}/{scope}",
        auth={
            "method": "approle",
            "role_id": "env:RID",
            "secret_id": "env:SID",
            "mount_point": approle["mount"],
        },
    )
    with pytest.raises(StoreError) as caught:
        provider.write(f"elsewhere/{unique()}/a", make_record())  # outside the policy
    assert caught.value.reason == "permission-denied"
    token = login_token(provider)
    provider.close()
    assert not token_is_valid(bao, token)


def test_approle_with_a_wrong_secret_id_fails_clearly(
    make_vault: MakeProvider, approle: dict[str, str]
) -> None:
    canary = f"canary-secret-id-{secrets.token_hex(8)}"
    provider = make_vault(
        environ={"SID": canary, "RID": approle["role_id"]},
        auth={
            "method": "approle",
            "role_id": "env:RID",
            "secret_id": "env:SID",
            "mount_point": approle["mount"],
        },
    )
    with pytest.raises(StoreError) as caught:
        provider.read(f"harbor/{unique()}/a")
    error = caught.value
    assert error.reason == "auth-failed"
    assert f"auth/{approle['mount']}/login" in str(error)
    assert canary not in str(error)
    assert approle["role_id"] not in str(error)


def test_revoke_failure_is_logged_without_the_token(
    bao: BaoServer,
    make_vault: MakeProvider,
    approle: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = make_vault(
        environ={"SID": new_secret_id(bao, approle), "RID": approle["role_id"]},
        auth={
            "method": "approle",
            "role_id": "env:RID",
            "secret_id": "env:SID",
            "mount_point": approle["mount"],
        },
    )
    provider.read(f"harbor/{unique()}/a")
    token = login_token(provider)
    bao.client().auth.token.revoke(token)  # someone revoked it already: revoke-self fails
    with caplog.at_level(logging.WARNING):
        provider.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "could not revoke" in warnings[0].getMessage()
    assert token not in caplog.text


# -- JWT -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jwt_auth(bao: BaoServer) -> tuple[str, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    client = bao.client()
    mount = unique("jwt")
    client.sys.enable_auth_method("jwt", path=mount)
    client.write_data(f"auth/{mount}/config", data={"jwt_validation_pubkeys": [public_pem]})
    client.write_data(
        f"auth/{mount}/role/harbor",
        data={
            "role_type": "jwt",
            "bound_audiences": ["harbor-secrets"],
            "user_claim": "sub",
            "token_policies": ["harbor-secrets-writer"],
            "token_ttl": "5m",
        },
    )
    return mount, key


def jwt_claims(audience: str = "harbor-secrets") -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "ci-job-42", "aud": audience, "iat": now, "nbf": now, "exp": now + 300}


def test_jwt_login_writes_and_revokes_its_token(
    bao: BaoServer, make_vault: MakeProvider, jwt_auth: tuple[str, rsa.RSAPrivateKey]
) -> None:
    mount, key = jwt_auth
    provider = make_vault(
        environ={"VAULT_ID_TOKEN": sign_jwt(key, jwt_claims())},
        auth={"method": "jwt", "role": "harbor", "jwt": "env:VAULT_ID_TOKEN", "mount_point": mount},
    )
    path = f"harbor/{unique()}/service_provider"
    assert provider.write(path, make_record()) is WriteOutcome.WRITTEN
    token = login_token(provider)
    meta = bao.client(token).auth.token.lookup_self()["data"]["meta"]
    assert meta["role"] == "harbor"
    provider.close()
    assert not token_is_valid(bao, token)


def test_jwt_for_another_audience_is_rejected_without_echoing_it(
    make_vault: MakeProvider, jwt_auth: tuple[str, rsa.RSAPrivateKey]
) -> None:
    mount, key = jwt_auth
    jwt = sign_jwt(key, jwt_claims(audience="someone-else"))
    provider = make_vault(
        environ={"J": jwt},
        auth={"method": "jwt", "role": "harbor", "jwt": "env:J", "mount_point": mount},
    )
    with pytest.raises(StoreError) as caught:
        provider.write(f"harbor/{unique()}/a", make_record())
    assert caught.value.reason == "auth-failed"
    assert jwt not in str(caught.value)
    assert jwt.split(".")[2] not in str(caught.value)


# -- Kubernetes ------------------------------------------------------------------------------


class TokenReviewApi:
    """A stand-in for the Kubernetes TokenReview API that OpenBao calls during a login."""

    def __init__(self) -> None:
        self.reviews: list[dict[str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                review = json.loads(self.rfile.read(length))
                api.reviews.append(review)
                review["status"] = {
                    "authenticated": True,
                    "user": {
                        "username": f"system:serviceaccount:{K8S_NAMESPACE}:{K8S_ACCOUNT}",
                        "uid": "uid-1",
                        "groups": ["system:serviceaccounts"],
                    },
                    "audiences": review.get("spec", {}).get("audiences") or [],
                }
                payload = json.dumps(review).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def service_account_jwt() -> str:
    return sign_jwt(
        None,
        {
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": K8S_NAMESPACE,
            "kubernetes.io/serviceaccount/service-account.name": K8S_ACCOUNT,
            "kubernetes.io/serviceaccount/service-account.uid": "uid-1",
            "sub": f"system:serviceaccount:{K8S_NAMESPACE}:{K8S_ACCOUNT}",
        },
    )


def enable_kubernetes(bao: BaoServer, host: str, ca_pem: str) -> str:
    client = bao.client()
    mount = unique("kubernetes")
    client.sys.enable_auth_method("kubernetes", path=mount)
    client.write_data(
        f"auth/{mount}/config",
        data={"kubernetes_host": host, "kubernetes_ca_cert": ca_pem, "disable_local_ca_jwt": True},
    )
    client.write_data(
        f"auth/{mount}/role/{K8S_ROLE}",
        data={
            "bound_service_account_names": [K8S_ACCOUNT],
            "bound_service_account_namespaces": [K8S_NAMESPACE],
            "token_policies": ["harbor-secrets-writer"],
            "token_ttl": "5m",
        },
    )
    return mount


@pytest.fixture(scope="module")
def ca_pem() -> str:
    """Any CA certificate: OpenBao insists on one; the stand-in API speaks plain http."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes-test-ca")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def token_review_api() -> Iterator[TokenReviewApi]:
    api = TokenReviewApi()
    yield api
    api.close()


def test_kubernetes_login_sends_role_and_service_account_token(
    bao: BaoServer,
    make_vault: MakeProvider,
    token_review_api: TokenReviewApi,
    ca_pem: str,
    tmp_path: Path,
) -> None:
    mount = enable_kubernetes(bao, token_review_api.url, ca_pem)
    jwt = service_account_jwt()
    token_path = tmp_path / "token"
    token_path.write_text(jwt)
    provider = make_vault(
        environ={},
        auth={
            "method": "kubernetes",
            "role": K8S_ROLE,
            "token_path": str(token_path),
            "mount_point": mount,
        },
    )
    path = f"harbor/{unique()}/tower_access"
    assert provider.write(path, make_record()) is WriteOutcome.WRITTEN
    # OpenBao received our role and JWT: it asked the TokenReview API about exactly that JWT.
    assert [review["spec"]["token"] for review in token_review_api.reviews] == [jwt]
    token = login_token(provider)
    meta = bao.client(token).auth.token.lookup_self()["data"]["meta"]
    assert meta["role"] == K8S_ROLE
    assert meta["service_account_name"] == K8S_ACCOUNT
    provider.close()
    assert not token_is_valid(bao, token)


def test_kubernetes_login_failure_is_clear_and_carries_no_jwt(
    bao: BaoServer, make_vault: MakeProvider, ca_pem: str, tmp_path: Path
) -> None:
    """The TokenReview API is unreachable: OpenBao refuses the login it received."""
    mount = enable_kubernetes(bao, f"https://127.0.0.1:{free_port()}", ca_pem)
    jwt = service_account_jwt()
    token_path = tmp_path / "token"
    token_path.write_text(jwt)
    provider = make_vault(
        environ={},
        auth={
            "method": "kubernetes",
            "role": K8S_ROLE,
            "token_path": str(token_path),
            "mount_point": mount,
        },
    )
    path = f"harbor/{unique()}/tower_access"
    with pytest.raises(StoreError) as caught:
        provider.write(path, make_record())
    error = caught.value
    assert error.reason == "auth-failed"
    assert f"auth/{mount}/login" in str(error)
    assert jwt not in str(error)
    assert jwt.split(".")[1] not in str(error)
    with pytest.raises(hvac.exceptions.InvalidPath):
        bao.client().secrets.kv.v2.read_secret_version(
            path=path, mount_point="secret", raise_on_deleted_version=True
        )


def test_kubernetes_without_a_service_account_token(
    make_vault: MakeProvider, tmp_path: Path
) -> None:
    provider = make_vault(
        environ={},
        auth={"method": "kubernetes", "role": K8S_ROLE, "token_path": str(tmp_path / "none")},
    )
    with pytest.raises(StoreError) as caught:
        provider.read("harbor/x/y")
    assert caught.value.reason == "no-credentials"
    assert "service-account token" in str(caught.value)
    assert "token_path" in str(caught.value)


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _not_utf8(path: Path) -> None:
    path.write_bytes(b"\xff\xfe" + b"eyJ" * 20)


@pytest.mark.parametrize(
    ("make", "problem", "fix"),
    [
        (_fifo, "is a named pipe (FIFO), not a regular file", "point it at a regular file"),
        (_not_utf8, "is not UTF-8 text", "save it as UTF-8 text"),
        (lambda path: path.mkdir(), "is a directory, not a regular file", "a regular file"),
    ],
    ids=["fifo", "not-utf8", "directory"],
)
def test_a_service_account_token_that_is_no_text_file_fails_the_run_clearly(
    make_vault: MakeProvider, tmp_path: Path, make: Callable[[Path], None], problem: str, fix: str
) -> None:
    """The token file is read at run time, through the core's bounded reader: a FIFO used
    to hang sync forever, bytes that are not UTF-8 an "unexpected UnicodeDecodeError"."""
    token_path = tmp_path / "token"
    make(token_path)
    provider = make_vault(
        environ={},
        auth={"method": "kubernetes", "role": K8S_ROLE, "token_path": str(token_path)},
    )
    with pytest.raises(StoreError) as caught:
        call_beside_fifo(lambda: provider.read("harbor/x/y"), token_path)
    error = caught.value
    assert error.reason == "no-credentials"  # a run-time failure: exit 1, other sinks go on
    assert error.message == (
        f"cannot read the Kubernetes service-account token {token_path}: the file {problem}"
    )
    assert fix in (error.hint or "")
    assert "0xff" not in str(error)


def test_only_the_context_environment_counts(
    bao: BaoServer, make_vault: MakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hvac would fall back to the process's VAULT_TOKEN; the provider never lets it."""
    monkeypatch.setenv("VAULT_TOKEN", bao.root_token)
    (tmp_path / ".vault-token").write_text(bao.token("harbor-read-only"))
    provider = make_vault(environ={"HOME": str(tmp_path)})
    with pytest.raises(StoreError) as caught:
        provider.write(f"harbor/{unique()}/a", make_record())
    assert caught.value.reason == "permission-denied"
