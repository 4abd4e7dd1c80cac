"""Rendering the Helm chart, and reading and checking the Kubernetes objects deploy/ ships.

Both the kustomize tree (deploy/kubernetes, rendered by tests/deploy_renders.py) and the Helm
chart (deploy/helm/harbor-secrets, rendered here by the pinned helm of the root conftest's
``helm`` fixture) end up as lists of objects; the checks on those objects (hardening, mounted
files, the configuration the pod runs, the Secret names it writes) are written once, here,
and asked by tests/test_deploy_kubernetes.py, tests/test_deploy_helm.py and
tests/test_deploy_checkov.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from harbor_secrets.config import load_config
from harbor_secrets.runtime import Runtime
from harbor_testkit.environ import clean_environ

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "deploy" / "helm" / "harbor-secrets"
#: helm's own cache and configuration directories, kept out of the user's home.
HELM_HOME = REPO / ".tools" / "helm-home"
#: The oldest minor still in the big providers' standard support, and the newest schema.
KUBERNETES_VERSIONS = ("1.32.0", "1.37.0")
CONFIG_FILE = "/etc/harbor-secrets/harbor-secrets.toml"
SECRET_NAME = "harbor-secrets-credentials"
JOB_NAMESPACE = "harbor-secrets"
#: Where in-cluster clients find the service-account token, CA and namespace.
SERVICE_ACCOUNT_FILES = ("token", "ca.crt", "namespace")
#: The keys deploy/README.md tells people to put into that Secret.
SECRET_KEYS = {"client-secret", "vault-role-id", "vault-secret-id"}
RUN_AS = 10001

Doc = dict[str, Any]


# --- rendering -------------------------------------------------------------------------------


def parse(text: str) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def helm_run(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """helm with its cache and configuration in .tools/helm-home, never the user's."""
    HELM_HOME.mkdir(parents=True, exist_ok=True)
    environ = {
        **os.environ,
        "HELM_CACHE_HOME": str(HELM_HOME / "cache"),
        "HELM_CONFIG_HOME": str(HELM_HOME / "config"),
        "HELM_DATA_HOME": str(HELM_HOME / "data"),
    }
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, env=environ, check=False
    )


#: What `make test` renders of the chart, by name: its defaults, every ci/<shape>-values.yaml
#: (chart-testing's convention; a new file is covered by adding it), and the CronJob shapes'
#: stores run by watch replicas instead (`mode: watch` combines with any store).
#: Name → (values file or None, more helm options).
CHART_SHAPES: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "defaults": (None, ()),
    **{
        path.name.removesuffix("-values.yaml"): (path.name, ())
        for path in sorted((CHART / "ci").glob("*-values.yaml"))
    },
    **{
        f"{store}+watch": (f"{store}-values.yaml", ("--set", "mode=watch"))
        for store in ("vault-kubernetes-auth", "aws-irsa", "kubernetes-secret")
    },
}


def is_watch(shape: str) -> bool:
    """Whether a chart shape runs watch replicas (else the CronJob)."""
    values, options = CHART_SHAPES[shape]
    if "mode=watch" in options:
        return True
    text = (CHART / "ci" / values).read_text(encoding="utf-8") if values else ""
    return bool(re.search(r"^mode: watch$", text, flags=re.MULTILINE))


def render_chart(helm: Path, shape: str, *options: str) -> str:
    values, own = CHART_SHAPES[shape]
    return helm_template(helm, values, *own, *options)


def helm_template(helm: Path, values: str | None = None, *options: str) -> str:
    """``helm template`` of the chart as release harbor-secrets in namespace harbor-secrets,
    with the chart's defaults or a values file of its ci/ directory; YAML text."""
    args = ["template", "harbor-secrets", str(CHART), "--namespace", JOB_NAMESPACE]
    if values is not None:
        args += ["--values", str(CHART / "ci" / values)]
    result = helm_run(helm, *args, *options)
    assert result.returncode == 0, f"{values}: {result.stderr}"
    return result.stdout


# --- reading the objects ---------------------------------------------------------------------


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[Doc], kind: str) -> Doc:
    (doc,) = of_kind(docs, kind)
    return doc


def named(docs: list[Doc], kind: str, name: str, namespace: str | None = None) -> Doc:
    (doc,) = [
        doc
        for doc in of_kind(docs, kind)
        if doc["metadata"]["name"] == name
        and (namespace is None or doc["metadata"].get("namespace") == namespace)
    ]
    return doc


def pod_template(doc: Doc) -> Doc | None:
    """The pod template of a workload (its ``metadata`` and ``spec``), None for other kinds."""
    if doc["kind"] == "CronJob":
        template: Doc = doc["spec"]["jobTemplate"]["spec"]["template"]
        return template
    if doc["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
        template = doc["spec"]["template"]
        return template
    return None


def workload_object(docs: list[Doc]) -> Doc:
    """The job's CronJob or Deployment (an overlay may add others, e.g. an example consumer)."""
    (doc,) = [
        doc
        for doc in docs
        if (template := pod_template(doc)) is not None
        and template["spec"].get("serviceAccountName") == "harbor-secrets"
    ]
    return doc


def workload(docs: list[Doc]) -> Doc:
    """The job's pod spec."""
    template = pod_template(workload_object(docs))
    assert template is not None
    spec: Doc = template["spec"]
    return spec


def container(pod: Doc) -> Doc:
    containers: list[Doc] = pod["containers"]
    (main,) = containers
    assert main["name"] == "harbor-secrets"
    return main


def config_map(docs: list[Doc]) -> Doc:
    """The ConfigMap holding harbor-secrets.toml (a chart may add a dashboard's)."""
    (doc,) = [d for d in of_kind(docs, "ConfigMap") if "harbor-secrets.toml" in d.get("data", {})]
    return doc


def config_of(docs: list[Doc]) -> tuple[str, dict[str, Any]]:
    text: str = config_map(docs)["data"]["harbor-secrets.toml"]
    return text, tomllib.loads(text)


def file_references(config: Any) -> Iterator[str]:
    """Every file the configuration reads: ``file:`` references, ``*_path`` options, and the
    service-account files of a kubernetes sink's ``service_account_dir``."""
    if isinstance(config, dict):
        for key, value in config.items():
            if isinstance(value, str) and key.endswith("_path"):
                yield value
            elif isinstance(value, str) and key == "service_account_dir":
                yield from (f"{value}/{name}" for name in SERVICE_ACCOUNT_FILES)
            else:
                yield from file_references(value)
    elif isinstance(config, list):
        for item in config:
            yield from file_references(item)
    elif isinstance(config, str) and config.startswith("file:"):
        yield config.removeprefix("file:")


def files_in_pod(pod: Doc) -> dict[str, str]:
    """Path → what provides it, for every file the pod's read-only volumes put there."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    files: dict[str, str] = {}
    for mount in container(pod)["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "secret" in volume:
            for key in SECRET_KEYS:
                files[f"{mount['mountPath']}/{key}"] = f"Secret key {key}"
        elif "projected" in volume:
            for source in volume["projected"]["sources"]:
                if "serviceAccountToken" in source:
                    token = source["serviceAccountToken"]
                    files[f"{mount['mountPath']}/{token['path']}"] = "projected token"
                for kind in ("configMap", "downwardAPI"):
                    for item in source.get(kind, {}).get("items", []):
                        files[f"{mount['mountPath']}/{item['path']}"] = f"projected {kind}"
        elif "configMap" in volume:
            files[CONFIG_FILE] = "ConfigMap"
    return files


# --- checks both trees must pass -------------------------------------------------------------


def assert_hardened(pod: Doc) -> None:
    """Non-root, read-only, no privileges, no API token, bounded, an in-memory /tmp only."""
    assert pod["serviceAccountName"] == "harbor-secrets"
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    main = container(pod)
    assert main["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for kind in ("requests", "limits"):
        assert set(main["resources"][kind]) == {"cpu", "memory"}
    # the only writable paths are an in-memory /tmp (HOME in the image), nothing else
    writable = [m["mountPath"] for m in main["volumeMounts"] if not m.get("readOnly")]
    assert writable == ["/tmp"]
    (tmp,) = [v for v in pod["volumes"] if v["name"] == "tmp"]
    assert tmp["emptyDir"]["medium"] == "Memory"
    # secrets as files, never in the environment
    for variable in main.get("env", []):
        assert "valueFrom" not in variable
    assert "envFrom" not in main


def file_modes_in_pod(pod: Doc) -> dict[str, int]:
    """Path → the mode the kubelet gives it: its volume's ``defaultMode`` (0644 if unset)."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    modes: dict[str, int] = {}
    for path in files_in_pod(pod):
        (mount,) = [m for m in container(pod)["volumeMounts"] if path.startswith(m["mountPath"])]
        volume = volumes[mount["name"]]
        source = next(
            volume[kind] for kind in ("secret", "projected", "configMap") if kind in volume
        )
        modes[path] = int(source.get("defaultMode", 0o644))
    return modes


def in_pod(docs: list[Doc], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The configuration as its pod sees it: every file the pod mounts is created under
    ``tmp_path`` (with a dummy value, and the mode its volume gives it), the configuration's
    paths point there, and the environment is the pod's (the kubelet's
    KUBERNETES_SERVICE_* when a token is mounted)."""
    text, config = config_of(docs)
    files = files_in_pod(workload(docs))
    modes = file_modes_in_pod(workload(docs))
    for path in files:
        local = tmp_path / path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text("not-a-real-value\n")
        local.chmod(modes[path])  # a secret file others can read is warned about
    for path in {os.path.dirname(p) for p in file_references(config)}:
        text = text.replace(f'"{path}/', f'"{tmp_path}{path}/')
        text = text.replace(f'"file:{path}/', f'"file:{tmp_path}{path}/')
        text = text.replace(f'"{path}"', f'"{tmp_path}{path}"')
    config_path = tmp_path / "harbor-secrets.toml"
    config_path.write_text(text)
    environ = clean_environ()
    if "projected token" in files.values():
        environ.update(KUBERNETES_SERVICE_HOST="10.96.0.1", KUBERNETES_SERVICE_PORT="443")
    return config_path, environ


def config_check(docs: list[Doc], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The real `config check`, every reference resolved, on the pod's file layout."""
    config_path, environ = in_pod(docs, tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "harbor_secrets", "-c", str(config_path), "config", "check"],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )


def secret_names(docs: list[Doc], tmp_path: Path) -> tuple[str, set[str], list[Any]]:
    """The kubernetes sink's namespace, the Secret names the core renders from the pod's own
    configuration (the templates and the provider's normalisation, not a copy by hand), and
    the runtime's warnings."""
    config_path, environ = in_pod(docs, tmp_path)
    config = load_config(config_path, environ=environ)
    with Runtime(config, environ=environ) as runtime:
        (sink,) = runtime.sinks.values()
        names = {sink.key_for(job) for job in config.jobs()}
        warnings = list(runtime.warnings())
        namespace = sink.provider.describe()["namespace"]
    return namespace, names, warnings


def assert_role_grants_exactly(docs: list[Doc], namespace: str, names: set[str]) -> None:
    """One Role in the sink's namespace: get, update, patch on exactly ``names``; bound to the
    job's ServiceAccount; nothing cluster-wide."""
    assert of_kind(docs, "ClusterRole") == of_kind(docs, "ClusterRoleBinding") == []
    (role,) = of_kind(docs, "Role")
    assert role["metadata"]["namespace"] == namespace
    (rule,) = role["rules"]
    assert rule["apiGroups"] == [""]
    assert rule["resources"] == ["secrets"]
    assert rule["verbs"] == ["get", "update", "patch"]  # no list, watch, create or delete
    assert set(rule["resourceNames"]) == names
    (binding,) = of_kind(docs, "RoleBinding")
    assert binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "harbor-secrets", "namespace": JOB_NAMESPACE}
    ]


def assert_token_secrets_precreated(docs: list[Doc], namespace: str, names: set[str]) -> None:
    """One empty Secret per token name, labelled so that harbor-secrets may write it."""
    tokens = [doc for doc in of_kind(docs, "Secret") if doc["metadata"]["name"] in names]
    assert {doc["metadata"]["name"] for doc in tokens} == names
    for doc in tokens:
        assert doc["metadata"]["namespace"] == namespace
        assert doc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "harbor-secrets"
        assert doc["type"] == "Opaque"
        assert "data" not in doc  # so re-applying never resets a token
        assert "stringData" not in doc
    assert namespace != JOB_NAMESPACE  # the apps never share a namespace with the client secret


def assert_runs_every_minute_without_overlap(cronjob: Doc) -> None:
    spec = cronjob["spec"]
    job = spec["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    assert spec["schedule"] == "* * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] < 60
    # stopped, and its grace period over, before the next minute's run is due
    assert job["activeDeadlineSeconds"] + pod["terminationGracePeriodSeconds"] < 60
    assert job["backoffLimit"] == 0
    assert pod["restartPolicy"] == "Never"
    assert 1 <= spec["successfulJobsHistoryLimit"] <= 3
    assert 1 <= spec["failedJobsHistoryLimit"] <= 3


def assert_service_account_without_token(docs: list[Doc]) -> None:
    account = one(docs, "ServiceAccount")
    assert account["metadata"]["name"] == "harbor-secrets"
    assert account["automountServiceAccountToken"] is False


def assert_config_and_secrets_are_files(docs: list[Doc]) -> Doc:
    """The configuration is the ConfigMap's file and the credentials the one Secret's files
    (never the environment: assert_hardened); returns the ConfigMap."""
    pod = workload(docs)
    main = container(pod)
    assert main["args"][:3] == ["--config", CONFIG_FILE, "sync"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    config_volume = volumes[mounts[os.path.dirname(CONFIG_FILE)]]
    configuration = config_map(docs)
    assert config_volume["configMap"]["name"] == configuration["metadata"]["name"]
    credentials = [v for v in volumes.values() if "secret" in v]
    assert [v["secret"]["secretName"] for v in credentials] == [SECRET_NAME]
    _, config = config_of(docs)
    assert config["credentials"]["main"]["client_secret"] == (
        "file:/var/run/secrets/harbor/client-secret"
    )
    return configuration


def assert_every_file_the_config_reads_is_mounted(docs: list[Doc]) -> None:
    _, config = config_of(docs)
    available = files_in_pod(workload(docs))
    for path in file_references(config):
        assert path in available, f"{path} is read by the configuration but not mounted"


def assert_config_check_passes(docs: list[Doc], tmp_path: Path) -> None:
    """The real `config check`, every reference resolved, on the pod's file layout: OK and
    without a warning."""
    result = config_check(docs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration OK" in result.stdout
    assert "warning" not in (result.stdout + result.stderr).lower()


def job_pod_labels(docs: list[Doc]) -> dict[str, str]:
    template = pod_template(workload_object(docs))
    assert template is not None
    labels: dict[str, str] = template["metadata"]["labels"]
    return labels


def assert_network_policy(docs: list[Doc], *, watching: bool, talks_to_api: bool) -> None:
    """The job's pods: in, only the metrics port and only for watchers; out, DNS, 443 and the
    store's port (Vault's 8200, or the API server's own 6443 after the Service's DNAT)."""
    policy = named(docs, "NetworkPolicy", "harbor-secrets", JOB_NAMESPACE)["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= job_pod_labels(docs).items()
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    ingress = policy.get("ingress", [])
    if watching:
        assert ingress == [{"ports": [{"protocol": "TCP", "port": 9464}]}]
    else:
        assert ingress == []
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == ({53, 443, 6443} if talks_to_api else {53, 443, 8200})
