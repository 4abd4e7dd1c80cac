"""Find providers through the ``harbor_secrets.providers`` entry-point group.

Loading is lazy: a provider's module (and its SDK: hvac, boto3) is imported only when a
sink uses it. A provider whose distribution or dependency is missing is reported with the
command that installs it, instead of an ImportError traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata

from harbor_secrets.errors import ConfigError, ProviderUnavailableError
from harbor_secrets.provider import ENTRY_POINT_GROUP, Provider
from harbor_secrets.references import LOCAL_SCHEMES
from harbor_secrets.suggest import unknown

# These two tables must be listed, not derived: an entry point exists only once its
# distribution is installed, so nothing installed can say that `provider = "vault"` needs
# harbor-secrets-vault (the install hint), or that `vault:` references belong to a provider
# that is installed but not yet imported (finding out would import hvac on every run).
# tests/test_registry.py checks them against the providers' own pyproject.toml files.

#: First-party providers, so a missing one can be named with its install command.
KNOWN_PROVIDERS: dict[str, tuple[str, str]] = {
    "envfile": ("harbor-secrets-envfile", "harbor-secrets[envfile]"),
    "files": ("harbor-secrets-envfile", "harbor-secrets[envfile]"),
    "vault": ("harbor-secrets-vault", "harbor-secrets[vault]"),
    "aws-secretsmanager": ("harbor-secrets-aws", "harbor-secrets[aws]"),
    "aws-ssm": ("harbor-secrets-aws", "harbor-secrets[aws]"),
    "kubernetes": ("harbor-secrets-kubernetes", "harbor-secrets[kubernetes]"),
}

#: Reference schemes of first-party providers, known without importing them.
KNOWN_SCHEMES: dict[str, str] = {
    "vault": "vault",
    "aws-sm": "aws-secretsmanager",
    "ssm": "aws-ssm",
}


@dataclass(frozen=True)
class ProviderInfo:
    """One line of ``harbor-secrets providers``."""

    name: str
    status: str  # "installed", "broken" (dependency missing) or "not installed"
    distribution: str
    version: str | None
    summary: str
    schemes: tuple[str, ...]
    install: str | None
    error: str | None = None


def install_hint(name: str) -> str:
    """How to install the provider ``name``: for a first-party one, the README's safe install.

    Our distributions are not on PyPI, so installing one by name from an index would take
    whatever someone else published under that name (dependency confusion). ``make dist``
    writes ``dist/requirements.txt``, which installs exactly the files built (by hash, from
    ``dist/`` only); the extra then brings the provider's third-party dependencies.
    """
    if name in KNOWN_PROVIDERS:
        distribution, extra = KNOWN_PROVIDERS[name]
        return (
            f"install {distribution} from the files `make dist` built, never by name from a "
            "package index (it is not on PyPI): pip install --no-deps -r dist/requirements.txt "
            f"(keep its {distribution} line), then pip install '{extra}' for its dependencies"
        )
    return "install the distribution that provides it"


def known_names(installed: Iterable[str]) -> list[str]:
    """Every provider name a configuration may use: the installed ones and the first-party
    ones that are not (those get an install hint rather than "unknown")."""
    return sorted(set(installed) | set(KNOWN_PROVIDERS))


class Registry:
    """Providers installed in this environment, plus any injected ones (used by tests)."""

    def __init__(self, extra: Mapping[str, type[Provider]] | None = None) -> None:
        self._extra = dict(extra or {})
        self._entry_points: dict[str, metadata.EntryPoint] | None = None
        self._loaded: dict[str, type[Provider]] = dict(self._extra)

    def _points(self) -> dict[str, metadata.EntryPoint]:
        if self._entry_points is None:
            self._entry_points = {
                ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)
            }
        return self._entry_points

    def names(self) -> list[str]:
        return sorted(set(self._points()) | set(self._extra))

    def load(self, name: str) -> type[Provider]:
        """The provider class for ``name``; raises with an install hint if unavailable."""
        if name in self._loaded:
            return self._loaded[name]
        point = self._points().get(name)
        if point is None:
            if name in KNOWN_PROVIDERS:
                raise ProviderUnavailableError(
                    f"provider {name!r} is not installed", fix=install_hint(name)
                )
            known = known_names(self.names())
            raise unknown(
                name,
                known,
                key=None,
                what="the providers harbor-secrets knows",
                fix=f"use one of: {', '.join(known)} (`harbor-secrets providers` shows which "
                "are installed)",
            )
        try:
            cls = point.load()
        except ImportError as exc:
            raise ProviderUnavailableError(
                f"provider {name!r} is installed but cannot be imported ({exc.name or exc})",
                fix=install_hint(name),
            ) from None
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            raise ProviderUnavailableError(
                f"entry point {name!r} does not point at a harbor_secrets Provider class"
            )
        self._loaded[name] = cls
        return cls

    def scheme_owner(self, scheme: str) -> str | None:
        """The provider that resolves ``scheme:`` references, without importing first-party ones."""
        if scheme in KNOWN_SCHEMES and (KNOWN_SCHEMES[scheme] in self.names()):
            return KNOWN_SCHEMES[scheme]
        for name in self.names():
            if name in KNOWN_PROVIDERS:
                continue
            try:
                if scheme in self.load(name).reference_schemes:
                    return name
            except (ProviderUnavailableError, ConfigError):
                continue
        for name, cls in self._extra.items():
            if scheme in cls.reference_schemes:
                return name
        return KNOWN_SCHEMES.get(scheme)

    def known_schemes(self) -> list[str]:
        """Every reference scheme something here resolves: ``env`` and ``file``, the
        first-party providers' (installed or not: those get an install hint), and those of
        every other installed provider."""
        schemes = dict.fromkeys([*LOCAL_SCHEMES, *KNOWN_SCHEMES])
        for name in self.names():
            if name in KNOWN_PROVIDERS:
                continue
            try:
                schemes.update(dict.fromkeys(self.load(name).reference_schemes))
            except (ProviderUnavailableError, ConfigError):
                continue
        return list(schemes)

    def describe(self) -> list[ProviderInfo]:
        """Every installed provider and every first-party one that is missing."""
        infos: list[ProviderInfo] = []
        points = self._points()
        for name in sorted(set(points) | set(KNOWN_PROVIDERS) | set(self._extra)):
            point = points.get(name)
            distribution = KNOWN_PROVIDERS.get(name, ("unknown", ""))[0]
            version = None
            if point is not None and point.dist is not None:
                distribution, version = point.dist.name, point.dist.version
            if point is None and name not in self._extra:
                infos.append(
                    ProviderInfo(
                        name, "not installed", distribution, None, "", (), install_hint(name)
                    )
                )
                continue
            try:
                cls = self.load(name)
            except (ProviderUnavailableError, ConfigError) as exc:
                infos.append(
                    ProviderInfo(
                        name,
                        "broken",
                        distribution,
                        version,
                        "",
                        (),
                        install_hint(name),
                        error=exc.message,
                    )
                )
                continue
            infos.append(
                ProviderInfo(
                    name,
                    "installed",
                    distribution,
                    version,
                    cls.summary,
                    cls.reference_schemes,
                    None,
                )
            )
        return infos
