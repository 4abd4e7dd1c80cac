"""Keep Harbor tokens in an env file that shells, python-dotenv and process managers read.

Each token is two variables, ``<KEY>_ACCESS_TOKEN`` and ``<KEY>_EXPIRES_AT`` (RFC 3339,
UTC), where ``<KEY>`` is the rendered ``prefix`` template, e.g.
``HARBOR_SANDBOX_SERVICE_PROVIDER``. Only those two variables are stored, so a record read
back carries the token and its expiry and nothing else (``stores_full_record = False``).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from harbor_secrets import (
    ENV_PREFIX_TEMPLATE,
    AtomicFile,
    Options,
    Provider,
    ProviderContext,
    RefreshPolicy,
    Secret,
    StoreError,
    TokenRecord,
    WriteOutcome,
    env_names,
    format_time,
    is_shell_name,
    parse_time,
    shell_name,
)
from harbor_secrets_envfile import _format

log = logging.getLogger("harbor_secrets.envfile")

DEFAULT_MODE = 0o600
DEFAULT_LOCK_TIMEOUT = 10.0
_MODE_TEXT = re.compile(r"0?[0-7]{3}\Z")


class EnvFileProvider(Provider):
    """Sink options: ``path`` (required), ``prefix``, ``file_mode``, ``lock_timeout``."""

    name = "envfile"
    distribution = "harbor-secrets-envfile"
    summary = "An env file of KEY='value' lines for sh and python-dotenv (re-read it on use)."
    key_option = "prefix"
    default_key_template = ENV_PREFIX_TEMPLATE
    stores_full_record = False
    shared = False  # a file on this host: each host's refresher keeps its own

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        file_mode: int = DEFAULT_MODE,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        self.file = AtomicFile(path, mode=file_mode, lock_timeout=lock_timeout)
        self.path = self.file.path
        self.file_mode = file_mode
        self.lock_timeout = lock_timeout

    @classmethod
    def from_options(cls, options: Options, context: ProviderContext) -> EnvFileProvider:
        path, mode, lock_timeout = file_options(options, context, "path")
        return cls(path, file_mode=mode, lock_timeout=lock_timeout)

    def normalize_key(self, key: str) -> str:
        """Upper case, anything but ``A-Z 0-9 _`` becomes ``_``: a valid shell name."""
        return shell_name(key)

    def read(self, key: str) -> TokenRecord | None:
        names = _names(key)
        data = self.file.read()
        if data is None:
            return None
        return self._record(_format.values(_format.decode(data), set(names)), names)

    def write(self, key: str, record: TokenRecord) -> WriteOutcome:
        """Lock, compare with what is stored, and replace the file only with a newer token."""
        token_name, expires_name = names = _names(key)
        try:
            new_values = {
                token_name: _format.quote(record.access_token.reveal()),
                expires_name: _format.quote(format_time(record.expires_at)),
            }
        except _format.UnrepresentableValueError as exc:
            raise StoreError(
                f"cannot write {token_name} to {self.path}: {exc}",
                hint="store this token in a different sink (Vault, AWS); nothing was written",
                reason="unrepresentable",
            ) from None
        self.file.check()
        with self.file.locked():
            data = self.file.read()
            text = _format.decode(data) if data is not None else ""
            found = _format.parse(text, set(names))
            current = self._record(_format.effective(found), names)
            if current is not None and not record.is_newer_than(current):
                return WriteOutcome.KEPT_NEWER
            updated = _format.update(text, new_values, found, peer_suffixes=_SUFFIXES)
            self.file.replace(_format.encode(updated))
        return WriteOutcome.WRITTEN

    def _record(self, found: dict[str, str | None], names: tuple[str, str]) -> TokenRecord | None:
        """The stored token, or None when absent or unusable (then it is due: rewritten)."""
        token_name, expires_name = names
        token, expires = found.get(token_name), found.get(expires_name)
        for name in names:
            if name in found and found[name] is None:
                log.warning("%s in %s cannot be parsed; treating it as due", name, self.path)
        if not token or not expires:
            return None
        try:
            expires_at = parse_time(expires)
        except ValueError:
            log.warning(
                "%s in %s is not an RFC 3339 time; treating the token as due",
                expires_name,
                self.path,
            )
            return None
        return TokenRecord(
            access_token=Secret(token, ephemeral=True),
            expires_at=expires_at,
            issued_at=expires_at,  # not stored; expires_in therefore reads 0
            scope="",
            environment="",
        )

    def location(self, key: str) -> str:
        return str(self.path)

    def describe(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "path": str(self.path),
            "file_mode": f"{self.file_mode:04o}",
            "lock_timeout_seconds": self.lock_timeout,
        }

    def cannot_write(self, key: str) -> StoreError | None:
        return self.file.problem()

    def warnings(self, policy: RefreshPolicy) -> list[str]:
        problem = self.file.problem()
        if problem is not None:
            return [f"{problem.message}; writes will be refused until it is fixed"]
        return self.file.notes()

    def __repr__(self) -> str:
        return f"EnvFileProvider(path={str(self.path)!r})"


#: What every variable this store writes ends with (the env-file contract).
_SUFFIXES = env_names("")


def _names(key: str) -> tuple[str, str]:
    if not is_shell_name(key):
        raise StoreError(
            f"{key!r} is not a valid variable-name prefix",
            hint="keys come from the core's rendering of the sink's prefix template",
            reason="bad-key",
        )
    return env_names(key)


def file_options(
    options: Options, context: ProviderContext, location: str
) -> tuple[Path, int, float]:
    """The options both file stores take: where (``location``), ``file_mode``,
    ``lock_timeout``; unknown options are refused."""
    path = resolve_path(options.required_str(location), context.source)
    mode = file_mode(options)
    lock_timeout = options.duration("lock_timeout", DEFAULT_LOCK_TIMEOUT)
    options.finish()
    return path, mode, lock_timeout


def resolve_path(raw: str, source: str | None) -> Path:
    """Relative paths are relative to the configuration file's directory (else the cwd)."""
    path = Path(raw).expanduser()
    if not path.is_absolute() and source and Path(source).is_file():
        path = Path(source).resolve().parent / path
    return Path(os.path.abspath(path))


def file_mode(options: Options) -> int:
    raw = options.raw("file_mode", DEFAULT_MODE)
    if isinstance(raw, str) and _MODE_TEXT.match(raw):
        mode = int(raw, 8)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        mode = raw
    else:
        mode = -1
    # The owner must read and write; nobody may execute; "other" gets nothing: it's a secret.
    if mode < 0 or mode & 0o600 != 0o600 or mode & 0o7117:
        raise options.error(
            "file_mode",
            "must be an octal mode string with owner read/write and nothing for others",
            'use "0600" (the default) or "0640" to let the group read it',
        )
    return mode
