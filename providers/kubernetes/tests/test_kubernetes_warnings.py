"""``config check`` advice: how much lifetime a pod reading the Secret from a volume can find,
given the kubelet's refresh delay, and what the kubeconfig makes this provider ignore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harbor_secrets_kubernetes._kubelet import (
    MIN_READER_LIFETIME,
    VOLUME_PROPAGATION,
    needed_refresh_before,
)
from kube_support import SINK, Cluster, MakeProvider

from harbor_secrets import RefreshPolicy


def test_the_documented_kubelet_delay() -> None:
    """syncFrequency 1m, plus the pod worker's 50 % jitter, plus a watch event's delay."""
    assert VOLUME_PROPAGATION == 95.0
    assert MIN_READER_LIFETIME == 30.0


def test_the_default_policy_can_hand_a_volume_reader_an_expired_token(
    make_kube: MakeProvider,
) -> None:
    (note,) = make_kube().warnings(RefreshPolicy())  # refresh_before 150s, every 60s
    assert "an expired token (up to 5s past its expiry)" in note
    assert "raise refresh.refresh_before to at least 185s" in note
    assert f"sinks.{SINK}.volume_propagation = 0" in note


@pytest.mark.parametrize("refresh_before", [185.0, 210.0, 240.0])
def test_the_documented_refresh_before_leaves_a_volume_reader_enough(
    make_kube: MakeProvider, refresh_before: float
) -> None:
    policy = RefreshPolicy(refresh_before=refresh_before)
    assert make_kube().warnings(policy) == []
    assert policy.reader_floor(propagation=VOLUME_PROPAGATION) >= MIN_READER_LIFETIME


def test_a_short_margin_is_reported_with_the_number_to_use(make_kube: MakeProvider) -> None:
    (note,) = make_kube().warnings(RefreshPolicy(refresh_before=170))
    assert "as little as 15s left" in note
    assert "at least 185s" in note
    assert needed_refresh_before(RefreshPolicy(refresh_before=170), VOLUME_PROPAGATION) == 185


def test_a_slow_schedule_cannot_be_fixed_by_refresh_before(make_kube: MakeProvider) -> None:
    (note,) = make_kube().warnings(RefreshPolicy(refresh_before=250, schedule_period=180))
    assert "run more often" in note


def test_no_volume_warning_when_no_pod_mounts_the_secrets(make_kube: MakeProvider) -> None:
    assert make_kube(volume_propagation=0).warnings(RefreshPolicy()) == []


def test_a_slower_kubelet_is_configurable(make_kube: MakeProvider) -> None:
    (note,) = make_kube(volume_propagation="150s").warnings(RefreshPolicy(refresh_before=210))
    assert "at least 240s" in note


def test_what_the_kubeconfig_makes_this_provider_ignore_is_said(
    cluster: Cluster, make_kube: MakeProvider, tmp_path: Path
) -> None:
    document = json.loads(cluster.kubeconfig.read_text())
    entry = document["clusters"][0]["cluster"]
    entry.pop("certificate-authority-data")
    entry.update(
        {
            "insecure-skip-tls-verify": True,
            "proxy-url": "http://proxy.example:3128",
            "tls-server-name": "kubernetes.default",
        }
    )
    path = tmp_path / "config"
    path.write_text(json.dumps(document))
    notes = make_kube(kubeconfig=str(path), volume_propagation=0).warnings(RefreshPolicy())
    assert len(notes) == 3
    assert "insecure-skip-tls-verify" in notes[0]
    assert "proxy-url" in notes[1]
    assert "tls-server-name" in notes[2]


def test_config_checks_budget_counts_the_kubelets_delay_for_volume_readers(
    make_kube: MakeProvider,
) -> None:
    """The provider tells the core how late a volume reader sees a write; the core's budget
    (config check) takes it off, scheduled and in watch mode."""
    assert make_kube().reader_delay() == VOLUME_PROPAGATION
    assert make_kube(volume_propagation="150s").reader_delay() == 150
    assert make_kube(volume_propagation=0).reader_delay() == 0
    policy = RefreshPolicy(refresh_before=210)
    scheduled = policy.availability(
        watching=False, request_budget=30, propagation=make_kube().reader_delay()
    )
    assert scheduled.reader_floor == 210 - 60 - 95
    watching = policy.availability(
        watching=True, request_budget=30, propagation=make_kube().reader_delay()
    )
    assert watching.reader_floor == pytest.approx(210 - 10.05 - 1 - 95)
    assert make_kube().shared  # a Kubernetes Secret is shared by every node
