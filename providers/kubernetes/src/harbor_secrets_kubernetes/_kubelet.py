"""How late a pod sees a Secret update in its volume, and what that asks of refresh_before.

Kubernetes documents the delay ("Mounted Secrets are updated automatically",
https://kubernetes.io/docs/concepts/configuration/secret/): "the total delay from the moment
when the Secret is updated to the moment when new keys are projected to the Pod can be as
long as the kubelet sync period + cache propagation delay", where the propagation delay is
the watch propagation delay under the default ``configMapAndSecretChangeDetectionStrategy:
Watch``. The kubelet configuration reference (kubelet-config.v1beta1) gives ``syncFrequency``
a default of ``1m``. The kubelet's pod workers re-queue each pod after that period plus up to
50 % jitter (``workerResyncIntervalJitterFactor = 0.5`` in pkg/kubelet/pod_workers.go), so
the sync itself comes up to 90 s after the last one; a watch event arrives within seconds.
Hence :data:`VOLUME_PROPAGATION`: 90 s + 5 s of watch delay.

Environment variables (``env``, ``envFrom``) and ``subPath`` mounts never see an update at
all: the docs say so for both, and no refresh_before can help such a reader.
"""

from __future__ import annotations

import math

from harbor_secrets import DEFAULT_MIN_REMAINING, RefreshPolicy

#: kubelet ``syncFrequency`` default (kubelet-config.v1beta1).
SYNC_FREQUENCY = 60.0
#: ``workerResyncIntervalJitterFactor`` in pkg/kubelet/pod_workers.go.
RESYNC_JITTER = 0.5
#: What the watch of the default ``Watch`` strategy is allowed to add.
WATCH_DELAY = 5.0
#: The longest a volume reader can wait for a write to reach its files, by default.
VOLUME_PROPAGATION = SYNC_FREQUENCY * (1 + RESYNC_JITTER) + WATCH_DELAY
#: The least lifetime a volume reader should find: the core's reader margin (``get``'s
#: default ``--min-remaining``), so a pod that reads the file is as safe as one that runs get.
MIN_READER_LIFETIME = DEFAULT_MIN_REMAINING


def needed_refresh_before(policy: RefreshPolicy, propagation: float) -> float:
    """The least ``refresh_before`` that leaves a volume reader :data:`MIN_READER_LIFETIME`."""
    shortfall = MIN_READER_LIFETIME - policy.reader_floor(propagation=propagation)
    return policy.refresh_before + max(shortfall, 0.0)


def volume_warnings(policy: RefreshPolicy, propagation: float, sink: str) -> list[str]:
    """Advice when a pod reading the Secret from a volume can find too little time left."""
    if propagation <= 0:
        return []
    floor = policy.reader_floor(propagation=propagation)
    if floor >= MIN_READER_LIFETIME:
        return []
    needed = math.ceil(needed_refresh_before(policy, propagation))
    found = (
        f"as little as {floor:g}s left"
        if floor > 0
        else f"an expired token (up to {-floor:g}s past its expiry)"
    )
    advice = (
        f"raise refresh.refresh_before to at least {needed}s"
        if needed < policy.token_lifetime
        else "run more often (schedule_period) so refresh_before can stay below the token lifetime"
    )
    return [
        f"a pod reading these Secrets from a mounted volume can find {found}: refresh_before "
        f"{policy.refresh_before:g}s − schedule period {policy.schedule_period:g}s − the "
        f"kubelet's volume refresh (up to {propagation:g}s); {advice} (at least "
        f"{MIN_READER_LIFETIME:g}s left), or set sinks.{sink}.volume_propagation = 0 if no "
        "pod mounts them"
    ]
