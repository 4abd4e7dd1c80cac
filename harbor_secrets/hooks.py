"""``on_write``: a command run after a sink's token changed, e.g. ``systemctl reload billing``.

A service that reads its token once (at start-up, on reload) learns of a new one only when
told; consul-template's ``command`` and Vault Agent's ``exec`` do the same job. The command
is an argv list, never a shell line. It learns what changed from its environment (sink,
environment, scope, key, file path where the store has one, expiry) and never sees the
token: not in argv, not in its environment. Variables that the configuration names in
``env:`` references (the client secret, a Vault token ...) are removed from what it
inherits. It runs with a timeout in its own process group, so it and its children are
killed when the time is up. Its failure is reported and counted, and never undoes the
write that triggered it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

from harbor_secrets.errors import HarborSecretsError
from harbor_secrets.options import Options
from harbor_secrets.secrets import scrub

log = logging.getLogger(__name__)

OPTION = "on_write"
TIMEOUT_OPTION = "on_write_timeout"
DEFAULT_TIMEOUT = 30.0
_OUTPUT_TAIL = 300


class HookError(HarborSecretsError):
    """An ``on_write`` command failed, timed out or could not start (exit 1; the write stays)."""


@dataclass(frozen=True)
class OnWrite:
    """The command of one sink, checked offline."""

    argv: tuple[str, ...]
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_options(cls, options: Options) -> OnWrite | None:
        """Read ``on_write`` / ``on_write_timeout`` from a sink's table (None: no hook)."""
        raw = options.raw(OPTION)
        timeout = options.duration(TIMEOUT_OPTION, DEFAULT_TIMEOUT)
        if raw is None:
            return None
        example = 'on_write = ["systemctl", "reload", "billing"]'
        if isinstance(raw, str):
            raise options.error(
                OPTION,
                "must be a list of arguments, not a shell command line",
                f"write {example}; wrap a pipeline in a script of its own",
            )
        if (
            not isinstance(raw, list)
            or not raw
            or not all(isinstance(part, str) and part for part in raw)
        ):
            raise options.error(OPTION, "must be a non-empty list of strings", f"write {example}")
        if timeout <= 0:
            raise options.error(
                TIMEOUT_OPTION, "must be more than 0", 'set on_write_timeout = "30s"'
            )
        return cls(tuple(raw), timeout)

    @property
    def program(self) -> str:
        return self.argv[0]


@dataclass(frozen=True)
class Change:
    """What the command is told about the token that changed."""

    sink: str
    credentials: str
    environment: str
    scope: str
    key: str
    expires_at: str
    location: str | None = None  # a file path, for stores that have one

    def environ(self) -> dict[str, str]:
        values = {
            "HARBOR_SECRETS_SINK": self.sink,
            "HARBOR_SECRETS_CREDENTIALS": self.credentials,
            "HARBOR_SECRETS_ENVIRONMENT": self.environment,
            "HARBOR_SECRETS_SCOPE": self.scope,
            "HARBOR_SECRETS_KEY": self.key,
            "HARBOR_SECRETS_EXPIRES_AT": self.expires_at,
        }
        if self.location is not None:
            values["HARBOR_SECRETS_PATH"] = self.location
        return values


def run_hook(
    hook: OnWrite, change: Change, *, base_environ: Mapping[str, str], hidden: frozenset[str]
) -> float:
    """Run the command once; returns its run time, raises :class:`HookError` on failure.

    ``hidden`` names variables that must not reach the command (secret references).
    """
    environ = {k: v for k, v in base_environ.items() if k not in hidden}
    environ.update(change.environ())
    began = time.monotonic()
    what = f"on_write of sink {change.sink!r} ({hook.program})"
    try:
        process = subprocess.Popen(  # noqa: S603 - an argv list from the configuration, no shell
            hook.argv,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a timeout kills its children too
        )
    except OSError as exc:
        raise HookError(
            f"{what} could not start: {exc.strerror or type(exc).__name__}",
            hint="check the program path in on_write (no shell: give the full argv)",
        ) from None
    try:
        out, err = process.communicate(timeout=hook.timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise HookError(
            f"{what} was killed after {hook.timeout:g}s",
            hint="make it finish sooner or raise on_write_timeout; the token was written",
        ) from None
    elapsed = time.monotonic() - began
    if process.returncode != 0:
        raise HookError(
            f"{what} {_describe_exit(process.returncode)}{_tail(err or out)}",
            hint="the token was written; the command runs again after the next write",
        )
    log.info(
        "%s ran in %.2fs",
        what,
        elapsed,
        extra={"event": "sink.on_write", "sink": change.sink, "seconds": round(elapsed, 3)},
    )
    if out or err:
        log.debug("%s printed:%s", what, _tail(out + err))
    return elapsed


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"


def _tail(output: bytes) -> str:
    text = scrub(output.decode("utf-8", "replace")).strip()
    if not text:
        return ""
    text = " ".join(text.split())
    return ": " + (text if len(text) <= _OUTPUT_TAIL else "…" + text[-_OUTPUT_TAIL:])
