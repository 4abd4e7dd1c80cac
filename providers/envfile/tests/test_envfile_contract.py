"""The env-file provider honours the shared provider contract."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values
from harbor_secrets_envfile import EnvFileProvider

from harbor_secrets import Provider
from harbor_secrets.testing import ProviderContract


class TestEnvFileContract(ProviderContract):
    @pytest.fixture
    def make_provider(self, tmp_path: Path) -> Callable[[], Provider]:
        path = tmp_path / "harbor.env"
        path.write_text("# kept\nUNRELATED='value'\n")
        return lambda: EnvFileProvider(path)

    @pytest.fixture(autouse=True)
    def _file_stays_readable(self, tmp_path: Path) -> Iterator[None]:
        """After every contract test the file still parses and keeps the unrelated line."""
        yield
        path = tmp_path / "harbor.env"
        assert path.read_text().startswith("# kept\nUNRELATED='value'\n")
        assert dotenv_values(path)["UNRELATED"] == "value"
        assert sorted(p.name for p in tmp_path.iterdir()) in (
            ["harbor.env"],
            ["harbor.env", "harbor.env.lock"],
        )
