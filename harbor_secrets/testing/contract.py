"""The provider contract as tests: every store's test suite subclasses :class:`ProviderContract`.

Shipped in the core (not in ``tests/``) so a third-party provider proves the same guarantees
the built-in ones do, against its real server, by writing two fixtures. Modelled on
keyring's ``BackendBasicTests``. Only test code imports this module.

Every promise of :class:`~harbor_secrets.Provider` is a test here:

- construction from a sink's options, offline, by the core (:func:`harbor_secrets.runtime
  .build_sink`), with unknown options refused naming the key, also where no credentials
  exist (``config check --skip-references``: :attr:`ProviderContext.skip_credentials`);
- keys rendered by the core from the sink's template, only normalised by the provider;
- read round trip (the writer's name, ``written_by``, included), missing keys, and a
  second instance seeing what the first stored;
- the monotonic rule, read from the store before each write and decided by
  :meth:`TokenRecord.is_newer_than`: never replace a record expiring at or after the new
  one, also when another writer got there first, unless the freshness policy the new
  record carries calls the stored one implausible (written under a clock far ahead);
- concurrent writers leave the newest record;
- an unreachable store fails with a :class:`~harbor_secrets.HarborSecretsError` in bounded
  time, and no token appears in a description, a repr or an error.

Usage::

    class TestMyStoreContract(ProviderContract):
        provider_class = MyProvider

        @pytest.fixture
        def sink_options(self) -> dict[str, object]:
            return {"address": "https://127.0.0.1:8200"}  # a sink table, without provider

        @pytest.fixture
        def unreachable_options(self) -> dict[str, object]:
            return {"address": "https://127.0.0.1:9"}  # nothing listens there
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol

import pytest

from harbor_secrets import (
    ConfigError,
    HarborSecretsError,
    Provider,
    RefreshPolicy,
    TokenRecord,
    WriteOutcome,
)
from harbor_secrets.config import Job
from harbor_secrets.references import is_reference
from harbor_secrets.registry import Registry
from harbor_secrets.runtime import Sink
from harbor_secrets.testing.sinks import sink_from_options

SINK_NAME = "contract"

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


#: The refresher name the contract's records carry (``written_by``); stores that keep whole
#: records must give it back, as ``status`` and the watch log show it.
WRITER = "contract-writer-7"


def make_record_factory(environment: str, base_time: datetime) -> RecordFactory:
    """Records for ``environment`` issued at ``base_time`` unless told otherwise, written by
    :data:`WRITER`."""

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
            written_by=WRITER,
        )

    return make


class ProviderContract:
    """Behaviour every :class:`~harbor_secrets.Provider` must show. Subclass, set
    :attr:`provider_class`, and define the ``sink_options`` and ``unreachable_options``
    fixtures; every test here then runs against your store."""

    #: The provider under test.
    provider_class: ClassVar[type[Provider]]
    #: False only for a provider that is not published under the entry-point group.
    registered: ClassVar[bool] = True
    #: Records each of the two concurrent writers writes; lower it for a slow store.
    concurrent_writes: ClassVar[int] = 10
    #: A key template over all three placeholders that this store accepts.
    custom_template: ClassVar[str] = "custom/{credentials}/{environment}/{scope}"
    #: How long an operation on an unreachable store may take before it must have failed.
    unreachable_within: ClassVar[float] = 60.0

    # -- fixtures a subclass defines --------------------------------------------------------

    @pytest.fixture
    def sink_options(self) -> Mapping[str, Any]:
        """The sink's configuration table (without ``provider``), pointing at a live store."""
        pytest.fail(f"{type(self).__name__} must define a sink_options fixture")

    @pytest.fixture
    def unreachable_options(self) -> Mapping[str, Any]:
        """Options of the same store kind that cannot be reached (a closed port, a path
        under a regular file ...): building must still succeed, offline."""
        pytest.fail(f"{type(self).__name__} must define an unreachable_options fixture")

    @pytest.fixture
    def provider_environ(self) -> Mapping[str, str]:
        """The environment the provider sees (``env:`` references resolve from it)."""
        return dict(os.environ)

    # -- fixtures built from them -----------------------------------------------------------

    @pytest.fixture
    def make_sink(
        self, sink_options: Mapping[str, Any], provider_environ: Mapping[str, str]
    ) -> Iterator[Callable[..., Sink]]:
        """Build sinks as the core does; ``make_sink(**changes)`` alters the options."""
        made: list[Sink] = []

        def make(**changes: Any) -> Sink:
            sink = self.build(dict(sink_options) | changes, provider_environ)
            made.append(sink)
            return sink

        yield make
        for sink in made:
            sink.provider.close()

    @pytest.fixture
    def make_provider(self, make_sink: Callable[..., Sink]) -> Callable[[], Provider]:
        """A NEW provider instance per call, over the SAME store."""
        return lambda: make_sink().provider

    @pytest.fixture
    def sink(self, make_sink: Callable[..., Sink]) -> Sink:
        return make_sink()

    @pytest.fixture
    def provider(self, sink: Sink) -> Provider:
        return sink.provider

    @pytest.fixture
    def environment(self) -> str:
        """An environment-like name unique to the test, so tests never share a key."""
        return f"contract{uuid.uuid4().hex[:8]}"

    @pytest.fixture
    def key(self, sink: Sink, environment: str) -> str:
        return self.key_of(sink, environment, "service_provider")

    @pytest.fixture
    def base_time(self) -> datetime:
        return datetime.now(UTC).replace(microsecond=0)

    @pytest.fixture
    def record_factory(self, environment: str, base_time: datetime) -> RecordFactory:
        return make_record_factory(environment, base_time)

    # -- helpers ------------------------------------------------------------------------

    def build(self, table: Mapping[str, Any], environ: Mapping[str, str]) -> Sink:
        """One sink from ``table``, exactly as the core's runtime builds it."""
        return sink_from_options(self.provider_class, table, environ=environ, name=SINK_NAME)

    @staticmethod
    def key_of(sink: Sink, environment: str, scope: str, credentials: str = "main") -> str:
        """The key the core gives this token in ``sink``."""
        return sink.key_for(Job(credentials, environment, scope, (sink.name,)))

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

    # -- construction and keys ------------------------------------------------------------

    def test_is_published_under_its_entry_point_name(self) -> None:
        names = Registry().names()
        if self.registered:
            assert Registry().load(self.provider_class.name) is self.provider_class
        else:
            assert self.provider_class.name not in names

    def test_its_reference_schemes_have_a_references_shape(self) -> None:
        """The configuration takes only ``word:rest`` or ``word-word:rest`` as a reference;
        a scheme of another shape could never be used."""
        for scheme in self.provider_class.reference_schemes:
            assert is_reference(f"{scheme}:x"), f"{scheme!r} is not lower-case words and hyphens"

    def test_is_built_from_the_sink_options(
        self, sink: Sink, sink_options: Mapping[str, Any]
    ) -> None:
        cls = self.provider_class
        assert type(sink.provider) is cls
        assert sink.key_template.text == sink_options.get(cls.key_option, cls.default_key_template)

    def test_it_is_checked_offline_where_no_credentials_exist(
        self, sink_options: Mapping[str, Any], tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        """``config check --skip-references`` runs in CI or on a laptop, where the job's
        credentials (tokens, keys, service-account files, ``env:`` variables) do not exist:
        the provider is built with :attr:`ProviderContext.skip_credentials`, in an
        environment holding nothing but an empty home directory, and must still check
        names and policy, without failing for what is absent."""
        nothing = {"HOME": str(tmp_path_factory.mktemp("empty-home"))}

        def build(table: Mapping[str, Any]) -> Sink:
            return sink_from_options(
                self.provider_class,
                table,
                environ=nothing,
                name=SINK_NAME,
                skip_credentials=True,
            )

        sink = build(sink_options)
        try:
            assert sink.provider.describe().get("provider") == self.provider_class.name
            sink.provider.warnings(RefreshPolicy())
        finally:
            sink.provider.close()
        with pytest.raises(ConfigError) as caught:
            build({**sink_options, "no_such_option": 1}).provider.close()
        assert f"sinks.{SINK_NAME}.no_such_option" in str(caught.value)

    def test_an_unknown_option_is_a_configuration_error(
        self, make_sink: Callable[..., Sink]
    ) -> None:
        with pytest.raises(ConfigError) as caught:
            make_sink(no_such_option=1)
        assert caught.value.exit_code == 2
        assert f"sinks.{SINK_NAME}.no_such_option" in str(caught.value)

    def test_the_core_renders_the_key_template(
        self, make_sink: Callable[..., Sink], environment: str
    ) -> None:
        sink = make_sink(**{self.provider_class.key_option: self.custom_template})
        keys = {
            self.key_of(sink, environment, scope, credentials)
            for scope in ("service_provider", "tower_access")
            for credentials in ("main", "other")
        }
        assert len(keys) == 4, "every placeholder must tell tokens apart"
        for key in keys:
            assert sink.provider.normalize_key(key) == key, "normalize_key is not idempotent"

    def test_an_unknown_placeholder_is_a_configuration_error(
        self, make_sink: Callable[..., Sink]
    ) -> None:
        option = self.provider_class.key_option
        with pytest.raises(ConfigError) as caught:
            make_sink(**{option: "harbor/{tenant}/{scope}"})
        assert f"sinks.{SINK_NAME}.{option}" in str(caught.value)
        assert "{tenant}" in str(caught.value)

    def test_the_template_and_a_custom_key_round_trip(
        self, make_sink: Callable[..., Sink], environment: str, record_factory: RecordFactory
    ) -> None:
        sink = make_sink(**{self.provider_class.key_option: self.custom_template})
        key = self.key_of(sink, environment, "tower_access", "other")
        record = record_factory(scope="tower_access")
        assert sink.provider.write(key, record) is WriteOutcome.WRITTEN
        self.assert_same_record(sink.provider, sink.provider.read(key), record)
        default = make_sink()
        assert default.provider.read(self.key_of(default, environment, "tower_access")) is None

    # -- reading and writing ------------------------------------------------------------------

    def test_the_writers_name_round_trips(
        self, provider: Provider, key: str, record_factory: RecordFactory
    ) -> None:
        """``status`` and the watch log say which refresher wrote a token: a store that
        keeps whole records keeps ``written_by`` too (one that keeps only the token and its
        expiry, the env file, keeps neither)."""
        record = record_factory()
        assert record.written_by == WRITER
        provider.write(key, record)
        stored = provider.read(key)
        assert stored is not None
        assert stored.written_by == (WRITER if provider.stores_full_record else "")

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
        self.assert_same_record(other, other.read(key), record)

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

    def test_a_record_written_under_a_clock_far_ahead_does_not_block_the_engines_write(
        self, provider: Provider, key: str, record_factory: RecordFactory, base_time: datetime
    ) -> None:
        """A run whose clock was 10 minutes fast stored an expiry 10 minutes too late. The
        engine's records carry the freshness policy's judgement (:meth:`RefreshPolicy.judged`)
        and a store must decide with :meth:`TokenRecord.is_newer_than`, never by comparing
        expiries itself: the implausible record is replaced, plausible ones still win."""
        policy = RefreshPolicy()
        provider.write(key, record_factory(issued_at=base_time + timedelta(minutes=10)))
        now = lambda: base_time  # noqa: E731 - the engine's clock, as a callable
        fresh = policy.judged(record_factory(), now)
        assert provider.write(key, fresh) is WriteOutcome.WRITTEN
        self.assert_same_record(provider, provider.read(key), fresh)
        older = policy.judged(record_factory(issued_at=base_time - timedelta(seconds=60)), now)
        assert provider.write(key, older) is WriteOutcome.KEPT_NEWER
        self.assert_same_record(provider, provider.read(key), fresh)

    def test_write_compares_with_the_store_not_with_what_it_read_before(
        self,
        make_provider: Callable[[], Provider],
        key: str,
        record_factory: RecordFactory,
        base_time: datetime,
    ) -> None:
        """Read-before-write: a rival's newer record, written after our read, still wins."""
        ours, rival = make_provider(), make_provider()
        ours.write(key, record_factory())
        assert ours.read(key) is not None  # whatever ours remembers is now stale
        newest = record_factory(issued_at=base_time + timedelta(seconds=60))
        assert rival.write(key, newest) is WriteOutcome.WRITTEN
        between = record_factory(issued_at=base_time + timedelta(seconds=30))
        assert ours.write(key, between) is WriteOutcome.KEPT_NEWER
        self.assert_same_record(ours, make_provider().read(key), newest)

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
        self, sink: Sink, environment: str, record_factory: RecordFactory
    ) -> None:
        provider = sink.provider
        service = record_factory(scope="service_provider")
        tower = record_factory(scope="tower_access")
        service_key = self.key_of(sink, environment, "service_provider")
        tower_key = self.key_of(sink, environment, "tower_access")
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
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads), "a writer hung"
        if failures:
            raise failures[0]
        assert late == [WriteOutcome.KEPT_NEWER, WriteOutcome.KEPT_NEWER]
        final = make_provider().read(key)
        assert final is not None
        assert final.expires_at == base_time + timedelta(seconds=2 * count + 300)

    def test_cannot_write_never_blocks_a_write_that_works(
        self, provider: Provider, key: str, record_factory: RecordFactory
    ) -> None:
        """The engine requests no token for sinks that say, offline, that a write would
        certainly fail: a store that works must never say so (None is always safe)."""
        assert provider.cannot_write(key) is None
        assert provider.write(key, record_factory()) is WriteOutcome.WRITTEN
        assert provider.cannot_write(key) is None

    # -- failure and secrecy --------------------------------------------------------------

    def test_an_unreachable_store_fails_cleanly_and_in_time(
        self,
        unreachable_options: Mapping[str, Any],
        provider_environ: Mapping[str, str],
        environment: str,
        record_factory: RecordFactory,
    ) -> None:
        canary = f"canary-{uuid.uuid4().hex}"
        sink = self.build(unreachable_options, provider_environ)  # offline: must not fail
        try:
            key = self.key_of(sink, environment, "service_provider")
            for operation in (
                lambda: sink.provider.read(key),
                lambda: sink.provider.write(key, record_factory(token=canary)),
            ):
                began = time.monotonic()
                with pytest.raises(HarborSecretsError) as caught:
                    operation()
                assert time.monotonic() - began < self.unreachable_within
                assert canary not in str(caught.value)
                assert canary not in repr(caught.value)
        finally:
            sink.provider.close()

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
