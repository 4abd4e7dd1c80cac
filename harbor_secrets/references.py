"""Resolve secret references: ``env:NAME``, ``file:/path``, or a provider's own scheme.

Local schemes are resolved before any network call, so a missing variable or file is a
configuration error (exit 2). Provider schemes (``vault:``, ``aws-sm:``, ``ssm:``) are
resolved by that provider at run time; their failures are run-time failures (exit 1).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from harbor_secrets._reading import MAX_SECRET_FILE_BYTES, LocalFileError, read_text_file
from harbor_secrets.errors import ConfigError, SecretReferenceError
from harbor_secrets.provider import Provider
from harbor_secrets.secrets import Secret
from harbor_secrets.suggest import close_match

LOCAL_SCHEMES = ("env", "file")

#: What a reference looks like: a scheme, a colon, the rest on one line. A scheme is a word
#: of lower-case letters, or words joined by hyphens (``env``, ``file``, ``vault``,
#: ``aws-sm``): a pasted secret (``k7q2m9x4v8:Zp3Wn6Rt1Ys5``) seldom looks like that. The
#: Helm chart checks the same pattern at install time (deploy/helm/harbor-secrets/templates/
#: _helpers.tpl; tests/test_deploy_helm.py keeps the two one).
REFERENCE_PATTERN = r"[a-z]+(-[a-z]+)*:[^\n]+"
_REFERENCE = re.compile(REFERENCE_PATTERN + r"\Z")


def is_reference(text: str) -> bool:
    """Whether ``text`` has the shape of a secret reference (not whether anyone resolves it)."""
    return _REFERENCE.match(text) is not None


def unknown_scheme(
    scheme: str, known: Iterable[str], *, key: str, source: str | None
) -> ConfigError:
    """A reference whose ``scheme`` no installed provider resolves (exit 2).

    The scheme is never repeated: a pasted secret can have a reference's shape, and its
    part before the colon is secret too. The known schemes are listed instead, with the
    one it most likely meant (a guess names only a known scheme, never the value).
    """
    known = list(known)
    guess = close_match(scheme, known)
    return ConfigError(
        "is not a reference any installed provider resolves (the value is not shown): its "
        f"scheme is none of {', '.join(f'{name}:' for name in known)}"
        + (f"; did you mean {guess}:?" if guess else ""),
        source=source,
        key=key,
        fix="use one of those schemes (`harbor-secrets providers` says which provider "
        "resolves which); if a real secret was pasted here, rotate it",
    )


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
        known_schemes: Callable[[], Iterable[str]] = lambda: LOCAL_SCHEMES,
    ) -> None:
        self._environ = environ
        self._base_dir = base_dir
        self._provider_for_scheme = provider_for_scheme
        self._source = source
        self._known_schemes = known_schemes
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
            raise unknown_scheme(scheme, self._known_schemes(), key=key, source=self._source)
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
