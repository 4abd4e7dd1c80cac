"""A bound service-account token rotates (the kubelet rewrites the file, the old one dies):
one long-lived provider (watch mode keeps it for hours) must keep reading and writing.

lightkube re-reads the token file after a 401 and retries the request once; these tests are
what verifies that it does so for the PUT and the POST too, not only for GETs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from kube_support import MANAGED, NAMESPACE, USER, Cluster, MakeProvider, Pod, unique

from harbor_secrets import StoreError, WriteOutcome
from harbor_testkit.fifo import call_beside_fifo
from harbor_testkit.records import make_record


def requests_of(cluster: Cluster, mark: int, name: str) -> list[tuple[str, int]]:
    """What the test's own Secret was asked since ``mark`` (method, status)."""
    return [(r.method, r.status) for r in cluster.requests_since(mark, name)]


def test_a_rotated_service_account_token_is_picked_up_between_writes(
    cluster: Cluster, make_kube: MakeProvider, pod: Pod
) -> None:
    name = unique("rotate")
    cluster.server.put_secret(NAMESPACE, name, labels=MANAGED)
    provider = make_kube(environ=pod.environ, **pod.options())
    assert provider.settings.identity.in_cluster
    first = make_record(-100)
    assert provider.write(name, first) is WriteOutcome.WRITTEN
    old_token = (pod.directory / "token").read_text()
    cluster.server.rotate(pod.user)
    assert (pod.directory / "token").read_text() != old_token
    mark = len(cluster.server.requests)
    second = make_record()
    assert provider.write(name, second) is WriteOutcome.WRITTEN
    assert requests_of(cluster, mark, name) == [("GET", 401), ("GET", 200), ("PUT", 200)]
    assert cluster.stored(name) == second


def test_a_put_rejected_after_rotation_is_retried_with_the_new_token(
    cluster: Cluster, make_kube: MakeProvider, pod: Pod
) -> None:
    """Rotation between the run's read and its write: the PUT itself meets the 401."""
    name = unique("rotate-put")
    cluster.server.put_secret(NAMESPACE, name, labels=MANAGED)
    provider = make_kube(environ=pod.environ, **pod.options())
    assert provider.read(name) is None
    cluster.server.rotate(pod.user)
    mark = len(cluster.server.requests)
    record = make_record()
    assert provider.write(name, record) is WriteOutcome.WRITTEN
    assert requests_of(cluster, mark, name) == [("PUT", 401), ("PUT", 200)]
    assert cluster.stored(name) == record


def test_a_post_rejected_after_rotation_is_retried_with_the_new_token(
    cluster: Cluster, make_kube: MakeProvider, pod: Pod
) -> None:
    name = unique("rotate-post")
    provider = make_kube(environ=pod.environ, **pod.options(create=True))
    assert provider.read(name) is None
    cluster.server.rotate(pod.user)
    mark = len(cluster.server.requests)
    assert provider.write(name, make_record()) is WriteOutcome.WRITTEN
    assert requests_of(cluster, mark, name) == [("POST", 401), ("POST", 201)]


def test_a_kubeconfig_token_file_is_re_read_too(
    cluster: Cluster, make_kube: MakeProvider, tmp_path: Path
) -> None:
    user = f"system:serviceaccount:{NAMESPACE}:{unique('tokenfile')}"
    cluster.server.set_rules(user, cluster.server.rules_for(USER))
    token_file = tmp_path / "token"
    token_file.write_text(cluster.server.add_token(user))
    path = cluster.server.write_kubeconfig(
        tmp_path / "config", token_file=token_file, namespace=NAMESPACE
    )
    name = unique("tokenfile")
    cluster.server.put_secret(NAMESPACE, name, labels=MANAGED)
    provider = make_kube(kubeconfig=str(path))
    provider.write(name, make_record(-100))
    token_file.write_text(cluster.server.rotate(user))
    record = make_record()
    assert provider.write(name, record) is WriteOutcome.WRITTEN
    assert cluster.stored(name) == record


def test_a_static_token_that_is_rejected_is_not_retried(
    cluster: Cluster, make_kube: MakeProvider, tmp_path: Path
) -> None:
    token = cluster.server.add_token("someone")
    path = cluster.server.write_kubeconfig(tmp_path / "config", token=token, namespace=NAMESPACE)
    cluster.server.revoke_token(token)
    provider = make_kube(kubeconfig=str(path))
    name = unique("static")
    mark = len(cluster.server.requests)
    with pytest.raises(StoreError) as caught:
        provider.read(name)
    assert caught.value.reason == "unauthorized"
    assert requests_of(cluster, mark, name) == [("GET", 401)]


def test_a_token_file_that_vanished_is_a_credentials_error(
    make_kube: MakeProvider, pod: Pod
) -> None:
    provider = make_kube(environ=pod.environ, **pod.options())
    (pod.directory / "token").unlink()
    with pytest.raises(StoreError) as caught:
        provider.read(unique("vanished"))
    assert caught.value.reason == "credentials"
    assert str(pod.directory / "token") in str(caught.value)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (os.mkfifo, "is a named pipe (FIFO), not a regular file"),
        (lambda path: path.write_bytes(b"\xff\xfe" + b"eyJ" * 20), "is not UTF-8 text"),
        (lambda path: path.mkdir(), "is a directory, not a regular file"),
        (lambda path: path.write_text("\n"), None),
    ],
    ids=["fifo", "not-utf8", "directory", "empty"],
)
def test_a_token_file_that_turned_bad_fails_the_request_clearly(
    cluster: Cluster,
    make_kube: MakeProvider,
    pod: Pod,
    make: Callable[[Path], None],
    problem: str | None,
) -> None:
    """A credential file goes bad while the job runs (watch mode keeps one provider for
    hours): a run-time credentials failure naming the file, never a hang inside the
    client's own read, never "a bug"."""
    name = unique("badtoken")
    cluster.server.put_secret(NAMESPACE, name, labels=MANAGED)
    provider = make_kube(environ=pod.environ, **pod.options())
    assert provider.write(name, make_record(-100)) is WriteOutcome.WRITTEN  # connected
    token = pod.directory / "token"
    token.unlink()
    make(token)
    mark = len(cluster.server.requests)
    with pytest.raises(StoreError) as caught:
        call_beside_fifo(lambda: provider.write(name, make_record()), token)
    error = caught.value
    assert error.reason == "credentials"
    said = f"the file {problem}" if problem else "is empty"
    assert f"token file {token} of the pod's service account" in error.message
    assert error.message.endswith(said)
    assert "0xff" not in str(error)
    assert requests_of(cluster, mark, name) == []  # failed before any request
