"""The one family of expected errors, and the exit code each maps to.

Everything the tool anticipates (bad configuration, a rejecting issuer, a failing store)
raises a subclass of :class:`HarborSecretsError`. The CLI has a single handler that turns
these into a message and an exit code; anything else is a bug and is reported as one.
Messages never carry secret values: constructors take only names, paths and status codes.
"""

from __future__ import annotations

from typing import Self

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class HarborSecretsError(Exception):
    """Base of every error the tool expects; ``exit_code`` decides the process status."""

    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class ConfigError(HarborSecretsError):
    """Invalid usage or configuration, always detected before any network call."""

    exit_code = EXIT_USAGE

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        key: str | None = None,
        fix: str | None = None,
    ) -> None:
        where = ": ".join(part for part in (source, key) if part)
        text = f"{where}: {message}" if where else message
        super().__init__(text, hint=f"fix: {fix}" if fix else None)
        self.detail = message  # without the file and key
        self.source = source
        self.key = key
        self.fix = fix

    def at(self, *, source: str | None, key: str | None) -> Self:
        """The same error, said of ``key`` in ``source`` (for an error raised by code that
        does not know where the value it refused came from, such as the registry)."""
        return type(self)(self.detail, source=source, key=key, fix=self.fix)


class SecretReferenceError(HarborSecretsError):
    """A secret reference (``env:``, ``file:``, ``vault:`` ...) could not be resolved."""


class IssuerError(HarborSecretsError):
    """The token endpoint failed or answered with something unusable."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status: int | None = None,
        error_code: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.error_code = error_code
        self.attempts = 0  # HTTP attempts made before giving up (set by the token client)


class InvalidClientError(IssuerError):
    """The issuer rejected the client id or secret (401, or 400 invalid_client)."""


class UnauthorizedClientError(IssuerError):
    """The client exists but may not use this grant or scope (unauthorized_client)."""


class InvalidScopeError(IssuerError):
    """The scope was unknown, or the issuer granted a token without it."""


class InvalidGrantError(IssuerError):
    """A refresh token was rejected (expired or revoked)."""


class NotFoundError(IssuerError):
    """404, including Keycloak's "Realm does not exist": the URL is wrong."""


class IssuerUnavailableError(IssuerError):
    """Connection errors, timeouts, 429/5xx that outlasted the retry budget."""


class MalformedResponseError(IssuerError):
    """The issuer answered 2xx (or an error) with a body that is not a usable token."""


class StoreError(HarborSecretsError):
    """A secret store failed to read or write; the record there is left as it was."""

    def __init__(self, message: str, *, hint: str | None = None, reason: str = "error") -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class ProviderUnavailableError(ConfigError):
    """A provider is configured but its distribution (or a dependency) is not installed.

    A configuration error like any other (exit 2, the file and the key that names the
    provider), told apart only for metrics and ``harbor-secrets providers``.
    """


def describe_error(exc: BaseException) -> str:
    """One line for a log or a summary: an expected error's message, else "a bug"."""
    if isinstance(exc, HarborSecretsError):
        return str(exc)
    return f"unexpected {type(exc).__name__} (a bug; run with -vv for details)"


#: What to try when the issuer answered that it cannot serve now (429, 503) or did not
#: answer at all for no more specific reason (:func:`unreachable_hint`). Said by ``sync``
#: and by ``token``/``verify`` typed at a terminal alike: what happens next is the caller's
#: business (a schedule retries by itself), so the hint names only the cause.
UNAVAILABLE_HINT = "the issuer is down or overloaded; try again in a minute"

REFUSED = "connection refused"
UNRESOLVED = "the host name did not resolve"

# What a transport exception's text says, in words: every HTTP stack (requests for the token
# client and Vault, httpx for Kubernetes) words the same socket errors its own way.
_CONNECTION_FAILURES = (
    (("Connection refused", "refused"), REFUSED),
    (("Connection reset", "reset by peer"), "connection reset by the server"),
    (
        ("RemoteDisconnected", "without response", "Server disconnected"),
        "the server closed the connection without answering",
    ),
    (
        (
            "NameResolution",
            "Name or service not known",
            "nodename nor servname",
            "Failed to resolve",
            "Temporary failure in name resolution",
            "getaddrinfo",
        ),
        UNRESOLVED,
    ),
    (("No route to host",), "no route to host"),
    (("Network is unreachable",), "the network is unreachable"),
)


def describe_connection_failure(exc: BaseException) -> str:
    """A short reason for a failed connection, without the exception's own text (it names
    request internals): "connection refused", ..., else the exception's class name."""
    text = str(exc)
    for needles, reason in _CONNECTION_FAILURES:
        if any(needle in text for needle in needles):
            return reason
    return type(exc).__name__


def unreachable_hint(reason: str | None, *, local: bool) -> str:
    """What to do about an issuer that gave no answer, by why (``reason``, a
    :func:`describe_connection_failure` wording) and where (``local``: a loopback host).

    A refused connection on this host means nothing listens on that port (a stand-in
    issuer that is not running, or a port that changed), not an overloaded issuer; a name
    that does not resolve is a URL or DNS matter. Anything else may pass: try again.
    """
    if reason == REFUSED and local:
        return (
            "nothing listens on that port of this host: start the issuer it names (for a "
            "demo configuration: harbor-secrets stand-in-issuer -c FILE), or correct the port"
        )
    if reason == REFUSED:
        return "the issuer's host refused the connection: it is down, or the URL's port is wrong"
    if reason == UNRESOLVED:
        return "check the host name in the URL, and this host's DNS"
    return UNAVAILABLE_HINT
