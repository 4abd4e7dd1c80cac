"""Resolve secret references: ``env:NAME``, ``file:/path``, or a provider's own scheme.

Local schemes are resolved before any network call, so a missing variable or file is a
configuration error (exit 2). Provider schemes (``vault:``, ``aws-sm:``, ``ssm:``) are
resolved by that provider at run time; their failures are run-time failures (exit 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from harbor_secrets._reading import MAX_SECRET_FILE_BYTES, LocalFileError, read_text_file
from harbor_secrets.errors import ConfigError, SecretReferenceError
from harbor_secrets.provider import Provider
from harbor_secrets.secrets import Secret

LOCAL_SCHEMES = ("env", "file")


def _looks_like_scheme(scheme: str) -> bool:
    return bool(scheme) and scheme.replace("-", "").isalnum() and scheme.islower()


def scheme_of(reference: str) -> str:
    return reference.partition(":")[0]


def is_local(reference: str) -> bool:
    return scheme_of(reference) in LOCAL_SCHEMES


class ReferenceResolver:
    """Turns references into :class:`Secret` values; provider schemes are delegated."""

    def __init__(
        self,
        *,
        environ: Mapping[str, str],
        base_dir: Path,
        provider_for_scheme: Callable[[str], Provider | None] | None = None,
        source: str | None = None,
    ) -> None:
        self._environ = environ
        self._base_dir = base_dir
        self._provider_for_scheme = provider_for_scheme
        self._source = source
        #: Advice found while resolving (a secret file others may read), once per file.
        self.warnings: list[str] = []

    def resolve(self, reference: str, *, key: str = "client_secret") -> Secret:
        scheme, _, rest = reference.partition(":")
        if scheme == "env":
            return self._from_env(rest, key)
        if scheme == "file":
            return self._from_file(rest, key)
        provider = self._provider_for_scheme(scheme) if self._provider_for_scheme else None
        if provider is None:
            # Name the scheme only if it looks like one: a pasted secret has no scheme.
            named = f"{scheme}: references" if _looks_like_scheme(scheme) else "this value"
            raise ConfigError(
                f"no installed provider resolves {named}",
                source=self._source,
                key=key,
                fix="use env: or file:, or install the provider for that scheme "
                "(harbor-secrets providers lists them)",
            )
        try:
            return provider.resolve_reference(reference)
        except SecretReferenceError:
            raise
        except ConfigError:
            raise
        except Exception as exc:  # a provider bug or SDK error: keep the type, lose the detail
            raise SecretReferenceError(
                f"the reference for {key} could not be resolved ({type(exc).__name__})"
            ) from None

    def _from_env(self, name: str, key: str) -> Secret:
        value = self._environ.get(name)
        if not value:
            raise ConfigError(
                f"refers to environment variable {name}, which is not set or empty",
                source=self._source,
                key=key,
                fix=f"export {name}=… in the job's environment",
            )
        return Secret(value)

    def _from_file(self, name: str, key: str) -> Secret:
        path = Path(name).expanduser()
        if not path.is_absolute():
            path = self._base_dir / path
        try:
            found = read_text_file(path, limit=MAX_SECRET_FILE_BYTES)
        except LocalFileError as exc:
            raise ConfigError(
                f"refers to {path}, which {exc.problem}",
                source=self._source,
                key=key,
                fix=exc.fix,
            ) from None
        if found.mode & 0o007:  # "other": every account on the host, not just the job's
            note = (
                f"{key}: {path} is mode {found.mode:04o}, so every user on this host can "
                f"{'read' if found.mode & 0o004 else 'reach'} the secret in it; restrict it "
                f"(chmod o-rwx {path}, e.g. to 0600, or 0640 for a group)"
            )
            if note not in self.warnings:
                self.warnings.append(note)
        value = found.text.removesuffix("\n").removesuffix("\r")
        if not value:
            raise ConfigError(
                f"refers to {path}, which is empty",
                source=self._source,
                key=key,
                fix="write the secret into that file",
            )
        return Secret(value)
