"""What a Secret holds, whose Secrets are written, and how many requests a due token costs."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest
from kube_support import MANAGED, NAMESPACE, USER, Cluster, MakeProvider, unique

from harbor_secrets import StoreError, WriteOutcome
from harbor_testkit.kube_apiserver import Fault, Rule
from harbor_testkit.records import make_record


def requests_of(cluster: Cluster, mark: int, name: str) -> list[tuple[str, int]]:
    """What the test's own Secret was asked since ``mark`` (method, status)."""
    return [(r.method, r.status) for r in cluster.requests_since(mark, name)]


def precreate(cluster: Cluster, name: str, **data: str) -> None:
    """A Secret as the deploy overlay creates it: labelled managed-by, data optional."""
    cluster.server.put_secret(NAMESPACE, name, data=data or None, labels=MANAGED)


def test_a_written_secret_holds_the_token_files_and_the_record(
    cluster: Cluster, make_kube: MakeProvider
) -> None:
    name = unique("layout")
    precreate(cluster, name)
    record = make_record(token="eyJ.layout-token")
    assert make_kube().write(name, record) is WriteOutcome.WRITTEN
    secret = cluster.server.secret(NAMESPACE, name)
    assert secret is not None
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["labels"] == MANAGED
    expires = record.to_dict()["expires_at"]
    assert secret["metadata"]["annotations"] == {"harbor-secrets/expires-at": expires}
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["access_token"] == "eyJ.layout-token"  # /var/run/harbor/access_token
    assert data["expires_at"] == expires
    assert data["token_type"] == "Bearer"
    assert json.loads(data["record.json"]) == record.to_dict()


def test_the_writer_is_named_in_the_record_and_an_annotation(
    cluster: Cluster, make_kube: MakeProvider
) -> None:
    """`kubectl get secret -o yaml` shows which replica wrote the token last."""
    name = unique("writer")
    precreate(cluster, name)
    first = dataclasses.replace(make_record(-10), written_by="harbor-secrets-6c9f-a1")
    make_kube().write(name, first)
    second = dataclasses.replace(make_record(), written_by="harbor-secrets-6c9f-b2")
    assert make_kube().write(name, second) is WriteOutcome.WRITTEN
    secret = cluster.server.secret(NAMESPACE, name)
    assert secret is not None
    annotations = secret["metadata"]["annotations"]
    assert annotations["harbor-secrets/written-by"] == "harbor-secrets-6c9f-b2"
    stored = make_kube().read(name)
    assert stored is not None
    assert stored.written_by == "harbor-secrets-6c9f-b2"


def test_a_due_token_costs_one_read_and_one_write(
    cluster: Cluster, make_kube: MakeProvider
) -> None:
    """What the sync engine does for a due token: read(), then write() of a newer record."""
    name = unique("cost")
    precreate(cluster, name)
    make_kube().write(name, make_record(-200))
    provider = make_kube()
    provider.read(name)  # warm up: the TLS handshake is not what is counted
    mark = len(cluster.server.requests)
    stored = provider.read(name)
    assert stored is not None
    assert provider.write(name, make_record()) is WriteOutcome.WRITTEN
    assert requests_of(cluster, mark, name) == [("GET", 200), ("PUT", 200)]


def test_a_fresh_token_costs_one_read(cluster: Cluster, make_kube: MakeProvider) -> None:
    name = unique("fresh")
    precreate(cluster, name)
    record = make_record()
    make_kube().write(name, record)
    provider = make_kube()
    mark = len(cluster.server.requests)
    assert provider.read(name) == record
    assert requests_of(cluster, mark, name) == [("GET", 200)]


def test_a_precreated_empty_secret_reads_as_missing_and_is_filled(
    cluster: Cluster, make_kube: MakeProvider
) -> None:
    name = unique("empty")
    precreate(cluster, name)
    provider = make_kube()
    assert provider.read(name) is None
    record = make_record()
    assert provider.write(name, record) is WriteOutcome.WRITTEN
    assert cluster.stored(name) == record


def test_an_unreadable_record_in_our_own_secret_is_replaced(
    cluster: Cluster, make_kube: MakeProvider
) -> None:
    name = unique("corrupt")
    precreate(cluster, name, **{"record.json": "{not json", "access_token": "x"})
    provider = make_kube()
    assert provider.read(name) is None
    record = make_record()
    assert provider.write(name, record) is WriteOutcome.WRITTEN
    assert cluster.stored(name) == record


# -- ownership ------------------------------------------------------------------------------


def test_a_foreign_secret_is_never_overwritten(cluster: Cluster, make_kube: MakeProvider) -> None:
    name = unique("foreign")
    cluster.server.put_secret(NAMESPACE, name, data={"password": "hunter2-foreign"})
    before = cluster.server.secret(NAMESPACE, name)
    provider = make_kube()
    with pytest.raises(StoreError) as read_error:
        provider.read(name)
    assert read_error.value.reason == "not-managed"
    with pytest.raises(StoreError) as write_error:
        provider.write(name, make_record())
    error = write_error.value
    assert error.reason == "not-managed"
    assert f'Secret "{name}" in namespace "{NAMESPACE}"' in str(error)
    assert "app.kubernetes.io/managed-by=harbor-secrets" in str(error)
    assert "adopt = true" in str(error)
    assert "hunter2-foreign" not in str(error)
    assert cluster.server.secret(NAMESPACE, name) == before


def test_an_unlabelled_empty_secret_is_foreign_too(
    cluster: Cluster, make_kube: MakeProvider
) -> None:
    name = unique("bare")
    cluster.server.put_secret(NAMESPACE, name)
    with pytest.raises(StoreError) as caught:
        make_kube().write(name, make_record())
    assert "(it is empty)" in str(caught.value)


def test_adopt_takes_a_foreign_secret_keeping_what_else_it_holds(
    cluster: Cluster, make_kube: MakeProvider
) -> None:
    name = unique("adopt")
    cluster.server.put_secret(
        NAMESPACE,
        name,
        data={"note": "kept"},
        labels={"team": "payments"},
        annotations={"owner": "payments"},
    )
    provider = make_kube(adopt=True)
    assert provider.read(name) is None
    record = make_record()
    assert provider.write(name, record) is WriteOutcome.WRITTEN
    secret = cluster.server.secret(NAMESPACE, name)
    assert secret is not None
    assert secret["metadata"]["labels"] == {"team": "payments", **MANAGED}
    assert secret["metadata"]["annotations"]["owner"] == "payments"
    assert base64.b64decode(secret["data"]["note"]) == b"kept"
    assert cluster.stored(name) == record
    assert make_kube().read(name) == record  # now ours without adopt


# -- missing Secrets and namespaces ------------------------------------------------------------


def test_a_missing_secret_is_not_created_by_default(
    cluster: Cluster, make_kube: MakeProvider
) -> None:
    name = unique("missing")
    provider = make_kube()
    assert provider.read(name) is None
    mark = len(cluster.server.requests)
    with pytest.raises(StoreError) as caught:
        provider.write(name, make_record())
    error = caught.value
    assert error.reason == "not-found"
    assert "pre-create it" in str(error)
    assert f"kubectl -n {NAMESPACE} create secret generic {name}" in str(error)
    assert "create = true" in str(error)
    assert all(method != "POST" for method, _ in requests_of(cluster, mark, name))
    assert cluster.server.secret(NAMESPACE, name) is None


def test_create_true_creates_a_missing_secret(cluster: Cluster, make_kube: MakeProvider) -> None:
    name = unique("create")
    provider = make_kube(create=True)
    assert provider.read(name) is None
    mark = len(cluster.server.requests)
    record = make_record()
    assert provider.write(name, record) is WriteOutcome.WRITTEN
    assert requests_of(cluster, mark, name) == [("POST", 201)]
    assert cluster.stored(name) == record
    secret = cluster.server.secret(NAMESPACE, name)
    assert secret is not None
    assert secret["metadata"]["labels"] == MANAGED


def test_a_create_race_reads_again_and_decides(cluster: Cluster, make_kube: MakeProvider) -> None:
    """Two runs create the same Secret: the loser's POST gets AlreadyExists and compares."""
    name = unique("race")
    ours, rival = make_kube(create=True), make_kube(create=True)
    assert ours.read(name) is None
    newer = make_record(30)
    assert rival.write(name, newer) is WriteOutcome.WRITTEN
    assert ours.write(name, make_record()) is WriteOutcome.KEPT_NEWER
    assert cluster.stored(name) == newer


def test_a_missing_namespace_is_named(cluster: Cluster, make_kube: MakeProvider) -> None:
    provider = make_kube(create=True, namespace="no-such-namespace")
    cluster.server.grant(USER, Rule(("get", "create"), namespace="no-such-namespace"))
    with pytest.raises(StoreError) as caught:
        provider.write(unique("ns"), make_record())
    assert caught.value.reason == "not-found"
    assert 'namespace "no-such-namespace" does not exist' in str(caught.value)
    assert "kubectl create namespace no-such-namespace" in str(caught.value)


# -- compare-and-swap ------------------------------------------------------------------------------


def test_a_conflict_reads_again_and_writes(cluster: Cluster, make_kube: MakeProvider) -> None:
    name = unique("conflict")
    precreate(cluster, name)
    provider = make_kube()
    provider.read(name)
    cluster.server.conflicts(1)
    mark = len(cluster.server.requests)
    record = make_record()
    assert provider.write(name, record) is WriteOutcome.WRITTEN
    assert requests_of(cluster, mark, name) == [("PUT", 409), ("GET", 200), ("PUT", 200)]
    assert cluster.stored(name) == record


def test_a_conflict_storm_gives_up_and_leaves_the_secret(
    cluster: Cluster, make_kube: MakeProvider
) -> None:
    name = unique("storm")
    precreate(cluster, name)
    old = make_record(-200)
    make_kube().write(name, old)
    provider = make_kube(conflict_retries=3)
    cluster.server.conflicts(100)
    with pytest.raises(StoreError) as caught:
        provider.write(name, make_record())
    assert caught.value.reason == "conflict"
    assert "4 attempts" in str(caught.value)
    assert cluster.stored(name) == old


def test_a_secret_deleted_between_read_and_write_is_not_recreated(
    cluster: Cluster, make_kube: MakeProvider
) -> None:
    name = unique("deleted")
    precreate(cluster, name)
    provider = make_kube()
    provider.read(name)
    cluster.server.delete_secret(NAMESPACE, name)
    with pytest.raises(StoreError) as caught:
        provider.write(name, make_record())
    assert caught.value.reason == "not-found"
    assert cluster.server.secret(NAMESPACE, name) is None


def test_an_immutable_secret_is_an_invalid_write(cluster: Cluster, make_kube: MakeProvider) -> None:
    name = unique("immutable")
    cluster.server.put_secret(NAMESPACE, name, labels=MANAGED, immutable=True)
    with pytest.raises(StoreError) as caught:
        make_kube().write(name, make_record())
    assert caught.value.reason == "invalid"
    assert "immutable" in str(caught.value)


def test_a_status_with_a_charset_is_still_read_as_a_status(
    cluster: Cluster, make_kube: MakeProvider
) -> None:
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": 429,
        "reason": "TooManyRequests",
        "message": "too many requests",
    }
    cluster.server.inject(
        Fault(
            status=429,
            body=json.dumps(status).encode(),
            content_type="application/json; charset=utf-8",
        )
    )
    with pytest.raises(StoreError) as caught:
        make_kube().read(unique("charset"))
    assert caught.value.reason == "rate-limited"


@pytest.mark.parametrize("edited", ["access_token", "expires_at", "token_type", "removed"])
def test_a_key_that_disagrees_with_the_record_is_due_and_rewritten(
    cluster: Cluster, make_kube: MakeProvider, edited: str
) -> None:
    """Pods read access_token (and expires_at, token_type): a Secret whose keys were edited
    by hand or by another tool must not be called fresh while pods read the wrong value."""
    name = unique("mismatch")
    precreate(cluster, name)
    record = make_record(token="eyJ.consistent-token")
    make_kube().write(name, record)
    data = {k: v.decode() for k, v in (cluster.server.secret_data(NAMESPACE, name) or {}).items()}
    if edited == "removed":
        del data["access_token"]
    else:
        data[edited] = "eyJ.edited-by-hand" if edited == "access_token" else "something else"
    cluster.server.put_secret(NAMESPACE, name, data=data, labels=MANAGED)
    assert make_kube().read(name) is None  # due, as files that disagree are
    newer = make_record(1, token="eyJ.rewritten-token")
    assert make_kube().write(name, newer) is WriteOutcome.WRITTEN
    rewritten = cluster.server.secret_data(NAMESPACE, name)
    assert rewritten is not None
    assert rewritten["access_token"] == b"eyJ.rewritten-token"
    assert json.loads(rewritten["record.json"])["access_token"] == "eyJ.rewritten-token"
    assert make_kube().read(name) == newer
