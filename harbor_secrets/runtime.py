"""Build, offline, everything a command needs from a :class:`Config`.

Providers are constructed from their sinks' options, key templates are checked, and local
secret references are resolved — all before the first network call, so any mistake here
exits with code 2 and nothing is fetched or written.
"""

from __future__ import annotations

import gc
import logging
import os
import string
from collections.abc import Mapping
from dataclasses import dataclass

from harbor_secrets.config import Config, CredentialsConfig, Job
from harbor_secrets.errors import ConfigError
from harbor_secrets.options import Options
from harbor_secrets.provider import Provider, ProviderContext
from harbor_secrets.references import ReferenceResolver, is_local, scheme_of
from harbor_secrets.registry import Registry
from harbor_secrets.secrets import Secret

log = logging.getLogger(__name__)
TEMPLATE_FIELDS = ("environment", "scope", "credentials")
UNRESOLVED = "<unresolved: config check --skip-references>"


def settle_gc() -> None:
    """Re-enable cyclic GC (the CLI starts with it off) with start-up objects frozen.

    What exists once the stores are built (modules, SDK models, clients) lives until exit;
    freezing it keeps the collector from walking it again on every collection.
    """
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


@dataclass(frozen=True)
class Sink:
    """A configured store: its provider instance and key template."""

    name: str
    provider: Provider
    key_template: str

    def key_for(self, job: Job) -> str:
        return self.provider.render_key(
            self.key_template,
            environment=job.environment,
            scope=job.scope,
            credentials=job.credentials,
        )


class Runtime:
    """Sinks, references and warnings for one configuration; close it to release providers."""

    def __init__(
        self,
        config: Config,
        *,
        registry: Registry | None = None,
        environ: Mapping[str, str] | None = None,
        resolve_references: bool = True,
        watching: bool = False,
    ) -> None:
        """``resolve_references=False`` (``config check --skip-references``) lets providers
        be built where the secrets they read at construction are absent, e.g. in CI."""
        self.config = config
        self._resolve_references = resolve_references
        # Watch mode wakes when a token falls due, so the schedule period does not bound it.
        self.watching = watching
        self.registry = registry or Registry()
        self.environ = dict(os.environ if environ is None else environ)
        self._reference_providers: dict[str, Provider] = {}
        self.resolver = ReferenceResolver(
            environ=self.environ,
            base_dir=config.base_dir,
            provider_for_scheme=self._provider_for_scheme,
            source=config.source,
        )
        self.sinks: dict[str, Sink] = {}
        try:
            for name, sink in config.sinks.items():
                self.sinks[name] = self._build_sink(name, sink.provider, sink.options)
            self._check_templates()
            self._check_reference_schemes()
        except BaseException:
            self.close()
            raise
        settle_gc()

    # -- construction -------------------------------------------------------------------

    def _context(self, sink_name: str) -> ProviderContext:
        def resolve(reference: str) -> Secret:
            if not self._resolve_references:
                return Secret(UNRESOLVED)
            return self.resolver.resolve(reference, key=f"sinks.{sink_name}")

        return ProviderContext(
            sink_name=sink_name,
            source=self.config.source,
            environ=self.environ,
            resolve_reference=resolve,
        )

    def _load(self, provider_name: str, key: str) -> type[Provider]:
        try:
            return self.registry.load(provider_name)
        except ConfigError as exc:
            source = self.config.source
            raise ConfigError(exc.message, source=source, key=key, fix=exc.fix) from None

    def _build_sink(self, name: str, provider_name: str, table: Mapping[str, object]) -> Sink:
        cls = self._load(provider_name, f"sinks.{name}.provider")
        options = Options(table, prefix=f"sinks.{name}", source=self.config.source)
        template = options.string(cls.key_option, cls.default_key_template)
        assert template is not None
        self._check_template_syntax(template, options.key(cls.key_option))
        provider = cls.from_options(
            Options(table, prefix=f"sinks.{name}", source=self.config.source),
            self._context(name),
        )
        return Sink(name=name, provider=provider, key_template=template)

    def _check_template_syntax(self, template: str, key: str) -> None:
        fix = "use only {environment}, {scope} and {credentials} as placeholders"
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        except ValueError as exc:
            raise ConfigError(
                f"invalid template ({exc})", source=self.config.source, key=key, fix=fix
            ) from None
        for field_name in fields:
            if field_name not in TEMPLATE_FIELDS:
                raise ConfigError(
                    f"unknown placeholder {{{field_name}}}",
                    source=self.config.source,
                    key=key,
                    fix=fix,
                )

    def _check_templates(self) -> None:
        """Two different tokens must never land on one key of one sink."""
        seen: dict[tuple[str, str], str] = {}
        for job in self.config.jobs():
            for sink_name in job.sinks:
                sink = self.sinks[sink_name]
                key = sink.key_for(job)
                other = seen.setdefault((sink_name, key), job.label)
                if other != job.label:
                    option = sink.provider.key_option
                    raise ConfigError(
                        f"{other} and {job.label} would both be written to {key!r}",
                        source=self.config.source,
                        key=f"sinks.{sink_name}.{option}",
                        fix="add the placeholders that tell them apart "
                        "({environment}, {scope}, {credentials}) to the template",
                    )

    def _check_reference_schemes(self) -> None:
        for credentials in self.config.credentials.values():
            scheme = scheme_of(credentials.client_secret)
            if is_local(credentials.client_secret):
                continue
            if not self.registry.scheme_owner(scheme):
                raise ConfigError(
                    f"no provider resolves {scheme}: references",
                    source=self.config.source,
                    key=f"credentials.{credentials.name}.client_secret",
                    fix="use env: or file:, or install the provider that owns the scheme",
                )
            if self._resolve_references:
                # Build it now (offline by contract) so its options fail with exit 2 here,
                # not as a run-time failure of the first job that needs the secret.
                self._provider_for_scheme(scheme)

    def _provider_for_scheme(self, scheme: str) -> Provider | None:
        owner = self.registry.scheme_owner(scheme)
        if owner is None:
            return None
        for sink in self.sinks.values():
            if sink.provider.name == owner:
                return sink.provider
        if owner not in self._reference_providers:
            cls = self._load(owner, f"providers.{owner}")
            table = self.config.providers.get(owner, {})
            options = Options(table, prefix=f"providers.{owner}", source=self.config.source)
            self._reference_providers[owner] = cls.from_options(options, self._context(owner))
        return self._reference_providers[owner]

    # -- use ----------------------------------------------------------------------------

    def used_credentials(self, jobs: list[Job] | None = None) -> list[CredentialsConfig]:
        names = dict.fromkeys(job.credentials for job in (jobs or self.config.jobs()))
        return [self.config.credentials[name] for name in names]

    def resolve_local_secrets(self, jobs: list[Job] | None = None) -> dict[str, Secret]:
        """Resolve every ``env:``/``file:`` client secret now (exit 2 on failure)."""
        resolved = {}
        for credentials in self.used_credentials(jobs):
            if is_local(credentials.client_secret):
                resolved[credentials.name] = self.resolver.resolve(
                    credentials.client_secret,
                    key=f"credentials.{credentials.name}.client_secret",
                )
        return resolved

    def client_secret(self, credentials: CredentialsConfig) -> Secret:
        return self.resolver.resolve(
            credentials.client_secret, key=f"credentials.{credentials.name}.client_secret"
        )

    def warnings(self) -> list[str]:
        """Policies that cannot keep tokens fresh, and each sink's own advice."""
        refresh = self.config.refresh
        notes = []
        if refresh.refresh_before >= refresh.token_lifetime:
            notes.append(
                f"refresh.refresh_before ({refresh.refresh_before:g}s) is not less than the "
                f"token lifetime ({refresh.token_lifetime:g}s): every run rewrites every token"
            )
        if refresh.refresh_before <= refresh.schedule_period and not self.watching:
            notes.append(
                f"refresh.refresh_before ({refresh.refresh_before:g}s) is not more than the "
                f"schedule period ({refresh.schedule_period:g}s): readers can find an expired "
                "token between runs; raise refresh_before or run more often"
            )
        for sink in self.sinks.values():
            notes.extend(
                f"sinks.{sink.name}: {note}" for note in sink.provider.warnings(refresh.policy)
            )
        return notes

    def close(self) -> None:
        providers = [sink.provider for sink in self.sinks.values()]
        providers += list(self._reference_providers.values())
        for provider in providers:
            try:
                provider.close()
            except Exception as exc:  # closing must never hide the run's result
                log.warning("closing provider %s failed: %s", provider.name, type(exc).__name__)

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
