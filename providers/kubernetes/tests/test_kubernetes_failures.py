"""Every failure the API server (or the path to it) can produce gives a StoreError with a
reason and a message that says what to change, and leaves the stored Secret as it was."""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import pytest
from harbor_secrets_kubernetes._errors import Operation, guard
from kube_support import MANAGED, NAMESPACE, USER, Cluster, MakeProvider, unique
from lightkube.core.generic_client import GenericClient

from harbor_secrets import StoreError, TokenRecord
from harbor_testkit.kube_apiserver import Fault, Rule
from harbor_testkit.records import make_record
from harbor_testkit.tls import issue_loopback_tls


#: The deploy overlay's Role: get/update/patch on the named Secrets, nothing else.
def least_privilege(*names: str) -> Rule:
    return Rule(("get", "update", "patch"), namespace=NAMESPACE, resource_names=names)


@pytest.fixture
def stored(cluster: Cluster, make_kube: MakeProvider) -> tuple[str, TokenRecord]:
    """A pre-created Secret holding an older token, as a run would find it when it is due."""
    name = unique("failure")
    cluster.server.put_secret(NAMESPACE, name, labels=MANAGED)
    old = make_record(-200)
    make_kube().write(name, old)
    return name, old


def failing_write(
    cluster: Cluster, provider_options: dict[str, object], name: str, make_kube: MakeProvider
) -> StoreError:
    provider = make_kube(**provider_options)
    with pytest.raises(StoreError) as caught:
        provider.write(name, make_record())
    return caught.value


# -- RBAC -------------------------------------------------------------------------------------


def test_the_least_privilege_role_is_enough_for_read_and_write(
    cluster: Cluster, make_kube: MakeProvider, stored: tuple[str, TokenRecord]
) -> None:
    name, _ = stored
    cluster.server.set_rules(USER, [least_privilege(name)])
    provider = make_kube()
    assert provider.read(name) is not None
    newer = make_record()
    provider.write(name, newer)
    assert cluster.stored(name) == newer


def test_a_403_names_verb_resource_namespace_secret_and_the_rule_to_add(
    cluster: Cluster, make_kube: MakeProvider, stored: tuple[str, TokenRecord]
) -> None:
    name, old = stored
    cluster.server.set_rules(USER, [Rule(("get",), namespace=NAMESPACE, resource_names=(name,))])
    error = failing_write(cluster, {}, name, make_kube)
    text = str(error)
    assert error.reason == "permission-denied"
    assert f'cannot update Secret "{name}" in namespace "{NAMESPACE}"' in text
    assert f"as {USER}" in text
    assert (
        f'{{apiGroups: [""], resources: ["secrets"], resourceNames: ["{name}"], '
        'verbs: ["get", "update", "patch"]}' in text
    )
    assert cluster.stored(name) == old


def test_a_403_on_read_names_the_get(cluster: Cluster, make_kube: MakeProvider) -> None:
    cluster.server.set_rules(USER, [least_privilege("another-secret")])
    name = unique("denied")
    with pytest.raises(StoreError) as caught:
        make_kube().read(name)
    assert caught.value.reason == "permission-denied"
    assert f'cannot get Secret "{name}"' in str(caught.value)


def test_a_403_on_create_says_rbac_cannot_limit_create_to_names(
    cluster: Cluster, make_kube: MakeProvider
) -> None:
    name = unique("nocreate")
    cluster.server.set_rules(USER, [least_privilege(name)])
    error = failing_write(cluster, {"create": True}, name, make_kube)
    assert error.reason == "permission-denied"
    assert f'cannot create Secret "{name}"' in str(error)
    assert 'verbs: ["create"]' in str(error)
    assert "RBAC cannot limit create to names" in str(error)
    assert cluster.server.secret(NAMESPACE, name) is None


# -- credentials ------------------------------------------------------------------------------


def test_a_rejected_token_is_unauthorized_and_never_shown(
    cluster: Cluster, make_kube: MakeProvider, stored: tuple[str, TokenRecord], tmp_path: Path
) -> None:
    name, old = stored
    token = cluster.server.add_token(USER)
    path = cluster.server.write_kubeconfig(tmp_path / "config", token=token, namespace=NAMESPACE)
    cluster.server.revoke_token(token)
    error = failing_write(cluster, {"kubeconfig": str(path)}, name, make_kube)
    assert error.reason == "unauthorized"
    assert "401 Unauthorized" in str(error)
    assert str(path) in str(error)
    assert token not in str(error) + repr(error)
    assert cluster.stored(name) == old


# -- the API server's own failures ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "reason", "said"),
    [
        (Fault(status=422, methods=("PUT",)), "invalid", "refused"),
        (Fault(status=500, methods=("PUT",)), "server-error", "answered 500"),
        (Fault(status=503, methods=("PUT",)), "unavailable", "answered 503"),
        (Fault(status=429, retry_after=1, methods=("PUT",)), "rate-limited", "throttling"),
        (
            Fault(
                status=502,
                body=b"<html>bad gateway</html>",
                content_type="text/html",
                methods=("PUT",),
            ),
            "unavailable",
            "not a Kubernetes Status (text/html)",
        ),
        (
            Fault(reset=True, methods=("PUT",)),
            "unavailable",
            "closed the connection without answering",
        ),
    ],
    ids=["422", "500", "503", "429", "html-502", "reset"],
)
def test_an_api_failure_leaves_the_secret_as_it_was(
    cluster: Cluster,
    make_kube: MakeProvider,
    stored: tuple[str, TokenRecord],
    fault: Fault,
    reason: str,
    said: str,
) -> None:
    name, old = stored
    cluster.server.inject(fault)
    error = failing_write(cluster, {}, name, make_kube)
    assert error.reason == reason
    assert said in str(error)
    assert cluster.stored(name) == old


def test_a_slow_api_server_times_out_in_bounded_time(
    cluster: Cluster, make_kube: MakeProvider, stored: tuple[str, TokenRecord]
) -> None:
    name, old = stored
    cluster.server.slow(3.0)
    began = time.monotonic()
    error = failing_write(cluster, {"timeout": "1s"}, name, make_kube)
    assert time.monotonic() - began < 2.5
    assert error.reason == "timeout"
    assert "did not answer in time" in str(error)
    cluster.server.clear_faults()
    assert cluster.stored(name) == old


def test_an_api_server_that_is_down_is_unavailable(
    cluster: Cluster, make_kube: MakeProvider, stored: tuple[str, TokenRecord]
) -> None:
    name, old = stored
    cluster.server.down()
    error = failing_write(cluster, {}, name, make_kube)
    assert error.reason == "unavailable"
    assert f"cannot reach the Kubernetes API server at {cluster.server.url}" in str(error)
    assert "connection refused" in str(error)
    cluster.server.up()
    assert cluster.stored(name) == old


# -- TLS: only the configured CA is trusted -----------------------------------------------------


def wrong_ca_kubeconfig(cluster: Cluster, tmp_path: Path) -> Path:
    other = tmp_path / "other-ca.crt"
    other.write_bytes(issue_loopback_tls().ca_pem)
    import json

    document = json.loads(cluster.kubeconfig.read_text())
    entry = document["clusters"][0]["cluster"]
    entry.pop("certificate-authority-data")
    entry["certificate-authority"] = str(other)
    path = tmp_path / "wrong-ca"
    path.write_text(json.dumps(document))
    return path


def test_a_server_signed_by_another_ca_is_refused_whatever_the_environment_trusts(
    cluster: Cluster,
    make_kube: MakeProvider,
    stored: tuple[str, TokenRecord],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SSL_CERT_FILE and REQUESTS_CA_BUNDLE name the server's real CA, in the process and
    in the provider's environment: the kubeconfig's (wrong) CA must still be the only one."""
    name, old = stored
    for variable in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(variable, cluster.server.ca_file)
    path = wrong_ca_kubeconfig(cluster, tmp_path)
    environ = cluster.environ(
        SSL_CERT_FILE=cluster.server.ca_file, REQUESTS_CA_BUNDLE=cluster.server.ca_file
    )
    mark = len(cluster.server.requests)
    error = failing_write(cluster, {"kubeconfig": str(path), "environ": environ}, name, make_kube)
    assert error.reason == "tls"
    assert "certificate is not signed by the CA" in str(error)
    assert cluster.requests_since(mark) == []  # the handshake failed: nothing was sent
    assert cluster.stored(name) == old


def test_a_kubeconfig_without_a_ca_does_not_fall_back_to_the_environment(
    cluster: Cluster, make_kube: MakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.setenv("SSL_CERT_FILE", cluster.server.ca_file)
    document = json.loads(cluster.kubeconfig.read_text())
    document["clusters"][0]["cluster"].pop("certificate-authority-data")
    path = tmp_path / "no-ca"
    path.write_text(json.dumps(document))
    with pytest.raises(StoreError) as caught:
        make_kube(kubeconfig=str(path)).read(unique("noca"))
    assert caught.value.reason == "tls"


# -- answers lightkube does not decode ------------------------------------------------------------


def test_an_error_answer_without_a_content_type_is_still_mapped() -> None:
    """lightkube reads Content-Type with [] and raises KeyError when a proxy sends none."""
    op = Operation("get", "apps", "harbor-x", "https://k8s.example", "kubeconfig x")
    request = httpx2.Request("GET", "https://k8s.example/api/v1/namespaces/apps/secrets/x")
    response = httpx2.Response(502, content=b"upstream failed", request=request)
    assert "Content-Type" not in response.headers
    with pytest.raises(StoreError) as caught, guard(op):
        GenericClient.raise_for_status(response)  # type: ignore[no-untyped-call]
    assert caught.value.reason == "unavailable"
    assert "answered 502 Bad Gateway" in str(caught.value)
