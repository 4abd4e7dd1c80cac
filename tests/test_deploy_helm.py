"""deploy/helm/harbor-secrets: linted and rendered by the real helm, and held to the kustomize tree.

helm v4 (pinned, from the npm registry; the root conftest's ``helm`` fixture) lints the chart
and renders its defaults and every ci/<shape>-values.yaml. Each render goes through what the
kustomize tree goes through (tests/kube_manifests.py): strict validation against the
Kubernetes 1.32 and 1.37 schemas, the hardening, the files the configuration reads, the real
`config check`, the Role's resourceNames against the names the core renders (checkov's scan
is in test_deploy_checkov.py). The chart and the kustomize tree are two renderings of one
design: test_chart_renders_what_kustomize_renders compares the objects of each shape, so
neither can drift from the other (deploy/helm/harbor-secrets/README.md says why a comparison
rather than generating one from the other).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_renders import KUSTOMIZE, render
from kube_manifests import (
    CHART,
    CHART_SHAPES,
    JOB_NAMESPACE,
    KUBERNETES_VERSIONS,
    REPO,
    SECRET_NAME,
    Doc,
    assert_config_and_secrets_are_files,
    assert_config_check_passes,
    assert_every_file_the_config_reads_is_mounted,
    assert_hardened,
    assert_network_policy,
    assert_role_grants_exactly,
    assert_runs_every_minute_without_overlap,
    assert_service_account_without_token,
    assert_token_secrets_precreated,
    config_of,
    container,
    file_references,
    helm_run,
    helm_template,
    is_watch,
    job_pod_labels,
    of_kind,
    one,
    parse,
    pod_template,
    render_chart,
    secret_names,
    workload,
)

import harbor_secrets

RULES = REPO / "deploy" / "prometheus" / "harbor-secrets.rules.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "harbor-secrets.json"
#: Objects of CRDs that the Kubernetes schemas do not know; checked one by one below.
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
#: Each chart shape and the kustomize render it must give the same objects as ("a+b": the
#: overlay a run by the component b, as a user's own overlay would).
KUSTOMIZE_OF = {
    "defaults": "base",
    "vault-approle": "base",
    "vault-kubernetes-auth": "overlays/vault-kubernetes-auth",
    "aws-irsa": "overlays/aws-irsa",
    "kubernetes-secret": "overlays/kubernetes-secret",
    "watch": "overlays/watch",
    "monitoring": "overlays/watch",
    "vault-kubernetes-auth+watch": "overlays/vault-kubernetes-auth+components/watch",
    "aws-irsa+watch": "overlays/aws-irsa+components/watch",
    "kubernetes-secret+watch": "overlays/kubernetes-secret+components/watch",
}
SHAPES = tuple(CHART_SHAPES)
WATCH_SHAPES = tuple(shape for shape in SHAPES if is_watch(shape))
CRONJOB_SHAPES = tuple(shape for shape in SHAPES if not is_watch(shape))
K8S_SECRET = "kubernetes-secret"
RECOMMENDED_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
}
#: A value nobody would use as a reference; it must never be echoed.
CANARY = "canary-pasted-secret-5b1e"


@pytest.fixture(scope="module")
def rendered(helm: Path) -> dict[str, list[Doc]]:
    return {shape: parse(render_chart(helm, shape)) for shape in SHAPES}


def test_every_shape_is_rendered_and_compared() -> None:
    assert set(SHAPES) == set(KUSTOMIZE_OF)
    assert set(WATCH_SHAPES) == {"watch", "monitoring", *(s for s in SHAPES if "+" in s)}


# --- helm lint, and the schema ---------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_helm_lint_passes_strictly(helm: Path, shape: str) -> None:
    values, options = CHART_SHAPES[shape]
    args = ["lint", "--strict", str(CHART), *options]
    if values is not None:
        args += ["--values", str(CHART / "ci" / values)]
    result = helm_run(helm, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_chart_moves_in_lockstep_with_the_tool() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["version"] == chart["appVersion"] == harbor_secrets.__version__


SCHEMA_REFUSALS = [
    (("--set", "mode=cronjobs"), "at '/mode': value must be one of 'cronjob', 'watch'"),
    (("--set", "modee=watch"), "additional properties 'modee' not allowed"),
    (("--set", "watch.replicas=1"), "at '/watch/replicas': minimum: got 1, want 2"),
    (("--set", "image.digest=latest"), "at '/image/digest'"),
    (("--set", "image.pullPolicy=Sometimes"), "at '/image/pullPolicy'"),
    (("--set", "tokenSecrets.enabled=true"), "at '/tokenSecrets/names': minItems"),
    (("--set", "vaultKubernetesAuth.expirationSeconds=60"), "minimum: got 60, want 600"),
    (("--set", "resources.limits.cpu=lots"), "at '/resources/limits/cpu'"),
    (("--set", "networkPolicy.egressPorts={443,70000}"), "at '/networkPolicy/egressPorts/1'"),
    (("--set", "credentialsSecret=Bad_Name"), "at '/credentialsSecret'"),
    (("--set", "config="), "at '/config': minLength"),
]


@pytest.mark.parametrize(("options", "message"), SCHEMA_REFUSALS, ids=lambda x: str(x)[:40])
def test_a_wrong_value_fails_at_install(helm: Path, options: tuple[str, str], message: str) -> None:
    result = helm_run(helm, "template", "harbor-secrets", str(CHART), *options)
    assert result.returncode != 0
    assert message in result.stderr


def config_with(secret_key: str, value: str) -> str:
    """The defaults' configuration with one credential field set to ``value``."""
    text = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))["config"]
    assert isinstance(text, str)
    if secret_key == "client_secret":
        return text.replace('"file:/var/run/secrets/harbor/client-secret"', json.dumps(value))
    if secret_key in {"role_id", "secret_id"}:
        old = f'"file:/var/run/secrets/harbor/vault-{secret_key.replace("_", "-")}"'
        return text.replace(old, json.dumps(value))
    method = "token" if secret_key == "token" else "jwt"
    auth = f'[sinks.vault.auth]\nmethod = "{method}"\n{secret_key} = {json.dumps(value)}\n'
    return re.sub(r"\[sinks\.vault\.auth\]\n(?:[^\[\n].*\n)+", auth, text)


def render_config(helm: Path, text: str, *options: str) -> subprocess.CompletedProcess[str]:
    """The chart with ``config`` set to ``text`` (as --set-file would, not split at commas)."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as config:
        config.write(text)
        config.flush()
        return helm_run(
            helm,
            "template",
            "harbor-secrets",
            str(CHART),
            "--set-file",
            f"config={config.name}",
            *options,
        )


@pytest.mark.parametrize("key", ["client_secret", "role_id", "secret_id", "token", "jwt"])
def test_a_secret_value_in_the_config_fails_at_install_and_is_never_shown(
    helm: Path, key: str
) -> None:
    accepted = render_config(helm, config_with(key, "file:/var/run/secrets/harbor/x"))
    assert accepted.returncode == 0, accepted.stderr
    refused = render_config(helm, config_with(key, CANARY))
    assert refused.returncode != 0
    assert f".{key} must be a secret reference" in refused.stderr
    assert CANARY not in refused.stdout + refused.stderr


@pytest.mark.parametrize(
    "value",
    [
        "env:HARBOR_X",
        "file:/x",
        "aws-sm:name#field",
        "hunter2",
        ":x",
        "Env:X",
        "1:x",
        "k7q2m9x4v8:Zp3Wn6Rt1Ys5",  # a pasted secret with a reference's old shape
        "k8s:x",
        "a-:x",
        "café:x",
    ],
)
def test_the_chart_and_the_tool_agree_on_what_a_reference_is(helm: Path, value: str) -> None:
    """The chart's install-time check is a copy of the tool's rule; this keeps them one."""
    from harbor_secrets.config import check_reference_syntax
    from harbor_secrets.errors import ConfigError
    from harbor_secrets.options import Options

    try:
        check_reference_syntax(value, Options({}, prefix="", source=None), "client_secret")
        tool_accepts = True
    except ConfigError:
        tool_accepts = False
    chart = render_config(helm, config_with("client_secret", value))
    assert (chart.returncode == 0) == tool_accepts, chart.stderr


def test_the_chart_checks_references_with_the_tools_own_pattern() -> None:
    """Not just the same verdicts on the values above: the same pattern, anchored."""
    from harbor_secrets.references import REFERENCE_PATTERN

    helpers = (CHART / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    assert f'(regexMatch "^{REFERENCE_PATTERN}$" $value)' in helpers


def test_broken_toml_and_missing_tables_fail_at_install(helm: Path) -> None:
    broken = render_config(helm, "[credentials.main\nclient_id = 1\n")
    assert broken.returncode != 0
    assert "config is not valid TOML" in broken.stderr
    partial = render_config(helm, '[refresh]\nrefresh_before = "150s"\n')
    assert partial.returncode != 0
    assert "config has no credentials" in partial.stderr


def test_a_file_only_a_disabled_volume_would_mount_fails_at_install(helm: Path) -> None:
    text = (CHART / "ci" / "vault-kubernetes-auth-values.yaml").read_text(encoding="utf-8")
    config = yaml.safe_load(text)["config"]
    result = render_config(helm, config)  # vaultKubernetesAuth left at its default, false
    assert result.returncode != 0
    assert "vaultKubernetesAuth.enabled=true" in result.stderr


# --- every render: valid, hardened, configured -------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_renders_and_validates_strictly(
    rendered: dict[str, list[Doc]], shape: str, version: str
) -> None:
    docs = rendered[shape]
    assert len(docs) >= 4
    for doc in docs:
        if doc["kind"] in OPERATOR_KINDS:
            continue  # no schema offline; test_monitoring_objects checks them
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("shape", SHAPES)
def test_pod_is_hardened(rendered: dict[str, list[Doc]], shape: str) -> None:
    assert_hardened(workload(rendered[shape]))
    assert_service_account_without_token(rendered[shape])


@pytest.mark.parametrize("shape", SHAPES)
def test_every_object_carries_the_recommended_labels(
    rendered: dict[str, list[Doc]], shape: str
) -> None:
    component = "watch" if is_watch(shape) else "sync"
    for doc in rendered[shape]:
        labels = doc["metadata"]["labels"]
        where = f"{doc['kind']} {doc['metadata']['name']}"
        assert set(labels) >= RECOMMENDED_LABELS, where
        assert labels["app.kubernetes.io/name"] == "harbor-secrets", where
        assert labels["app.kubernetes.io/instance"] == "harbor-secrets", where
        assert labels["app.kubernetes.io/part-of"] == "harbor-secrets", where
        assert labels["app.kubernetes.io/component"] == component, where
        assert labels["app.kubernetes.io/version"] == harbor_secrets.__version__, where
        # a token Secret must say harbor-secrets owns it, or the tool will not write it
        owner = "harbor-secrets" if doc["kind"] == "Secret" else "Helm"
        assert labels["app.kubernetes.io/managed-by"] == owner, where
        template = pod_template(doc)
        if template is not None:
            assert set(template["metadata"]["labels"]) >= RECOMMENDED_LABELS, where


def test_image_is_the_package_version_and_a_digest_pins_it(
    helm: Path, rendered: dict[str, list[Doc]]
) -> None:
    images = {container(workload(docs))["image"] for docs in rendered.values()}
    assert images == {f"registry.example.com/platform/harbor-secrets:{harbor_secrets.__version__}"}
    digest = "sha256:" + hashlib.sha256(b"image").hexdigest()
    pinned = parse(helm_template(helm, None, "--set", f"image.digest={digest}"))
    image = container(workload(pinned))["image"]
    assert image.endswith(f":{harbor_secrets.__version__}@{digest}")
    assert container(workload(pinned))["imagePullPolicy"] == "IfNotPresent"


@pytest.mark.parametrize("shape", SHAPES)
def test_config_is_the_configmap_and_secrets_are_files(
    rendered: dict[str, list[Doc]], shape: str
) -> None:
    configuration = assert_config_and_secrets_are_files(rendered[shape])
    assert configuration["metadata"]["name"] == "harbor-secrets-config"  # a checksum rolls it


@pytest.mark.parametrize("shape", SHAPES)
def test_every_file_the_config_reads_is_mounted(rendered: dict[str, list[Doc]], shape: str) -> None:
    assert_every_file_the_config_reads_is_mounted(rendered[shape])


@pytest.mark.parametrize("shape", SHAPES)
def test_config_check_passes_with_the_pods_files(
    rendered: dict[str, list[Doc]], shape: str, tmp_path: Path
) -> None:
    assert_config_check_passes(rendered[shape], tmp_path)


def notes(helm: Path, shape: str) -> str:
    values, options = CHART_SHAPES[shape]
    args = ["install", "harbor-secrets", str(CHART), "-n", JOB_NAMESPACE, "--dry-run=client"]
    args += options
    if values is not None:
        args += ["--values", str(CHART / "ci" / values)]
    result = helm_run(helm, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.partition("\nNOTES:\n")[2]


@pytest.mark.parametrize("shape", SHAPES)
def test_notes_name_the_secret_keys_to_create_and_how_to_see_it_work(
    helm: Path, rendered: dict[str, list[Doc]], shape: str
) -> None:
    text = notes(helm, shape)
    _, config = config_of(rendered[shape])
    wanted = {
        Path(p).name for p in file_references(config) if p.startswith("/var/run/secrets/harbor/")
    }
    listed = set(re.findall(r"^ {5}([a-z-]+)$", text, flags=re.MULTILINE))
    assert listed == wanted
    assert f"get secret {SECRET_NAME}" in text
    kind = "deployment" if is_watch(shape) else "cronjob"
    assert f"{kind}/harbor-secrets" in text


# --- the shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", CRONJOB_SHAPES)
def test_cronjob_runs_every_minute_and_never_overlaps(
    rendered: dict[str, list[Doc]], shape: str
) -> None:
    assert of_kind(rendered[shape], "Deployment") == []
    assert_runs_every_minute_without_overlap(one(rendered[shape], "CronJob"))


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


@pytest.mark.parametrize("shape", WATCH_SHAPES)
def test_watch_is_highly_available(rendered: dict[str, list[Doc]], shape: str) -> None:
    """HA-SHAPE: replicas on different nodes, never all gone in a drain or an update."""
    docs = rendered[shape]
    assert of_kind(docs, "CronJob") == []
    deployment = one(docs, "Deployment")
    spec = deployment["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert selects(spec["selector"]["matchLabels"], pod_labels)
    pod = spec["template"]["spec"]
    by_key = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    nodes, zones = by_key["kubernetes.io/hostname"], by_key["topology.kubernetes.io/zone"]
    assert (nodes["maxSkew"], nodes["whenUnsatisfiable"]) == (1, "DoNotSchedule")
    assert nodes["nodeTaintsPolicy"] == "Honor"
    assert (zones["maxSkew"], zones["whenUnsatisfiable"]) == (1, "ScheduleAnyway")
    for constraint in (nodes, zones):
        assert selects(constraint["labelSelector"]["matchLabels"], pod_labels)
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]  # per revision
    tolerations = {t["key"]: t for t in pod["tolerations"]}
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        assert tolerations[key] == {
            "key": key,
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 30,
        }
    budget = one(docs, "PodDisruptionBudget")["spec"]
    assert budget["minAvailable"] == 1
    assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"  # Harbor down never blocks a drain
    assert selects(budget["selector"]["matchLabels"], pod_labels)
    main = container(pod)
    assert main["args"][2:] == ["sync", "--watch", "--listen", "0.0.0.0:9464"]
    (port,) = main["ports"]
    assert (port["name"], port["containerPort"]) == ("metrics", 9464)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert main[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}, probe
    # liveness restarts only after minutes; readiness is what a rollout waits for
    live, ready = main["livenessProbe"], main["readinessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 180
    assert ready["periodSeconds"] * ready["failureThreshold"] <= 60
    service = one(docs, "Service")
    assert selects(service["spec"]["selector"], pod_labels)
    assert service["spec"]["publishNotReadyAddresses"] is True
    (service_port,) = service["spec"]["ports"]
    assert (service_port["port"], service_port["targetPort"]) == (9464, "metrics")


def test_watch_rolls_when_the_configuration_changes(helm: Path, tmp_path: Path) -> None:
    def checksum(*options: str) -> str:
        docs = parse(helm_template(helm, "watch-values.yaml", *options))
        annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        value: str = annotations["checksum/config"]
        return value

    config = yaml.safe_load((CHART / "ci" / "watch-values.yaml").read_text())["config"]
    changed = tmp_path / "changed.toml"
    changed.write_text(config.replace('refresh_before = "150s"', 'refresh_before = "120s"'))
    assert checksum() != checksum("--set-file", f"config={changed}")


@pytest.mark.parametrize("shape", SHAPES)
def test_network_policy_admits_only_the_metrics_port(
    rendered: dict[str, list[Doc]], shape: str
) -> None:
    assert_network_policy(
        rendered[shape], watching=is_watch(shape), talks_to_api=shape.startswith(K8S_SECRET)
    )


def test_kubernetes_secret_role_grants_exactly_the_rendered_names(
    rendered: dict[str, list[Doc]], tmp_path: Path
) -> None:
    docs = rendered[K8S_SECRET]
    namespace, names, warnings = secret_names(docs, tmp_path)
    assert names == {"harbor-sandbox-service-provider", "harbor-sandbox-tower-access"}
    assert warnings == []
    assert_role_grants_exactly(docs, namespace, names)
    assert_token_secrets_precreated(docs, namespace, names)


def test_the_role_check_catches_a_name_the_configuration_does_not_render(
    helm: Path, tmp_path: Path
) -> None:
    names = "tokenSecrets.names={harbor-sandbox-service-provider,harbor-sandbox-tower}"
    docs = parse(render_chart(helm, K8S_SECRET, "--set", names))
    namespace, rendered_names, _ = secret_names(docs, tmp_path)
    with pytest.raises(AssertionError):
        assert_role_grants_exactly(docs, namespace, rendered_names)


# --- Prometheus Operator and Grafana objects (off by default) --------------------------------


def test_monitoring_objects_are_off_by_default(rendered: dict[str, list[Doc]]) -> None:
    kinds = {doc["kind"] for docs in rendered.values() for doc in docs}
    assert kinds & OPERATOR_KINDS == OPERATOR_KINDS  # the monitoring shape has them
    for shape in ("defaults", "watch"):
        docs = rendered[shape]
        assert {d["kind"] for d in docs} & OPERATOR_KINDS == set()
        assert [d["metadata"]["name"] for d in of_kind(docs, "ConfigMap")] == [
            "harbor-secrets-config"
        ]


def test_service_monitor_selects_the_service_that_selects_the_watchers(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["monitoring"]
    monitor = one(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    service = one(docs, "Service")
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert monitor["spec"]["namespaceSelector"] == {
        "matchNames": [service["metadata"]["namespace"]]
    }
    ports = {port["name"] for port in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in ports
        assert endpoint["path"] == "/metrics"
    pods = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selects(service["spec"]["selector"], pods)
    # the README's hand-written ServiceMonitor selects on a label the Service carries too
    assert service["metadata"]["labels"]["app.kubernetes.io/name"] == "harbor-secrets"


def test_service_monitor_needs_watch_mode(helm: Path) -> None:
    result = helm_run(
        helm, "template", "harbor-secrets", str(CHART), "--set", "serviceMonitor.enabled=true"
    )
    assert result.returncode != 0
    assert "serviceMonitor.enabled needs mode: watch" in result.stderr


def test_prometheus_rule_holds_the_rules_file(rendered: dict[str, list[Doc]]) -> None:
    rule = one(rendered["monitoring"], "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == yaml.safe_load(RULES.read_text(encoding="utf-8"))


def test_dashboard_configmap_holds_the_dashboard(rendered: dict[str, list[Doc]]) -> None:
    (dashboard,) = [
        d
        for d in of_kind(rendered["monitoring"], "ConfigMap")
        if "harbor-secrets.json" in d["data"]
    ]
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["harbor-secrets.json"]) == json.loads(
        DASHBOARD.read_text(encoding="utf-8")
    )


def test_the_chart_ships_the_rules_and_dashboard_files_themselves() -> None:
    """files/ links to deploy/prometheus and deploy/grafana: one file each, not a copy."""
    for link, target in (
        (CHART / "files" / "harbor-secrets.rules.yml", RULES),
        (CHART / "files" / "harbor-secrets.json", DASHBOARD),
    ):
        assert link.is_symlink()
        assert link.resolve() == target.resolve()


# --- one source of truth: the chart renders what kustomize renders ----------------------------


def comparable(docs: list[Doc]) -> dict[tuple[str, str, str], Any]:
    """The objects that matter, keyed by (kind, namespace, name), without what only tells
    the two tools apart: labels (checked on their own), the ConfigMap's name (kustomize adds
    a content hash, the chart a checksum annotation), checkov's reasons (the check ids stay),
    selectors that select the job's pods, the order of volumes and mounts. The configuration
    is compared parsed. Left out: kustomize's Namespaces (a chart installs into one) and its
    example consumer, and the chart's optional monitoring objects."""
    pod_labels = job_pod_labels(docs)
    objects: dict[tuple[str, str, str], Any] = {}
    for original in docs:
        doc = copy.deepcopy(original)
        kind, metadata = doc["kind"], doc["metadata"]
        if kind == "Namespace" or kind in OPERATOR_KINDS:
            continue
        if metadata["name"].startswith("harbor-token-reader"):
            continue  # kustomize's example app
        if kind == "ConfigMap":
            if "harbor-secrets.toml" not in doc.get("data", {}):
                continue  # the chart's dashboard
            metadata["name"] = "<config>"
            doc["data"] = tomllib.loads(doc["data"]["harbor-secrets.toml"])
        metadata.pop("labels", None)
        annotations = {
            key: value.partition("=")[0] if key.startswith("checkov.io/") else value
            for key, value in metadata.pop("annotations", {}).items()
            if not key.startswith("checksum/")
        }
        if annotations:
            metadata["annotations"] = annotations
        for node in walk(doc):
            for key in ("selector", "podSelector", "labelSelector"):
                selector = node.get(key)
                if isinstance(selector, dict):
                    match = selector.get("matchLabels", selector)
                    if selects(match, pod_labels):
                        node[key] = "<the job's pods>"
        template = pod_template(doc)
        if template is not None:
            template["metadata"] = {}
            pod = template["spec"]
            for volume in pod["volumes"]:
                if "configMap" in volume and volume["name"] == "config":
                    volume["configMap"]["name"] = "<config>"
            pod["volumes"].sort(key=lambda v: v["name"])
            for main in pod["containers"]:
                main["volumeMounts"].sort(key=lambda m: m["mountPath"])
        if kind == "CronJob":
            doc["spec"]["jobTemplate"].pop("metadata", None)
        objects[(kind, metadata.get("namespace", ""), metadata["name"])] = doc
    return objects


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def differences(left: Any, right: Any, path: str = "") -> Iterator[str]:
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right), key=str):
            if key not in right:
                yield f"{path}.{key}: only in kustomize"
            elif key not in left:
                yield f"{path}.{key}: only in the chart"
            else:
                yield from differences(left[key], right[key], f"{path}.{key}")
    elif isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            yield from differences(a, b, f"{path}[{index}]")
    elif left != right:
        yield f"{path}: kustomize {left!r}, chart {right!r}"


@pytest.mark.parametrize("shape", SHAPES)
def test_chart_renders_what_kustomize_renders(
    rendered: dict[str, list[Doc]], shape: str, tmp_path: Path
) -> None:
    ours = comparable(rendered[shape])
    theirs = comparable(parse(render(KUSTOMIZE_OF[shape], tmp_path)))
    found = list(differences(theirs, ours))
    assert found == [], f"chart {shape} vs {KUSTOMIZE_OF[shape]}:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "shape", ["vault-approle", "vault-kubernetes-auth", "aws-irsa", K8S_SECRET]
)
def test_a_kustomize_overlays_toml_file_installs_unchanged_with_set_file(
    helm: Path, shape: str
) -> None:
    """The docs' promise: one harbor-secrets.toml serves kubectl apply -k and helm alike."""
    toml = KUSTOMIZE / KUSTOMIZE_OF[shape] / "harbor-secrets.toml"
    docs = parse(render_chart(helm, shape, "--set-file", f"config={toml}"))
    text, _ = config_of(docs)
    assert text == toml.read_text(encoding="utf-8")


def test_the_comparison_notices_a_difference(helm: Path, tmp_path: Path) -> None:
    drifted = parse(render_chart(helm, "defaults", "--set", "cronjob.activeDeadlineSeconds=45"))
    found = list(differences(comparable(parse(render("base", tmp_path))), comparable(drifted)))
    assert found == [
        ".('CronJob', 'harbor-secrets', 'harbor-secrets').spec.jobTemplate.spec"
        ".activeDeadlineSeconds: kustomize 50, chart 45"
    ]


def test_docs_list_every_chart_file_the_tests_run() -> None:
    """deploy/README.md shows a values file per shape; each one it names exists."""
    readme = (REPO / "deploy" / "README.md").read_text(encoding="utf-8")
    named_files = set(re.findall(r"ci/([a-z-]+-values\.yaml)", readme))
    assert named_files
    assert named_files <= {values for values, _ in CHART_SHAPES.values() if values}
