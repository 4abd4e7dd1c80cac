"""The token-file store honours the shared provider contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harbor_secrets_envfile import TokenFilesProvider

from harbor_secrets.testing import ProviderContract


class TestTokenFilesContract(ProviderContract):
    provider_class = TokenFilesProvider

    @pytest.fixture
    def sink_options(self, tmp_path: Path) -> dict[str, Any]:
        (tmp_path / "tokens").mkdir()
        return {"directory": str(tmp_path / "tokens")}

    @pytest.fixture
    def unreachable_options(self, tmp_path: Path) -> dict[str, Any]:
        """A directory that does not exist: nothing is created above the configured one."""
        return {"directory": str(tmp_path / "no-such-directory")}
