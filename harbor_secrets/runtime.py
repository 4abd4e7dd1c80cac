"""Build, offline, everything a command needs from a :class:`Config`.

Providers are constructed from their sinks' options, every token's key is rendered and
checked (:mod:`harbor_secrets.keys`), and local secret references are resolved — all before
the first network call, so any mistake here exits with code 2 and nothing is fetched or
written.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from harbor_secrets.config import Config, CredentialsConfig, Job
from harbor_secrets.errors import ConfigError
from harbor_secrets.hooks import OPTION as ON_WRITE
from harbor_secrets.hooks import TIMEOUT_OPTION as ON_WRITE_TIMEOUT
from harbor_secrets.hooks import OnWrite
from harbor_secrets.keys import KeyTemplate, store_key
from harbor_secrets.options import Options
from harbor_secrets.provider import Provider, ProviderContext
from harbor_secrets.references import ReferenceResolver, is_local, scheme_of, unknown_scheme
from harbor_secrets.registry import Registry
from harbor_secrets.secrets import Secret

log = logging.getLogger(__name__)
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
    """A configured store: its provider instance and the key template the core renders."""

    name: str
    provider: Provider
    key_template: KeyTemplate
    source: str | None = None
    on_write: OnWrite | None = None

    @property
    def key_option(self) -> str:
        """The dotted configuration key of the template, for error messages."""
        return f"sinks.{self.name}.{self.provider.key_option}"

    def key_for(self, job: Job) -> str:
        """The key this sink stores ``job``'s token under (ConfigError if it cannot)."""
        return store_key(
            self.provider,
            self.key_template,
            environment=job.environment,
            scope=job.scope,
            credentials=job.credentials,
            option=self.key_option,
            source=self.source,
        )


def provider_context(
    name: str,
    *,
    resolver: ReferenceResolver,
    environ: Mapping[str, str],
    source: str | None,
    skip_credentials: bool = False,
) -> ProviderContext:
    """What the provider of sink ``name`` is built with. ``skip_credentials`` (``config
    check --skip-references``, where the job's credentials do not exist) resolves no
    reference (each gives a placeholder) and tells the provider to check names and
    policy only."""

    def resolve(reference: str) -> Secret:
        if skip_credentials:
            return Secret(UNRESOLVED)
        return resolver.resolve(reference, key=f"sinks.{name}")

    return ProviderContext(
        sink_name=name,
        source=source,
        environ=environ,
        resolve_reference=resolve,
        skip_credentials=skip_credentials,
    )


def build_sink(
    name: str, cls: type[Provider], table: Mapping[str, object], context: ProviderContext
) -> Sink:
    """Build one sink offline: the core takes its own options, the provider the rest.

    ``table`` is the sink's configuration table without ``provider``. The key template and
    ``on_write`` (with its timeout) are read and checked here and never handed to
    :meth:`Provider.from_options`.
    """
    prefix = f"sinks.{name}"
    options = Options(table, prefix=prefix, source=context.source)
    text = options.string(cls.key_option, cls.default_key_template)
    assert text is not None
    template = KeyTemplate.parse(text, key=options.key(cls.key_option), source=context.source)
    on_write = OnWrite.from_options(options)
    core = {cls.key_option, ON_WRITE, ON_WRITE_TIMEOUT}
    rest = {option: value for option, value in table.items() if option not in core}
    provider = cls.from_options(
        Options(rest, prefix=prefix, source=context.source, known=core), context
    )
    return Sink(
        name=name,
        provider=provider,
        key_template=template,
        source=context.source,
        on_write=on_write,
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
        client_secrets: bool = True,
        only_sinks: Collection[str] | None = None,
    ) -> None:
        """``resolve_references=False`` (``config check --skip-references``) lets providers
        be built where the secrets they read at construction are absent, e.g. in CI.
        ``client_secrets=False`` (the readers: ``get``, ``exec``) never looks at the
        credentials' secret references, so a reader needs no client secret at all, and
        ``only_sinks`` builds just the sinks it reads (so it needs no other store's
        credentials)."""
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
            known_schemes=self.registry.known_schemes,
        )
        self.sinks: dict[str, Sink] = {}
        try:
            for name, sink in config.sinks.items():
                if only_sinks is None or name in only_sinks:
                    self.sinks[name] = self._build_sink(name, sink.provider, sink.options)
            self._check_templates()
            if client_secrets:
                self._check_reference_schemes()
        except BaseException:
            self.close()
            raise
        settle_gc()

    # -- construction -------------------------------------------------------------------

    def _context(self, sink_name: str) -> ProviderContext:
        return provider_context(
            sink_name,
            resolver=self.resolver,
            environ=self.environ,
            source=self.config.source,
            skip_credentials=not self._resolve_references,
        )

    def _load(self, provider_name: str, key: str) -> type[Provider]:
        try:
            return self.registry.load(provider_name)
        except ConfigError as exc:  # a missing provider too: it is the file's mistake
            raise exc.at(source=self.config.source, key=key) from None

    def _build_sink(self, name: str, provider_name: str, table: Mapping[str, object]) -> Sink:
        cls = self._load(provider_name, f"sinks.{name}.provider")
        return build_sink(name, cls, table, self._context(name))

    def _check_templates(self) -> None:
        """Two different tokens must never land on one key of one sink."""
        seen: dict[tuple[str, str], str] = {}
        for job in self.config.jobs():
            for sink_name in job.sinks:
                sink = self.sinks.get(sink_name)
                if sink is None:  # not built (only_sinks): not used by this command
                    continue
                key = sink.key_for(job)
                other = seen.setdefault((sink_name, key), job.label)
                if other != job.label:
                    raise ConfigError(
                        f"{other} and {job.label} would both be written to {key!r}",
                        source=self.config.source,
                        key=sink.key_option,
                        fix="add the placeholders that tell them apart "
                        "({environment}, {scope}, {credentials}) to the template",
                    )

    def _check_reference_schemes(self) -> None:
        for credentials in self.config.credentials.values():
            scheme = scheme_of(credentials.client_secret)
            if is_local(credentials.client_secret):
                continue
            key = f"credentials.{credentials.name}.client_secret"
            owner = self.registry.scheme_owner(scheme)
            if not owner:
                known = self.registry.known_schemes()
                raise unknown_scheme(scheme, known, key=key, source=self.config.source)
            # Installed? Known offline, so say it here (also with --skip-references), at the
            # key that asked for it, rather than at the first use of the secret.
            self._load(owner, key)
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

    def hidden_variables(self) -> frozenset[str]:
        """Environment variables this configuration reads secrets from: every ``env:NAME``
        reference, and the variables each store's client reads by itself (``VAULT_TOKEN``,
        AWS keys). Commands this tool starts (``exec``, ``on_write``) never inherit them.
        """
        names: set[str] = set()

        def visit(value: object) -> None:
            if isinstance(value, str) and value.startswith("env:"):
                names.add(value.removeprefix("env:"))
            elif isinstance(value, Mapping):
                for item in value.values():
                    visit(item)
            elif isinstance(value, list | tuple):
                for item in value:
                    visit(item)

        visit([c.client_secret for c in self.config.credentials.values()])
        visit([sink.options for sink in self.config.sinks.values()])
        visit(list(self.config.providers.values()))
        providers = [sink.provider for sink in self.sinks.values()]
        providers += list(self._reference_providers.values())
        for provider in providers:
            names.update(provider.credential_variables)
        return frozenset(names)

    def warnings(self) -> list[str]:
        """Policies that cannot keep tokens fresh, each sink's own advice (and an
        ``on_write`` program that cannot start here), and what resolving the secrets found
        (call it after :meth:`resolve_local_secrets`)."""
        policy = self.config.refresh
        notes = policy.warnings(watching=self.watching)
        for sink in self.sinks.values():
            notes.extend(f"sinks.{sink.name}: {note}" for note in sink.provider.warnings(policy))
            problem = sink.on_write.cannot_start(self.environ) if sink.on_write else None
            if problem is not None:
                notes.append(f"sinks.{sink.name}.{ON_WRITE}: {problem}")
        notes.extend(self.resolver.warnings)  # secrets resolved so far (file: modes)
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
