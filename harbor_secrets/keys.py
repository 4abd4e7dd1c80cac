"""Key templates: the one place that parses and renders ``{environment}/{scope}`` keys.

Every sink names its tokens with a template over ``{environment}``, ``{scope}`` and
``{credentials}``. The core checks the template, renders it for every token, and hands the
provider the rendered key; the provider only says what its store makes of it
(:meth:`~harbor_secrets.Provider.normalize_key`: upper-case it, add a leading ``/``, refuse
a name the store cannot hold). Providers never see or parse the template.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from harbor_secrets.errors import ConfigError
from harbor_secrets.provider import InvalidKeyError, Provider

FIELDS = ("environment", "scope", "credentials")
_FIX = "use only {environment}, {scope} and {credentials} as placeholders"

#: The env-file contract (DESIGN.md): HARBOR_<ENVIRONMENT>_<SCOPE>_ACCESS_TOKEN / _EXPIRES_AT.
#: The env-file store and ``harbor-secrets exec`` both name variables this way.
ENV_PREFIX_TEMPLATE = "HARBOR_{environment}_{scope}"
TOKEN_SUFFIX = "_ACCESS_TOKEN"
EXPIRES_SUFFIX = "_EXPIRES_AT"
_NOT_NAME_CHAR = re.compile(r"[^A-Z0-9_]")
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def is_shell_name(name: str) -> bool:
    """A name sh, python-dotenv and systemd all accept as a variable."""
    return _SHELL_NAME.match(name) is not None


def shell_name(text: str) -> str:
    """``text`` upper-cased with anything but ``A-Z 0-9 _`` turned into ``_``.

    Raises :class:`InvalidKeyError` when the result still is not a variable name (it
    starts with a digit).
    """
    name = _NOT_NAME_CHAR.sub("_", text.upper())
    if not is_shell_name(name):
        raise InvalidKeyError(
            f"becomes {name!r}, not a shell variable name",
            "start the prefix with a letter or underscore, e.g. HARBOR_",
        )
    return name


def env_names(prefix: str) -> tuple[str, str]:
    """The token and expiry variable names for a (normalised) prefix."""
    return prefix + TOKEN_SUFFIX, prefix + EXPIRES_SUFFIX


def default_env_names(*, environment: str, scope: str) -> tuple[str, str]:
    """The variables the env file uses by default, e.g. HARBOR_SANDBOX_TOWER_ACCESS_…"""
    return env_names(shell_name(ENV_PREFIX_TEMPLATE.format(environment=environment, scope=scope)))


@dataclass(frozen=True)
class KeyTemplate:
    """A checked key template; :meth:`render` fills it for one token."""

    text: str

    @classmethod
    def parse(cls, text: str, *, key: str, source: str | None = None) -> KeyTemplate:
        """Check the placeholders; a mistake is a :class:`ConfigError` naming ``key``."""
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
        except ValueError as exc:
            raise ConfigError(
                f"invalid template {text!r} ({exc})", source=source, key=key, fix=_FIX
            ) from None
        for name in fields:
            if name not in FIELDS:
                raise ConfigError(
                    f"unknown placeholder {{{name}}} in {text!r}",
                    source=source,
                    key=key,
                    fix=_FIX,
                )
        return cls(text)

    def render(self, *, environment: str, scope: str, credentials: str) -> str:
        return self.text.format(environment=environment, scope=scope, credentials=credentials)


def store_key(
    provider: Provider,
    template: KeyTemplate,
    *,
    environment: str,
    scope: str,
    credentials: str,
    option: str,
    source: str | None = None,
) -> str:
    """The key ``provider`` stores this token under, or a :class:`ConfigError` naming
    ``option``, the template and the rendered name when the store cannot hold it."""
    rendered = template.render(environment=environment, scope=scope, credentials=credentials)
    try:
        return provider.normalize_key(rendered)
    except InvalidKeyError as exc:
        raise ConfigError(
            f"template {template.text!r} renders {rendered!r} for "
            f"{credentials}/{environment}/{scope}, which {exc.problem}",
            source=source,
            key=option,
            fix=exc.fix,
        ) from None
