"""Faults injected into a CLI process under test: put this directory on PYTHONPATH and
describe the fault in ``RELIABILITY_FAULTS`` (JSON). Python imports ``sitecustomize`` at
start-up, so the real ``python -m harbor_secrets`` runs with the fault in place.

``{"enospc": "write"}`` (or ``"fsync"``): that call fails with ENOSPC on the env file's
temporary file (a full disk at the worst moment), and nowhere else.

``{"aws": {"operation": …, "code": …, "message": …, "name": …, "times": N|null,
"log": PATH}}``: SSM answers ``operation`` on parameter ``name`` with that AWS error
instead of the server. The answer is given at botocore's ``before-send`` event, inside the
SDK's retry loop, so the SDK parses and retries it exactly like a real error response.
Only ``times`` attempts fail (all when null); every attempt on ``name`` is appended to
``log`` (one operation name per line) so the test can count retries.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Iterator
from typing import Any


def _enospc(function: str) -> None:
    real: Callable[..., Any] = getattr(os, function)

    def failing(fd: int, *args: Any) -> Any:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if "/.harbor.env." in target and target.endswith(".tmp"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, *args)

    setattr(os, function, failing)


class _Body:
    """The raw stream botocore reads an answered response's body from."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


def _aws(spec: dict[str, Any]) -> None:
    from botocore.awsrequest import AWSResponse, HTTPHeaders
    from harbor_secrets_aws import clients

    left: list[int | None] = [spec["times"]]

    def answer(request: Any, **_: Any) -> AWSResponse | None:
        target = request.headers.get("X-Amz-Target", b"")
        called = (target.decode() if isinstance(target, bytes) else str(target)).rpartition(".")[2]
        body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
        if json.loads(body or b"{}").get("Name") != spec["name"]:
            return None
        with open(spec["log"], "a", encoding="utf-8") as log:
            log.write(called + "\n")
        if called != spec["operation"] or left[0] == 0:
            return None
        if left[0] is not None:
            left[0] -= 1
        payload = json.dumps({"__type": spec["code"], "message": spec["message"]}).encode()
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.1"
        return AWSResponse(request.url, 400, headers, _Body(payload))

    original = clients.ClientCache.client

    def client(self: clients.ClientCache, service: str, settings: clients.AwsSettings) -> Any:
        made = original(self, service, settings)
        if service == "ssm" and not getattr(made, "_reliability_fault", False):
            made.meta.events.register("before-send.ssm", answer)
            made._reliability_fault = True
        return made

    clients.ClientCache.client = client  # type: ignore[method-assign]


def _install() -> None:
    spec = json.loads(os.environ.get("RELIABILITY_FAULTS") or "{}")
    if "enospc" in spec:
        _enospc(spec["enospc"])
    if "aws" in spec:
        _aws(spec["aws"])


_install()
