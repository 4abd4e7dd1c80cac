"""The env-file provider honours the shared provider contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values
from harbor_secrets_envfile import EnvFileProvider

from harbor_secrets.testing import ProviderContract


class TestEnvFileContract(ProviderContract):
    provider_class = EnvFileProvider

    @pytest.fixture
    def sink_options(self, tmp_path: Path) -> dict[str, Any]:
        path = tmp_path / "harbor.env"
        path.write_text("# kept\nUNRELATED='value'\n")
        return {"path": str(path)}

    @pytest.fixture
    def unreachable_options(self, tmp_path: Path) -> dict[str, Any]:
        """A path below a regular file: no directory can ever be there."""
        blocker = tmp_path / "blocker"
        blocker.write_text("")
        return {"path": str(blocker / "harbor.env")}

    @pytest.fixture(autouse=True)
    def _file_stays_readable(self, tmp_path: Path, sink_options: dict[str, Any]) -> Iterator[None]:
        """After every contract test the file still parses and keeps the unrelated line."""
        yield
        path = tmp_path / "harbor.env"
        assert path.read_text().startswith("# kept\nUNRELATED='value'\n")
        assert dotenv_values(path)["UNRELATED"] == "value"
        assert sorted(p.name for p in tmp_path.iterdir() if p.name != "blocker") in (
            ["harbor.env"],
            ["harbor.env", "harbor.env.lock"],
        )
