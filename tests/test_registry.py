"""The registry's listed first-party providers match what the distributions publish.

``KNOWN_PROVIDERS`` and ``KNOWN_SCHEMES`` must be listed (an uninstalled distribution has
no entry point to read), so this test is what keeps them from drifting: every provider
distribution's pyproject.toml is read and compared with them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from harbor_secrets.registry import KNOWN_PROVIDERS, KNOWN_SCHEMES, Registry

ROOT = Path(__file__).resolve().parents[1]


def _published() -> dict[str, str]:
    """Entry-point name → distribution, from every providers/*/pyproject.toml."""
    found = {}
    for pyproject in sorted(ROOT.glob("providers/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        points = project.get("entry-points", {}).get("harbor_secrets.providers", {})
        for name in points:
            found[name] = project["name"]
    return found


def test_known_providers_are_exactly_the_published_ones() -> None:
    published = _published()
    assert {name: dist for name, (dist, _) in KNOWN_PROVIDERS.items()} == published


def test_each_install_hint_names_an_extra_of_the_core() -> None:
    core = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = core["optional-dependencies"]
    for distribution, extra in KNOWN_PROVIDERS.values():
        name = extra.removeprefix("harbor-secrets[").removesuffix("]")
        assert any(dep.startswith(distribution + "==") for dep in extras[name]), extra
        assert any(dep.startswith(distribution + "==") for dep in extras["all"]), distribution


def test_known_schemes_belong_to_the_providers_that_resolve_them() -> None:
    registry = Registry()
    for scheme, provider in KNOWN_SCHEMES.items():
        assert scheme in registry.load(provider).reference_schemes
