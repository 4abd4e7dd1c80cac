"""Serving in the foreground, written once (``harbor_secrets._serving``) for the status server
and the stand-in issuer: a port that cannot be had is a usage error naming its option, and
SIGTERM/SIGINT reach the code that waits, whose old handlers come back afterwards.

And the stand-in issuer listens on loopback only: it serves plain http:// with a client
secret, so ``--host 0.0.0.0`` (every address) is refused as ``-c`` already refused it.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result
from harbor_secrets._serving import bind, handle_signals
from harbor_secrets.errors import ConfigError

Run = Callable[..., Result]


def test_bind_turns_an_address_it_cannot_have_into_a_usage_error() -> None:
    def taken() -> None:
        raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))

    with pytest.raises(ConfigError) as caught:
        bind(taken, host="::1", port=9464, key="--listen", fix="choose a free port")
    assert caught.value.exit_code == 2
    assert str(caught.value) == (
        f"--listen: cannot listen on [::1]:9464 ({os.strerror(errno.EADDRINUSE)}) "
        "(fix: choose a free port)"
    )
    assert bind(lambda: 7, host="127.0.0.1", port=1, key="--port", fix="") == 7


def test_handled_signals_reach_the_waiter_and_the_old_handlers_come_back() -> None:
    seen: list[str] = []
    old = signal.getsignal(signal.SIGUSR1)
    restore = handle_signals(seen.append, (signal.SIGUSR1,))
    os.kill(os.getpid(), signal.SIGUSR1)
    assert seen == ["SIGUSR1"]
    restore()
    assert signal.getsignal(signal.SIGUSR1) is old
    restore = handle_signals(seen.append, (signal.SIGUSR1,))
    restore(ignore=True)  # a process about to exit: a second signal changes nothing
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN
    signal.signal(signal.SIGUSR1, old)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "harbor.example"])  # noqa: S104
def test_the_stand_in_refuses_a_host_that_is_not_loopback(
    tmp_path: Path, run_cli: Run, host: str
) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("a-client-secret-for-the-stand-in\n", encoding="utf-8")
    with socket.socket() as probe:  # a port nothing listens on, to see that none binds it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["--host", host, "--port", str(port), "--client-id", "x"]
    result = run_cli("stand-in-issuer", *args, "--client-secret-file", str(secret))
    assert result.code == 2, result.output
    assert f"--host: {host} is not a loopback address" in result.stderr
    assert "listening" not in result.stdout
