"""Logging set-up: text or JSON lines on stderr, secrets scrubbed, SDK chatter capped.

Every record passes through :class:`ScrubSecrets`, which replaces any registered secret value
(client secret, access token, Vault token) in the message, its arguments and any traceback,
so even a library that echoes a request cannot leak one. SDK loggers stay at WARNING even
under ``-vv``: their DEBUG output includes request bodies and headers.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from harbor_secrets.secrets import scrub

QUIET_LOGGERS = (
    "urllib3",
    "requests",
    "botocore",
    "boto3",
    "s3transfer",
    "hvac",
    "werkzeug",
    # the Kubernetes provider's client (lightkube) and its HTTP stack
    "lightkube",
    "httpx2",
    "httpcore2",
    "hpack",
    "h2",
    "anyio",
)
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class ScrubSecrets(logging.Filter):
    """Render the message now, scrub it, and drop arguments that could carry secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            formatter = logging.Formatter()
            record.exc_text = scrub(formatter.formatException(record.exc_info))
            record.exc_info = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, scrub(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with any ``extra=`` fields kept as top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                data[key] = value
        if record.exc_text:
            data["traceback"] = record.exc_text
        return json.dumps(data, default=str)


def quiet_sdk_loggers() -> None:
    """SDK DEBUG output carries request bodies and headers: never let it through."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def scrub_handlers(level: int = logging.INFO) -> None:
    """Keep a host's own handlers (Lambda's adds the request id) but scrub through them."""
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, ScrubSecrets) for f in handler.filters):
            handler.addFilter(ScrubSecrets())
    root.setLevel(level)
    quiet_sdk_loggers()


def level_for(verbosity: int) -> int:
    return {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)


def configure(verbosity: int = 0, fmt: str = "text", stream: TextIO | None = None) -> None:
    """Install one scrubbed handler on the root logger; idempotent across calls."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_harbor_secrets", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._harbor_secrets = True  # type: ignore[attr-defined]
    handler.addFilter(ScrubSecrets())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level_for(verbosity))
    quiet_sdk_loggers()
