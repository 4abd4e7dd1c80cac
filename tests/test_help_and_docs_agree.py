"""Help texts and documents say what the code does (each fact checked against the code, or
against the other documents that state it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from conftest import Result
from harbor_secrets.commands.status import HEALTHY
from harbor_secrets.freshness import TokenState

Run = Callable[..., Result]
REPO = Path(__file__).resolve().parents[1]


def test_status_help_names_every_state_and_which_exit_1(run_cli: Run) -> None:
    text = " ".join(run_cli("status", "--help").stdout.split())
    for state in TokenState:
        assert state.value in text, state
    exits = re.search(r"Exits 1 if ([^.]*)\.", text)
    assert exits is not None, text
    for state in TokenState:
        assert (state.value in exits.group(1)) == (state not in HEALTHY), state


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end >= 0 else None]


def test_every_document_gives_the_kubelets_volume_delay_the_provider_assumes() -> None:
    """refresh_before = 210s for volume readers rests on this figure: a document saying
    "about a minute" would have a reader choose a refresh_before too small."""
    from harbor_secrets_kubernetes._config import DEFAULT_VOLUME_PROPAGATION

    delay = f"{DEFAULT_VOLUME_PROPAGATION:g} s"
    reading = (REPO / "docs" / "READING.md").read_text(encoding="utf-8")
    volume = " ".join(_section(reading, "## Kubernetes Secret volume").split())
    assert f"about {delay} in all" in volume
    assert "about a minute" not in volume
    for document in ("deploy/README.md", "docs/AVAILABILITY.md", "providers/kubernetes/README.md"):
        text = " ".join((REPO / document).read_text(encoding="utf-8").split())
        assert delay in text, document


def test_the_replicas_store_reads_are_said_as_measured() -> None:
    """AVAILABILITY.md measured about three store reads per token per refresh per replica;
    deploy/README said one per replica per refresh."""
    measured = "about three reads per token per refresh per replica"
    availability = " ".join((REPO / "docs/AVAILABILITY.md").read_text(encoding="utf-8").split())
    assert measured in availability
    deploy = " ".join((REPO / "deploy/README.md").read_text(encoding="utf-8").split())
    assert "one store read per replica per refresh" not in deploy
    assert measured in deploy


def test_the_helm_version_the_docs_claim_is_the_one_the_tests_run() -> None:
    """Only the pinned helm renders the chart here; no 3.x release was run, so none is
    claimed (fromToml came with helm/helm#12026)."""
    pins = (REPO / "tools" / "ensure_binaries.py").read_text(encoding="utf-8")
    pinned = re.search(r'"helm": Binary\(.*?version_text="v([0-9.]+)"', pins, re.DOTALL)
    assert pinned is not None
    tested = pinned.group(1)
    for document in (
        "deploy/README.md",
        "deploy/helm/harbor-secrets/README.md",
        "deploy/helm/harbor-secrets/templates/_helpers.tpl",
    ):
        text = " ".join((REPO / document).read_text(encoding="utf-8").split())
        assert f"Helm {tested}" in text, document
        assert "helm/helm#12026" in text, document
        assert not re.search(r"Helm (>= )?3\.\d+", text), document
