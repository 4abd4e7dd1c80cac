"""What several commands share: loading the configuration and choosing one token."""

from __future__ import annotations

from dataclasses import dataclass

from harbor_secrets.config import Config, CredentialsConfig, Job, load_config
from harbor_secrets.environments import DEFAULT_SCOPE, environment_for_tower
from harbor_secrets.errors import ConfigError
from harbor_secrets.suggest import pick


def load(path: str | None) -> Config:
    return load_config(path)


def pick_credentials(config: Config, name: str | None) -> CredentialsConfig:
    if name is None:
        if len(config.credentials) == 1:
            return next(iter(config.credentials.values()))
        raise ConfigError(
            "several credentials are configured",
            key="--credentials",
            fix=f"pass --credentials with one of: {', '.join(config.credentials) or 'none'}",
        )
    pick(name, config.credentials, key="--credentials", what="the configured credentials")
    return config.credentials[name]


def pick_environment(config: Config, environment: str | None, tower_id: str | None) -> str:
    if environment and tower_id:
        raise ConfigError(
            "give --environment or --tower-id, not both", fix="drop one of the two options"
        )
    if tower_id:
        environment = environment_for_tower(tower_id)
    if not environment:
        raise ConfigError(
            "no environment given",
            fix="pass --environment sandbox (or production, development) or --tower-id",
        )
    return pick(environment, config.environments, key="--environment", what="the environments")


def pick_sink(config: Config, name: str) -> str:
    """``--sink NAME``: one of the configuration's sinks."""
    return pick(name, config.sinks, key="--sink", what="the configured sinks")


@dataclass(frozen=True)
class Target:
    """One token, as the command line names it: ``-e``/``--tower-id``, ``-s``, ``--credentials``."""

    environment: str | None = None
    tower_id: str | None = None
    scope: str = DEFAULT_SCOPE
    credentials: str | None = None

    def job(self, config: Config, sinks: tuple[str, ...] = ()) -> Job:
        """The configured token this names (ConfigError, exit 2, if it names none)."""
        environment = pick_environment(config, self.environment, self.tower_id)
        credentials = pick_credentials(config, self.credentials)
        return Job(credentials.name, environment, self.scope, sinks)
