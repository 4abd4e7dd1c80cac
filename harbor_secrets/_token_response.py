"""Turn a token endpoint's answer into a validated token or one typed error.

Every status-to-exception decision lives here (one table, as hvac does it) so the client and
its tests agree on what Keycloak's many shapes of failure mean. Text that came from the
issuer is scrubbed of known secrets, stripped of control characters and shortened before it
goes into a message: an error description may echo what was sent.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from harbor_secrets._http_retry import MAX_BODY_BYTES, Answer
from harbor_secrets.environments import SCOPES
from harbor_secrets.errors import (
    UNAVAILABLE_HINT,
    InvalidClientError,
    InvalidGrantError,
    InvalidScopeError,
    IssuerError,
    IssuerUnavailableError,
    MalformedResponseError,
    NotFoundError,
    UnauthorizedClientError,
)
from harbor_secrets.secrets import Secret, scrub

# Harbor's tokens live 300 s. A lifetime over a day is far likelier to be a unit mistake
# (milliseconds) or an absolute timestamp than a real one, and trusting it would make the sync
# engine skip refreshes for that long while readers hold a dead token.
MAX_EXPIRES_IN = 86_400

MAX_TEXT = 200  # characters of issuer-supplied text kept in a message

CREDENTIALS_HINT = (
    "check the client id, the client secret and that you use the right environment "
    "(production vs sandbox)"
)
URL_HINT = "check the accounts URL"
SCOPE_HINT = f"Harbor's scopes are {' and '.join(SCOPES)}; check the client may request it"
GRANT_HINT = "the refresh token expired or was revoked; a client_credentials fetch replaces it"
REDIRECT_HINT = "use the final URL as the accounts URL"

# RFC 6749 §5.2 error codes that name a cause, whatever the status (Keycloak sends 400 or 401).
_BY_ERROR_CODE: dict[str, tuple[type[IssuerError], str | None]] = {
    "invalid_client": (InvalidClientError, CREDENTIALS_HINT),
    "unauthorized_client": (UnauthorizedClientError, CREDENTIALS_HINT),
    "invalid_scope": (InvalidScopeError, SCOPE_HINT),
    "invalid_grant": (InvalidGrantError, GRANT_HINT),
}

# Statuses that decide the class on their own, before any error code is considered.
_BY_STATUS: dict[int, tuple[type[IssuerError], str | None]] = {
    404: (NotFoundError, URL_HINT),
    429: (IssuerUnavailableError, UNAVAILABLE_HINT),
}

# Used when the body names no known error code.
_FALLBACK_BY_STATUS: dict[int, tuple[type[IssuerError], str | None]] = {
    401: (InvalidClientError, CREDENTIALS_HINT),
    403: (UnauthorizedClientError, CREDENTIALS_HINT),
}


@dataclass(frozen=True)
class RequestContext:
    """What a message needs to say which request failed; never holds a secret."""

    url: str
    environment: str
    scope: str
    grant_type: str

    def describe(self) -> str:
        return f"{self.environment} token request ({self.grant_type}, scope {self.scope!r})"


@dataclass(frozen=True)
class TokenPayload:
    """The validated fields of a successful token response."""

    access_token: Secret
    token_type: str
    expires_in: int
    scope: str | None
    refresh_token: Secret | None
    refresh_expires_in: int | None


def clean(value: object, limit: int = MAX_TEXT) -> str:
    """Issuer-supplied text made safe to print: scrubbed, one line, at most ``limit`` chars."""
    text = scrub(str(value))
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _load_json(answer: Answer) -> tuple[object, str | None]:
    """The decoded body, or ``None`` and a short reason it could not be decoded."""
    if answer.too_large:
        return None, (
            f"the body was larger than {MAX_BODY_BYTES // (1 << 20)} MiB, so the client stopped "
            "reading it (a token answer is a few KiB)"
        )
    if answer.truncated:
        return None, "the body was cut short (the connection ended before it was complete)"
    content_type = clean(answer.headers.get("Content-Type") or "no Content-Type", 60)
    if not answer.body.strip():
        return None, "the body was empty"
    try:
        return json.loads(answer.body.decode("utf-8")), None
    except (UnicodeDecodeError, ValueError):
        kind = "HTML" if b"<html" in answer.body[:512].lower() else "not JSON"
        return None, f"the body was {kind} ({content_type})"


def error_for_answer(
    answer: Answer, ctx: RequestContext, *, note: str | None = None
) -> IssuerError:
    """Map a non-2xx answer to the one exception class that says what to fix."""
    status = answer.status
    data, problem = _load_json(answer)
    code: str | None = None
    description: str | None = None
    if isinstance(data, dict):
        if isinstance(data.get("error"), str):
            code = clean(data["error"], 80)
        if isinstance(data.get("error_description"), str):
            description = clean(data["error_description"])
    elif problem is None:
        problem = "the body was JSON but not an object"

    if 300 <= status < 400:
        location = clean(answer.headers.get("Location") or "an unnamed location")
        return IssuerError(
            f"{ctx.describe()} to {ctx.url} was redirected (HTTP {status}) to {location}; "
            "the redirect was not followed because it would resend the client secret",
            hint=REDIRECT_HINT,
            status=status,
        )

    if status in _BY_STATUS:
        cls, hint = _BY_STATUS[status]
    elif status >= 500:
        cls, hint = IssuerUnavailableError, UNAVAILABLE_HINT
    elif code in _BY_ERROR_CODE:
        cls, hint = _BY_ERROR_CODE[code]
    elif status in _FALLBACK_BY_STATUS:
        cls, hint = _FALLBACK_BY_STATUS[status]
    elif problem is not None:
        cls, hint = MalformedResponseError, None
    else:
        cls, hint = IssuerError, None

    parts = [f"{ctx.describe()} to {ctx.url} failed: HTTP {status}"]
    if code:
        parts.append(f" {code}")
    if description:
        parts.append(f": {description}")
    if problem is not None:
        parts.append(f" ({problem})")
    if note:
        parts.append(f"; {note}")
    return cls("".join(parts), hint=hint, status=status, error_code=code)


def parse_success(
    answer: Answer,
    ctx: RequestContext,
    *,
    default_expires_in: int,
    logger: logging.Logger,
) -> TokenPayload:
    """Validate a 2xx token response; anything unusable raises, so nothing gets stored."""
    data, problem = _load_json(answer)

    def malformed(reason: str) -> MalformedResponseError:
        return MalformedResponseError(
            f"{ctx.describe()} to {ctx.url} answered HTTP {answer.status} but {reason}",
            status=answer.status,
        )

    if problem is not None:
        raise malformed(problem)
    if not isinstance(data, dict):
        raise malformed("the body was JSON but not an object")

    raw_token = data.get("access_token")
    if not isinstance(raw_token, str) or not raw_token.strip():
        if isinstance(data.get("error"), str):  # an error dressed as a success
            raise malformed(
                f"the response has no access_token, only error {clean(data['error'])!r}"
            )
        raise malformed("the response has no access_token")
    access_token = Secret(raw_token, ephemeral=True)  # registered before anything is printed

    token_type = data.get("token_type")
    if not isinstance(token_type, str) or token_type.strip().lower() != "bearer":
        shown = "missing" if token_type is None else repr(clean(token_type, 40))
        raise malformed(f"token_type is {shown}, not Bearer")

    expires_in = _expires_in(data.get("expires_in"), malformed)
    if expires_in is None:
        expires_in = default_expires_in
        logger.warning(
            "%s: the response has no expires_in; assuming %d s", ctx.describe(), expires_in
        )

    granted = data.get("scope")
    if granted is not None and not isinstance(granted, str):
        raise malformed("scope is not a string")
    if granted is not None and ctx.scope not in granted.split():
        raise InvalidScopeError(
            f"{ctx.describe()}: the issuer granted scope {clean(granted, 120)!r}, which lacks "
            f"the requested {ctx.scope!r}; the token was discarded",
            hint=SCOPE_HINT,
            status=answer.status,
        )

    raw_refresh = data.get("refresh_token")
    refresh_token = (
        Secret(raw_refresh, ephemeral=True)
        if isinstance(raw_refresh, str) and raw_refresh
        else None
    )
    refresh_expires_in = data.get("refresh_expires_in")
    if isinstance(refresh_expires_in, bool) or not isinstance(refresh_expires_in, int):
        refresh_expires_in = None

    return TokenPayload(
        access_token=access_token,
        token_type=token_type.strip(),
        expires_in=expires_in,
        scope=granted,
        refresh_token=refresh_token,
        refresh_expires_in=refresh_expires_in if refresh_token else None,
    )


def _expires_in(raw: object, malformed: Callable[[str], MalformedResponseError]) -> int | None:
    """A positive whole number of seconds from an int, a float or a numeric string."""
    if raw is None:
        return None
    shown = clean(raw, 40)
    seconds: int
    if isinstance(raw, bool):
        raise malformed(f"expires_in is {json.dumps(raw)}, not a number of seconds")
    if isinstance(raw, int):
        seconds = raw
    elif isinstance(raw, float | str):
        try:
            value = float(raw.strip()) if isinstance(raw, str) else raw
        except ValueError:
            raise malformed(f"expires_in is {shown!r}, not a number") from None
        if not math.isfinite(value):
            raise malformed(f"expires_in is {shown!r}, not a number")
        seconds = math.floor(value)  # rounding down errs toward refreshing early
    else:
        kind = "array" if isinstance(raw, list) else "object" if isinstance(raw, dict) else "value"
        raise malformed(f"expires_in is not a number (a JSON {kind})")
    if seconds <= 0:
        raise malformed(f"expires_in is {shown}; a token must live at least a second")
    if seconds > MAX_EXPIRES_IN:
        raise malformed(
            f"expires_in is {shown}, more than the {MAX_EXPIRES_IN} s this client accepts "
            "(a unit mistake or a timestamp?)"
        )
    return seconds
