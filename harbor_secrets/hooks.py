"""``on_write``: a command run after a sink's tokens changed, e.g. ``systemctl reload billing``.

A service that reads its token once (at start-up, on reload) learns of a new one only when
told; consul-template's ``command`` and Vault Agent's ``exec`` do the same job. The command
is an argv list, never a shell line, and runs once per sink per run, after every write of
that run, however many of the sink's tokens changed. It learns what changed from its
environment (sink, environments, scopes, file paths where the store has them, every change
as JSON) and never sees a token: not in argv, not in its environment. Secrets the tool reads
from the environment (``env:`` references, and what the stores take implicitly, such as
``VAULT_TOKEN`` or AWS keys) are removed from what it inherits. It runs with a timeout in
its own process group, so it and its children are killed when the time is up, or when it
has printed more than :data:`MAX_OUTPUT` (its output is spooled to ``$TMPDIR``). Its
failure is reported with the end of its output, scrubbed before it is cut so that no piece
of a secret survives, and counted; it never undoes the writes that triggered it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harbor_secrets.errors import HarborSecretsError
from harbor_secrets.options import Options
from harbor_secrets.secrets import scrub, scrub_excerpt

log = logging.getLogger(__name__)

OPTION = "on_write"
TIMEOUT_OPTION = "on_write_timeout"
DEFAULT_TIMEOUT = 30.0
#: Output a command may print before it is killed: it is spooled to $TMPDIR, and a command
#: printing without end would otherwise fill that file system. Its end is what is shown.
MAX_OUTPUT = 4 << 20
_OUTPUT_TAIL = 300  # characters of the output's end shown in a failure message
_READ_TAIL = 64 << 10  # bytes of the output's end read to find them
_POLL = 0.02  # seconds between looks at the output's size while the command runs


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

    def describe(self) -> dict[str, Any]:
        """The command as ``config check`` shows it (JSON types; the timeout in seconds)."""
        return {"argv": list(self.argv), "timeout_seconds": self.timeout}

    def cannot_start(self, environ: Mapping[str, str]) -> str | None:
        """Why the program would not start here, found offline, or None.

        The command is not a shell line, so its program is found as ``execvpe`` finds it:
        a name with a ``/`` is that file, any other name is looked up on ``PATH`` of the
        environment it runs with. Advice, not a refusal: the job may run where it exists.
        """
        program = self.program
        if os.sep in program:
            if not os.path.isfile(program):
                return f"{program} does not exist (or is not a file)"
            if not os.access(program, os.X_OK):
                return f"{program} is not executable (chmod +x it)"
            return None
        if shutil.which(program, path=environ.get("PATH", os.defpath)) is None:
            return (
                f"{program!r} is not found on PATH, so the command cannot start after a "
                "write; give its absolute path (a scheduler's PATH is often shorter than a "
                "shell's)"
            )
        return None


@dataclass(frozen=True)
class Change:
    """One token a sink wrote in this run."""

    credentials: str
    environment: str
    scope: str
    key: str
    expires_at: str
    location: str | None = None  # a file path, for stores that have one

    def describe(self) -> dict[str, str | None]:
        return {
            "credentials": self.credentials,
            "environment": self.environment,
            "scope": self.scope,
            "key": self.key,
            "expires_at": self.expires_at,
            "path": self.location,
        }


def _unique(values: list[str]) -> str:
    return " ".join(dict.fromkeys(values))


def hook_environ(sink: str, changes: Sequence[Change]) -> dict[str, str]:
    """What the command is told: the sink, and every token it wrote in this run.

    ``HARBOR_SECRETS_ENVIRONMENT`` / ``_SCOPE`` / ``_CREDENTIALS`` hold the distinct values,
    space separated (one value when one token changed); ``HARBOR_SECRETS_PATH`` the distinct
    files, one per line; ``HARBOR_SECRETS_CHANGES`` everything as a JSON list.
    """
    values = {
        "HARBOR_SECRETS_SINK": sink,
        "HARBOR_SECRETS_CREDENTIALS": _unique([c.credentials for c in changes]),
        "HARBOR_SECRETS_ENVIRONMENT": _unique([c.environment for c in changes]),
        "HARBOR_SECRETS_SCOPE": _unique([c.scope for c in changes]),
        "HARBOR_SECRETS_CHANGES": json.dumps([c.describe() for c in changes]),
    }
    paths = [c.location for c in changes if c.location is not None]
    if paths:
        values["HARBOR_SECRETS_PATH"] = "\n".join(dict.fromkeys(paths))
    return values


def run_hook(
    hook: OnWrite,
    sink: str,
    changes: Sequence[Change],
    *,
    base_environ: Mapping[str, str],
    hidden: frozenset[str],
) -> float:
    """Run the sink's command once for ``changes``; returns its run time, raises
    :class:`HookError` on any failure.

    ``hidden`` names variables that must not reach the command (secrets). Its output goes
    to a temporary file, not a pipe: a daemon it starts (``systemctl restart``, ``nohup … &``)
    keeps a pipe open long after the command exits, and reading one to its end would hang
    the run.
    """
    environ = {k: v for k, v in base_environ.items() if k not in hidden}
    environ.update(hook_environ(sink, changes))
    began = time.monotonic()
    what = f"on_write of sink {sink!r} ({hook.program})"
    with tempfile.TemporaryFile() as output:
        try:
            process = subprocess.Popen(  # noqa: S603 - an argv list from the configuration
                hook.argv,
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a timeout kills its children
            )
        except OSError as exc:
            raise HookError(
                f"{what} could not start: {exc.strerror or type(exc).__name__}",
                hint="check the program path in on_write (no shell: give the full argv)",
            ) from None
        try:
            code = _wait(process, output.fileno(), began + hook.timeout)
            printed = _tail(output.fileno(), cut_after=False)
        except (subprocess.TimeoutExpired, _TooMuchOutputError) as exc:
            _kill(process)
            printed = _tail(output.fileno(), cut_after=True)  # it may have died mid-write
            if isinstance(exc, _TooMuchOutputError):
                raise HookError(
                    f"{what} printed more than {MAX_OUTPUT >> 20} MiB and was killed{printed}",
                    hint="send its output elsewhere (a log file, the journal); the token "
                    "was written",
                ) from None
            raise HookError(
                f"{what} was killed after {hook.timeout:g}s{printed}",
                hint="make it finish sooner or raise on_write_timeout; the token was written",
            ) from None
    elapsed = time.monotonic() - began
    if code != 0:
        raise HookError(
            f"{what} {_describe_exit(code)}{printed}",
            hint="the token was written; the command runs again after the next write",
        )
    log.info(
        "%s ran in %.2fs",
        what,
        elapsed,
        extra={"event": "sink.on_write", "sink": sink, "seconds": round(elapsed, 3)},
    )
    if printed:
        log.debug("%s printed%s", what, printed)
    return elapsed


class _TooMuchOutputError(Exception):
    """The command's output passed :data:`MAX_OUTPUT`."""


def _wait(process: subprocess.Popen[bytes], output: int, deadline: float) -> int:
    """The command's exit status; raises ``TimeoutExpired`` at ``deadline`` (monotonic) and
    :class:`_TooMuchOutputError` once its spooled output passes :data:`MAX_OUTPUT`.

    The output goes to a temporary file, not a pipe (a daemon the command starts would hold
    a pipe open), so its size is looked at between short waits: a command printing without
    end is stopped within a poll of passing the limit, not when the disk is full.
    """
    while True:
        try:
            return process.wait(timeout=max(0.0, min(_POLL, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            if os.fstat(output).st_size > MAX_OUTPUT:
                raise _TooMuchOutputError from None
            if time.monotonic() >= deadline:
                raise


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the command's process group (or, if that is not allowed, the command)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # already gone
        pass
    except PermissionError:  # e.g. a setuid program (sudo) leading its group
        with contextlib.suppress(OSError):
            process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"


def _tail(output: int, *, cut_after: bool) -> str:
    """The end of what the command printed, as ``": …"``, scrubbed; "" if it printed nothing.

    Only the last :data:`_READ_TAIL` bytes are read. Secrets are scrubbed before anything is
    cut, and where the text was cut (its start, when the output was longer; its end, when
    the command was killed mid-write) a piece of a secret is dropped too, so no part of a
    token survives any truncation.
    """
    size = os.fstat(output).st_size
    start = max(0, size - _READ_TAIL)
    data = os.pread(output, size - start, start)
    text = data.decode("utf-8", "replace")
    if start:
        text = text.lstrip("\ufffd")  # a character the cut went through
    if cut_after:
        text = text.rstrip("\ufffd")
    text = scrub_excerpt(text, cut_before=start > 0, cut_after=cut_after)
    text = scrub(" ".join(text.split()))  # joining whitespace must not rebuild a secret
    if not text:
        return ""
    shown = text if len(text) <= _OUTPUT_TAIL and not start else "…" + text[-_OUTPUT_TAIL:]
    return ": " + shown
