"""Command-line values that need more than click's built-in types, parsed into typed values.

Each type turns one option's text into what the code takes (a ``(host, port)`` pair, a
:class:`~pathlib.Path`, a URL, seconds) or fails with a usage error (exit 2) that names the
option and the fix. Only the CLI imports this module: the modules behind it take typed
values and never parse a flag.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import click

from harbor_secrets.durations import parse_duration
from harbor_secrets.environments import check_scope, is_loopback_host
from harbor_secrets.errors import ConfigError

DEFAULT_LISTEN_HOST = "127.0.0.1"
_LISTEN_FIX = (
    "write PORT for 127.0.0.1:PORT, or HOST:PORT (e.g. 0.0.0.0:9464 for every interface, "
    "[::1]:9464 for IPv6)"
)


if TYPE_CHECKING:  # click >= 8.2 types ParamType as a generic; older clicks are not
    _ParamType = click.ParamType[Any, Any]
else:
    _ParamType = click.ParamType


class _Type(_ParamType):
    def fail_with_fix(
        self, message: str, fix: str, param: click.Parameter | None, ctx: click.Context | None
    ) -> NoReturn:
        self.fail(f"{message} (fix: {fix})", param, ctx)


class ListenAddress(_Type):
    """``9464`` → ``("127.0.0.1", 9464)``; ``HOST:PORT`` and ``[IPv6]:PORT`` as given."""

    name = "[HOST:]PORT"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        host, port_text = DEFAULT_LISTEN_HOST, text
        if text.startswith("["):
            end = text.find("]")
            if end < 0 or text[end + 1 : end + 2] != ":":
                self.fail_with_fix(f"{value!r} is not [HOST]:PORT", _LISTEN_FIX, param, ctx)
            host, port_text = text[1:end], text[end + 2 :]
        elif text.count(":") == 1:
            host, port_text = text.split(":")
            if not host:
                self.fail_with_fix(
                    f"{value!r} names no host (an empty host would mean every interface)",
                    _LISTEN_FIX,
                    param,
                    ctx,
                )
        elif ":" in text:
            self.fail_with_fix(
                f"{value!r} is ambiguous: put an IPv6 address in brackets", _LISTEN_FIX, param, ctx
            )
        if not port_text.isdigit() or int(port_text) > 65535 or not host:
            self.fail_with_fix(f"{value!r} is not [HOST:]PORT", _LISTEN_FIX, param, ctx)
        return host, int(port_text)


class MetricsFile(_Type):
    """node-exporter's textfile collector reads only ``*.prom`` files in an existing directory."""

    name = "PATH"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        if isinstance(value, Path):
            return value
        target = Path(str(value)).expanduser()
        if target.suffix != ".prom":
            self.fail_with_fix(
                f"{value!r} does not end in .prom, so node-exporter's textfile collector "
                "ignores it",
                "name the file like /var/lib/node_exporter/textfile/harbor-secrets.prom",
                param,
                ctx,
            )
        if not target.parent.is_dir():
            self.fail_with_fix(
                f"directory {target.parent} does not exist",
                "create it, or point --metrics-file at the collector's directory",
                param,
                ctx,
            )
        if target.is_dir():
            self.fail_with_fix(f"{value!r} is a directory", "name a file", param, ctx)
        return target


class PushgatewayUrl(_Type):
    """https:// anywhere, http:// only on loopback (as for the issuer URLs); no credentials."""

    name = "URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        url = str(value)
        parts = urlsplit(url)
        fix = "use https://HOST[:PORT] (http:// is allowed only for 127.0.0.1, ::1 or localhost)"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.fail_with_fix(f"{url!r} is not an http(s) URL", fix, param, ctx)
        if parts.username is not None or parts.password is not None:
            self.fail_with_fix(
                "the URL carries credentials, which would end up in logs and process lists",
                "remove USER:PASSWORD@ from the URL",
                param,
                ctx,
            )
        if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
            self.fail_with_fix(
                f"plain http:// to {parts.hostname} sends metrics unauthenticated and unencrypted",
                fix,
                param,
                ctx,
            )
        if parts.query or parts.fragment:
            self.fail_with_fix("the URL takes no query or fragment", fix, param, ctx)
        return url.rstrip("/")


class Duration(_Type):
    """Seconds, or a string like ``30s``, ``2m``, as in the configuration file."""

    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail_with_fix(f"{value!r}: {exc}", 'write e.g. 30, "30s" or "2m"', param, ctx)


class Scope(_Type):
    """One of Harbor's scopes; :func:`~harbor_secrets.environments.check_scope` decides, as
    it does for the configuration's ``scopes``."""

    name = "SCOPE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return check_scope(str(value))
        except ConfigError as exc:
            self.fail_with_fix(exc.message, exc.fix or "", param, ctx)
