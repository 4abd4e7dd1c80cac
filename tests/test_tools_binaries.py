"""tools/ensure_binaries.py: the pinned helm and promtool, and the pins that guard them."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "ensure_binaries.py"


def load_tools() -> ModuleType:
    """The script as a module (tools/ is a directory of scripts, not a package)."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("ensure_binaries", SCRIPT)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPT.parent))


def test_the_fixtures_give_the_pinned_versions(helm: Path, promtool: Path) -> None:
    version = subprocess.run(
        [str(helm), "version", "--short"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("v4.1.4+")
    version = subprocess.run(
        [str(promtool), "--version"], capture_output=True, text=True, check=True
    )
    assert "promtool, version 2.42.0+ds" in version.stdout + version.stderr


def test_the_default_cache_is_never_committed() -> None:
    tools = load_tools()
    assert tools.DEFAULT_CACHE == REPO / ".tools"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".tools/helm-0123/helm"], cwd=REPO, check=False
    )
    assert ignored.returncode == 0


def test_an_archive_that_is_not_the_pinned_one_is_refused_and_removed(tmp_path: Path) -> None:
    tools = load_tools()
    archive = tmp_path / "downloads" / tools.BINARIES["helm"].archive
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"not the package the pin names")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "helm"],
        capture_output=True,
        text=True,
        env={**os.environ, "HARBOR_TOOLS_CACHE": str(tmp_path)},
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "not the pinned" in result.stderr
    assert not archive.exists()
    assert not list(tmp_path.glob("helm-*/helm")), "nothing was unpacked from it"


def test_a_cached_binary_that_changed_is_not_used(tmp_path: Path, helm: Path) -> None:
    tools = load_tools()
    binary = tools.BINARIES["helm"]
    assert tools.works(binary, helm)
    impostor = tmp_path / "helm"
    impostor.write_text("#!/bin/sh\necho v4.1.4+g05fa379\n")  # the right answer, the wrong file
    impostor.chmod(0o755)
    assert not tools.works(binary, impostor)
