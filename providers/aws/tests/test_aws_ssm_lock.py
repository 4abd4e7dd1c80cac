"""The SSM write lock against moto_server: expiry while held, and racing lock breakers.

Interleavings are made deterministic with botocore's event hooks: a hook on one writer's
client runs the other writer at the exact point between two of its requests.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from harbor_secrets_aws import ParameterStoreProvider, parameter_lock
from harbor_secrets_aws.clients import AwsSettings, ClientCache
from harbor_secrets_aws.parameter_lock import LOCK_TTL, ParameterLock, lock_name

from harbor_secrets import StoreError, TokenRecord, WriteOutcome

NOW = datetime.now(UTC).replace(microsecond=0)


def record(offset: int) -> TokenRecord:
    return TokenRecord.issue(
        access_token=f"tok-{offset}-{uuid.uuid4().hex}",
        issued_at=NOW + timedelta(seconds=offset),
        expires_in=300,
        scope="tower_access",
        environment="sandbox",
        client_id="client-1",
        issuer="http://127.0.0.1:1/realms/harbor/protocol/openid-connect/token",
    )


def stored(ssm_client: Any, name: str) -> dict[str, Any]:
    response = ssm_client.get_parameter(Name=name, WithDecryption=True)
    return dict(json.loads(response["Parameter"]["Value"]))


def lock_exists(ssm_client: Any, name: str) -> bool:
    try:
        ssm_client.get_parameter(Name=lock_name(name))
    except ssm_client.exceptions.ParameterNotFound:
        return False
    return True


class FakeTime:
    """The ``time`` module as the lock sees it, able to jump forward (both clocks at once)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(parameter_lock, "time", fake)
    return fake


@pytest.fixture
def name(unique: Callable[[str], str]) -> str:
    return unique("/harbor/sandbox/lock-test-")


Hook = Callable[[Callable[[], None]], Callable[[], None]]


def run_once_after(client: Any, operation: str, when: Callable[[dict[str, Any]], bool]) -> Hook:
    """Decorator: run the function once, right after ``client`` finishes a matching call."""

    def register(action: Callable[[], None]) -> Callable[[], None]:
        flag = f"harbor-after-{uuid.uuid4().hex}"
        done: list[bool] = []

        def choose(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            context[flag] = when(params)

        def after(context: dict[str, Any], **_: Any) -> None:
            if context.get(flag) and not done:
                done.append(True)
                action()

        client.meta.events.register(f"before-parameter-build.ssm.{operation}", choose)
        client.meta.events.register(f"after-call.ssm.{operation}", after)
        return action

    return register


def run_once_before(client: Any, when: Callable[[str, dict[str, Any]], bool]) -> Hook:
    """Decorator: run the function once, just before ``client`` sends a matching SSM call."""

    def register(action: Callable[[], None]) -> Callable[[], None]:
        done: list[bool] = []

        def before(params: dict[str, Any], model: Any, **_: Any) -> None:
            if not done and when(model.name, params):
                done.append(True)
                action()

        client.meta.events.register("before-parameter-build.ssm", before)
        return action

    return register


def test_default_ttl_covers_the_slowest_call_the_client_allows() -> None:
    """Fails if someone raises the client's timeouts or attempts without raising the TTL."""
    lock = ParameterLock(client=None, name="/x")
    assert lock.ttl == LOCK_TTL
    assert lock.write_deadline >= 10.0, "a normal write must comfortably fit"
    assert lock.write_deadline + parameter_lock.WORST_CALL_SECONDS < lock.ttl


def test_ttl_too_short_for_a_write_is_refused() -> None:
    with pytest.raises(ValueError, match="ttl"):
        ParameterLock(client=None, name="/x", ttl=parameter_lock.WORST_CALL_SECONDS)


def test_writer_whose_lock_expired_meanwhile_refuses_and_the_newer_token_stays(
    aws_settings: AwsSettings,
    aws_clients: ClientCache,
    fresh_client: Callable[[str], Any],
    ssm_client: Any,
    name: str,
    fake_time: FakeTime,
) -> None:
    """The reviewer's scenario: A sits between its read and its put until its lock expires."""
    base, older, newer = record(0), record(60), record(120)
    ParameterStoreProvider(settings=aws_settings, clients=aws_clients).write(name, base)
    slow = fresh_client("ssm")
    writer_a = ParameterStoreProvider(settings=aws_settings, client=slow)
    writer_b = ParameterStoreProvider(settings=aws_settings, client=fresh_client("ssm"))
    outcomes: list[WriteOutcome] = []

    @run_once_after(slow, "GetParameter", lambda params: params["Name"] == name)
    def _a_stalls_after_its_read() -> None:
        fake_time.advance(LOCK_TTL + 1)  # A's lock is now expired for everyone
        outcomes.append(writer_b.write(name, newer))  # B breaks A's lock and writes

    with pytest.raises(StoreError) as error:
        writer_a.write(name, older)
    assert outcomes == [WriteOutcome.WRITTEN]
    assert error.value.reason == "lock-expired"
    assert error.value.hint
    assert older.access_token.reveal() not in str(error.value)
    assert stored(ssm_client, name) == newer.to_dict()
    assert not lock_exists(ssm_client, name), "B released its lock; A must not leave one"


def test_writer_past_its_deadline_never_puts_even_if_nobody_broke_the_lock(
    aws_settings: AwsSettings,
    fresh_client: Callable[[str], Any],
    ssm_client: Any,
    name: str,
    fake_time: FakeTime,
) -> None:
    base = record(0)
    slow = fresh_client("ssm")
    writer = ParameterStoreProvider(settings=aws_settings, client=slow)
    writer.write(name, base)

    @run_once_after(slow, "GetParameter", lambda params: params["Name"] == name)
    def _stall() -> None:
        fake_time.advance(LOCK_TTL / 2)

    with pytest.raises(StoreError) as error:
        writer.write(name, record(60))
    assert error.value.reason == "lock-expired"
    assert stored(ssm_client, name) == base.to_dict()
    # Too late to delete safely (another writer may break it any moment): it expires instead.
    assert lock_exists(ssm_client, name)


def stale_lock(ssm_client: Any, name: str) -> str:
    body = json.dumps({"owner": "crashed", "expires_at": time.time() - 1})
    ssm_client.put_parameter(Name=lock_name(name), Value=body, Type="String")
    return body


def is_lock_write(operation: str, params: dict[str, Any]) -> bool:
    """The step that takes over a stale lock (overwrite), or used to (delete)."""
    if not str(params.get("Name", "")).endswith(".lock"):
        return False
    return operation == "DeleteParameter" or (
        operation == "PutParameter" and params.get("Overwrite") is True
    )


def test_two_breakers_of_one_stale_lock_never_both_hold_it(
    fresh_client: Callable[[str], Any], ssm_client: Any, name: str
) -> None:
    """A and B both see the stale lock; B takes it over just before A does."""
    stale_lock(ssm_client, name)
    client_a = fresh_client("ssm")
    lock_a = ParameterLock(client_a, name, wait=0.3)
    lock_b = ParameterLock(fresh_client("ssm"), name, wait=0.3)
    held: list[str] = []

    @run_once_before(client_a, is_lock_write)
    def _b_breaks_first() -> None:
        lock_b.acquire()
        held.append("B")

    with pytest.raises(StoreError) as error:
        lock_a.acquire()
    assert error.value.reason == "locked"
    assert held == ["B"]
    assert lock_b.holding
    assert not lock_a.holding
    lock_b.release()
    assert not lock_exists(ssm_client, name)


def test_breaker_that_read_a_lock_since_replaced_does_not_take_the_new_one(
    fresh_client: Callable[[str], Any], ssm_client: Any, name: str
) -> None:
    """Between B's read of the stale lock and B's takeover, the lock was released and C
    created a fresh one (the parameter's version numbers start again at 1)."""
    stale_lock(ssm_client, name)
    client_b = fresh_client("ssm")
    lock_b = ParameterLock(client_b, name, wait=0.3)
    lock_c = ParameterLock(fresh_client("ssm"), name, wait=0.3)

    @run_once_before(client_b, is_lock_write)
    def _replaced_meanwhile() -> None:
        ssm_client.delete_parameter(Name=lock_name(name))
        lock_c.acquire()

    with pytest.raises(StoreError) as error:
        lock_b.acquire()
    assert error.value.reason == "locked"
    assert lock_c.holding
    assert not lock_b.holding


def test_writer_whose_create_landed_but_whose_answer_was_lost_holds_the_lock(
    fresh_client: Callable[[str], Any], ssm_client: Any, name: str
) -> None:
    """A retried create answers ParameterAlreadyExists for our own lock: we hold it."""
    client = fresh_client("ssm")
    lock = ParameterLock(client, name, wait=0.3)

    landed: list[bool] = []

    def create_twice(params: dict[str, Any], **_: Any) -> None:
        if (
            params.get("Name") == lock_name(name)
            and params.get("Overwrite") is False
            and not landed
        ):
            landed.append(True)
            ssm_client.put_parameter(**params)  # "the first attempt" landed

    client.meta.events.register("before-parameter-build.ssm.PutParameter", create_twice)
    lock.acquire()
    assert landed
    assert lock.holding
    lock.release()
    assert not lock_exists(ssm_client, name)
