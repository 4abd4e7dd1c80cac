"""The stand-in issuer answers like Keycloak's realm ``harbor`` and Harbor's test-token API."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import requests

from harbor_secrets.stand_in_issuer import OMIT, Fault, StandInIssuer

CLIENT_ID = "svc-client"
SECRET = "s3cr:t/+&=% ü"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def issuer() -> Iterator[StandInIssuer]:
    with StandInIssuer({CLIENT_ID: SECRET}) as running:
        yield running


def post_token(issuer: StandInIssuer, **fields: str) -> requests.Response:
    form = {"grant_type": "client_credentials", "scope": "service_provider"}
    form.update({"client_id": CLIENT_ID, "client_secret": SECRET})
    form.update(fields)
    return requests.post(issuer.token_url, data=form, timeout=5)


def basic(client_id: str, secret: str, encode: Any = quote) -> dict[str, str]:
    raw = f"{encode(client_id, safe='')}:{encode(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def test_success_has_exactly_harbors_shape_with_keycloaks_extra_fields(
    issuer: StandInIssuer,
) -> None:
    response = post_token(issuer)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {
        "access_token",
        "expires_in",
        "refresh_expires_in",
        "refresh_token",
        "token_type",
        "not-before-policy",
        "scope",
    }
    assert body["expires_in"] == 300
    assert body["refresh_expires_in"] == 0
    assert body["refresh_token"] is None
    assert body["token_type"] == "Bearer"
    assert body["not-before-policy"] == 0
    assert body["scope"] == "service_provider profile email"
    _header, claims, _signature = body["access_token"].split(".")
    assert json.loads(base64.urlsafe_b64decode(claims + "==="))["azp"] == CLIENT_ID
    assert body["access_token"] in issuer.issued
    assert issuer.token_requests == 1


def test_token_lifetime_and_scopes_are_configurable() -> None:
    with StandInIssuer({CLIENT_ID: SECRET}, token_lifetime=42, scopes=["custom"]) as issuer:
        assert post_token(issuer, scope="custom").json()["expires_in"] == 42
        assert post_token(issuer, scope="service_provider").status_code == 400


@pytest.mark.parametrize("encode", [quote, quote_plus], ids=["percent-20", "plus"])
def test_client_secret_basic_is_decoded_per_rfc6749_2_3_1(
    issuer: StandInIssuer, encode: Any
) -> None:
    issuer.add_client("id:with colon ü", SECRET)
    form = {"grant_type": "client_credentials", "scope": "tower_access"}
    response = requests.post(
        issuer.token_url, data=form, headers=basic("id:with colon ü", SECRET, encode), timeout=5
    )
    assert response.status_code == 200, response.text
    recorded = issuer.requests[-1]
    assert recorded.auth_method == "client_secret_basic"
    assert recorded.client_id == "id:with colon ü"


def test_basic_credentials_not_form_encoded_are_rejected(issuer: StandInIssuer) -> None:
    issuer.add_client("id:colon", "pw")
    form = {"grant_type": "client_credentials", "scope": "tower_access"}
    raw = base64.b64encode(b"id:colon:pw").decode()
    response = requests.post(
        issuer.token_url, data=form, headers={"Authorization": f"Basic {raw}"}, timeout=5
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"


def test_bad_secret_is_keycloaks_401_invalid_client(issuer: StandInIssuer) -> None:
    response = post_token(issuer, client_secret="wrong")
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Invalid client or Invalid client credentials",
    }


@pytest.mark.parametrize("status", [400, 401])
def test_unknown_client_status_follows_the_keycloak_version_option(status: int) -> None:
    with StandInIssuer({CLIENT_ID: SECRET}, unknown_client_status=status) as issuer:
        response = post_token(issuer, client_id="nobody")
    assert response.status_code == status
    assert response.json()["error"] == "invalid_client"


def test_unknown_scope_is_400_invalid_scope(issuer: StandInIssuer) -> None:
    response = post_token(issuer, scope="service_provider admin")
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_scope",
        "error_description": "Invalid scopes: service_provider admin",
    }


def test_other_realm_is_404_realm_does_not_exist(issuer: StandInIssuer) -> None:
    url = issuer.url + "/realms/harbour/protocol/openid-connect/token"
    response = requests.post(url, data={"grant_type": "client_credentials"}, timeout=5)
    assert response.status_code == 404
    assert response.json() == {"error": "Realm does not exist"}
    assert issuer.token_requests == 1


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token", "refresh_token": "x"}, "unsupported_grant_type"),
        ({"grant_type": ""}, "invalid_request"),
    ],
)
def test_grant_type_errors(issuer: StandInIssuer, fields: dict[str, str], error: str) -> None:
    response = post_token(issuer, **fields)
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_wrong_content_type_is_400(issuer: StandInIssuer) -> None:
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}
    response = requests.post(issuer.token_url, json=form, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_two_authentication_methods_at_once_are_refused(issuer: StandInIssuer) -> None:
    form = {"grant_type": "client_credentials", "client_secret": SECRET}
    response = requests.post(
        issuer.token_url, data=form, headers=basic(CLIENT_ID, SECRET), timeout=5
    )
    assert response.status_code == 400
    assert "Multiple" in response.json()["error_description"]


def test_get_on_the_token_endpoint_is_405(issuer: StandInIssuer) -> None:
    response = requests.get(issuer.token_url, timeout=5)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_test_token_accepts_issued_unexpired_tokens_only() -> None:
    now = [1_000_000.0]
    with StandInIssuer({CLIENT_ID: SECRET}, token_lifetime=300, clock=lambda: now[0]) as issuer:
        token = post_token(issuer).json()["access_token"]

        def check(value: str) -> requests.Response:
            headers = {"Authorization": f"Bearer {value}"}
            return requests.post(issuer.test_token_url, headers=headers, timeout=5)

        accepted = check(token)
        assert accepted.status_code == 200
        assert accepted.json() == {"id": CLIENT_ID, "scope": "service_provider"}
        rejected = check("not-a-token")
        assert rejected.status_code == 401
        assert rejected.json() == {"detail": "Could not validate credentials"}
        now[0] += 300
        assert check(token).status_code == 401
        assert issuer.test_token_requests == 3


def test_unknown_paths_are_404(issuer: StandInIssuer) -> None:
    assert requests.post(issuer.url + "/api/v1/nope", timeout=5).status_code == 404
    realm_path = issuer.url + "/realms/harbor/nope"
    assert requests.get(realm_path, timeout=5).status_code == 404
    assert issuer.token_requests == 0


def test_refresh_grant_when_enabled() -> None:
    with StandInIssuer({CLIENT_ID: SECRET}, issue_refresh_tokens=True) as issuer:
        first = post_token(issuer).json()
        assert first["refresh_token"]
        assert first["refresh_expires_in"] == 1800
        refreshed = post_token(
            issuer, grant_type="refresh_token", refresh_token=first["refresh_token"], scope=""
        ).json()
        assert refreshed["access_token"] != first["access_token"]
        assert refreshed["scope"] == "service_provider profile email"
        issuer.revoke_refresh_tokens()
        revoked = post_token(
            issuer, grant_type="refresh_token", refresh_token=refreshed["refresh_token"]
        )
        assert revoked.status_code == 400
        assert revoked.json()["error"] == "invalid_grant"


def test_faults_are_consumed_fifo_by_token_requests_only(issuer: StandInIssuer) -> None:
    issuer.inject(Fault.error(400, "invalid_grant", "first"), Fault.html(502))
    # The test-token endpoint does not consume faults.
    requests.post(issuer.test_token_url, timeout=5)
    assert issuer.pending_faults == 2
    assert post_token(issuer).json()["error_description"] == "first"
    second = post_token(issuer)
    assert second.status_code == 502
    assert second.headers["Content-Type"] == "text/html"
    assert "<html>" in second.text
    assert post_token(issuer).status_code == 200
    assert [r.fault is not None for r in issuer.requests if r.grant_type] == [True, True, False]


def test_retry_after_fault_in_seconds_and_as_http_date(issuer: StandInIssuer) -> None:
    issuer.inject(Fault.retry_after(429, 7))
    response = post_token(issuer)
    assert (response.status_code, response.headers["Retry-After"]) == (429, "7")
    when = datetime.now(UTC) + timedelta(seconds=30)
    issuer.inject(Fault.retry_after(503, when))
    response = post_token(issuer)
    assert response.status_code == 503
    parsed = parsedate_to_datetime(response.headers["Retry-After"])
    assert abs((parsed - when).total_seconds()) < 1


def test_reset_fault_closes_without_answering(issuer: StandInIssuer) -> None:
    issuer.inject(Fault.connection_reset())
    with pytest.raises(requests.ConnectionError):
        post_token(issuer)
    assert post_token(issuer).status_code == 200


def test_truncate_fault_announces_more_than_it_sends(issuer: StandInIssuer) -> None:
    issuer.inject(Fault.truncated())
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        post_token(issuer)


def test_redirect_fault(issuer: StandInIssuer) -> None:
    issuer.inject(Fault.redirect("http://127.0.0.1:9/elsewhere"))
    response = requests.post(
        issuer.token_url, data={"grant_type": "x"}, allow_redirects=False, timeout=5
    )
    assert response.status_code == 307
    assert response.headers["Location"] == "http://127.0.0.1:9/elsewhere"


def test_delay_fault_delays_the_normal_answer(issuer: StandInIssuer) -> None:
    issuer.inject(Fault.slow(0.3))
    started = time.monotonic()
    assert post_token(issuer).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_token_fault_sends_a_real_token_with_odd_fields(issuer: StandInIssuer) -> None:
    issuer.inject(Fault.token(expires_in=OMIT, token_type="mac", extra={"x": 1}))
    body = post_token(issuer).json()
    assert "expires_in" not in body
    assert body["token_type"] == "mac"
    assert body["extra"] == {"x": 1}
    assert body["access_token"] in issuer.issued


def test_recorded_requests_never_hold_the_secret(issuer: StandInIssuer) -> None:
    post_token(issuer)
    requests.post(
        issuer.token_url, data={"grant_type": "x"}, headers=basic(CLIENT_ID, SECRET), timeout=5
    )
    assert SECRET not in repr(issuer.requests)
    assert [r.auth_method for r in issuer.requests] == ["client_secret_post", "client_secret_basic"]


def test_concurrent_requests_are_counted_and_get_distinct_tokens(issuer: StandInIssuer) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        bodies = list(pool.map(lambda _: post_token(issuer).json(), range(40)))
    assert issuer.token_requests == 40
    assert len({body["access_token"] for body in bodies}) == 40
    assert len(issuer.issued) == 40


def test_stop_closes_the_port_and_start_reuses_it() -> None:
    issuer = StandInIssuer({CLIENT_ID: SECRET}).start()
    url = issuer.url
    issuer.stop()
    with pytest.raises(requests.ConnectionError):
        requests.post(url + "/api/v1/login/test-token", timeout=2)
    with issuer:
        assert issuer.url == url
        assert post_token(issuer).status_code == 200


def test_url_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="start"):
        _ = StandInIssuer().url


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harbor_secrets", "stand-in-issuer", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_cli_help_and_usage_errors() -> None:
    """The stand-in is a documented command (it was reachable only as ``python -m``)."""
    helped = _run_cli("--help")
    assert helped.returncode == 0
    assert "--client-secret-file" in helped.stdout
    assert "Examples:" in helped.stdout
    missing = _run_cli("--port", "0")
    assert missing.returncode == 2
    assert "--client-id" in missing.stderr


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(SECRET + "\n")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "harbor_secrets", "stand-in-issuer", "--port", "0"),
            *("--client-id", CLIENT_ID, "--client-secret-file", str(secret_file)),
            *("--lifetime", "120"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("stand-in issuer listening on http://127.0.0.1:"), first
        base = first.split()[4]
        form = {
            "grant_type": "client_credentials",
            "scope": "service_provider",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
        }
        token_url = base + "/realms/harbor/protocol/openid-connect/token"
        response = requests.post(token_url, data=form, timeout=5)
        assert response.json()["expires_in"] == 120
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=10)
        assert process.returncode == 0
        assert SECRET not in first + stdout
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_stand_in_started_again_accepts_the_tokens_an_earlier_one_issued() -> None:
    """Tokens are signed with the client's secret, not remembered: the demo's stored tokens
    stay good for `harbor-secrets stand-in-issuer` after the demo's own issuer stopped."""
    with StandInIssuer({CLIENT_ID: SECRET}) as first:
        token = post_token(first).json()["access_token"]

    def check(issuer: StandInIssuer, value: str) -> int:
        headers = {"Authorization": f"Bearer {value}"}
        return requests.post(issuer.test_token_url, headers=headers, timeout=5).status_code

    with StandInIssuer({CLIENT_ID: SECRET}) as again:
        assert check(again, token) == 200
        head, body, signature = token.split(".")
        forged = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        forged["scope"] = "tower_access"
        forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
        assert check(again, f"{head}.{forged_body}.{signature}") == 401  # altered: refused
    with StandInIssuer({CLIENT_ID: "another-secret"}) as other:
        assert check(other, token) == 401  # another client secret: refused
