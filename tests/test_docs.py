"""The documentation runs: every code and configuration block is executed or validated here.

tests/doc_blocks.py finds the blocks of README.md, config.example.toml, docs/*.md,
deploy/**/*.md and providers/*/README.md (a new document is covered by its pattern). Every
block gets the check of its language:

* TOML goes through the real ``config check`` code (a fragment is completed with the least
  it needs: credentials, an env-file sink, a target), offline as ``--skip-references`` is;
* YAML objects are validated strictly against the Kubernetes schemas the manifests use; a
  kind those do not know, or a fragment, needs a named check;
* JSON parses, and shows what it claims: a stored record is one, an IAM policy is accepted
  by moto's IAM (which validates the grammar);
* shell, cron and ini blocks are syntax-checked, every ``harbor-secrets`` command line in
  them is parsed by the real CLI (an option that does not exist fails), every ``make``
  target exists, and every repository path they name exists; Python compiles.

Blocks that can run here are marked ``<!-- snippet: NAME -->`` and run by the test of that
name (in this module, in tests/test_reading_doc.py, or tests/test_dist.py for the install)
against the stand-in issuer, OpenBao and moto_server. Blocks that cannot run here (Docker,
Terraform, eksctl, kubectl against a cluster, systemctl on a live host) are marked
``<!-- not run: REASON -->``; they still get every check above, and
``test_the_blocks_that_cannot_run_here_say_why`` prints them with their reasons.
"""

from __future__ import annotations

import configparser
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
import kubernetes_validate
import pytest
import yaml
from doc_blocks import GENERATED, LANGUAGES, REPO, Block, all_blocks, of_lang, snippet, snippets
from doc_servers import Stores, run_block
from dotenv import dotenv_values
from kube_manifests import KUBERNETES_VERSIONS  # the manifests' own validation

from conftest import CLIENT_SECRET, help_text
from harbor_secrets.cli import cli
from harbor_secrets.commands.config_check import effective_config
from harbor_secrets.config import parse_config
from harbor_secrets.durations import parse_duration
from harbor_secrets.freshness import RefreshPolicy
from harbor_secrets.keys import default_env_names
from harbor_secrets.record import TokenRecord
from harbor_secrets.runtime import Runtime
from harbor_testkit.environ import clean_environ

KUSTOMIZE = REPO / "deploy" / "kubernetes"
KUBECTL = Path(sys.executable).parent / "kubectl"

#: Blocks run by tests in other modules, and where. READING.md's snippets are its own
#: module's (test_reading_doc.py checks that it runs exactly those), but for the ones run here.
RUN_ELSEWHERE = {
    "install": "tests/test_dist.py (installs the README's way into a fresh virtualenv)",
    "own-watch-overlay": "tests/test_deploy_kubernetes.py (rendered as a user's overlay)",
    "own-overlay-image": "tests/test_deploy_kubernetes.py (rendered: the pin reaches every pod)",
    "second-host-timer": "tests/test_deploy_systemd_cron.py (applied to the shipped timer)",
    "second-host-cron": "tests/test_deploy_systemd_cron.py (against the shipped crontab)",
}
READING_MODULE = "tests/test_reading_doc.py"


def run_elsewhere() -> dict[str, str]:
    reading = {
        block.snippet: READING_MODULE
        for block in all_blocks()
        if block.path == "docs/READING.md" and block.snippet and block.snippet not in run_here()
    }
    return {**RUN_ELSEWHERE, **reading}


#: Languages whose blocks are instructions: each must be run, or say why it cannot be.
MUST_BE_CLASSIFIED = {"sh", "python", "cron", "ini", "hcl"}


def ids(blocks: list[Block]) -> list[str]:
    return [block.id for block in blocks]


# --- every block is classified ----------------------------------------------------------------


_RUN_HERE: set[str] = set()
F = TypeVar("F", bound=Callable[..., Any])


def runs(*names: str) -> Callable[[F], F]:
    """Mark a test as the one that runs the snippets ``names``."""

    def register(test: F) -> F:
        _RUN_HERE.update(names)
        return test

    return register


def run_here() -> set[str]:
    """Snippet names some test of this module runs."""
    return set(_RUN_HERE)


def test_the_documents_are_found() -> None:
    paths = {block.path for block in all_blocks()}
    for expected in ("README.md", "config.example.toml", "deploy/README.md", "docs/READING.md"):
        assert expected in paths
    assert {p for p in paths if p.startswith("providers/")} == {
        str(p.relative_to(REPO)) for p in REPO.glob("providers/*/README.md")
    }
    assert not paths & set(GENERATED)


@pytest.mark.parametrize("block", all_blocks(), ids=ids(list(all_blocks())))
def test_every_block_is_in_a_known_language_and_classified(block: Block) -> None:
    assert block.lang in LANGUAGES, f"{block.id}: no check for ```{block.lang} blocks yet"
    assert not (block.snippet and block.not_run), block.id
    if block.snippet is not None:
        assert block.snippet in run_here() | set(run_elsewhere()), (
            f"{block.id}: nothing runs <!-- snippet: {block.snippet} -->"
        )
    elif block.lang in MUST_BE_CLASSIFIED or _needs_a_named_check(block):
        assert block.not_run, (
            f"{block.id}: a ```{block.lang} block must be run (<!-- snippet: NAME --> and a "
            "test) or say why it cannot be (<!-- not run: REASON -->)"
        )


def _needs_a_named_check(block: Block) -> bool:
    """YAML or JSON the automatic checks cannot judge on their own."""
    if block.lang == "yaml":
        return any(not _is_object(doc) or not _schema_known(doc) for doc in _yaml_docs(block))
    if block.lang == "json":
        data = json.loads(block.code)
        return _json_kind(data) is None
    return False


def test_every_named_check_has_its_blocks() -> None:
    named = {block.snippet for block in all_blocks() if block.snippet}
    assert run_here() <= named, f"tests for snippets no document has: {run_here() - named}"
    assert set(run_elsewhere()) <= named


def test_the_blocks_that_cannot_run_here_say_why() -> None:
    blocks = [block for block in all_blocks() if block.not_run]
    for block in blocks:
        assert len(block.not_run or "") > 15, f"{block.id}: say why, in words"
        print(f"{block.id} ({block.lang}): {block.not_run}")  # the list, with -s or -rP


def test_text_blocks_hold_no_commands() -> None:
    for block in of_lang(""):
        for line in block.code.splitlines():
            assert not re.match(r"\s*(\$ |harbor-secrets |\.venv/bin/)", line), block.id


# --- TOML: through config check ---------------------------------------------------------------


#: What the documents say an option defaults to from the environment (a sink without
#: ``address`` uses VAULT_ADDR, one without ``region`` AWS_REGION): set as the docs assume.
DOCUMENTED_ENVIRONMENT = {"VAULT_ADDR": "https://vault.example.com:8200", "AWS_REGION": "eu-west-1"}


def complete(data: dict[str, Any], env_file: Path) -> dict[str, Any]:
    """A configuration fragment plus the least a full configuration needs."""
    config = dict(data)
    credentials = config.setdefault(
        "credentials", {"main": {"client_id": "docs", "client_secret": "env:HARBOR_CLIENT_SECRET"}}
    )
    sinks = config.setdefault("sinks", {"docs": {"provider": "envfile", "path": str(env_file)}})
    if "targets" not in config:
        config["targets"] = [
            {
                "credentials": next(iter(credentials)),
                "environments": ["sandbox"],
                "sinks": list(sinks),
            }
        ]
    return config


@pytest.mark.parametrize("block", of_lang("toml"), ids=ids(of_lang("toml")))
def test_toml_blocks_pass_config_check(block: Block, tmp_path: Path) -> None:
    """The real config check, offline (--skip-references): no credentials exist here."""
    data = complete(tomllib.loads(block.code), tmp_path / "harbor.env")
    environ = {"HOME": str(tmp_path), **DOCUMENTED_ENVIRONMENT}
    config = parse_config(data, source=block.id, environ=environ, base_dir=tmp_path)
    with Runtime(config, environ=environ, resolve_references=False) as runtime:
        checked = effective_config(runtime)
    assert checked["tokens"]


def test_the_example_configuration_with_every_commented_option_passes_too(
    tmp_path: Path,
) -> None:
    """config.example.toml's commented-out alternatives are configuration too."""
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    option = re.compile(r"^# (\[[\w.-]+\](?:\s+#.*)?|[a-z_]+ = .+)$")
    uncommented = "\n".join(
        match[1] if (match := option.match(line)) else line for line in text.splitlines()
    )
    assert uncommented.count("[sinks.") >= 4, "fewer commented sinks than expected"
    data = tomllib.loads(uncommented)
    data["sinks"]["tokens"]["directory"] = str(tmp_path)
    environ = {"HOME": str(tmp_path), **DOCUMENTED_ENVIRONMENT}
    config = parse_config(data, source="config.example.toml", environ=environ, base_dir=tmp_path)
    with Runtime(config, environ=environ, resolve_references=False) as runtime:
        sinks = effective_config(runtime)["sinks"]
    assert set(sinks) == {"local", "tokens", "vault", "params"}
    assert sinks["local"]["provider"] == "envfile"


# --- YAML: the Kubernetes schemas -------------------------------------------------------------


def _yaml_docs(block: Block) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(block.code) if doc is not None]


def _is_object(doc: Any) -> bool:
    return isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc


def _schema_known(doc: dict[str, Any]) -> bool:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[-1], strict=True)
    except kubernetes_validate.utils.SchemaNotFoundError:
        return False
    except kubernetes_validate.ValidationError:
        return True  # known, and invalid: the test below says so
    return True


@pytest.mark.parametrize("block", of_lang("yaml"), ids=ids(of_lang("yaml")))
def test_yaml_objects_validate_strictly(block: Block) -> None:
    docs = _yaml_docs(block)
    assert docs, block.id
    for doc in docs:
        if _is_object(doc) and _schema_known(doc):
            for version in KUBERNETES_VERSIONS:
                kubernetes_validate.validate(doc, version, strict=True)


# --- JSON: what it shows ----------------------------------------------------------------------


def _json_kind(data: Any) -> str | None:
    if isinstance(data, dict) and "access_token" in data and "schema" in data:
        return "record"
    if isinstance(data, dict) and ("Statement" in data or "Effect" in data):
        return "iam-policy"
    return None


@pytest.mark.parametrize("block", of_lang("json"), ids=ids(of_lang("json")))
def test_json_blocks_are_what_they_show(block: Block, stores: Stores) -> None:
    data = json.loads(block.code)
    kind = _json_kind(data)
    if kind == "record":
        record = TokenRecord.from_dict(data)
        assert record.to_dict().keys() == data.keys()
    elif kind == "iam-policy":
        policy = data if "Statement" in data else {"Version": "2012-10-17", "Statement": [data]}
        iam = stores.boto3_client("iam")
        name = f"docs-{block.path.replace('/', '-').replace('.', '-')}-{block.line}"
        iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(policy))


# --- shell, cron, ini: syntax, our CLI's options, make targets, repository paths ---------------


_OUR_COMMAND = re.compile(r"(?:^|/)harbor-secrets$")
_IMAGE = re.compile(r"/harbor-secrets:[\w.@:-]+$")  # `docker run … IMAGE ARGS`: our entry point
_OPERATORS = {"|", "||", "&&", ";", "&", ")", ">", ">>", "<", "2>&1", "|&"}
_REPO_PATH = re.compile(r"^(?:\./)?(?:deploy|providers|docs|tools|bench|harbor_secrets)/\S*$")


def _logical_lines(code: str) -> Iterator[str]:
    joined = re.sub(r"\\\n\s*", " ", code)
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            yield line


def _tokens(line: str) -> list[str]:
    line = re.sub(r"\d*>&\d+|\d*>>?\s*\S+", " ", line)  # redirections: not arguments
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;<>()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def invocations(code: str) -> list[list[str]]:
    """The argv after ``harbor-secrets`` of every command that runs it in ``code``: in command
    position (after ``VAR=value``, ``sudo -u U``, ``timeout N``, ``flock -n FILE``), inside
    ``$(…)``, and after the image of a ``docker run``."""
    found: list[list[str]] = []
    for line in _logical_lines(code):
        for inner in re.findall(r"\$\(([^()]*)\)", line):
            found += invocations(inner)
        command: list[str] = []
        for token in [*_tokens(re.sub(r"\$\([^()]*\)", "SUBSTITUTED", line)), ";"]:
            if token in _OPERATORS:
                argv = _our_argv(command)
                if argv is not None:
                    found.append(argv)
                command = []
            else:
                command.append(token)
    return found


def _our_argv(command: list[str]) -> list[str] | None:
    """``command``'s arguments to harbor-secrets, or None if it does not run it."""
    words = list(command)
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words.pop(0)
    while words:
        head = words[0]
        if head in ("sudo", "exec", "env", "nohup"):
            words.pop(0)
            while words and words[0].startswith("-"):
                option = words.pop(0)
                if option in ("-u", "-g") and words:
                    words.pop(0)
        elif head == "timeout" and len(words) > 1:
            words[:2] = []
        elif head == "flock":
            words.pop(0)
            while words and words[0].startswith("-"):
                words.pop(0)
            words[:1] = []  # the lock file
        else:
            break
    if words and _OUR_COMMAND.search(words[0]):
        return words[1:]
    if words[:2] == ["docker", "run"]:
        for index, word in enumerate(words):
            if _IMAGE.search(word):
                return words[index + 1 :] or ["sync"]  # the image's CMD
    return None


#: Options whose values are paths on the host a document is written for, not on this one.
HOST_PATHS = {"metrics_file"}


def check_argv(argv: list[str]) -> None:
    """Parse ``harbor-secrets ARGV`` with the real CLI (nothing runs): an unknown command or
    option, or a value its type refuses (a scope, a duration), fails here."""
    try:
        context = cli.make_context("harbor-secrets", list(argv))
        command: click.Command = cli
        while isinstance(command, click.Group):
            rest = [*getattr(context, "_protected_args", []), *context.args]
            if not rest:
                return
            name, found, rest = command.resolve_command(context, rest)
            assert found is not None
            assert name is not None
            command = found
            context = command.make_context(name, rest, parent=context)
    except click.exceptions.Exit:
        return  # --version, --help
    except click.BadParameter as exc:
        if exc.param is None or exc.param.name not in HOST_PATHS:
            raise


_SHELL_BLOCKS = of_lang("sh", "cron", "ini")


@pytest.mark.parametrize("block", _SHELL_BLOCKS, ids=ids(_SHELL_BLOCKS))
def test_command_blocks_are_sound(block: Block) -> None:
    code = block.code
    if block.lang == "cron":
        code = _cron_commands(block)
    elif block.lang == "ini":
        code = _ini_commands(block)
    else:
        checked = subprocess.run(["bash", "-n"], input=code, capture_output=True, text=True)
        assert checked.returncode == 0, f"{block.id}: {checked.stderr}"
    for argv in invocations(code):
        try:
            check_argv(argv)
        except click.ClickException as exc:
            pytest.fail(f"{block.id}: harbor-secrets {shlex.join(argv)}: {exc.format_message()}")
    for argv in invocations(code):
        check_reader_margin(block.id, argv)
    check_installs(block.id, code)
    for line in _logical_lines(code):
        tokens = _tokens(line)
        if tokens[:1] == ["make"]:
            for target in (t for t in tokens[1:] if not t.startswith("-") and "=" not in t):
                assert _make_target(target), f"{block.id}: make has no target {target}"
        for path in _repo_paths(tokens):
            assert (REPO / path).exists(), f"{block.id}: {path} does not exist"


def check_reader_margin(where: str, argv: list[str]) -> None:
    """A reader asking for more than the default schedule promises (refresh_before minus the
    schedule period, 90 s) is refused about half the time by a healthy schedule."""
    if "--min-remaining" in argv:
        value = parse_duration(argv[argv.index("--min-remaining") + 1])
        floor = RefreshPolicy().reader_floor()
        assert value <= floor, f"{where}: --min-remaining {value:g}s is more than {floor:g}s"


def check_installs(where: str, code: str) -> None:
    """Our distributions are not on any index: a pip install of them is the README's two
    steps, the built files by hash first. A --find-links install would take a higher
    version of our name from the index should anyone publish one."""
    exact = False
    for line in _logical_lines(code):
        words = _tokens(line)
        if not (len(words) > 1 and words[0].endswith("pip") and words[1] == "install"):
            continue
        assert "--find-links" not in words, f"{where}: {line.strip()}"
        if words[2:] == ["--no-deps", "-r", "dist/requirements.txt"]:
            exact = True
        elif any(re.match(r"harbor-secrets\b", word) for word in words[2:]):
            assert exact, f"{where}: install dist/requirements.txt first: {line.strip()}"


def _repo_paths(tokens: list[str]) -> Iterator[str]:
    """Arguments that name a file of this repository (kubectl's TYPE/NAME are not files)."""
    for index, token in enumerate(tokens):
        if tokens[:1] == ["kubectl"] and tokens[index - 1] not in ("-k", "-f", "--kustomize"):
            continue
        path = token.split("=", 1)[-1].split(":", 1)[0]
        if _REPO_PATH.match(path):
            yield path


def _make_target(target: str) -> bool:
    return bool(re.search(rf"^{re.escape(target)}:", (REPO / "Makefile").read_text(), re.MULTILINE))


def _cron_commands(block: Block) -> str:
    commands = []
    for line in _logical_lines(block.code):
        fields = line.split(None, 5)
        assert len(fields) == 6, f"{block.id}: a crontab line has five times and a command"
        ranges = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
        for field, (low, high) in zip(fields[:5], ranges, strict=True):
            for part in field.split(","):
                value = part.split("/")[0]
                if value != "*":
                    for number in value.split("-"):
                        assert low <= int(number) <= high, f"{block.id}: {field}"
        commands.append(fields[5])
    return "\n".join(commands)


def _ini_commands(block: Block) -> str:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(block.code)
    return "\n".join(
        value
        for section in parser.sections()
        for key, value in parser.items(section)
        if key.startswith("Exec") and value
    )


# --- Python: compiles -------------------------------------------------------------------------


@pytest.mark.parametrize("block", of_lang("python"), ids=ids(of_lang("python")))
def test_python_blocks_compile(block: Block) -> None:
    compile(block.code, block.id, "exec")


# --- snippets run against the test servers ----------------------------------------------------


def _our_venv(directory: Path) -> None:
    """``.venv/bin/harbor-secrets`` as a fresh clone's docs type it, in ``directory``."""
    (directory / ".venv").symlink_to(Path(sys.prefix))


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout's directory after `make demo` (which runs `harbor-secrets demo`)."""
    root = tmp_path_factory.mktemp("checkout")
    _our_venv(root)
    demo = subprocess.run(
        [sys.executable, "-m", "harbor_secrets", "demo", "--directory", "demo-output"],
        cwd=root,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    return root


@runs("readme-demo-readers")
def test_readme_reads_the_demos_output(stores: Stores, demo_output: Path) -> None:
    result = run_block(stores, snippet("readme-demo-readers"), cwd=demo_output)
    assert result.returncode == 0, result.stdout + result.stderr
    token, expiry = result.stdout.splitlines()
    assert token.startswith("eyJ")
    assert re.fullmatch(r"token expires at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", expiry)


@runs("readme-stand-in", "readme-stand-in-commands")
def test_readme_serves_the_demo_again_and_its_commands_work(
    stores: Stores, demo_output: Path
) -> None:
    server = subprocess.Popen(
        ["bash", "-c", f"exec {snippet('readme-stand-in').code}"],
        cwd=demo_output,
        env=stores.environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stderr is not None
        first = server.stdout.readline()
        assert first.startswith("stand-in issuer listening on"), first + server.stderr.read()
        result = run_block(stores, snippet("readme-stand-in-commands"), cwd=demo_output)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("ok: Harbor accepted the token stored in sink 'local'")
        # --force fetches every token again: each is written, or kept when the demo stored
        # it within the same second (stored expiries have whole seconds, so the new one
        # expires no later) — any mix of the two, and nothing fresh or failed.
        summary = re.search(
            r"^(\d+) written, (\d+) fresh, (\d+) kept.* (\d+) failed", result.stdout, re.M
        )
        assert summary is not None, result.stdout
        written, fresh, kept, failed = (int(n) for n in summary.groups())
        assert (written + kept, fresh, failed) == (4, 0, 0), result.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0


@runs("readme-real-usage")
def test_readme_real_usage_runs_against_the_stand_in(stores: Stores, tmp_path: Path) -> None:
    """The example configuration as shipped, with Harbor's URLs pointed at the stand-in by
    the variables the docs name, and its client registered with the docs' secret."""
    shutil.copy(REPO / "config.example.toml", tmp_path)
    stores.issuer.add_client("my-client-id", "…")
    environ = {f"HARBOR_SANDBOX_{url}": stores.issuer.url for url in ("ACCOUNTS_URL", "API_URL")}
    result = run_block(
        stores, snippet("readme-real-usage"), cwd=tmp_path, extra=environ | NO_CONFIG
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration OK" in result.stdout
    assert "ok: Harbor accepted a freshly fetched token" in result.stdout
    values = dotenv_values(tmp_path / "harbor.env")
    assert set(values) == {
        name
        for scope in ("service_provider", "tower_access")
        for name in default_env_names(environment="sandbox", scope=scope)
    }


NO_CONFIG = {"HARBOR_SECRETS_CONFIG": ""}


@runs("readme-scripts")
def test_readme_scripts_read_the_store(stores: Stores, tmp_path: Path) -> None:
    report = tmp_path / "nightly-report.sh"
    report.write_text(
        "#!/bin/sh\n"
        'echo "report with a token expiring $HARBOR_SANDBOX_SERVICE_PROVIDER_EXPIRES_AT"\n'
    )
    report.chmod(0o755)
    before = stores.issuer.test_token_requests
    result = run_block(stores, snippet("readme-scripts"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    answer, end = json.JSONDecoder().raw_decode(result.stdout)  # curl adds no newline
    printed = result.stdout[end:].strip()
    assert answer["scope"] == "service_provider"  # the test-token endpoint's 200
    assert stores.issuer.test_token_requests == before + 1
    assert printed.startswith("report with a token expiring 20")


@runs("install")
def test_the_install_snippet_is_what_tests_test_dist_runs() -> None:
    """tests/test_dist.py runs this block's pip commands; here, that it has the two steps."""
    lines = [line.split("#")[0].split() for line in snippet("install").code.splitlines()]
    pip = [words[1:] for words in lines if words and words[0].endswith("/pip")]
    assert pip == [
        ["install", "--no-deps", "-r", "dist/requirements.txt"],
        ["install", "'harbor-secrets[all]'"],
    ]


def test_the_readme_crontab_line_is_the_shipped_ones() -> None:
    (block,) = [b for b in of_lang("cron") if b.path == "README.md"]
    shipped = (REPO / "deploy" / "cron" / "harbor-secrets.cron").read_text(encoding="utf-8")
    (line,) = [line for line in shipped.splitlines() if line.startswith("* ")]
    times, user, command = line.split(None, 6)[:5], line.split()[5], line.split(None, 6)[6]
    assert user == "harbor-secrets"
    assert block.code.strip() == " ".join([*times, command])


# --- Vault (OpenBao) ---------------------------------------------------------------------------


def bao(stores: Stores, *args: str, stdin: str | None = None, token: str | None = None) -> str:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "bao"), *args],
        input=stdin,
        env={**stores.environ, **({"VAULT_TOKEN": token} if token else {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def enable(stores: Stores, kind: str, *args: str) -> None:
    """Enable an auth method or secrets engine once per session."""
    listed = bao(stores, "auth" if kind in ("approle", "kubernetes") else "secrets", "list")
    path = args[-1] if args else kind
    if f"{path.rstrip('/')}/" not in listed:
        if kind in ("approle", "kubernetes"):
            bao(stores, "auth", "enable", kind)
        else:
            bao(stores, "secrets", "enable", *args)


def write_policies(stores: Stores) -> dict[str, str]:
    """Every policy the Vault README shows, written to the server as it names them."""
    names = {}
    for block in snippets("vault-policy"):
        name = re.match(r"# policy: (\S+)", block.code)
        assert name, f"{block.id}: a policy block starts with '# policy: NAME'"
        bao(stores, "policy", "write", name[1], "-", stdin=block.code)
        names[name[1]] = block.id
    return names


def vault_only_config(stores: Stores, directory: Path, **sink: str) -> Path:
    lines = "\n".join(f'{key} = "{value}"' for key, value in sink.items())
    text = stores.config.read_text(encoding="utf-8")
    head = text.split("[sinks.local]")[0]
    config = directory / "vault.toml"
    config.write_text(
        f'{head}[sinks.vault]\nprovider = "vault"\n{lines}\n\n[[targets]]\n'
        'environments = ["sandbox"]\n',
        encoding="utf-8",
    )
    return config


@runs("vault-policy")
def test_the_vault_policies_are_enough_and_no_more(stores: Stores, tmp_path: Path) -> None:
    """Each policy is written to OpenBao as shown; a token holding only the writer policy
    runs a sync (KV v2 and KV v1), and one holding only the reader policy reads a token."""
    assert set(write_policies(stores)) == {
        "harbor-secrets-writer",
        "harbor-secrets-writer-kv1",
        "harbor-token-reader",
    }
    enable(stores, "kv", "-version=1", "-path=kv1", "kv")
    address = stores.environ["VAULT_ADDR"]
    for policy, mount in (
        ("harbor-secrets-writer", "secret"),
        ("harbor-secrets-writer-kv1", "kv1"),
    ):
        token = bao(stores, "token", "create", f"-policy={policy}", "-field=token").strip()
        # under harbor/ (what the policies grant), apart from the tokens other tests read
        path = "harbor/policy-check/{environment}/{scope}"
        config = vault_only_config(stores, tmp_path, address=address, mount=mount, path=path)
        sync = subprocess.run(
            [sys.executable, "-m", "harbor_secrets", "-c", str(config), "sync", "--force"],
            env={**stores.environ, "VAULT_TOKEN": token, "HARBOR_CLIENT_SECRET": CLIENT_SECRET},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert sync.returncode == 0, f"{policy}: {sync.stdout}{sync.stderr}"
        assert "2 written" in sync.stdout
    reader = bao(stores, "token", "create", "-policy=harbor-token-reader", "-field=token").strip()
    token = bao(
        stores, "kv", "get", "-field=access_token", "secret/harbor/sandbox/tower_access",
        token=reader,
    )  # fmt: skip
    assert token.startswith("eyJ")
    denied = subprocess.run(
        [str(Path(sys.executable).parent / "bao"), "kv", "put", "secret/harbor/x", "a=b"],
        env={**stores.environ, "VAULT_TOKEN": reader},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert denied.returncode != 0  # a reader cannot write


def stored(stores: Stores, scope: str) -> str:
    """The token the sync stored for sandbox/SCOPE (every store holds the same one)."""
    value = dotenv_values(stores.directory / "harbor.env")[
        default_env_names(environment="sandbox", scope=scope)[0]
    ]
    assert value
    return value


@runs("vault-kv-get-field")
def test_vault_kv_get_reads_the_token(stores: Stores) -> None:
    result = run_block(stores, snippet("vault-kv-get-field"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == stored(stores, "tower_access")


@runs("vault-kv-get-record")
def test_vault_kv_get_shows_the_record_as_the_readme_does(stores: Stores) -> None:
    (command,) = snippets("vault-kv-get-record")
    result = run_block(stores, command)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    shown = next(b for b in of_lang("json") if b.path == command.path and b.line > command.line)
    assert set(record) == set(json.loads(shown.code)), "the README shows other fields"
    assert TokenRecord.from_dict(record).access_token.reveal() == stored(stores, "tower_access")


@runs("vault-agent-template")
def test_the_vault_agent_template_renders_the_token(stores: Stores, tmp_path: Path) -> None:
    """OpenBao's agent, logged in with a token file, renders the block once and exits."""
    (tmp_path / "token").write_text(stores.vault_token)
    block = snippet("vault-agent-template")
    destination = tmp_path / "tower_access.token"
    body = re.sub(r'destination\s*=\s*"[^"]+"', f'destination = "{destination}"', block.code)
    assert body != block.code, "the template names no destination"
    (tmp_path / "agent.hcl").write_text(
        f'vault {{ address = "{stores.environ["VAULT_ADDR"]}" }}\n'
        "auto_auth {\n"
        f'  method "token_file" {{ config {{ token_file_path = "{tmp_path / "token"}" }} }}\n'
        "}\n"
        "exit_after_auth = true\n" + body
    )
    bao(stores, "agent", f"-config={tmp_path / 'agent.hcl'}")
    assert destination.read_text() == stored(stores, "tower_access")
    assert destination.stat().st_mode & 0o777 == 0o600


@runs("vault-approle-role")
def test_the_approle_commands_make_a_working_login(stores: Stores, tmp_path: Path) -> None:
    enable(stores, "approle")
    write_policies(stores)
    result = run_block(stores, snippet("vault-approle-role"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    role_id = (tmp_path / "role-id").read_text().strip()
    secret_id = (tmp_path / "secret-id").read_text().strip()
    login = bao(
        stores, "write", "-field=token_policies", "auth/approle/login",
        f"role_id={role_id}", f"secret_id={secret_id}",
    )  # fmt: skip
    assert "harbor-secrets-writer" in login


@runs("vault-kubernetes-role")
def test_the_kubernetes_auth_role_is_accepted(stores: Stores) -> None:
    enable(stores, "kubernetes")
    result = run_block(stores, snippet("vault-kubernetes-role"))
    assert result.returncode == 0, result.stderr
    role = json.loads(bao(stores, "read", "-format=json", "auth/kubernetes/role/harbor-secrets"))
    assert role["data"]["audience"] == "vault"
    assert role["data"]["bound_service_account_names"] == ["harbor-secrets"]


# --- AWS (moto_server) --------------------------------------------------------------------------


@runs("aws-boto3-reader")
def test_the_boto3_reader_reads_both_stores(stores: Stores) -> None:
    block = snippet("aws-boto3-reader")
    observed = Block(
        block.path,
        block.line,
        block.lang,
        block.code + "print(token == record['access_token'], int(seconds_left) > 60)\n",
    )
    result = run_block(stores, observed)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


# --- the env file -------------------------------------------------------------------------------


@runs("envfile-contents")
def test_the_env_file_shown_is_what_the_store_writes(stores: Stores) -> None:
    shown = snippet("envfile-contents").code
    written = (stores.directory / "harbor.env").read_text(encoding="utf-8")
    name = re.compile(r"^([A-Z_]+)='", re.MULTILINE)
    assert name.findall(shown) == name.findall(written)  # names, order and quoting
    for value in dotenv_values(stream=io.StringIO(shown)).values():
        assert value


@runs("envfile-shell-reader")
def test_the_one_shot_shell_reader_calls_harbor(stores: Stores) -> None:
    result = run_block(stores, snippet("envfile-shell-reader"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["scope"] == "service_provider"


@runs("envfile-dotenv-reader")
def test_the_python_reader_returns_the_token(stores: Stores) -> None:
    block = snippet("envfile-dotenv-reader")
    observed = Block(block.path, block.line, block.lang, block.code + "print(harbor_token())\n")
    result = run_block(stores, observed)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == stored(stores, "service_provider")


# --- Kubernetes -----------------------------------------------------------------------------------


def render_all() -> list[dict[str, Any]]:
    """Every kustomization under deploy/kubernetes, rendered."""
    docs: list[dict[str, Any]] = []
    for kustomization in sorted(KUSTOMIZE.rglob("kustomization.yaml")):
        rendered = subprocess.run(
            [str(KUBECTL), "kustomize", str(kustomization.parent)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if rendered.returncode == 0:  # a kustomize Component renders only inside an overlay
            docs += [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    return docs


@runs("servicemonitor")
def test_the_servicemonitor_selects_the_metrics_service() -> None:
    """The Prometheus Operator finds Services by the ServiceMonitor's selector: it must match
    the labels of every rendered Service with a metrics port, in their namespace."""
    (monitor,) = _yaml_docs(snippet("servicemonitor"))
    wanted = monitor["spec"]["selector"]["matchLabels"]
    ports = {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}
    services = [
        doc
        for doc in render_all()
        if doc["kind"] == "Service" and ports & {port.get("name") for port in doc["spec"]["ports"]}
    ]
    assert services, "no rendered Service has the metrics port"
    for service in services:
        labels = service["metadata"].get("labels", {})
        assert wanted.items() <= labels.items(), f"selects none of {labels}"
        assert service["metadata"]["namespace"] == monitor["metadata"]["namespace"]


@runs("pod-spec-fragment")
def test_the_pod_spec_fragments_are_valid_and_mount_volumes(stores: Stores) -> None:
    for block in snippets("pod-spec-fragment"):
        spec = yaml.safe_load(block.code)
        for container in spec["containers"]:
            container.setdefault("image", "registry.example.com/app:1.0")
            for mount in container["volumeMounts"]:
                assert "subPath" not in mount, block.id  # a subPath mount is never updated
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"}, "spec": spec}
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(pod, version, strict=True)
        mounted = {m["name"] for c in spec["containers"] for m in c["volumeMounts"]}
        secrets = {v["name"] for v in spec["volumes"] if "secret" in v}
        assert mounted <= secrets, block.id


@runs("kubernetes-rbac")
def test_the_rbac_example_grants_exactly_the_rendered_names(tmp_path: Path) -> None:
    docs = _yaml_docs(snippet("kubernetes-rbac"))
    (example,) = [b for b in of_lang("toml") if b.path == "providers/kubernetes/README.md"][:1]
    data = complete(tomllib.loads(example.code), tmp_path / "harbor.env")
    data["targets"][0]["scopes"] = ["service_provider", "tower_access"]
    environ = {"HOME": str(tmp_path)}
    config = parse_config(data, source=example.id, environ=environ, base_dir=tmp_path)
    with Runtime(config, environ=environ, resolve_references=False) as runtime:
        (sink,) = runtime.sinks.values()
        names = {sink.key_for(job) for job in config.jobs()}
    (role,) = [doc for doc in docs if doc["kind"] == "Role"]
    (rule,) = role["rules"]
    assert set(rule["resourceNames"]) == names
    assert rule["verbs"] == ["get", "update", "patch"]
    for secret in (doc for doc in docs if doc["kind"] == "Secret"):
        assert secret["metadata"]["name"] in names
        assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "harbor-secrets"
    (binding,) = [doc for doc in docs if doc["kind"] == "RoleBinding"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


# --- Terraform (cannot be installed here) ---------------------------------------------------------


@runs("terraform-module")
def test_the_module_blocks_pass_only_inputs_the_module_declares() -> None:
    variables = (REPO / "deploy" / "aws" / "variables.tf").read_text(encoding="utf-8")
    declared = dict(re.findall(r'variable "(\w+)" \{(.*?)\n\}', variables, re.S))
    required = {name for name, body in declared.items() if "default" not in body}
    for block in snippets("terraform-module"):
        given = dict(re.findall(r"^\s+(\w+)\s+=\s+(.+)$", block.code, re.M))
        for meta in ("providers", "count", "for_each", "depends_on"):
            given.pop(meta, None)  # Terraform's meta-arguments, not the module's inputs
        source = given.pop("source").strip('"')
        assert source.endswith("deploy/aws"), block.id
        assert not set(given) - set(declared), f"{block.id}: {set(given) - set(declared)}"
        assert required <= set(given), f"{block.id}: misses {required - set(given)}"


# --- the CLI's own examples, and what the image is said to hold ----------------------------------


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


@pytest.mark.parametrize("path", list(_commands(cli)), ids=lambda p: " ".join(p) or "(root)")
def test_every_help_example_is_sound(path: tuple[str, ...]) -> None:
    """--help's examples are documentation too: each parses, and asks only what works."""
    shown = help_text(*path)
    examples = shown.split("Examples:", 1)[1].split("\n\n", 1)[0] if "Examples:" in shown else ""
    if path and not examples:
        pytest.fail(f"harbor-secrets {' '.join(path)} --help has no examples")
    code = "\n".join(line.strip() for line in examples.splitlines())
    found = invocations(code)
    assert found or not examples, path
    for argv in found:
        try:
            check_argv(argv)
        except click.ClickException as exc:
            pytest.fail(
                f"{' '.join(path)}: harbor-secrets {shlex.join(argv)}: {exc.format_message()}"
            )
        check_reader_margin(" ".join(path), argv)


def test_the_image_is_said_to_hold_every_provider_it_ships() -> None:
    dockerfile = (REPO / "deploy" / "docker" / "Dockerfile").read_text(encoding="utf-8")
    shipped = re.findall(r"\./providers/(\w+)", dockerfile)
    assert shipped
    said = (REPO / "deploy" / "README.md").read_text(encoding="utf-8").split("What is in it:")[1]
    said = said.split("\n\n")[0]
    for directory in shipped:
        pyproject = tomllib.loads((REPO / "providers" / directory / "pyproject.toml").read_text())
        for name in pyproject["project"]["entry-points"]["harbor_secrets.providers"]:
            assert f"`{name}`" in said, f"deploy/README.md's image list omits {name}"


def _megabytes(root: Path) -> float:
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
    return total / 1e6


def test_the_readme_states_what_make_test_costs(helm: Path, promtool: Path) -> None:
    """Time, disk and network, as a newcomer needs to know before typing it; the sizes stated
    for .venv/ and for the fetched helm and promtool (.tools/) are kept within reach of what
    `make install` and the tool fixtures really make."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("What `make test` costs", 1)[1].split("\n\n", 2)[1]
    rows = {line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")}
    assert {"time", "disk", "network (the package registries only)"} <= rows
    stated = re.search(r"`\.venv/` ~(\d+) MB", section)
    assert stated
    actual = _megabytes(Path(sys.prefix))
    assert 0.6 * int(stated[1]) <= actual <= 1.5 * int(stated[1]), f".venv/ is {actual:.0f} MB"
    tools = re.search(r"`\.tools/` ~(\d+) MB", section)
    assert tools
    fetched = (helm.stat().st_size + promtool.stat().st_size) / 1e6
    assert 0.8 * int(tools[1]) <= fetched <= 1.2 * int(tools[1]), (
        f"helm + promtool: {fetched:.0f} MB"
    )
