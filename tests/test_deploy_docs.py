"""deploy/README.md and the command lines in deploy/ stay true to what is in the repository.

Links must lead to files (and headings) that exist, every Kubernetes overlay must have its
one `kubectl apply -k` line, and every harbor-secrets option a manifest, unit, crontab or
the Dockerfile passes must be one the CLI accepts.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import help_text

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
README = DEPLOY / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_link_resolves() -> None:
    text = README.read_text(encoding="utf-8")
    links = LINK.findall(text)
    assert len(links) > 20
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        path, _, anchor = link.partition("#")
        target = (DEPLOY / path).resolve() if path else README
        assert target.exists(), link
        if anchor:
            assert anchor in anchors(target.read_text(encoding="utf-8")), link


def kustomizations(kind: str) -> list[str]:
    """Directories under deploy/kubernetes whose kustomization.yaml is of ``kind``."""
    found = []
    for path in (DEPLOY / "kubernetes").rglob("kustomization.yaml"):
        if re.search(rf"^kind: {kind}$", path.read_text(encoding="utf-8"), re.MULTILINE):
            found.append(str(path.parent.relative_to(REPO)))
    return sorted(found)


def test_every_overlay_has_its_one_apply_line() -> None:
    text = README.read_text(encoding="utf-8")
    overlays = kustomizations("Kustomization")
    assert len(overlays) == 5
    for overlay in overlays:
        assert re.search(rf"^\s*kubectl apply -k {re.escape(overlay)}\s", text, re.MULTILINE)


def test_every_component_is_linked_and_never_applied_alone() -> None:
    """A kustomize Component cannot be applied by itself: the docs link it and show how an
    overlay lists it instead."""
    text = README.read_text(encoding="utf-8")
    components = kustomizations("Component")
    assert "deploy/kubernetes/components/watch" in components
    for component in components:
        assert not re.search(rf"kubectl apply -k {re.escape(component)}\b", text), component
    assert "](kubernetes/components/watch/)" in text


def test_lambda_is_one_terraform_apply_away() -> None:
    text = README.read_text(encoding="utf-8")
    assert "](aws/README.md)" in text
    assert "terraform init && terraform apply" in text


def invocations() -> list[tuple[str, list[str]]]:
    """(where, argv after `harbor-secrets`) for every command line in deploy/."""
    found: list[tuple[str, list[str]]] = []
    sources = [
        *(DEPLOY / "kubernetes").rglob("*.yaml"),
        *(DEPLOY / "helm").rglob("templates/*.yaml"),
        DEPLOY / "systemd" / "harbor-secrets.service",
        DEPLOY / "cron" / "harbor-secrets.cron",
    ]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".yaml":
            for block in re.findall(r"args:\n((?:\s+- .+\n)+)", text):
                found.append((path.name, [a.strip()[2:] for a in block.splitlines()]))
        else:
            for line in text.splitlines():
                if line.startswith("#"):
                    continue
                match = re.search(r"harbor-secrets (-c \S+ sync)", line)
                if match:
                    found.append((path.name, match.group(1).split()))
    return found


@pytest.mark.parametrize(("where", "argv"), invocations())
def test_every_option_passed_is_one_the_cli_accepts(where: str, argv: list[str]) -> None:
    command_at = argv.index("sync")
    global_help, sync_help = help_text(), help_text("sync")
    for option in argv[:command_at]:
        if option.startswith("-"):
            assert re.search(rf"(?<![\w-]){re.escape(option)}\b", global_help), (where, option)
    for option in argv[command_at + 1 :]:
        if option.startswith("-"):
            assert re.search(rf"(?<![\w-]){re.escape(option)}\b", sync_help), (where, option)


def test_command_lines_were_found() -> None:
    found = invocations()
    places = {where for where, _ in found}
    expected = {"cronjob.yaml", "deployment.yaml", "harbor-secrets.service", "harbor-secrets.cron"}
    assert places == expected
    # the kustomize CronJob and Deployment, and the chart's
    assert sum(where in {"cronjob.yaml", "deployment.yaml"} for where, _ in found) == 4
