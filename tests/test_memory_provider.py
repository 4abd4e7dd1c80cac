"""The in-memory provider honours the provider contract, and its test hooks work."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from harbor_secrets import (
    ConfigError,
    Options,
    ProviderContext,
    SecretReferenceError,
    StoreError,
    TokenRecord,
    WriteOutcome,
)
from harbor_secrets.runtime import Sink
from harbor_secrets.testing import (
    MemoryProvider,
    MemoryStore,
    ProviderContract,
    reset_memory_stores,
)
from harbor_secrets.testing.contract import make_record_factory


@pytest.fixture(autouse=True)
def _fresh_stores() -> Iterator[None]:
    reset_memory_stores()
    yield
    reset_memory_stores()


class TestMemoryProviderContract(ProviderContract):
    provider_class = MemoryProvider
    registered = False  # test-only: tests inject it through Registry(extra=...)

    @pytest.fixture
    def sink_options(self) -> dict[str, Any]:
        return {"name": "contract"}

    @pytest.fixture
    def unreachable_options(self) -> dict[str, Any]:
        return {"name": "contract-down", "unreachable": True}


def _record(token: str = "tok-memory", *, at: int = 0) -> TokenRecord:
    return TokenRecord.issue(
        access_token=token,
        issued_at=datetime.fromtimestamp(1_800_000_000 + at, UTC),
        expires_in=300,
        scope="service_provider",
        environment="sandbox",
        client_id="client",
        issuer="http://127.0.0.1/realms/harbor",
    )


def _from_toml(table: dict[str, object]) -> MemoryProvider:
    options = Options(table, prefix="sinks.mem", source="harbor.toml")
    return MemoryProvider.from_options(
        options, ProviderContext(sink_name="mem", source="harbor.toml")
    )


def test_named_store_is_shared_between_configured_sinks() -> None:
    first = _from_toml({"name": "shared"})
    second = _from_toml({"name": "shared"})
    assert first.write("k", _record()) is WriteOutcome.WRITTEN
    assert second.read("k") == _record()
    assert MemoryStore.get("shared").records() == {"k": _record()}
    assert second.describe() == {"provider": "memory", "store": "shared"}


def test_default_store_name() -> None:
    assert _from_toml({}).store is MemoryStore.get("default")


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"sinks\.mem\.colour"):
        _from_toml({"colour": "blue"})


def test_the_key_template_is_the_cores_not_the_providers() -> None:
    """The core takes the template out of the table: the provider never sees it."""
    with pytest.raises(ConfigError, match=r"sinks\.mem\.key"):
        _from_toml({"key": "harbor/{environment}"})


def test_injected_failures_raise_store_error_and_leave_the_record() -> None:
    store = MemoryStore.get("faulty")
    provider = MemoryProvider.for_store(store)
    provider.write("k", _record("tok-first"))
    store.fail_writes = True
    with pytest.raises(StoreError):
        provider.write("k", _record("tok-second", at=60))
    store.fail_reads = True
    with pytest.raises(StoreError):
        provider.read("k")
    store.fail_reads = store.fail_writes = False
    stored = provider.read("k")
    assert stored is not None
    assert stored.access_token.reveal() == "tok-first"


def test_counters_distinguish_calls_from_writes() -> None:
    store = MemoryStore.get("count")
    provider = MemoryProvider.for_store(store)
    provider.write("k", _record(at=60))
    provider.write("k", _record(at=0))  # older: kept out
    provider.read("k")
    assert (store.write_calls, store.writes, store.reads) == (2, 1, 1)
    store.clear()
    assert (store.write_calls, store.writes, store.reads, store.records()) == (0, 0, 0, {})


def test_reset_forgets_named_stores() -> None:
    before = MemoryStore.get("x")
    reset_memory_stores()
    assert MemoryStore.get("x") is not before


def test_memory_references_resolve_from_the_store() -> None:
    store = MemoryStore.get("refs")
    store.secrets["client"] = "s3cret-value"
    provider = MemoryProvider.for_store(store)
    assert provider.resolve_reference("memory:client").reveal() == "s3cret-value"
    with pytest.raises(SecretReferenceError, match="missing"):
        provider.resolve_reference("memory:missing")


def test_importing_the_memory_provider_does_not_need_pytest() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "from harbor_secrets.testing import MemoryProvider\n"
        "import harbor_secrets.testing.memory\n"
        "assert 'harbor_secrets.testing.contract' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the contract suite itself must catch broken providers ------------------------------


class _NonMonotonic(MemoryProvider):
    def write(self, key: str, record: TokenRecord) -> WriteOutcome:
        self.store.put(key, record)
        return WriteOutcome.WRITTEN


class _Caching(MemoryProvider):
    """Answers from its own memory, so another instance never sees its writes."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__(MemoryStore("private"))


class _Leaky(MemoryProvider):
    def describe(self) -> dict[str, Any]:
        return {"provider": self.name, "last": [r.to_dict() for r in self.store.records().values()]}

    def __repr__(self) -> str:
        return f"_Leaky({[r.access_token.reveal() for r in self.store.records().values()]})"


class _ComparesWithItsLastRead(MemoryProvider):
    """Decides from what it read earlier instead of reading the store before the write."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__(store)
        self.seen: dict[str, TokenRecord | None] = {}

    def read(self, key: str) -> TokenRecord | None:
        self.seen[key] = super().read(key)
        return self.seen[key]

    def write(self, key: str, record: TokenRecord) -> WriteOutcome:
        known = self.seen.get(key)
        if known is not None and not record.is_newer_than(known):
            return WriteOutcome.KEPT_NEWER
        self.store.put(key, record)
        self.seen[key] = record
        return WriteOutcome.WRITTEN


class _SilentWhenDown(MemoryProvider):
    """Hides a failing store: reads nothing and claims the store holds something newer."""

    def read(self, key: str) -> TokenRecord | None:
        try:
            return super().read(key)
        except StoreError:
            return None

    def write(self, key: str, record: TokenRecord) -> WriteOutcome:
        try:
            return super().write(key, record)
        except StoreError:
            return WriteOutcome.KEPT_NEWER


class _RenamesKeys(MemoryProvider):
    """Normalises a key differently each time it sees it."""

    def normalize_key(self, key: str) -> str:
        return "x" + key


class _IgnoresTheTemplate(MemoryProvider):
    def normalize_key(self, key: str) -> str:
        return "one-key-for-everything"


def _run(check: Callable[..., None], broken: type[MemoryProvider]) -> None:
    contract = type("Contract", (ProviderContract,), {"provider_class": broken})()
    base = datetime.now(UTC).replace(microsecond=0)

    def make_sink(**changes: Any) -> Sink:
        built: Sink = contract.build({"name": "shared", **changes}, {})
        return built

    sink = make_sink()
    arguments: dict[str, object] = {
        "make_sink": make_sink,
        "make_provider": lambda: make_sink().provider,
        "sink": sink,
        "sink_options": {"name": "shared"},
        "provider": sink.provider,
        "provider_environ": {},
        "unreachable_options": {"name": "down", "unreachable": True},
        "environment": "contractbroken",
        "key": contract.key_of(sink, "contractbroken", "service_provider"),
        "record_factory": make_record_factory("contractbroken", base),
        "base_time": base,
    }
    params = check.__code__.co_varnames[1 : check.__code__.co_argcount]
    check(contract, **{name: arguments[name] for name in params})


@pytest.mark.parametrize(
    ("check", "broken"),
    [
        (ProviderContract.test_older_record_is_refused, _NonMonotonic),
        (ProviderContract.test_equal_expiry_is_refused, _NonMonotonic),
        (ProviderContract.test_concurrent_writers_leave_the_newest, _NonMonotonic),
        (ProviderContract.test_round_trip, _Caching),
        (ProviderContract.test_describe_carries_no_token, _Leaky),
        (ProviderContract.test_repr_and_str_carry_no_token, _Leaky),
        (
            ProviderContract.test_write_compares_with_the_store_not_with_what_it_read_before,
            _ComparesWithItsLastRead,
        ),
        (ProviderContract.test_an_unreachable_store_fails_cleanly_and_in_time, _SilentWhenDown),
        (ProviderContract.test_the_core_renders_the_key_template, _RenamesKeys),
        (ProviderContract.test_the_core_renders_the_key_template, _IgnoresTheTemplate),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_contract_catches_a_broken_provider(
    check: Callable[..., None], broken: type[MemoryProvider]
) -> None:
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        _run(check, broken)


@pytest.mark.parametrize(
    "check",
    [
        ProviderContract.test_older_record_is_refused,
        ProviderContract.test_round_trip,
        ProviderContract.test_describe_carries_no_token,
        ProviderContract.test_write_compares_with_the_store_not_with_what_it_read_before,
        ProviderContract.test_an_unreachable_store_fails_cleanly_and_in_time,
        ProviderContract.test_the_core_renders_the_key_template,
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_the_same_checks_pass_for_the_real_memory_provider(check: Callable[..., None]) -> None:
    _run(check, MemoryProvider)
