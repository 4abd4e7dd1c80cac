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

    def job(self, config: Config) -> Job:
        """The job a ``[[targets]]`` table keeps for this token, with its sinks.

        Every command works on the tokens the configuration keeps: ``get`` reads only
        those, and ``token``/``verify`` send the client secret only to an environment
        ``config check`` lists. Anything else is a ConfigError (exit 2, before any network
        call) blaming the option that asked for it: the environment, the scope or the
        credentials.
        """
        environment = pick_environment(config, self.environment, self.tower_id)
        credentials = pick_credentials(config, self.credentials).name
        jobs = config.jobs()
        for job in jobs:
            if (job.credentials, job.environment, job.scope) == (
                credentials,
                environment,
                self.scope,
            ):
                return job
        kept = ", ".join(job.label for job in jobs)
        ours = [job for job in jobs if job.credentials == credentials]
        if not ours:
            key, what = "--credentials", f"credentials {credentials!r}"
        elif all(job.environment != environment for job in ours):
            key = "--tower-id" if self.tower_id else "--environment"
            what = f"environment {environment}"
            if self.tower_id:
                what += f" (tower {self.tower_id} is in {environment})"
        else:
            key, what = "--scope", f"scope {self.scope} in {environment}"
        raise ConfigError(
            f"no target keeps a token for {what}",
            key=key,
            fix=f"ask for one of: {kept} (or add it to a [[targets]] table)",
        )
