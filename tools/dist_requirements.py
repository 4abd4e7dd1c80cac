"""Write DIST/requirements.txt: what installs exactly the distributions ``make dist`` built.

``pip install --find-links dist 'harbor-secrets[all]'`` takes a same-named distribution with
a higher version from the package index if anyone ever publishes one (dependency
confusion). The file written here pins each of our distributions to the version built and
to the SHA-256 of its wheel and sdist, and says ``--no-index`` with ``--find-links .`` (pip
reads a relative find-links in a requirements file relative to the file), so

    pip install --no-deps -r dist/requirements.txt

installs these files and nothing else, from nowhere else; the third-party dependencies then
come from your usual index with ``pip install 'harbor-secrets[all]'``, which finds ours
already installed and leaves them alone.

    python tools/dist_requirements.py DIST      # run by `make dist`
"""

from __future__ import annotations

import hashlib
import re
import sys
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FILE_NAME = "requirements.txt"


def normalize(name: str) -> str:
    """A distribution name as wheel and sdist file names spell it (PEP 427 / PEP 625)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def project_names(root: Path = REPO_ROOT) -> list[str]:
    """The core and every provider: the distributions ``make dist`` builds."""
    names = [tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]]
    for pyproject in sorted(root.glob("providers/*/pyproject.toml")):
        names.append(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"])
    return [str(project["name"]) for project in names]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def built_files(dist: Path, name: str) -> tuple[str, list[Path]]:
    """The version built of ``name`` and its wheel and sdist; exactly one of each."""
    stem = normalize(name)
    wheels = sorted(dist.glob(f"{stem}-*.whl"))
    sdists = sorted(dist.glob(f"{stem}-*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        found = ", ".join(p.name for p in wheels + sdists) or "nothing"
        raise SystemExit(f"{dist}: expected one wheel and one sdist of {name}, found {found}")
    versions = {wheels[0].name.split("-")[1], sdists[0].name.removesuffix(".tar.gz").split("-")[1]}
    if len(versions) != 1:
        raise SystemExit(f"{dist}: the wheel and sdist of {name} differ in version: {versions}")
    return versions.pop(), [wheels[0], sdists[0]]


def requirements(dist: Path, names: list[str]) -> str:
    lines = [
        "# Written by `make dist`: exactly the distributions it built, checked by SHA-256,",
        "# from this directory only. Install them (no package index is asked for these names):",
        "#   pip install --no-deps -r dist/requirements.txt",
        "# then their third-party dependencies from your usual index (ours are already there,",
        "# so pip leaves them alone):",
        "#   pip install 'harbor-secrets[all]'",
        "--no-index",
        "--find-links .",
    ]
    for name in names:
        version, files = built_files(dist, name)
        hashes = " \\\n    ".join(f"--hash=sha256:{sha256(path)}" for path in files)
        lines.append(f"{name}=={version} \\\n    {hashes}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tools/dist_requirements.py DIST", file=sys.stderr)
        return 2
    dist = Path(argv[0])
    names = project_names()
    target = dist / FILE_NAME
    target.write_text(requirements(dist, names), encoding="utf-8")
    for name in names:
        version, files = built_files(dist, name)
        print(f"built {name} {version}: {', '.join(str(path) for path in files)}")
    print(f"wrote {target}: pip install --no-deps -r {target}, then 'harbor-secrets[all]'")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
