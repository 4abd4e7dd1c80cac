"""The Lambda package builder's offline parts: what it bundles and that the zip is reproducible.

(Installing the wheels needs the package index, so the full build is exercised by
``make lambda-zip``, not here.)
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path
from types import ModuleType

BUILDER = Path(__file__).resolve().parents[1] / "build_lambda_zip.py"


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("harbor_build_lambda_zip", BUILDER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bundles_the_cores_dependencies_but_not_the_runtimes() -> None:
    builder = load_builder()
    names = {builder._name(r) for r in builder.third_party_requirements(include_boto3=False)}
    assert {"requests", "click"} <= names
    assert not names & {"boto3", "botocore", "harbor-secrets"}
    with_boto3 = {builder._name(r) for r in builder.third_party_requirements(include_boto3=True)}
    assert "boto3" in with_boto3


def test_zip_is_reproducible(tmp_path: Path) -> None:
    builder = load_builder()
    source = tmp_path / "package"
    (source / "harbor_secrets_aws").mkdir(parents=True)
    (source / "harbor_secrets_aws" / "lambda_handler.py").write_text("def handler(e, c): ...\n")
    (source / "config.toml").write_text("[refresh]\n")
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    builder.write_zip(source, first)
    (source / "config.toml").touch()  # a newer mtime must not change the archive
    builder.write_zip(source, second)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        assert archive.namelist() == ["config.toml", "harbor_secrets_aws/lambda_handler.py"]
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
