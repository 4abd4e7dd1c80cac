"""``make dist`` builds what a user installs, and a fresh virtualenv can install and run it.

Nothing is on PyPI yet, so the README's install is ``make dist``, then
``pip install --no-deps -r dist/requirements.txt`` (exactly the files built, checked by hash,
no index) and ``pip install 'harbor-secrets[all]'`` (their third-party dependencies). This
test does exactly that, once per session: it runs the Makefile target into a temporary
directory, checks that every distribution (the core and every ``providers/*/pyproject.toml``,
whichever exist) has one wheel and one sdist pinned by hash and that nothing of the test kit is
in them, installs into a new virtualenv as the README says, with a higher version of our name
on offer to the second step as a published impostor would be, and runs the installed CLI from
outside the checkout so it can only be the installed code that answers.

A failed build or install fails the test; nothing here skips.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from doc_blocks import snippet

from harbor_testkit.environ import clean_environ

REPO = Path(__file__).resolve().parents[1]
CORE = "harbor-secrets"
#: Building five distributions and installing them with boto3 and friends takes about a minute;
#: this is headroom for a cold package cache, not an expected duration.
STEP_TIMEOUT = 600
#: Modules of the test kit (fault-injecting proxy, server launchers, fake clock) that must never
#: reach a user, whatever package they might be moved into.
TESTKIT_MODULES = {"proxy.py", "servers.py", "clock.py"}
#: The core wheel must ship these: the demo runs the stand-in issuer, and third-party providers
#: run the public contract suite against their own stores.
CORE_REQUIRED = {"harbor_secrets/stand_in_issuer.py", "harbor_secrets/testing/contract.py"}

pytestmark = pytest.mark.timeout(3 * STEP_TIMEOUT)


def _normalize(name: str) -> str:
    """A distribution name as wheel and sdist file names spell it (PEP 427 / PEP 625)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _project_names() -> list[str]:
    """The core and every provider that has a pyproject.toml right now (others add providers)."""
    names = [CORE]
    for pyproject in sorted(REPO.glob("providers/*/pyproject.toml")):
        names.append(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["name"])
    return names


def _environ(**extra: str) -> dict[str, str]:
    """No real-account settings, no interpreter or make state from whoever runs the tests.

    PYTHONPATH could put the checkout on the fresh venv's path and make a broken wheel look
    fine; MAKEFLAGS from ``make unit`` would pass its variables and jobserver to our make. The
    package index settings (PIP_*) and HOME stay, so pip's cache makes reruns fast.
    """
    dropped = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS")
    environ = {k: v for k, v in clean_environ().items() if k not in dropped and k != "MAKELEVEL"}
    environ.update(extra)
    return environ


def _run(
    command: Sequence[str | Path], *, cwd: Path, environ: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a step; fail (never skip) with its whole output if it does not exit 0."""
    started = time.monotonic()
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=environ if environ is not None else _environ(),
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    seconds = time.monotonic() - started
    print(f"{seconds:6.1f}s  {' '.join(str(part) for part in command)}")  # shown with -s / -rP
    if result.returncode != 0:
        pytest.fail(
            f"{command} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-20000:]}\n--- stderr\n{result.stderr[-20000:]}"
        )
    return result


REQUIREMENTS = "requirements.txt"
#: A version far above ours, as someone publishing our name on an index would pick.
IMPOSTOR_VERSION = "99.0.0"


def _make_dist(out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """``make dist DIST=out`` with the virtualenv that runs the tests.

    ``-o`` keeps make from rebuilding that virtualenv in the middle of a test run when a
    pyproject.toml is newer than its stamp (someone may be adding a provider right now).
    """
    venv = Path(sys.prefix)
    return _run(
        [
            *("make", "--no-print-directory", *flags, "-o", f"{venv}/.installed", "dist"),
            *(f"VENV={venv}", f"DIST={out}"),
        ],
        cwd=REPO,
    )


@dataclass(frozen=True)
class Installed:
    """The fresh virtualenv that installed the built files, then ``harbor-secrets[all]``."""

    bin: Path
    report: dict[str, object]  # pip's report of the first step: our files
    dependencies: dict[str, object]  # and of the second: what came from the index
    workdir: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The installed console script, run outside the checkout with a scratch HOME."""
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        return _run(
            [self.bin / "harbor-secrets", *args],
            cwd=self.workdir,
            environ=_environ(HOME=str(home)),
        )


@dataclass(frozen=True)
class Built:
    dist: Path
    output: str  # what `make dist` printed


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """``make dist`` into a temporary directory, once for the module."""
    out = tmp_path_factory.mktemp("dist")
    result = _make_dist(out)
    return Built(out, result.stdout + result.stderr)


@pytest.fixture(scope="module")
def dist_dir(built: Built) -> Path:
    return built.dist


def _impostor_wheel(directory: Path, name: str, version: str) -> Path:
    """A minimal valid wheel of ``name`` at ``version``: what an index could offer."""
    stem = f"{_normalize(name)}-{version}"
    files = {
        f"{stem}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{stem}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{path},,\n" for path in files) + f"{stem}.dist-info/RECORD,,\n"
    wheel = directory / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in {**files, f"{stem}.dist-info/RECORD": record}.items():
            archive.writestr(path, text)
    return wheel


def readme_install_steps(dist_dir: Path) -> tuple[list[str], list[str]]:
    """The two ``pip`` commands of the README's install block (``<!-- snippet: install -->``),
    as written, with its ``dist/`` pointing at the directory built here."""
    steps = []
    for line in snippet("install").code.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0].endswith("/bin/pip"):
            steps.append([str(dist_dir / w[5:]) if w.startswith("dist/") else w for w in words[1:]])
    first, second = steps
    assert first[0] == second[0] == "install"
    return first, second


@pytest.fixture(scope="module")
def installed(dist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A new virtualenv installed the README's way: ``pip install --no-deps -r
    DIST/requirements.txt`` (from the directory, by hash), then ``pip install
    'harbor-secrets[all]'`` with a higher version of our name on offer, as a published
    impostor would be. pip's ``--report`` tells what each step installed and from where."""
    root = tmp_path_factory.mktemp("venv")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=root)
    impostors = root / "impostors"
    impostors.mkdir()
    _impostor_wheel(impostors, CORE, IMPOSTOR_VERSION)
    ours, theirs = root / "ours.json", root / "theirs.json"
    first, second = readme_install_steps(dist_dir)
    pip: list[str | Path] = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, *first, "--report", ours], cwd=root)
    _run([*pip, *second, "--report", theirs, "--find-links", impostors], cwd=root)
    workdir = root / "work"
    workdir.mkdir()
    return Installed(
        venv / "bin",
        json.loads(ours.read_text(encoding="utf-8")),
        json.loads(theirs.read_text(encoding="utf-8")),
        workdir,
    )


def _names(path: Path) -> list[str]:
    """Member names of a wheel or an sdist."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            return wheel.namelist()
    with tarfile.open(path) as sdist:
        return sdist.getnames()


def test_one_wheel_and_one_sdist_per_distribution(dist_dir: Path) -> None:
    """Exactly the core and every provider, once each as a wheel and as an sdist; the test kit
    (or anything else) never appears among them."""
    found: dict[str, list[str]] = {}
    for path in sorted(dist_dir.iterdir()):
        if path.name != REQUIREMENTS:
            found.setdefault(path.name.split("-")[0], []).append(path.name)
    expected = {_normalize(name) for name in _project_names()}
    assert set(found) == expected, f"built {sorted(found)}, expected {sorted(expected)}"
    for name, files in found.items():
        wheels = [f for f in files if f.endswith(".whl")]
        sdists = [f for f in files if f.endswith(".tar.gz")]
        assert len(wheels) == 1, f"{name}: {files}"
        assert len(sdists) == 1, f"{name}: {files}"
        assert len(files) == 2, f"{name}: {files}"


def test_no_test_kit_is_shipped(dist_dir: Path) -> None:
    """Wheels hold only their own package and dist-info; no wheel or sdist carries the test kit
    (harbor_testkit: proxies, server launchers, fake clock)."""
    for path in sorted(dist_dir.iterdir()):
        if path.name == REQUIREMENTS:
            continue
        names = _names(path)
        assert names, f"{path.name} is empty"
        leaked = [
            n for n in names if "harbor_testkit" in n or n.rsplit("/", 1)[-1] in TESTKIT_MODULES
        ]
        assert not leaked, f"{path.name} ships test-kit files: {leaked}"
        if path.suffix == ".whl":
            package = path.name.split("-")[0]
            tops = {n.split("/")[0] for n in names}
            assert all(t == package or t.startswith(f"{package}-") for t in tops), (
                f"{path.name} has top-level entries {sorted(tops)}"
            )


def test_core_wheel_ships_the_stand_in_issuer_and_the_contract_suite(dist_dir: Path) -> None:
    """``harbor-secrets demo`` needs the stand-in issuer; third-party providers need the public
    contract suite. Both live in the core's wheel, unlike the private test kit."""
    (wheel,) = dist_dir.glob(f"{_normalize(CORE)}-*.whl")
    missing = CORE_REQUIRED - set(_names(wheel))
    assert not missing, f"{wheel.name} lacks {sorted(missing)}"


def test_requirements_pin_every_built_file_by_hash_and_ask_no_index(dist_dir: Path) -> None:
    text = (dist_dir / REQUIREMENTS).read_text(encoding="utf-8")
    assert "\n--no-index\n" in text
    assert "\n--find-links .\n" in text
    pinned = dict(
        re.findall(r"^([a-z-]+)==\S+((?: \\\n    --hash=sha256:[0-9a-f]{64})+)", text, re.M)
    )
    assert set(pinned) == set(_project_names())
    for name, hashes in pinned.items():
        files = sorted(dist_dir.glob(f"{_normalize(name)}-*"))
        expected = {hashlib.sha256(path.read_bytes()).hexdigest() for path in files}
        assert set(re.findall(r"[0-9a-f]{64}", hashes)) == expected, name


def test_a_file_changed_after_the_build_is_refused(
    dist_dir: Path, installed: Installed, tmp_path: Path
) -> None:
    """The hashes are what make the files exact: one changed byte and pip installs nothing."""
    copy = tmp_path / "dist"
    shutil.copytree(dist_dir, copy)
    (wheel,) = copy.glob(f"{_normalize(CORE)}-*.whl")
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    pip = [str(installed.bin / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    result = subprocess.run(
        [*pip, "--dry-run", "--force-reinstall", "--no-deps", "-r", str(copy / REQUIREMENTS)],
        capture_output=True,
        text=True,
        env=_environ(),
        timeout=STEP_TIMEOUT,
        check=False,
    )
    assert result.returncode != 0, result.stdout
    assert "DO NOT MATCH THE HASHES" in result.stderr


def test_a_higher_version_of_our_name_elsewhere_is_never_installed(
    installed: Installed,
) -> None:
    """The second step resolved ``harbor-secrets[all]`` with a 99.0.0 on offer: ours stayed."""
    entries = installed.dependencies["install"]
    assert isinstance(entries, list)
    names = {_normalize(entry["metadata"]["name"]) for entry in entries}
    assert not names & {_normalize(n) for n in _project_names()}, sorted(names)
    version = _run(
        [
            installed.bin / "python",
            "-c",
            "import harbor_secrets; print(harbor_secrets.__version__)",
        ],
        cwd=installed.workdir,
    )
    assert version.stdout.strip() != IMPOSTOR_VERSION


def test_make_dist_is_quiet_unless_asked(built: Built) -> None:
    """One line per build and per distribution, not the build backends' hundreds."""
    lines = built.output.splitlines()
    assert "running " not in built.output  # setuptools' chatter
    assert len(lines) <= 2 * len(_project_names()) + 3, built.output
    assert any(line.startswith("wrote ") and REQUIREMENTS in line for line in lines)


def test_all_installs_every_distribution_from_the_built_files(
    dist_dir: Path, installed: Installed
) -> None:
    """``[all]`` pulls in every provider, and each of ours came from the built wheels, not an
    index (a same-named upload elsewhere must not be what we test)."""
    ours: dict[str, str] = {}
    entries = installed.report["install"]
    assert isinstance(entries, list)
    for entry in entries:
        name = entry["metadata"]["name"]
        if _normalize(name).startswith(_normalize(CORE)):
            ours[_normalize(name)] = entry["download_info"]["url"]
    assert set(ours) == {_normalize(n) for n in _project_names()}, (
        f"installed {sorted(ours)}; is every provider in the core's [all] extra?"
    )
    for name, url in ours.items():
        assert url.startswith(dist_dir.as_uri() + "/"), f"{name} came from {url}"
        assert url.endswith(".whl"), f"{name} was built again from {url}"


def test_installed_cli_reports_its_version(dist_dir: Path, installed: Installed) -> None:
    """The console script runs from the wheel, and says the version the wheel was built as."""
    (wheel,) = dist_dir.glob(f"{_normalize(CORE)}-*.whl")
    version = wheel.name.split("-")[1]
    result = installed.cli("--version")
    assert result.stdout.strip() == f"{CORE}, version {version}"
    where = _run(
        [installed.bin / "python", "-c", "import harbor_secrets; print(harbor_secrets.__file__)"],
        cwd=installed.workdir,
    )
    assert Path(where.stdout.strip()).is_relative_to(installed.bin.parent), where.stdout


def test_installed_cli_finds_every_provider(installed: Installed) -> None:
    """Every provider's entry point resolves and imports in the fresh environment."""
    result = installed.cli("-o", "json", "providers")
    providers = json.loads(result.stdout)
    assert providers, "no providers listed"
    not_installed = {p["name"]: p["status"] for p in providers if p["status"] != "installed"}
    assert not not_installed, f"{not_installed}\n{result.stdout}"
    distributions = {_normalize(p["distribution"]) for p in providers}
    assert distributions == {_normalize(n) for n in _project_names()[1:]}, result.stdout


def test_installed_demo_writes_the_env_file(installed: Installed) -> None:
    """The whole job, end to end, from the installed distributions alone."""
    directory = installed.workdir / "demo"
    installed.cli("demo", "--directory", str(directory))
    env_file = directory / "harbor.env"
    assert env_file.is_file(), sorted(p.name for p in directory.iterdir())
    text = env_file.read_text(encoding="utf-8")
    assert "HARBOR_SANDBOX_SERVICE_PROVIDER_ACCESS_TOKEN=" in text
    assert "HARBOR_PRODUCTION_TOWER_ACCESS_ACCESS_TOKEN=" in text


def test_dist_keeps_other_files_and_replaces_our_old_builds(tmp_path: Path) -> None:
    """``make dist``'s clean-up removes only our own wheels and sdists, so the Lambda zip that
    ``make lambda-zip`` writes into dist/ survives, and a stale version never sits beside a
    new one. Checked with a dry run of the recipe on a directory seeded with both."""
    result = _make_dist(tmp_path, "-n")
    (clean_up,) = [line for line in result.stdout.splitlines() if line.startswith("rm -f ")]
    for name in ("harbor-secrets-lambda.zip", "harbor_secrets-0.0.9-py3-none-any.whl"):
        (tmp_path / name).write_text("", encoding="utf-8")
    (tmp_path / "harbor_secrets_vault-0.0.9.tar.gz").write_text("", encoding="utf-8")
    _run(["sh", "-c", clean_up], cwd=REPO)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["harbor-secrets-lambda.zip"]


def test_make_help_lists_dist() -> None:
    """A newcomer finds the target where the others are listed."""
    result = _run(["make", "--no-print-directory", "help"], cwd=REPO)
    assert "make dist" in result.stdout
