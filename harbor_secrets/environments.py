"""Harbor's environments, their URLs, overrides, and tower-ID resolution."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from harbor_secrets.errors import ConfigError
from harbor_secrets.suggest import pick

TOKEN_PATH = "/realms/harbor/protocol/openid-connect/token"
TEST_TOKEN_PATH = "/api/v1/login/test-token"

SCOPES = ("service_provider", "tower_access")
#: The scope a command works on when none is named (``-s``).
DEFAULT_SCOPE = "service_provider"
#: How an error names the set of scopes, and the fix it gives (:func:`suggest.pick`).
SCOPES_WHAT = "Harbor's scopes"
SCOPES_FIX = "use service_provider (your backend's API token) or tower_access (the mobile SDK's)"

#: Harbor's environments and their documented (accounts, api) base URLs. ``development``
#: is the one Harbor's SDKs and example apps know beside the two its token page names.
DEFAULT_URLS: dict[str, tuple[str, str]] = {
    "production": ("https://accounts.harborlockers.com", "https://api.harborlockers.com"),
    "sandbox": (
        "https://accounts.sandbox.harborlockers.com",
        "https://api.sandbox.harborlockers.com",
    ),
    "development": (
        "https://accounts.dev.harborlockers.com",
        "https://api.dev.harborlockers.com",
    ),
}

#: A tower ID's first two characters name its environment. Harbor documents no prefix for
#: ``development``, so a development tower's environment must be named, not looked up.
TOWER_PREFIXES = {"10": "production", "01": "sandbox"}
#: Harbor's SDKs take a tower ID as 16 hexadecimal characters, in either case.
_TOWER_ID = re.compile(r"[0-9A-Fa-f]{16}\Z")
TOWER_ID_EXAMPLE = "0100000000000a3f"


#: Each base URL's field, the endpoint path harbor-secrets appends to it, and where that
#: path begins (a base URL holding it was pasted from an endpoint, as Harbor's page shows).
_ENDPOINTS = {
    "accounts_url": (TOKEN_PATH, "/realms/", "token URL"),
    "api_url": (TEST_TOKEN_PATH, "/api/", "test-token URL"),
}


@dataclass(frozen=True)
class UrlOrigin:
    """Where one of an environment's URLs came from, so ``config check`` can say so."""

    kind: str  # "default" (Harbor's documented URL), "file" or "environment"
    name: str | None = None  # the configuration key or the environment variable
    #: Set when the value given was the full endpoint URL and only its base is used.
    trimmed_from: str | None = None

    def describe(self) -> str:
        """In words: "Harbor's default", "from environments.sandbox.api_url in the file",
        "from the environment variable HARBOR_SANDBOX_API_URL"."""
        if self.kind == "environment":
            text = f"from the environment variable {self.name}"
        elif self.kind == "file":
            text = f"from {self.name} in the file"
        else:
            text = "Harbor's default"
        if self.trimmed_from:
            text += f", given as the full {self.trimmed_from}"
        return text

    def to_dict(self) -> dict[str, str | None]:
        return {"from": self.kind, "name": self.name, "given_as": self.trimmed_from}


@dataclass(frozen=True)
class Environment:
    """One Harbor environment: where to get tokens and where to test them."""

    name: str
    accounts_url: str
    api_url: str
    accounts_origin: UrlOrigin = UrlOrigin("default")
    api_origin: UrlOrigin = UrlOrigin("default")

    @property
    def token_url(self) -> str:
        return self.accounts_url + TOKEN_PATH

    @property
    def test_token_url(self) -> str:
        return self.api_url + TEST_TOKEN_PATH


def is_loopback_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, *, source: str | None, key: str) -> str:
    """Accept ``https://`` anywhere and ``http://`` only on loopback; return it without ``/``."""
    parts = urlsplit(url)
    fix = "use an https:// URL (http:// is allowed only for 127.0.0.1, ::1 or localhost)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{url!r} is not an http(s) URL", source=source, key=key, fix=fix)
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"plain http:// to {parts.hostname} would send the client secret unencrypted",
            source=source,
            key=key,
            fix=fix,
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "a base URL must not carry user:password (it would be logged and stored)",
            source=source,
            key=key,
            fix="remove the user:password@ part; credentials go in [credentials.*]",
        )
    if parts.query or parts.fragment:
        raise ConfigError("a base URL takes no query or fragment", source=source, key=key, fix=fix)
    return url.rstrip("/")


def base_url(url: str, *, field: str, source: str | None, key: str) -> tuple[str, str | None]:
    """The base URL to append ``field``'s endpoint path to, checked by :func:`check_base_url`.

    Harbor's page writes the token URL both as ``{accounts_url}`` and in full, so the full
    token (or test-token) URL is understood: its base is used, and the second value says what
    was trimmed. Any other endpoint-like path (another realm, ``/api/v1``) is refused with the
    exact base URL to write instead.
    """
    checked = check_base_url(url, source=source, key=key)
    endpoint, marker, what = _ENDPOINTS[field]
    parts = urlsplit(checked)
    if parts.path.endswith(endpoint):
        return checked[: len(checked) - len(endpoint)], what
    cut = (parts.path + "/").find(marker)
    if cut >= 0:
        base = f"{parts.scheme}://{parts.netloc}{parts.path[:cut]}"
        written = f"{key}={base}" if source == "environment" else f'{field} = "{base}"'
        raise ConfigError(
            f"{url!r} is not a base URL: harbor-secrets appends {endpoint} to it",
            source=source,
            key=key,
            fix=f"set {written}",
        )
    return checked, None


def resolve_environment(
    name: str,
    overrides: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    source: str | None = None,
) -> Environment:
    """Harbor's documented URLs, then the config file's overrides, then the environment's.

    ``HARBOR_<ENV>_ACCOUNTS_URL`` / ``HARBOR_<ENV>_API_URL`` win over the file so one config
    can be pointed elsewhere by a deployment without editing it. Where each URL came from is
    kept (:class:`UrlOrigin`): the client secret goes to the token URL, so people must be
    able to see which one won.
    """
    env = os.environ if environ is None else environ
    overrides = overrides or {}
    defaults = DEFAULT_URLS.get(name)
    prefix = f"HARBOR_{name.upper()}_"
    urls: dict[str, str] = {}
    origins: dict[str, UrlOrigin] = {}
    for index, field_name in enumerate(("accounts_url", "api_url")):
        env_name = prefix + field_name.upper()
        if env.get(env_name):
            urls[field_name], trimmed = base_url(
                env[env_name], field=field_name, source="environment", key=env_name
            )
            origins[field_name] = UrlOrigin("environment", env_name, trimmed)
        elif overrides.get(field_name):
            key = f"environments.{name}.{field_name}"
            urls[field_name], trimmed = base_url(
                overrides[field_name], field=field_name, source=source, key=key
            )
            origins[field_name] = UrlOrigin("file", key, trimmed)
        elif defaults:
            urls[field_name] = defaults[index]
            origins[field_name] = UrlOrigin("default")
        else:
            raise ConfigError(
                f"environment {name!r} has no {field_name}",
                source=source,
                key=f"environments.{name}.{field_name}",
                fix=f"set it, or use one of Harbor's environments: {', '.join(DEFAULT_URLS)}",
            )
    return Environment(
        name=name,
        accounts_url=urls["accounts_url"],
        api_url=urls["api_url"],
        accounts_origin=origins["accounts_url"],
        api_origin=origins["api_url"],
    )


def check_scope(scope: str, *, key: str | None = None) -> str:
    """``scope`` if it is one of Harbor's, else a ConfigError (exit 2) naming them.

    Checked with the configuration and the command line, so a misspelled scope never reaches
    Harbor (which would answer ``invalid_scope`` at run time).
    """
    return pick(scope, SCOPES, key=key, what=SCOPES_WHAT, fix=SCOPES_FIX)


def normalize_tower_id(tower_id: str) -> str:
    """A tower ID as Harbor's apps write it in API paths (lower case), or a ConfigError.

    Harbor's SDKs refuse anything but 16 hexadecimal characters ("Tower Id should be an
    String with 16 hexadecimal characters"), so this does too, showing the shape.
    """
    text = str(tower_id).strip()
    if not _TOWER_ID.match(text):
        raise ConfigError(
            f"tower ID {text!r} is not a Harbor tower ID: Harbor writes one as 16 hexadecimal "
            "characters",
            fix=f"give all 16 characters (either case), e.g. {TOWER_ID_EXAMPLE}",
        )
    return text.lower()


def environment_for_tower(tower_id: str) -> str:
    """A tower ID's first two characters name its environment: ``10`` production, ``01``
    sandbox. Any other prefix is refused: a guess would send the tower's tokens elsewhere."""
    text = normalize_tower_id(tower_id)
    environment = TOWER_PREFIXES.get(text[:2])
    if environment is None:
        known = " or ".join(f"{prefix} ({name})" for prefix, name in TOWER_PREFIXES.items())
        raise ConfigError(
            f"tower ID {text} starts with {text[:2]}, which names no Harbor environment",
            fix=f"Harbor's tower IDs start with {known}; Harbor documents no tower prefix for "
            "development, so for a development tower name the environment instead "
            '(-e development, or environments = ["development"])',
        )
    return environment
