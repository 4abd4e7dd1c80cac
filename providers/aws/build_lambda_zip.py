"""Build the Lambda deployment package: ``make lambda-zip`` → dist/harbor-secrets-lambda.zip.

The zip holds the core, the AWS provider (with their dist-info, so entry points resolve) and
the core's dependencies as wheels for Lambda's platform. boto3/botocore are left out: every
Python runtime ships them (``--include-boto3`` bundles them to pin a version). The archive
is reproducible — sorted entries, fixed timestamps and modes — so Terraform's
``source_code_hash`` changes only when the content does.

    python providers/aws/build_lambda_zip.py [--python-version 3.12] [--arch x86_64|arm64]
        [--config harbor-secrets.toml] [--output dist/harbor-secrets-lambda.zip]

The handler is ``harbor_secrets_aws.lambda_handler.handler``. ``--config`` packages a
configuration as ``config.toml`` at the root (the handler's third choice, after the
HARBOR_SECRETS_CONFIG_TOML and HARBOR_SECRETS_CONFIG variables).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
HANDLER = "harbor_secrets_aws.lambda_handler.handler"
#: Shipped by every Lambda Python runtime; bundling them only adds ~20 MB.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six"}
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    return (match.group(0) if match else requirement).lower().replace("_", "-")


def third_party_requirements(include_boto3: bool) -> list[str]:
    """The core's and the provider's dependencies, minus our own and the runtime's."""
    requirements: list[str] = []
    for pyproject in (REPO_ROOT / "pyproject.toml", HERE / "pyproject.toml"):
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        for requirement in project.get("dependencies", []):
            name = _name(requirement)
            if name.startswith("harbor-secrets"):
                continue
            if name in RUNTIME_PROVIDED and not include_boto3:
                continue
            requirements.append(requirement)
    return sorted(set(requirements))


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "install", *args]
    subprocess.run(command, check=True)  # noqa: S603 - fixed argv built here, no shell


def stage(target: Path, *, python_version: str, arch: str, include_boto3: bool) -> None:
    """Install everything the function imports into ``target``."""
    pip("--quiet", "--no-deps", "--target", str(target), str(REPO_ROOT), str(HERE))
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts are of no use here
    requirements = third_party_requirements(include_boto3)
    if requirements:
        pip(
            "--quiet",
            "--target",
            str(target),
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            python_version,
            "--platform",
            PLATFORMS[arch],
            *requirements,
        )
    for junk in [target / "bin", *target.rglob("__pycache__")]:
        shutil.rmtree(junk, ignore_errors=True)


def write_zip(source: Path, output: Path) -> None:
    """A deterministic zip of ``source``'s contents."""
    output.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in source.rglob("*") if p.is_file())
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "dist/harbor-secrets-lambda.zip")
    parser.add_argument("--python-version", default="3.12", help="the function's runtime")
    parser.add_argument("--arch", choices=sorted(PLATFORMS), default="x86_64")
    parser.add_argument("--config", type=Path, help="package this file as config.toml")
    parser.add_argument("--include-boto3", action="store_true", help="bundle boto3/botocore")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="harbor-lambda-") as tmp:
        target = Path(tmp) / "package"
        stage(
            target,
            python_version=args.python_version,
            arch=args.arch,
            include_boto3=args.include_boto3,
        )
        if args.config:
            shutil.copyfile(args.config, target / "config.toml")
        write_zip(target, args.output)
    size = args.output.stat().st_size
    print(f"{args.output} ({size / 1024 / 1024:.1f} MiB); handler: {HANDLER}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
