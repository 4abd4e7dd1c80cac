"""A Kubernetes sink's options, validated offline into one frozen :class:`KubernetesSettings`.

Where the client's identity comes from, in the order kubectl and client-go use:

1. ``kubeconfig`` (and ``context``) when the sink names either;
2. the pod's service account, when ``KUBERNETES_SERVICE_HOST`` is set and the token is
   mounted (``service_account_dir``);
3. ``$KUBECONFIG`` (one file), else ``~/.kube/config``.

Everything is read from local files and from the context's environment (never
``os.environ``), so a mistake here is a configuration error (exit 2) before any request,
and nothing needs the API server to be up. The kubeconfig is parsed by lightkube's own
loader, so what is validated here is exactly what the client will use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import yaml
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.config.models import Cluster, User
from lightkube.core.exceptions import ConfigError as LightkubeConfigError

from harbor_secrets import (
    ConfigError,
    LocalFileError,
    Options,
    ProviderContext,
    is_loopback_host,
    read_text_file,
)
from harbor_secrets_kubernetes._names import why_not_namespace

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_KUBECONFIG = "~/.kube/config"
#: A kubeconfig with many clusters and inline certificates stays well below this.
MAX_KUBECONFIG_BYTES = 1 << 20
DEFAULT_TIMEOUT = 10.0
DEFAULT_CONFLICT_RETRIES = 5
#: How late a pod can see a Secret update in its volume, by default (see warnings.py).
DEFAULT_VOLUME_PROPAGATION = 95.0
#: The exec-plugin API versions lightkube speaks.
EXEC_API_VERSIONS = (
    "client.authentication.k8s.io/v1alpha1",
    "client.authentication.k8s.io/v1beta1",
)


#: What ``config check --skip-references`` shows where no credentials were found.
UNCHECKED_SERVER = "(not checked)"
UNCHECKED_NAMESPACE = "(the credentials' namespace, not checked)"


@dataclass(frozen=True)
class Identity:
    """Where the credentials come from, in words for messages (no secret in it)."""

    in_cluster: bool
    path: str  # the service-account directory, or the kubeconfig file
    context: str | None = None
    user: str | None = None
    #: None were found and none were needed (``config check --skip-references``).
    unchecked: bool = False

    def describe(self) -> str:
        if self.unchecked:
            return "not checked: none here (config check --skip-references)"
        if self.in_cluster:
            return f"the pod's service account ({self.path})"
        user = f", user {self.user}" if self.user else ""
        return f"kubeconfig {self.path} (context {self.context}{user})"


@dataclass(frozen=True)
class KubernetesSettings:
    namespace: str
    server: str
    identity: Identity
    adopt: bool
    create: bool
    timeout: float
    conflict_retries: int
    volume_propagation: float
    sink_name: str
    #: Offline advice about the kubeconfig (insecure TLS, ignored settings).
    notes: tuple[str, ...] = ()
    #: lightkube's view of the selected cluster and user (holds no token for in-cluster).
    config: SingleConfig | None = field(default=None, compare=False, repr=False)

    def client_config(self) -> SingleConfig:
        assert self.config is not None
        return self.config


def parse_settings(options: Options, context: ProviderContext) -> KubernetesSettings:
    """Read every option (naming the key on any mistake) and refuse unknown ones."""
    environ = context.environ
    kubeconfig_option = options.string("kubeconfig")
    context_option = options.string("context")
    sa_dir = options.string("service_account_dir", SERVICE_ACCOUNT_DIR) or SERVICE_ACCOUNT_DIR
    namespace_option = options.string("namespace")
    adopt = options.boolean("adopt", False)
    create = options.boolean("create", False)
    timeout = options.duration("timeout", DEFAULT_TIMEOUT)
    if timeout <= 0:
        raise options.error("timeout", "must be more than zero", 'set timeout = "10s"')
    retries = options.integer("conflict_retries", DEFAULT_CONFLICT_RETRIES, minimum=0)
    propagation = options.duration("volume_propagation", DEFAULT_VOLUME_PROPAGATION)
    if namespace_option is not None:
        problem = why_not_namespace(namespace_option)
        if problem:
            raise options.error(
                "namespace", f"{namespace_option!r} {problem}", 'set namespace = "apps"'
            )
    options.finish()

    service_account = expand_home(sa_dir, environ)
    config: SingleConfig | None = None
    notes: tuple[str, ...] = ()
    if (
        kubeconfig_option is None
        and context_option is None
        and _in_cluster(environ, service_account)
    ):
        config, identity, default_namespace = _in_cluster_config(options, environ, service_account)
    else:
        try:
            path = _kubeconfig_path(options, kubeconfig_option, environ)
        except ConfigError:
            if not context.skip_credentials:
                raise
            # Checked offline where the job's credentials do not exist: the names, the
            # namespace option and the refresh policy are still checked; the cluster is not.
            identity = Identity(in_cluster=False, path="", unchecked=True)
            default_namespace = UNCHECKED_NAMESPACE
        else:
            config, identity, notes = _kubeconfig(options, path, context_option)
            default_namespace = config.context.namespace
    namespace = namespace_option or default_namespace
    if not namespace:
        raise options.error(
            "namespace",
            f"no namespace: the option is not set and {identity.describe()} names none",
            'set namespace = "apps" (the namespace of the Secrets and of the Role)',
        )
    problem = None if namespace == UNCHECKED_NAMESPACE else why_not_namespace(namespace)
    if problem:
        raise options.error(
            "namespace",
            f"the namespace {namespace!r} from {identity.describe()} {problem}",
            'set namespace = "apps"',
        )
    return KubernetesSettings(
        namespace=namespace,
        server=UNCHECKED_SERVER if config is None else config.cluster.server.rstrip("/"),
        identity=identity,
        adopt=adopt,
        create=create,
        timeout=timeout,
        conflict_retries=retries,
        volume_propagation=propagation,
        sink_name=context.sink_name,
        notes=notes,
        config=config,
    )


def expand_home(path: str, environ: Mapping[str, str]) -> str:
    """``~`` from the context's HOME, so a test's temporary HOME is honoured."""
    if path.startswith("~") and environ.get("HOME"):
        return environ["HOME"] + path[1:]
    return os.path.expanduser(path)


def _in_cluster(environ: Mapping[str, str], directory: str) -> bool:
    """Inside a pod whose service-account token is mounted (client-go's InClusterConfig)."""
    return bool(environ.get("KUBERNETES_SERVICE_HOST")) and os.path.isfile(
        os.path.join(directory, "token")
    )


def _in_cluster_config(
    options: Options, environ: Mapping[str, str], directory: str
) -> tuple[SingleConfig, Identity, str | None]:
    host = environ["KUBERNETES_SERVICE_HOST"].strip()
    port = environ.get("KUBERNETES_SERVICE_PORT", "").strip()
    if not port.isdigit():
        raise options.error(
            "kubeconfig",
            "KUBERNETES_SERVICE_HOST is set but KUBERNETES_SERVICE_PORT is not a port number",
            'run inside a pod (the kubelet sets both), or set kubeconfig = "/path/to/config"',
        )
    if ":" in host:  # IPv6
        host = f"[{host}]"
    ca = os.path.join(directory, "ca.crt")
    if not os.path.isfile(ca):
        raise options.error(
            "service_account_dir",
            f"{ca} does not exist: the service-account mount has no CA certificate",
            "mount the projected service-account volume with its ca.crt, or set kubeconfig",
        )
    namespace_file = Path(directory, "namespace")
    try:
        namespace = read_text_file(namespace_file).text.strip() or None
    except LocalFileError as exc:
        if exc.reason != "missing":
            raise options.error(
                "service_account_dir", f"{namespace_file}: the file {exc.problem}", exc.fix
            ) from None
        namespace = None  # then the namespace option must name one
    config = KubeConfig.from_one(
        cluster=Cluster(server=f"https://{host}:{port}", certificate_auth=ca),
        # The token file, not the token: lightkube re-reads it after a 401, which is how a
        # bound service-account token that the kubelet rotated is picked up.
        user=User(token_file=os.path.join(directory, "token")),
        namespace=namespace,
        context_name="in-cluster",
    ).get()
    assert config is not None
    return config, Identity(in_cluster=True, path=directory), namespace


def _kubeconfig_path(options: Options, given: str | None, environ: Mapping[str, str]) -> str:
    if given is not None:
        path = expand_home(given, environ)
        if not os.path.lexists(path):
            raise options.error(
                "kubeconfig", f"{path} does not exist", "point kubeconfig at a kubeconfig file"
            )
        return path
    listed = environ.get("KUBECONFIG", "").strip()
    if listed:
        files = [part for part in listed.split(os.pathsep) if part]
        if len(files) > 1:
            raise options.error(
                "kubeconfig",
                f"KUBECONFIG lists {len(files)} files; kubectl merges them, this provider "
                "reads one",
                f'set kubeconfig = "{files[0]}" (the file with the context to use)',
            )
        path = expand_home(files[0], environ)
        if not os.path.lexists(path):
            raise options.error(
                "kubeconfig",
                f"KUBECONFIG names {path}, which does not exist",
                "fix KUBECONFIG, or set kubeconfig in the sink",
            )
        return path
    path = expand_home(DEFAULT_KUBECONFIG, environ)
    in_pod = "set" if environ.get("KUBERNETES_SERVICE_HOST") else "not set"
    if not os.path.lexists(path):
        raise options.error(
            "kubeconfig",
            "no Kubernetes credentials: not in a pod with a mounted service-account token "
            f"(KUBERNETES_SERVICE_HOST is {in_pod}), KUBECONFIG is not set and {path} does "
            "not exist",
            'set kubeconfig = "/path/to/kubeconfig", export KUBECONFIG, or run the job in a '
            "pod whose service account token is mounted",
        )
    return path


def _kubeconfig(
    options: Options, path: str, context_name: str | None
) -> tuple[SingleConfig, Identity, tuple[str, ...]]:
    def bad(message: str, fix: str) -> ConfigError:
        return options.error("kubeconfig", f"{path}: {message}", fix)

    try:
        text = read_text_file(path, limit=MAX_KUBECONFIG_BYTES).text
    except LocalFileError as exc:
        raise bad(f"the file {exc.problem}", exc.fix) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        raise bad("is not valid YAML", "check it with 'kubectl config view'") from None
    if not isinstance(document, dict) or not isinstance(document.get("contexts"), list):
        raise bad("is not a kubeconfig (no contexts)", "check it with 'kubectl config view'")
    document.setdefault("clusters", [])
    try:
        kubeconfig = KubeConfig.from_dict(document, fname=path)
    except (KeyError, TypeError, msgspec.ValidationError) as exc:
        raise bad(
            f"has an entry lightkube cannot read ({type(exc).__name__}: {exc})",
            "check it with 'kubectl config view'",
        ) from None
    chosen = context_name or kubeconfig.current_context
    if not chosen:
        raise options.error(
            "context",
            f"{path} has no current-context",
            f"set context to one of: {', '.join(sorted(kubeconfig.contexts)) or '(none)'}",
        )
    if chosen not in kubeconfig.contexts:
        raise options.error(
            "context",
            f"{path} has no context {chosen!r}",
            f"use one of: {', '.join(sorted(kubeconfig.contexts)) or '(none)'}",
        )
    entry = kubeconfig.contexts[chosen]
    if entry.cluster not in kubeconfig.clusters:
        raise bad(
            f"context {chosen!r} names cluster {entry.cluster!r}, which is not defined",
            "add the cluster or fix the context",
        )
    if not entry.user or entry.user not in kubeconfig.users:
        raise bad(
            f"context {chosen!r} names no user, or one that is not defined ({entry.user!r})",
            "add the user with its credentials (token, tokenFile, exec or client certificate)",
        )
    try:
        config = kubeconfig.get(chosen)
    except (KeyError, LightkubeConfigError) as exc:
        raise bad(f"context {chosen!r} cannot be used ({exc})", "fix the context") from None
    assert config is not None
    assert config.user is not None
    _check_server(options, path, config.cluster.server)
    _check_user(options, path, entry.user, config)
    if config.user.token_file:  # lightkube opens it as given; kubectl, relative to the file
        absolute = str(config.abs_file(config.user.token_file))
        config = config._replace(user=msgspec.structs.replace(config.user, token_file=absolute))
    notes = _notes(document, entry.cluster, config)
    return config, Identity(False, path, chosen, entry.user), notes


def _check_server(options: Options, path: str, server: str) -> None:
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise options.error(
            "kubeconfig",
            f"{path}: the cluster's server {server!r} is not an http(s) URL",
            'use "https://host:6443"',
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise options.error(
            "kubeconfig",
            f"{path}: the cluster's server {server} is plain http: the credentials and every "
            "Harbor token would cross the network unencrypted",
            "use the cluster's https:// address (plain http is accepted only on loopback, "
            "e.g. kubectl proxy)",
        )


def _check_user(options: Options, path: str, name: str, config: SingleConfig) -> None:
    user = config.user
    assert user is not None
    if user.auth_provider:
        raise options.error(
            "kubeconfig",
            f"{path}: user {name!r} uses an auth-provider plugin, which lightkube (the client "
            "this provider uses) does not support",
            "switch the user to the exec credential plugin your platform ships "
            "(gke-gcloud-auth-plugin, kubelogin, aws eks get-token), or a token",
        )
    if user.exec is not None and user.exec.apiVersion not in EXEC_API_VERSIONS:
        raise options.error(
            "kubeconfig",
            f"{path}: user {name!r} runs an exec plugin with apiVersion "
            f"{user.exec.apiVersion!r}; lightkube speaks {' and '.join(EXEC_API_VERSIONS)}",
            "set the exec apiVersion to client.authentication.k8s.io/v1beta1 (plugins "
            "accept it), or give the user a token",
        )
    for label, value in (
        ("tokenFile", user.token_file),
        ("client-certificate", user.client_cert),
        ("client-key", user.client_key),
        ("certificate-authority", config.cluster.certificate_auth),
    ):
        if value and not os.path.isfile(str(config.abs_file(value))):
            raise options.error(
                "kubeconfig",
                f"{path}: {label} {config.abs_file(value)} does not exist",
                "fix the path in the kubeconfig (relative paths are relative to the file)",
            )
    has_credentials = any(
        (user.token, user.token_file, user.exec, user.client_cert, user.client_cert_data)
    ) or (user.username and user.password)
    if not has_credentials:
        raise options.error(
            "kubeconfig",
            f"{path}: user {name!r} has no credentials lightkube can use",
            "give the user a token, tokenFile, exec plugin or client certificate",
        )


def _notes(document: dict[str, Any], cluster_name: str, config: SingleConfig) -> tuple[str, ...]:
    """What ``config check`` should say about the kubeconfig (lightkube ignores some keys)."""
    raw: dict[str, Any] = {}
    for entry in document.get("clusters") or []:
        if isinstance(entry, dict) and entry.get("name") == cluster_name:
            raw = entry.get("cluster") or {}
    notes = []
    cluster = config.cluster
    if cluster.insecure and not (cluster.certificate_auth or cluster.certificate_auth_data):
        notes.append(
            f"the kubeconfig's cluster {cluster_name!r} sets insecure-skip-tls-verify: the API "
            "server's certificate is not checked, so anyone on the network path can capture "
            "the credentials and every Harbor token; give the cluster its certificate-authority"
        )
    if raw.get("proxy-url"):
        notes.append(
            f"the kubeconfig's cluster {cluster_name!r} sets proxy-url, which this provider "
            f"ignores: it connects to {cluster.server} directly"
        )
    if raw.get("tls-server-name"):
        notes.append(
            f"the kubeconfig's cluster {cluster_name!r} sets tls-server-name, which this "
            "provider ignores: the certificate must name the host of the server URL"
        )
    return tuple(notes)
