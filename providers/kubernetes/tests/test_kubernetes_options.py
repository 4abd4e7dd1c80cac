"""Sink options, checked offline: where the credentials and the namespace come from, and
which Secret names a template may render (exit 2 before any request, naming the sink)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harbor_secrets_kubernetes import KubernetesProvider
from kube_support import NAMESPACE, SINK, Cluster, Pod, base_environ

from harbor_secrets import ConfigError, InvalidKeyError
from harbor_testkit.fifo import call_beside_fifo
from harbor_testkit.kube_apiserver import KubeconfigContext
from harbor_testkit.servers import free_port


def build(environ: dict[str, str], **options: Any) -> KubernetesProvider:
    from harbor_secrets.testing import sink_from_options

    sink = sink_from_options(KubernetesProvider, options, environ=environ, name=SINK)
    provider = sink.provider
    assert isinstance(provider, KubernetesProvider)
    return provider


def config_error(environ: dict[str, str], **options: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        build(environ, **options)
    assert caught.value.exit_code == 2
    return caught.value


# -- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rendered", "name"),
    [
        ("harbor-sandbox-service_provider", "harbor-sandbox-service-provider"),
        ("harbor-production-tower_access", "harbor-production-tower-access"),
        ("harbor.sandbox.tower_access", "harbor.sandbox.tower-access"),
        ("a" * 253, "a" * 253),
    ],
)
def test_an_underscore_becomes_a_hyphen_and_nothing_else_changes(
    cluster: Cluster, rendered: str, name: str
) -> None:
    provider = cluster.provider()
    assert provider.normalize_key(rendered) == name
    assert provider.normalize_key(name) == name  # idempotent


@pytest.mark.parametrize(
    ("rendered", "problem"),
    [
        ("Harbor-sandbox-service_provider", "upper-case"),
        ("harbor/sandbox/service_provider", "'/'"),
        ("-harbor-sandbox", "start and end"),
        ("harbor-sandbox-", "start and end"),
        ("harbor..sandbox", "start and end"),
        ("harbor sandbox", "' '"),
        ("a" * 254, "254 characters"),
        ("", "empty"),
        ("harbor-sandbox\n", "DNS-1123"),  # a trailing newline must not slip past a regex $
    ],
)
def test_a_name_that_is_no_dns_subdomain_is_refused(
    cluster: Cluster, rendered: str, problem: str
) -> None:
    with pytest.raises(InvalidKeyError) as caught:
        cluster.provider().normalize_key(rendered)
    assert problem in caught.value.problem
    assert "DNS-1123" in caught.value.problem
    assert "name =" in caught.value.fix


def test_config_check_refuses_a_bad_name_naming_sink_template_and_name_before_any_request(
    cluster: Cluster, tmp_path: Path
) -> None:
    config = tmp_path / "harbor.toml"
    config.write_text(
        f"""
[credentials.Main]
client_id = "id"
client_secret = "env:HARBOR_CLIENT_SECRET"

[sinks.{SINK}]
provider = "kubernetes"
kubeconfig = "{cluster.kubeconfig}"
name = "harbor-{{credentials}}-{{environment}}-{{scope}}"

[[targets]]
credentials = "Main"
environments = ["sandbox"]
scopes = ["tower_access"]
sinks = ["{SINK}"]
"""
    )
    before = len(cluster.server.requests)
    result = subprocess.run(
        [sys.executable, "-m", "harbor_secrets", "config", "check", "-c", str(config)],
        env=cluster.environ(HARBOR_CLIENT_SECRET="s3cret-for-the-check"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    said = result.stdout + result.stderr
    assert f"sinks.{SINK}.name" in said
    assert "harbor-{credentials}-{environment}-{scope}" in said
    assert "harbor-Main-sandbox-tower_access" in said
    assert "upper-case" in said
    assert len(cluster.server.requests) == before, "config check must not call the API server"


def test_config_check_accepts_a_good_sink_offline_and_shows_its_secret_names(
    cluster: Cluster, tmp_path: Path
) -> None:
    config = tmp_path / "harbor.toml"
    config.write_text(
        f"""
[refresh]
refresh_before = "210s"

[credentials.main]
client_id = "id"
client_secret = "env:HARBOR_CLIENT_SECRET"

[sinks.{SINK}]
provider = "kubernetes"
kubeconfig = "{cluster.kubeconfig}"

[[targets]]
credentials = "main"
environments = ["sandbox"]
sinks = ["{SINK}"]
"""
    )
    before = len(cluster.server.requests)
    cluster.server.down()  # offline: it must not matter that the API server is away
    result = subprocess.run(
        [
            *(sys.executable, "-m", "harbor_secrets", "config", "check"),
            *("-c", str(config), "--output", "json"),
        ],
        env=cluster.environ(HARBOR_CLIENT_SECRET="s3cret-for-the-check"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["sinks"][SINK]["namespace"] == NAMESPACE
    assert data["sinks"][SINK]["server"] == cluster.server.url
    keys = sorted(token["keys"][SINK] for token in data["tokens"])
    assert keys == ["harbor-sandbox-service-provider", "harbor-sandbox-tower-access"]
    assert data["warnings"] == []  # 210s leaves a volume reader enough (see the warnings test)
    assert len(cluster.server.requests) == before


# -- where the credentials come from ------------------------------------------------------


def test_construction_is_offline(cluster: Cluster, tmp_path: Path) -> None:
    path = cluster.server.write_kubeconfig(
        tmp_path / "config",
        token=cluster.token,
        extra_contexts=[
            KubeconfigContext(
                "away", token="t", namespace="x", server=f"https://127.0.0.1:{free_port()}"
            )
        ],
        current_context="away",
    )
    provider = build(cluster.environ(), kubeconfig=str(path))
    assert provider.settings.namespace == "x"
    assert provider.normalize_key("harbor-sandbox-tower_access") == "harbor-sandbox-tower-access"
    provider.close()


def test_the_kubeconfig_context_gives_server_and_namespace(
    cluster: Cluster, tmp_path: Path
) -> None:
    path = cluster.server.write_kubeconfig(
        tmp_path / "config",
        token=cluster.token,
        namespace=NAMESPACE,
        extra_contexts=[
            KubeconfigContext("staging", token="t", namespace="other", server="https://10.0.0.1")
        ],
    )
    current = build(cluster.environ(), kubeconfig=str(path))
    assert (current.settings.server, current.settings.namespace) == (cluster.server.url, NAMESPACE)
    staging = build(cluster.environ(), kubeconfig=str(path), context="staging")
    assert (staging.settings.server, staging.settings.namespace) == ("https://10.0.0.1", "other")
    chosen = build(cluster.environ(), kubeconfig=str(path), namespace="third")
    assert chosen.settings.namespace == "third"
    assert "context stand-in" in chosen.describe()["credentials"]


def test_an_unknown_context_lists_the_known_ones(cluster: Cluster) -> None:
    error = config_error(cluster.environ(), kubeconfig=str(cluster.kubeconfig), context="prod")
    assert error.key == f"sinks.{SINK}.context"
    assert "'prod'" in str(error)
    assert "stand-in" in str(error)


def test_kubeconfig_comes_from_KUBECONFIG_then_home(  # noqa: N802
    cluster: Cluster, tmp_path: Path
) -> None:
    from_env = build(base_environ(tmp_path, {"KUBECONFIG": str(cluster.kubeconfig)}))
    assert from_env.settings.identity.path == str(cluster.kubeconfig)
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text(cluster.kubeconfig.read_text())
    from_home = build(base_environ(home))
    assert from_home.settings.identity.path == str(home / ".kube" / "config")


def test_several_kubeconfig_files_are_refused(cluster: Cluster, tmp_path: Path) -> None:
    listed = f"{cluster.kubeconfig}:{tmp_path / 'other'}"
    error = config_error(base_environ(tmp_path, {"KUBECONFIG": listed}))
    assert "KUBECONFIG lists 2 files" in str(error)


def test_no_credentials_at_all_is_a_configuration_error(tmp_path: Path) -> None:
    error = config_error(base_environ(tmp_path), namespace="apps")
    assert error.key == f"sinks.{SINK}.kubeconfig"
    assert "no Kubernetes credentials" in str(error)
    assert "KUBECONFIG is not set" in str(error)


def test_a_missing_kubeconfig_file_is_a_configuration_error(tmp_path: Path) -> None:
    error = config_error(base_environ(tmp_path), kubeconfig=str(tmp_path / "nope"))
    assert "does not exist" in str(error)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not yaml: [", "not valid YAML"),
        ("apiVersion: v1\nkind: Config\n", "no contexts"),
        ("contexts: []\nclusters: []\n", "no current-context"),
    ],
)
def test_a_broken_kubeconfig_is_a_configuration_error(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "config"
    path.write_text(text)
    assert problem in str(config_error(base_environ(tmp_path), kubeconfig=str(path)))


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _not_utf8(path: Path) -> None:
    path.write_bytes(b"apiVersion: v1\n# caf\xe9\n")


def _directory(path: Path) -> None:
    path.mkdir()


# (id, how to make the file, what the error says, the fix it gives)
UNUSABLE_FILES = [
    ("fifo", _fifo, "the file is a named pipe (FIFO), not a regular file", "regular file"),
    ("not-utf8", _not_utf8, "the file is not UTF-8 text", "save it as UTF-8 text"),
    ("directory", _directory, "the file is a directory, not a regular file", "regular file"),
]


@pytest.mark.parametrize(
    ("make", "problem", "fix"),
    [case[1:] for case in UNUSABLE_FILES],
    ids=[case[0] for case in UNUSABLE_FILES],
)
def test_a_kubeconfig_that_is_no_text_file_is_a_configuration_error(
    tmp_path: Path, make: Callable[[Path], None], problem: str, fix: str
) -> None:
    """Read through the core's bounded reader: a FIFO used to be called missing (and an
    open one would hang), bytes that are not UTF-8 an internal error."""
    path = tmp_path / "config"
    make(path)
    with pytest.raises(ConfigError) as caught:
        call_beside_fifo(lambda: build(base_environ(tmp_path), kubeconfig=str(path)), path)
    error = caught.value
    assert error.exit_code == 2
    assert error.key == f"sinks.{SINK}.kubeconfig"
    assert f"{path}: {problem}" in str(error)
    assert fix in str(error)
    assert "0xe9" not in str(error)


def edited_kubeconfig(cluster: Cluster, tmp_path: Path, change: dict[str, Any]) -> Path:
    """The session kubeconfig with ``change`` merged into its cluster / user entries."""
    document = json.loads(cluster.kubeconfig.read_text())
    document["clusters"][0]["cluster"].update(change.get("cluster", {}))
    document["users"][0]["user"] = change.get("user", document["users"][0]["user"])
    path = tmp_path / "edited"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"cluster": {"server": "http://10.0.0.1:8080"}}, "plain http"),
        ({"user": {"auth-provider": {"name": "gcp"}}}, "auth-provider"),
        (
            {"user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "x"}}},
            "client.authentication.k8s.io/v1'",
        ),
        ({"user": {"tokenFile": "missing-token"}}, "tokenFile"),
        ({"cluster": {"certificate-authority": "/nonexistent/ca.crt"}}, "certificate-authority"),
        ({"user": {}}, "no credentials"),
    ],
)
def test_what_lightkube_cannot_use_is_refused_up_front(
    cluster: Cluster, tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    path = edited_kubeconfig(cluster, tmp_path, change)
    assert problem in str(config_error(cluster.environ(), kubeconfig=str(path)))


def test_plain_http_on_loopback_is_accepted(cluster: Cluster, tmp_path: Path) -> None:
    path = edited_kubeconfig(cluster, tmp_path, {"cluster": {"server": "http://127.0.0.1:8001"}})
    assert build(cluster.environ(), kubeconfig=str(path)).settings.server.startswith("http://")


def test_a_relative_token_file_is_relative_to_the_kubeconfig(
    cluster: Cluster, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text(cluster.token)
    path = edited_kubeconfig(cluster, tmp_path, {"user": {"tokenFile": "token"}})
    provider = build(base_environ(tmp_path / "elsewhere"), kubeconfig=str(path))
    user = provider.settings.client_config().user
    assert user is not None
    assert user.token_file == str(tmp_path / "token")


# -- in a pod ----------------------------------------------------------------------------


def test_in_a_pod_the_service_account_is_used_with_its_namespace(
    pod: Pod, cluster: Cluster
) -> None:
    provider = build(pod.environ, service_account_dir=str(pod.directory))
    settings = provider.settings
    assert settings.identity.in_cluster
    assert settings.namespace == NAMESPACE  # from the mount's namespace file
    assert settings.server == cluster.server.url


@pytest.mark.parametrize(
    ("make", "problem", "fix"),
    [case[1:] for case in UNUSABLE_FILES],
    ids=[case[0] for case in UNUSABLE_FILES],
)
def test_a_namespace_file_that_is_no_text_file_is_a_configuration_error(
    pod: Pod, make: Callable[[Path], None], problem: str, fix: str
) -> None:
    """Found when the sink is built (``config check``), before any request: a FIFO used to
    hang it."""
    namespace = pod.directory / "namespace"
    namespace.unlink()
    make(namespace)
    with pytest.raises(ConfigError) as caught:
        call_beside_fifo(
            lambda: build(pod.environ, service_account_dir=str(pod.directory)), namespace
        )
    error = caught.value
    assert error.exit_code == 2
    assert error.key == f"sinks.{SINK}.service_account_dir"
    assert f"{namespace}: {problem}" in str(error)
    assert fix in str(error)


def test_a_pod_without_a_mounted_token_falls_back_to_the_kubeconfig(
    pod: Pod, cluster: Cluster
) -> None:
    (pod.directory / "token").unlink()
    environ = {**pod.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    provider = build(environ, service_account_dir=str(pod.directory))
    assert not provider.settings.identity.in_cluster


def test_naming_a_context_in_a_pod_means_the_kubeconfig(pod: Pod, cluster: Cluster) -> None:
    environ = {**pod.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    provider = build(environ, service_account_dir=str(pod.directory), context="stand-in")
    assert not provider.settings.identity.in_cluster


def test_a_namespace_is_required_when_nothing_names_one(cluster: Cluster, tmp_path: Path) -> None:
    path = cluster.server.write_kubeconfig(tmp_path / "config", token=cluster.token)
    error = config_error(cluster.environ(), kubeconfig=str(path))
    assert error.key == f"sinks.{SINK}.namespace"
    assert "no namespace" in str(error)


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("namespace", "Apps", "DNS-1123 label"),
        ("timeout", "0s", "more than zero"),
        ("conflict_retries", -1, "at least 0"),
        ("volume_propagation", -1, "negative"),
        ("adopt", "yes", "true or false"),
        ("create", 1, "true or false"),
        ("no_such_option", 1, "not a known option"),
    ],
)
def test_bad_option_values_name_the_option(
    cluster: Cluster, option: str, value: Any, problem: str
) -> None:
    error = config_error(cluster.environ(), kubeconfig=str(cluster.kubeconfig), **{option: value})
    assert error.key == f"sinks.{SINK}.{option}"
    assert problem in str(error)
