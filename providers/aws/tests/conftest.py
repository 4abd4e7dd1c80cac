"""Fixtures for the AWS provider tests: a real ``moto_server`` over HTTP on loopback.

The server is started once per session on a free port and stopped at the end; if it cannot
start the tests fail (they never skip). Clients use fixed test credentials through an
injected session factory, so nothing here reads or changes the developer's AWS setup.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from harbor_secrets_aws.clients import AwsSettings, ClientCache

from harbor_testkit.servers import MotoServer, ServerStartError

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a running moto_server (the one installed next to this Python)."""
    server = MotoServer(workdir=tmp_path_factory.mktemp("moto"))
    try:
        server.start()
    except ServerStartError as error:
        pytest.fail(str(error))
    try:
        yield server.url
    finally:
        server.stop()


def testing_session(profile: str | None) -> Any:
    """A boto3 session with fixed fake credentials (moto accepts any); profiles are ignored."""
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


@pytest.fixture(scope="session")
def aws_clients() -> ClientCache:
    return ClientCache(session_factory=testing_session)


@pytest.fixture(scope="session")
def aws_settings(moto_url: str) -> AwsSettings:
    return AwsSettings(region=REGION, endpoint_url=moto_url)


@pytest.fixture(scope="session")
def sm_client(aws_clients: ClientCache, aws_settings: AwsSettings) -> Any:
    """A raw Secrets Manager client, to set up and inspect what the provider did."""
    return aws_clients.client("secretsmanager", aws_settings)


@pytest.fixture(scope="session")
def ssm_client(aws_clients: ClientCache, aws_settings: AwsSettings) -> Any:
    return aws_clients.client("ssm", aws_settings)


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Names unique to the test, so tests share the server but never a secret."""
    suffix = uuid.uuid4().hex[:10]
    return lambda stem: f"{stem}{suffix}"


@pytest.fixture
def aws_env(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Process environment for code that builds its own clients (the Lambda handler)."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": moto_url,
    }
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def fresh_client(aws_settings: AwsSettings) -> Callable[[str], Any]:
    """A new client of its own, so a test can inject failures without touching others."""

    def make(service: str) -> Any:
        return ClientCache(session_factory=testing_session).client(service, aws_settings)

    return make


class _Response:
    """The little of an HTTP response botocore looks at when a handler answers for AWS."""

    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}


def _inject_error(
    client: Any,
    operation: str,
    code: str,
    message: str = "",
    *,
    status: int = 400,
    when: Callable[[dict[str, Any]], bool] | None = None,
) -> None:
    """Make ``operation`` on ``client`` fail with the AWS error ``code``.

    Only for failures a real endpoint here cannot produce (throttling, IAM and KMS denials):
    botocore's ``before-call`` event answers instead of the server, and the SDK raises the
    same ``ClientError`` it would for a real response. ``when`` picks calls by their
    parameters (e.g. only the PutParameter of one name).
    """
    service = client.meta.service_model.service_id.hyphenize()
    flag = f"harbor-inject-{uuid.uuid4().hex}"

    def choose(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[flag] = when is None or when(params)

    def answer(context: dict[str, Any], **_: Any) -> tuple[_Response, dict[str, Any]] | None:
        if not context.get(flag):
            return None
        error = {"Code": code, "Message": message}
        return _Response(status), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}

    client.meta.events.register(f"before-parameter-build.{service}.{operation}", choose)
    client.meta.events.register(f"before-call.{service}.{operation}", answer)


def _count_calls(client: Any) -> Counter[str]:
    """A live counter of the API operations ``client`` sends."""
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    client.meta.events.register("before-call", count)
    return calls


@pytest.fixture
def inject_error() -> Callable[..., None]:
    """``inject_error(client, "PutSecretValue", "ThrottlingException", "…")``."""
    return _inject_error


@pytest.fixture
def count_calls() -> Callable[[Any], Counter[str]]:
    """``calls = count_calls(client)``; ``calls["PutParameter"]`` after the fact."""
    return _count_calls
