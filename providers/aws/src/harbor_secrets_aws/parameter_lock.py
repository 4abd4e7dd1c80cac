"""A short-lived lock for one SSM parameter, because Parameter Store has no compare-and-set.

``PutParameter`` with ``Overwrite=False`` is an atomic create-if-absent, so the writer that
creates ``NAME.lock`` holds the lock; deleting it releases it. A lock records when it
expires (``ttl``): one left by a crashed writer is broken by the next writer after that.
Holding it only spans one read-compare-write (three requests), so contention is brief.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from types import TracebackType

from botocore.exceptions import BotoCoreError, ClientError

from harbor_secrets import StoreError
from harbor_secrets_aws.clients import Client
from harbor_secrets_aws.errors import aws_errors, error_code

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"


def lock_name(name: str) -> str:
    return name + LOCK_SUFFIX


class ParameterLock:
    """``with ParameterLock(client, name): …`` — raises StoreError if it cannot be had."""

    def __init__(
        self,
        client: Client,
        name: str,
        *,
        ttl: float = 30.0,
        wait: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.name = lock_name(name)
        self.ttl = ttl
        self.wait = wait
        self._clock = clock
        self._sleep = sleep
        self._owner = uuid.uuid4().hex
        self._acquired_at: float | None = None

    def __enter__(self) -> ParameterLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        delay = 0.05
        what = f"SSM lock parameter {self.name!r}"
        while True:
            body = json.dumps({"owner": self._owner, "expires_at": self._clock() + self.ttl})
            with aws_errors("lock", what):
                try:
                    self.client.put_parameter(
                        Name=self.name,
                        Value=body,
                        Type="String",
                        Overwrite=False,
                        Tier="Standard",
                        Description="harbor-secrets write lock; safe to delete after a minute",
                    )
                    self._acquired_at = time.monotonic()
                    return
                except ClientError as exc:
                    if error_code(exc) != "ParameterAlreadyExists":
                        raise
                self._break_if_stale()
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"another writer holds {what}",
                    hint="another harbor-secrets run is writing this parameter; if none is, "
                    f"delete {self.name} (it also expires by itself after {self.ttl:g}s)",
                    reason="locked",
                )
            self._sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, 0.5)

    def _holder(self) -> tuple[str, float] | None:
        """(owner, expires_at) of the current lock, or None if there is none."""
        try:
            response = self.client.get_parameter(Name=self.name)
        except ClientError as exc:
            if error_code(exc) == "ParameterNotFound":
                return None
            raise
        parameter = response.get("Parameter", {})
        try:
            data = json.loads(parameter.get("Value", ""))
            return str(data["owner"]), float(data["expires_at"])
        except (ValueError, KeyError, TypeError):  # not ours to read: age it by its date
            modified = parameter.get("LastModifiedDate")
            since = modified.timestamp() if hasattr(modified, "timestamp") else 0.0
            return "", since + self.ttl

    def _break_if_stale(self) -> None:
        holder = self._holder()
        if holder is not None and holder[1] < self._clock():
            log.warning("breaking expired lock %s", self.name)
            self._delete()

    def _delete(self) -> None:
        try:
            self.client.delete_parameter(Name=self.name)
        except ClientError as exc:
            if error_code(exc) != "ParameterNotFound":
                raise

    def release(self) -> None:
        """Delete the lock; only after checking it is still ours if we held it long."""
        if self._acquired_at is None:
            return
        held = time.monotonic() - self._acquired_at
        self._acquired_at = None
        try:
            if held > self.ttl / 2:
                holder = self._holder()
                if holder is None or holder[0] != self._owner:
                    return
            self._delete()
        except (ClientError, BotoCoreError) as exc:
            # The write itself is done; the lock expires by itself after ttl.
            log.warning("could not release %s (%s)", self.name, type(exc).__name__)
