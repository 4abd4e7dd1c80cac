"""Calling code that must never block on a FIFO, in a test that must fail rather than hang.

A named pipe where a credential or configuration file should be makes an ordinary
``open`` wait for a writer, forever. :func:`call_beside_fifo` runs the call in a thread; if
it has not returned after a generous margin (without the FIFO it takes milliseconds), the
test gives the FIFO a writer and closes it at once, which ends the blocked open, and fails
with a message that says what happened.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class BlockedOnFifoError(AssertionError):
    """The call was still waiting on the FIFO after the margin."""


def call_beside_fifo(function: Callable[[], T], fifo: Path, *, within: float = 30.0) -> T:
    """``function()``, which may touch the FIFO ``fifo`` but must not wait on it; its
    exception, if it raises one. :class:`BlockedOnFifoError` if it waited ``within``
    seconds."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = function()
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="call-beside-fifo", daemon=True)
    thread.start()
    thread.join(within)
    if thread.is_alive():
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # the waiting open returns
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: nobody has it open for reading after all
                raise
        thread.join(within)
        raise BlockedOnFifoError(f"the call waited on the FIFO {fifo} for {within:g}s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
