"""An in-memory store, so engine tests can exercise sinks without a file system or server.

Records are kept as schema-1 JSON (what a real store holds), so a test reading them back
sees exactly what :meth:`TokenRecord.from_json` makes of a stored object. Stores live in a
process-wide registry by name, which lets a TOML sink (``provider = "memory"``,
``name = "x"``) and the test that inspects it share one store.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from harbor_secrets import (
    Options,
    Provider,
    ProviderContext,
    Secret,
    SecretReferenceError,
    StoreError,
    TokenRecord,
    WriteOutcome,
)

DEFAULT_STORE = "default"


class MemoryStore:
    """A thread-safe key → record map with counters and switchable failures.

    ``fail_reads`` / ``fail_writes`` make the next operations raise :class:`StoreError`
    (to test that one failing sink does not stop the others); ``writes`` counts records
    actually replaced, ``write_calls`` every call to ``write``.
    """

    _registry: ClassVar[dict[str, MemoryStore]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str = DEFAULT_STORE) -> None:
        self.name = name
        self.fail_reads = False
        self.fail_writes = False
        self.reads = 0
        self.writes = 0
        self.write_calls = 0
        #: Values for ``memory:NAME`` secret references.
        self.secrets: dict[str, str] = {}
        self._lock = threading.Lock()
        self._records: dict[str, str] = {}

    @classmethod
    def get(cls, name: str = DEFAULT_STORE) -> MemoryStore:
        """The store registered under ``name``, created on first use."""
        with cls._registry_lock:
            store = cls._registry.get(name)
            if store is None:
                store = cls._registry[name] = cls(name)
            return store

    @classmethod
    def reset_all(cls) -> None:
        """Forget every named store (call between tests)."""
        with cls._registry_lock:
            cls._registry.clear()

    def read(self, key: str) -> TokenRecord | None:
        with self._lock:
            self.reads += 1
            if self.fail_reads:
                raise StoreError(f"memory store {self.name!r} failed to read (injected)")
            stored = self._records.get(key)
        return None if stored is None else TokenRecord.from_json(stored)

    def write(self, key: str, record: TokenRecord) -> WriteOutcome:
        """Monotonic compare-and-replace under the store's lock."""
        with self._lock:
            self.write_calls += 1
            if self.fail_writes:
                raise StoreError(f"memory store {self.name!r} failed to write (injected)")
            stored = self._records.get(key)
            if stored is not None and not record.is_newer_than(TokenRecord.from_json(stored)):
                return WriteOutcome.KEPT_NEWER
            self._records[key] = record.to_json()
            self.writes += 1
            return WriteOutcome.WRITTEN

    def records(self) -> dict[str, TokenRecord]:
        """A snapshot of every stored record, by key."""
        with self._lock:
            snapshot = dict(self._records)
        return {key: TokenRecord.from_json(text) for key, text in snapshot.items()}

    def put(self, key: str, record: TokenRecord) -> None:
        """Store ``record`` unconditionally (to arrange a test's starting state)."""
        with self._lock:
            self._records[key] = record.to_json()

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self.reads = self.writes = self.write_calls = 0

    def __repr__(self) -> str:
        return f"MemoryStore(name={self.name!r}, keys={len(self._records)})"


def reset_memory_stores() -> None:
    """Forget every named :class:`MemoryStore`."""
    MemoryStore.reset_all()


class MemoryProvider(Provider):
    """Sink options: ``name`` (the shared store, default ``"default"``), ``key`` (the
    template, read by the core) and ``unreachable`` (every operation fails, for tests)."""

    name = "memory"
    distribution = "harbor-secrets"
    summary = "In-process store for tests (harbor_secrets.testing); nothing persists."
    shared = False  # lives in this process only
    reference_schemes = ("memory",)

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    @classmethod
    def for_store(cls, store: MemoryStore) -> MemoryProvider:
        return cls(store)

    @classmethod
    def from_options(cls, options: Options, context: ProviderContext) -> MemoryProvider:
        store_name = options.string("name", DEFAULT_STORE)
        assert store_name is not None
        fail = options.boolean("unreachable", False)
        options.finish()
        store = MemoryStore.get(store_name)
        if fail:  # for the contract's unreachable-store test: every read and write fails
            store.fail_reads = store.fail_writes = True
        return cls(store)

    def read(self, key: str) -> TokenRecord | None:
        return self.store.read(key)

    def write(self, key: str, record: TokenRecord) -> WriteOutcome:
        return self.store.write(key, record)

    def resolve_reference(self, reference: str) -> Secret:
        scheme, _, name = reference.partition(":")
        value = self.store.secrets.get(name) if scheme == "memory" else None
        if value is None:
            raise SecretReferenceError(
                f"memory store {self.store.name!r} has no secret named {name!r}"
            )
        return Secret(value)

    def describe(self) -> dict[str, Any]:
        return {"provider": self.name, "store": self.store.name}

    def __repr__(self) -> str:
        return f"MemoryProvider(store={self.store.name!r})"
