"""Who writes: the name a refresher puts into every record it stores (``written_by``).

Several refreshers may keep one store fresh (watch-mode replicas, hosts, regions). Each
stored record and each write log line names the one that wrote it, so an operator can see
which replica or host wrote last. The name is ``$HARBOR_SECRETS_WRITER`` when set, else the
host name (in Kubernetes, the pod name). It is never a secret: it is logged and stored next
to the token for anyone who can read the store.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

from harbor_secrets.errors import ConfigError

WRITER_ENV_VAR = "HARBOR_SECRETS_WRITER"
#: A DNS name's limit: host and pod names always fit.
MAX_LENGTH = 253


def is_writer_name(name: str) -> bool:
    """The one rule for a ``written_by``, written or read: 1 to :data:`MAX_LENGTH`
    printable characters without spaces. Anything else (a newline, an escape sequence) could
    forge a log line or garble a terminal where ``status`` and the cycle log print it."""
    return 0 < len(name) <= MAX_LENGTH and name.isprintable() and " " not in name


def writer_name(environ: Mapping[str, str]) -> str:
    """This refresher's name; a bad ``HARBOR_SECRETS_WRITER`` is a usage error (exit 2)."""
    given = environ.get(WRITER_ENV_VAR)
    if given is None:
        host = socket.gethostname()
        return host if is_writer_name(host) else "unknown-host"
    name = given.strip()
    if not is_writer_name(name):
        raise ConfigError(
            f"must be 1 to {MAX_LENGTH} printable characters without spaces",
            key=WRITER_ENV_VAR,
            fix="set it to this refresher's name (e.g. host-a or lambda-eu-west-1), "
            "or unset it to use the host name",
        )
    return name
