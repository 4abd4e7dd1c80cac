"""The client works unchanged against an OAuth 2.0 server other than the stand-in.

Authlib's AuthorizationServer (a standards-conforming implementation of RFC 6749) serves the
client_credentials grant from a Flask app on a loopback port, routed at Harbor's token path
so only the environment's ``accounts_url`` changes. Secrets and ids contain characters that
only survive RFC 6749 §2.3.1's form-encoding (for Basic) and the form body encoding (for
post); each client is registered for exactly one authentication method, so using the other
must be refused.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from flask import Flask
from werkzeug.serving import make_server

from harbor_secrets.environments import SCOPES, TOKEN_PATH, Environment
from harbor_secrets.errors import InvalidClientError, InvalidScopeError
from harbor_secrets.secrets import Secret
from harbor_secrets.token_client import AUTH_METHODS, ClientCredentials, TokenClient

SECRET = "s3cr:t/+&=% ü"
CLIENT_IDS = {
    "client_secret_post": "post client:ü",
    "client_secret_basic": "basic client:ü",
}


@dataclass(frozen=True)
class RegisteredClient(ClientMixin):  # type: ignore[misc]
    """The ClientMixin methods the token endpoint uses, per Authlib 1.x."""

    client_id: str
    client_secret: str
    token_endpoint_auth_method: str
    scope: str = " ".join(SCOPES)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = self.scope.split()
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(self.client_secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint != "token" or method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class CredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]
    # Authlib's default accepts only client_secret_basic; accept both, per client.
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(AUTH_METHODS)


@dataclass
class Server:
    url: str
    issued: list[dict[str, Any]]


@pytest.fixture(scope="module")
def authlib_server() -> Iterator[Server]:
    clients = {
        client_id: RegisteredClient(client_id, SECRET, method)
        for method, client_id in CLIENT_IDS.items()
    }
    issued: list[dict[str, Any]] = []

    app = Flask("conformance")
    app.config.update(
        OAUTH2_TOKEN_EXPIRES_IN={"client_credentials": 300},
        OAUTH2_SCOPES_SUPPORTED=list(SCOPES),
    )

    def save_token(token: dict[str, Any], request: Any) -> None:
        issued.append(dict(token))

    authorization = AuthorizationServer(app, query_client=clients.get, save_token=save_token)
    authorization.register_grant(CredentialsGrant)

    @app.post(TOKEN_PATH)
    def token() -> Any:
        return authorization.create_token_response()

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{server.server_port}", issued)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def client_for(server: Server, client_id: str, method: str) -> TokenClient:
    environment = Environment("sandbox", accounts_url=server.url, api_url=server.url)
    return TokenClient(environment, ClientCredentials(client_id, Secret(SECRET), method))


@pytest.mark.parametrize("method", AUTH_METHODS)
@pytest.mark.parametrize("scope", SCOPES)
def test_tokens_are_obtained_with_each_auth_method(
    authlib_server: Server, method: str, scope: str
) -> None:
    with client_for(authlib_server, CLIENT_IDS[method], method) as client:
        token = client.fetch(scope)
    assert token.access_token.reveal() in [t["access_token"] for t in authlib_server.issued]
    assert token.token_type == "Bearer"
    assert token.expires_in == 300
    assert token.granted_scope == scope
    assert token.refresh_token is None
    assert token.attempts == 1


@pytest.mark.parametrize(
    ("registered", "used"),
    [("client_secret_post", "client_secret_basic"), ("client_secret_basic", "client_secret_post")],
)
def test_the_wrong_auth_method_is_rejected_as_invalid_client(
    authlib_server: Server, registered: str, used: str
) -> None:
    client = client_for(authlib_server, CLIENT_IDS[registered], used)
    with client, pytest.raises(InvalidClientError) as caught:
        client.fetch(SCOPES[0])
    assert caught.value.error_code == "invalid_client"
    assert caught.value.status == 401
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("method", AUTH_METHODS)
def test_a_wrong_secret_is_rejected_as_invalid_client(authlib_server: Server, method: str) -> None:
    environment = Environment("sandbox", authlib_server.url, authlib_server.url)
    credentials = ClientCredentials(CLIENT_IDS[method], Secret(SECRET + "x"), method)
    with TokenClient(environment, credentials) as client, pytest.raises(InvalidClientError):
        client.fetch(SCOPES[0])


def test_an_unsupported_scope_is_invalid_scope(authlib_server: Server) -> None:
    method = "client_secret_post"
    client = client_for(authlib_server, CLIENT_IDS[method], method)
    with client, pytest.raises(InvalidScopeError):
        client.fetch("admin")
