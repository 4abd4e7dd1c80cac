"""The provider contract as tests: every store's test suite subclasses :class:`ProviderContract`.

Shipped in the core (not in ``tests/``) so a third-party provider proves the same guarantees
the built-in ones do — round trip, monotonic writes, concurrent writers — by writing one
fixture. Modelled on keyring's ``BackendBasicTests``. Only test code imports this module.

Usage::

    class TestMyStoreContract(ProviderContract):
        @pytest.fixture
        def make_provider(self) -> Callable[[], Provider]:
            return lambda: MyProvider(...)  # a NEW instance per call, the SAME store
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Protocol

import pytest

from harbor_secrets import Provider, TokenRecord, WriteOutcome

#: Token values that break naive quoting or encoding in some store. Each must round-trip.
AWKWARD_TOKENS: tuple[str, ...] = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJoYXJib3IifQ.c2lnbmF0dXJlLV8-_",
    'with "double" quotes',
    "it's a 'single' quote",
    "dollar $HOME $1 $$ and $(not a command)",
    "back\\slash, double \\\\ and trailing\\",
    "hash # is not a comment #",
    "key=value&a==b",
    "  leading and trailing spaces  ",
    "tab\tinside",
    "café é ü 東京",
    "emoji 🔑🚪✨",
    "back`tick` and |;&<>()*?[]{}~!%^",
    "mixed \"double\" and 'single' and \\ backslash",
)


class RecordFactory(Protocol):
    """Signature of the ``record_factory`` fixture."""

    def __call__(
        self,
        *,
        issued_at: datetime | None = None,
        expires_in: int = 300,
        token: str | None = None,
        scope: str = "service_provider",
    ) -> TokenRecord: ...


def make_record_factory(environment: str, base_time: datetime) -> RecordFactory:
    """Records for ``environment`` issued at ``base_time`` unless told otherwise."""

    def make(
        *,
        issued_at: datetime | None = None,
        expires_in: int = 300,
        token: str | None = None,
        scope: str = "service_provider",
    ) -> TokenRecord:
        return TokenRecord.issue(
            access_token=token if token is not None else f"tok-{uuid.uuid4().hex}",
            issued_at=issued_at or base_time,
            expires_in=expires_in,
            scope=scope,
            environment=environment,
            client_id="contract-client",
            issuer="http://127.0.0.1:1/realms/harbor",
        )

    return make


class ProviderContract:
    """Behaviour every :class:`~harbor_secrets.Provider` must show. Subclass and add
    a ``make_provider`` fixture; every test here then runs against your store."""

    #: Records each of the two concurrent writers writes; lower it for a slow store.
    concurrent_writes: ClassVar[int] = 10

    # -- fixtures -----------------------------------------------------------------------

    @pytest.fixture
    def make_provider(self) -> Callable[[], Provider]:
        pytest.fail(f"{type(self).__name__} must define a make_provider fixture")

    @pytest.fixture
    def provider(self, make_provider: Callable[[], Provider]) -> Iterator[Provider]:
        instance = make_provider()
        yield instance
        instance.close()

    @pytest.fixture
    def environment(self) -> str:
        """An environment-like name unique to the test, so tests never share a key."""
        return f"contract{uuid.uuid4().hex[:8]}"

    @pytest.fixture
    def key(self, provider: Provider, environment: str) -> str:
        return self._key(provider, environment, "service_provider")

    @pytest.fixture
    def base_time(self) -> datetime:
        return datetime.now(UTC).replace(microsecond=0)

    @pytest.fixture
    def record_factory(self, environment: str, base_time: datetime) -> RecordFactory:
        return make_record_factory(environment, base_time)

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _key(provider: Provider, environment: str, scope: str) -> str:
        return provider.render_key(
            provider.default_key_template,
            environment=environment,
            scope=scope,
            credentials="main",
        )

    @staticmethod
    def assert_same_record(
        provider: Provider, actual: TokenRecord | None, expected: TokenRecord
    ) -> None:
        """Equal records; only token and expiry when the store keeps nothing else."""
        assert actual is not None, "the store returned nothing for a key just written"
        if provider.stores_full_record:
            assert actual == expected
        else:
            assert actual.access_token.reveal() == expected.access_token.reveal()
            assert actual.expires_at == expected.expires_at

    # -- the contract -------------------------------------------------------------------

    def test_missing_key_reads_none(self, provider: Provider, key: str) -> None:
        assert provider.read(key) is None

    def test_round_trip(
        self,
        make_provider: Callable[[], Provider],
        provider: Provider,
        key: str,
        record_factory: RecordFactory,
    ) -> None:
        record = record_factory()
        assert provider.write(key, record) is WriteOutcome.WRITTEN
        self.assert_same_record(provider, provider.read(key), record)
        other = make_provider()  # another instance must see it: it is stored, not cached
        try:
            self.assert_same_record(other, other.read(key), record)
        finally:
            other.close()

    def test_overwrite_with_newer(
        self, provider: Provider, key: str, record_factory: RecordFactory, base_time: datetime
    ) -> None:
        provider.write(key, record_factory())
        newer = record_factory(issued_at=base_time + timedelta(seconds=60))
        assert provider.write(key, newer) is WriteOutcome.WRITTEN
        self.assert_same_record(provider, provider.read(key), newer)

    def test_older_record_is_refused(
        self, provider: Provider, key: str, record_factory: RecordFactory, base_time: datetime
    ) -> None:
        newer = record_factory(issued_at=base_time + timedelta(seconds=60))
        provider.write(key, newer)
        older = record_factory()
        assert provider.write(key, older) is WriteOutcome.KEPT_NEWER
        self.assert_same_record(provider, provider.read(key), newer)

    def test_equal_expiry_is_refused(
        self, provider: Provider, key: str, record_factory: RecordFactory, base_time: datetime
    ) -> None:
        first = record_factory()
        provider.write(key, first)
        # Same expires_at reached another way: a different token must not replace it.
        same = record_factory(issued_at=base_time + timedelta(seconds=10), expires_in=290)
        assert same.expires_at == first.expires_at
        assert provider.write(key, same) is WriteOutcome.KEPT_NEWER
        self.assert_same_record(provider, provider.read(key), first)

    @pytest.mark.parametrize("token", AWKWARD_TOKENS, ids=range(len(AWKWARD_TOKENS)))
    def test_awkward_token_values_round_trip(
        self, provider: Provider, key: str, record_factory: RecordFactory, token: str
    ) -> None:
        record = record_factory(token=token)
        assert provider.write(key, record) is WriteOutcome.WRITTEN
        stored = provider.read(key)
        assert stored is not None
        assert stored.access_token.reveal() == token
        self.assert_same_record(provider, stored, record)

    def test_scopes_do_not_interfere(
        self, provider: Provider, environment: str, record_factory: RecordFactory
    ) -> None:
        service = record_factory(scope="service_provider")
        tower = record_factory(scope="tower_access")
        service_key = self._key(provider, environment, "service_provider")
        tower_key = self._key(provider, environment, "tower_access")
        assert service_key != tower_key
        assert provider.write(service_key, service) is WriteOutcome.WRITTEN
        assert provider.write(tower_key, tower) is WriteOutcome.WRITTEN
        self.assert_same_record(provider, provider.read(service_key), service)
        self.assert_same_record(provider, provider.read(tower_key), tower)

    def test_concurrent_writers_leave_the_newest(
        self,
        make_provider: Callable[[], Provider],
        key: str,
        record_factory: RecordFactory,
        base_time: datetime,
    ) -> None:
        count = self.concurrent_writes
        writers = [make_provider(), make_provider()]  # like two overlapping runs
        start = threading.Barrier(len(writers))
        failures: list[BaseException] = []
        late: list[WriteOutcome] = []

        def run(instance: Provider, parity: int) -> None:
            try:
                start.wait(timeout=30)
                for step in range(count):
                    offset = 2 * step + parity + 1  # writer 0: 1, 3, 5 …; writer 1: 2, 4, 6 …
                    record = record_factory(issued_at=base_time + timedelta(seconds=offset))
                    instance.write(key, record)
                    seen = instance.read(key)
                    assert seen is not None, "a written key read back as missing"
                    assert seen.expires_at >= record.expires_at, "the store went backwards"
                late.append(instance.write(key, record_factory()))  # older than all of them
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        threads = [
            threading.Thread(target=run, args=(writer, parity))
            for parity, writer in enumerate(writers)
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
        finally:
            for writer in writers:
                writer.close()
        assert not any(thread.is_alive() for thread in threads), "a writer hung"
        if failures:
            raise failures[0]
        assert late == [WriteOutcome.KEPT_NEWER, WriteOutcome.KEPT_NEWER]
        reader = make_provider()
        try:
            final = reader.read(key)
        finally:
            reader.close()
        assert final is not None
        assert final.expires_at == base_time + timedelta(seconds=2 * count + 300)

    def test_describe_carries_no_token(
        self, provider: Provider, key: str, record_factory: RecordFactory
    ) -> None:
        canary = f"canary-{uuid.uuid4().hex}"
        provider.write(key, record_factory(token=canary))
        provider.read(key)
        description = provider.describe()
        assert isinstance(description, dict)
        assert description.get("provider") == provider.name
        assert canary not in json.dumps(description, default=str)

    def test_repr_and_str_carry_no_token(
        self, provider: Provider, key: str, record_factory: RecordFactory
    ) -> None:
        canary = f"canary-{uuid.uuid4().hex}"
        provider.write(key, record_factory(token=canary))
        record = provider.read(key)
        assert canary not in repr(provider)
        assert canary not in str(provider)
        assert canary not in repr(record)
        assert canary not in str(record)
