"""Load and validate the TOML configuration; every mistake names the file, the key and the fix.

Loading is purely local: nothing here touches the network, so ``config check`` and the start
of ``sync`` can reject a bad file with exit code 2 before any token is requested.
Providers' own options are validated later by :mod:`harbor_secrets.runtime`, still offline.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harbor_secrets._reading import LocalFileError, read_text_file
from harbor_secrets.environments import (
    DEFAULT_URLS,
    SCOPES,
    SCOPES_FIX,
    SCOPES_WHAT,
    Environment,
    environment_for_tower,
    resolve_environment,
)
from harbor_secrets.errors import ConfigError
from harbor_secrets.freshness import RefreshPolicy
from harbor_secrets.options import Options
from harbor_secrets.references import is_reference
from harbor_secrets.retry_policy import RetryPolicy

CONFIG_ENV_VAR = "HARBOR_SECRETS_CONFIG"
MAX_TOKEN_LIFETIME = 86_400  # the token client refuses longer lifetimes too
#: A configuration is a few KiB; a path to anything bigger is a mistake, not a configuration.
MAX_CONFIG_BYTES = 1 << 20
#: How a client authenticates at the token endpoint; the token client accepts these only.
AUTH_METHODS = ("client_secret_post", "client_secret_basic")


@dataclass(frozen=True)
class CredentialsConfig:
    name: str
    client_id: str
    client_secret: str  # a reference such as "env:NAME"; never the value
    auth_method: str = "client_secret_post"


@dataclass(frozen=True)
class SinkConfig:
    name: str
    provider: str
    options: Mapping[str, Any]  # everything but ``provider``; the provider validates it


@dataclass(frozen=True)
class TargetConfig:
    index: int
    credentials: str
    environments: tuple[str, ...]
    scopes: tuple[str, ...]
    sinks: tuple[str, ...]
    tower_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Job:
    """One token to keep fresh: a (credentials, environment, scope) and every sink it goes to."""

    credentials: str
    environment: str
    scope: str
    sinks: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.credentials}/{self.environment}/{self.scope}"


@dataclass(frozen=True)
class Config:
    source: str | None
    refresh: RefreshPolicy
    http: RetryPolicy
    environments: Mapping[str, Environment]
    credentials: Mapping[str, CredentialsConfig]
    sinks: Mapping[str, SinkConfig]
    providers: Mapping[str, Mapping[str, Any]]
    targets: tuple[TargetConfig, ...]
    base_dir: Path = field(default_factory=Path.cwd)

    def jobs(self) -> list[Job]:
        """Expand targets into one job per (credentials, environment, scope), sinks merged."""
        merged: dict[tuple[str, str, str], list[str]] = {}
        for target in self.targets:
            for environment in target.environments:
                for scope in target.scopes:
                    sinks = merged.setdefault((target.credentials, environment, scope), [])
                    sinks.extend(s for s in target.sinks if s not in sinks)
        return [Job(c, e, s, tuple(sinks)) for (c, e, s), sinks in merged.items()]


def find_config_path(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path:
    """``--config`` wins, then ``HARBOR_SECRETS_CONFIG``; there is no silent default."""
    chosen = path or environ.get(CONFIG_ENV_VAR)
    if not chosen:
        raise ConfigError(
            "no configuration file given",
            fix=f"pass --config FILE or set {CONFIG_ENV_VAR}; see config.example.toml",
        )
    return Path(chosen)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    text: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Parse and validate a configuration from a file (or ``text``, e.g. a Lambda variable)."""
    env = os.environ if environ is None else environ
    if text is not None:
        source = str(path) if path else "<inline configuration>"
        base_dir = Path(path).parent if path else Path.cwd()
        body = text
    else:
        config_path = find_config_path(path, env)
        source = str(config_path)
        try:
            body = read_text_file(config_path, limit=MAX_CONFIG_BYTES).text
        except LocalFileError as exc:
            missing = exc.problem == "does not exist"
            raise ConfigError(
                "file not found" if missing else f"the file {exc.problem}",
                source=source,
                fix="check the path given to --config" if missing else exc.fix,
            ) from None
        base_dir = config_path.resolve().parent  # after the read: a symlink loop is reported there
    try:
        data = tomllib.loads(body)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"not valid TOML: {exc}", source=source, fix="correct the syntax at that line"
        ) from None
    return parse_config(data, source=source, environ=env, base_dir=base_dir)


def parse_config(
    data: Mapping[str, Any],
    *,
    source: str | None,
    environ: Mapping[str, str],
    base_dir: Path | None = None,
) -> Config:
    root = Options(data, prefix="", source=source)
    tables = {name: root.table(name) for name in _TABLES}
    targets_value = root.raw("targets")
    # A misspelled table (``[credential.main]``) is the mistake to report, not the
    # "no credentials" it would otherwise lead to further down.
    root.finish()
    refresh = _parse_refresh(tables["refresh"])
    http = _parse_http(tables["http"])
    environments = _parse_environments(tables["environments"], environ)
    credentials = _parse_credentials(tables["credentials"])
    sinks = _parse_sinks(tables["sinks"])
    providers_table = tables["providers"]
    providers = {name: providers_table.table(name).raw_table() for name in _keys(providers_table)}
    targets = _parse_targets(targets_value, source, environments, credentials, sinks)
    return Config(
        source=source,
        refresh=refresh,
        http=http,
        environments=environments,
        credentials=credentials,
        sinks=sinks,
        providers=providers,
        targets=targets,
        base_dir=base_dir or Path.cwd(),
    )


#: The top-level tables besides ``[[targets]]``.
_TABLES = ("refresh", "http", "environments", "credentials", "sinks", "providers")


def _keys(options: Options) -> list[str]:
    return list(options.raw_table())


def _parse_refresh(options: Options) -> RefreshPolicy:
    settings = RefreshPolicy(
        refresh_before=options.duration("refresh_before", 150),
        schedule_period=options.duration("schedule_period", 60),
        token_lifetime=options.duration("token_lifetime", 300),
        max_workers=options.integer("max_workers", 8, minimum=1),
    )
    if not 1 <= settings.token_lifetime <= MAX_TOKEN_LIFETIME:
        raise options.error(
            "token_lifetime",
            f"must be between 1s and {MAX_TOKEN_LIFETIME}s (Harbor's tokens live 300 s)",
            'set token_lifetime = "300s"',
        )
    if settings.schedule_period < 1:
        raise options.error("schedule_period", "must be at least 1s", 'set schedule_period = "60s"')
    options.finish()
    return settings


def _parse_http(options: Options) -> RetryPolicy:
    timeouts = {
        name: options.duration(name, default)
        for name, default in (("connect_timeout", 5), ("read_timeout", 10), ("total_budget", 30))
    }
    for name, value in timeouts.items():
        if value <= 0:
            raise options.error(name, "must be more than 0", f'set {name} = "10s"')
    settings = RetryPolicy(**timeouts, max_attempts=options.integer("max_attempts", 5, minimum=1))
    options.finish()
    return settings


def _parse_environments(options: Options, environ: Mapping[str, str]) -> dict[str, Environment]:
    names = list(DEFAULT_URLS) + [n for n in _keys(options) if n not in DEFAULT_URLS]
    environments: dict[str, Environment] = {}
    for name in names:
        table = options.table(name)
        overrides = {
            key: value
            for key in ("accounts_url", "api_url")
            if (value := table.string(key)) is not None
        }
        table.finish()
        environments[name] = resolve_environment(
            name, overrides, environ=environ, source=options.source
        )
    return environments


def _parse_credentials(options: Options) -> dict[str, CredentialsConfig]:
    credentials: dict[str, CredentialsConfig] = {}
    for name in _keys(options):
        table = options.table(name)
        secret = table.required_str("client_secret")
        check_reference_syntax(secret, table, "client_secret")
        credentials[name] = CredentialsConfig(
            name=name,
            client_id=table.required_str("client_id"),
            client_secret=secret,
            auth_method=table.choice("auth_method", AUTH_METHODS, "client_secret_post"),
        )
        table.finish()
    return credentials


def check_reference_syntax(reference: str, options: Options, name: str) -> None:
    """Secrets are references (``env:NAME``, ``file:/path``, ``vault:…``), never values.

    The value itself is never echoed in the error: if it is a pasted secret, it stays out of
    terminals and CI logs.
    """
    if not is_reference(reference):
        variable = "HARBOR_" + "".join(c if c.isalnum() else "_" for c in name).upper()
        raise options.error(
            name,
            "must be a secret reference, not a value (the value is not shown)",
            f'write {name} = "env:{variable}" or "file:/run/secrets/{name}" '
            "(or a provider's scheme such as vault:, aws-sm:, ssm:); if a real secret was "
            "pasted here, rotate it",
        )


def _parse_sinks(options: Options) -> dict[str, SinkConfig]:
    sinks: dict[str, SinkConfig] = {}
    for name in _keys(options):
        table = options.table(name)
        provider = table.required_str("provider")
        sinks[name] = SinkConfig(
            name=name,
            provider=provider,
            options={k: v for k, v in table.raw_table().items() if k != "provider"},
        )
    return sinks


def _parse_targets(
    value: Any,
    source: str | None,
    environments: Mapping[str, Environment],
    credentials: Mapping[str, CredentialsConfig],
    sinks: Mapping[str, SinkConfig],
) -> tuple[TargetConfig, ...]:
    example = 'add [[targets]] with credentials = "main", environments = ["sandbox"]'
    if value is None:
        raise ConfigError("no targets configured", source=source, key="targets", fix=example)
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise ConfigError(
            "must be an array of tables", source=source, key="targets", fix="write [[targets]]"
        )
    if not value:
        raise ConfigError("no targets configured", source=source, key="targets", fix=example)
    targets = []
    for index, item in enumerate(value):
        table = Options(item, prefix=f"targets[{index}]", source=source)
        targets.append(_parse_target(index, table, environments, credentials, sinks))
    return tuple(targets)


def _parse_target(
    index: int,
    table: Options,
    environments: Mapping[str, Environment],
    credentials: Mapping[str, CredentialsConfig],
    sinks: Mapping[str, SinkConfig],
) -> TargetConfig:
    default_credentials = next(iter(credentials)) if len(credentials) == 1 else None
    credentials_name = table.string("credentials", default_credentials)
    if credentials_name is None and not credentials:
        raise table.error(
            "credentials",
            "has no credentials to use: the file defines no [credentials.NAME] table",
            'add [credentials.main] with client_id = "…" and client_secret = "env:…"',
        )
    if credentials_name is None:
        raise table.error(
            "credentials", "is required when several credentials exist", 'set credentials = "…"'
        )
    table.pick(
        "credentials",
        credentials_name,
        credentials,
        what="the credentials this file defines",
        fix=f"define [credentials.{credentials_name}] or use one of: {', '.join(credentials)}",
    )
    names = table.str_list("environments")
    tower_ids = table.str_list("tower_ids")
    for tower_id in tower_ids:
        try:
            resolved = environment_for_tower(tower_id)
        except ConfigError as exc:
            raise table.error("tower_ids", exc.message, exc.fix or "") from None
        if resolved not in names:
            names.append(resolved)
    if not names:
        raise table.error(
            "environments",
            "names no environment",
            'set environments = ["sandbox"] or tower_ids = ["0100000000000a3f"]',
        )
    for name in names:
        table.pick(
            "environments",
            name,
            environments,
            what="the environments",
            fix=f"use one of {', '.join(environments)} or define [environments.{name}]",
        )
    scopes = table.str_list("scopes", list(SCOPES))
    if not scopes:
        raise table.error("scopes", "is empty", f"use one or more of {', '.join(SCOPES)}")
    for scope in scopes:  # Harbor would answer invalid_scope at run time
        table.pick("scopes", scope, SCOPES, what=SCOPES_WHAT, fix=SCOPES_FIX)
    sink_names = table.str_list("sinks", list(sinks))
    if not sink_names:
        raise table.error("sinks", "names no sink", "define a [sinks.NAME] table and list it here")
    for name in sink_names:
        table.pick(
            "sinks",
            name,
            sinks,
            what="the sinks this file defines",
            fix=f"define [sinks.{name}] or use one of: {', '.join(sinks) or 'none is defined'}",
        )
    table.finish()
    return TargetConfig(
        index=index,
        credentials=credentials_name,
        environments=tuple(dict.fromkeys(names)),
        scopes=tuple(dict.fromkeys(scopes)),
        sinks=tuple(dict.fromkeys(sink_names)),
        tower_ids=tuple(tower_ids),
    )
