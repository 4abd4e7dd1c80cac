"""A short-lived lock for one SSM parameter, because Parameter Store has no compare-and-set.

``PutParameter`` with ``Overwrite=False`` is an atomic create-if-absent, so the writer that
creates ``NAME.lock`` holds the lock; deleting it releases it. The lock records when it
expires (``ttl``, wall clock): one left by a crashed writer is taken over after that.

Three rules keep two writers from ever both writing (see the README for the assumptions):

* **The TTL outlasts the slowest write.** A holder sends its put only while it has held
  the lock for at most :attr:`ParameterLock.write_deadline` (monotonic clock), which leaves
  the slowest call the client allows (:data:`WORST_CALL_SECONDS`) plus a clock-skew margin
  before the lock can expire; later it refuses (``lock-expired``) and writes nothing.
* **Taking over a stale lock is a checked overwrite, never a delete.** The breaker
  overwrites the lock and then reads the version just before its own: only if that is the
  stale lock it judged does it hold the lock. Of two breakers only one finds that; a breaker
  whose stale lock was released and re-created meanwhile finds the new holder's instead.
* **Only a holder deletes, and only while the lock cannot be stale yet** (within the same
  deadline). A holder that is later lets its lock expire rather than risk deleting a
  successor's.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from botocore.exceptions import BotoCoreError, ClientError

from harbor_secrets import StoreError
from harbor_secrets_aws.clients import Client, worst_call_seconds
from harbor_secrets_aws.errors import aws_errors, error_code

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
#: How long one API call may take with the client's timeouts and retries (82 s).
WORST_CALL_SECONDS = worst_call_seconds()
#: Allowance for wall clocks of two writers disagreeing (they compare ``expires_at``).
CLOCK_MARGIN = 10.0
#: Time a holder has from taking the lock to sending its put (normally well under 1 s).
WRITE_BUDGET = 30.0
#: Lifetime of a lock (122 s): the write budget, then the slowest put, then the margin.
LOCK_TTL = WRITE_BUDGET + WORST_CALL_SECONDS + CLOCK_MARGIN


def lock_name(name: str) -> str:
    return name + LOCK_SUFFIX


@dataclass(frozen=True)
class _Holder:
    """The lock as last read: its raw value (unique per attempt) and when it expires."""

    value: str
    expires_at: float


class ParameterLock:
    """``with ParameterLock(client, name): …`` — raises StoreError if it cannot be had."""

    def __init__(
        self,
        client: Client,
        name: str,
        *,
        ttl: float = LOCK_TTL,
        wait: float = 10.0,
        clock: Callable[[], float] | None = None,
        monotonic: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if ttl - WORST_CALL_SECONDS - CLOCK_MARGIN <= 0:
            raise ValueError(
                f"lock ttl {ttl:g}s is too short: one call may take {WORST_CALL_SECONDS:g}s"
            )
        self.client = client
        self.name = lock_name(name)
        self.ttl = ttl
        self.wait = wait
        self._clock = clock or time.time
        self._monotonic = monotonic or time.monotonic
        self._sleep = sleep or time.sleep
        self._acquired_at: float | None = None

    @property
    def write_deadline(self) -> float:
        """Seconds after taking the lock by which a put (or the unlock) must be sent."""
        return self.ttl - WORST_CALL_SECONDS - CLOCK_MARGIN

    @property
    def holding(self) -> bool:
        return self._acquired_at is not None

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

    def _what(self) -> str:
        return f"SSM lock parameter {self.name!r}"

    def acquire(self) -> None:
        deadline = self._monotonic() + self.wait
        delay = 0.05
        while True:
            with aws_errors("lock", self._what()):
                if self._try_acquire():
                    return
            if self._monotonic() >= deadline:
                raise StoreError(
                    f"another writer holds {self._what()}",
                    hint="another harbor-secrets run is writing this parameter; if none is, "
                    f"delete {self.name} (it also expires by itself after {self.ttl:g}s)",
                    reason="locked",
                )
            self._sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, 0.5)

    def _body(self) -> tuple[str, float]:
        """A lock value with a new owner id (so a lost attempt's value is never taken for
        ours later), and the monotonic time its expiry counts from."""
        started = self._monotonic()
        body = json.dumps({"owner": uuid.uuid4().hex, "expires_at": self._clock() + self.ttl})
        return body, started

    def _try_acquire(self) -> bool:
        body, started = self._body()
        try:
            self._put(body, overwrite=False)
        except ClientError as exc:
            if error_code(exc) != "ParameterAlreadyExists":
                raise
            holder = self._holder()
            if holder is None:
                return False  # released meanwhile: try again
            if holder.value != body:
                return self._take_over(holder)
            # An earlier attempt of this very request landed; only its answer was lost.
        self._acquired_at = started
        return True

    def _take_over(self, stale: _Holder) -> bool:
        """Overwrite an expired lock; ours only if the version before ours is the one judged."""
        if stale.expires_at >= self._clock():
            return False
        log.warning("taking over expired lock %s", self.name)
        body, started = self._body()
        version = self._put(body, overwrite=True)
        if version != 1 and self._value_at(version - 1) != stale.value:
            log.warning("another writer took over %s first", self.name)
            return False
        self._acquired_at = started
        return True

    def _put(self, body: str, *, overwrite: bool) -> int:
        response = self.client.put_parameter(
            Name=self.name,
            Value=body,
            Type="String",
            Overwrite=overwrite,
            Tier="Standard",
            Description="harbor-secrets write lock; safe to delete after a few minutes",
        )
        return int(response.get("Version", 0))

    def _value_at(self, version: int) -> str | None:
        try:
            response = self.client.get_parameter(Name=f"{self.name}:{version}")
        except ClientError as exc:
            if error_code(exc) in ("ParameterNotFound", "ParameterVersionNotFound"):
                return None
            raise
        return str(response.get("Parameter", {}).get("Value", ""))

    def _holder(self) -> _Holder | None:
        """The current lock, or None if there is none."""
        try:
            response = self.client.get_parameter(Name=self.name)
        except ClientError as exc:
            if error_code(exc) == "ParameterNotFound":
                return None
            raise
        parameter = response.get("Parameter", {})
        value = str(parameter.get("Value", ""))
        try:
            return _Holder(value, float(json.loads(value)["expires_at"]))
        except (ValueError, KeyError, TypeError):  # not ours to read: age it by its date
            modified = parameter.get("LastModifiedDate")
            since = modified.timestamp() if hasattr(modified, "timestamp") else 0.0
            return _Holder(value, since + self.ttl)

    def check_time_to_write(self, what: str) -> None:
        """Call just before the put: refuse if the put might land after the lock expired."""
        if self._acquired_at is None:
            raise StoreError(f"not holding {self._what()}", reason="locked")
        held = self._monotonic() - self._acquired_at
        if held > self.write_deadline:
            raise StoreError(
                f"the write lock for {what} was held {held:.0f}s, longer than the "
                f"{self.write_deadline:g}s a write may start within; nothing was written",
                hint="AWS answered slowly (throttling or network trouble); the next run "
                f"tries again once the lock expires (at most {self.ttl:g}s)",
                reason="lock-expired",
            )

    def release(self) -> None:
        """Delete the lock if it cannot have expired by the time the delete lands."""
        if self._acquired_at is None:
            return
        held = self._monotonic() - self._acquired_at
        self._acquired_at = None
        if held > self.write_deadline:
            # Another writer may take it over any moment; deleting could remove theirs.
            log.warning("leaving %s to expire: held %.0fs", self.name, held)
            return
        try:
            self.client.delete_parameter(Name=self.name)
        except ClientError as exc:
            if error_code(exc) != "ParameterNotFound":
                log.warning("could not release %s (%s)", self.name, error_code(exc))
        except BotoCoreError as exc:
            # The write itself is done; the lock expires by itself after ttl.
            log.warning("could not release %s (%s)", self.name, type(exc).__name__)
