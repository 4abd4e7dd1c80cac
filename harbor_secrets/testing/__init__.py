"""Test support shipped with the core: the provider contract suite and an in-memory store.

``ProviderContract`` is imported lazily because it needs pytest; the in-memory provider
does not, so engine code that only wants :class:`MemoryProvider` never pulls pytest in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harbor_secrets.testing.memory import MemoryProvider, MemoryStore, reset_memory_stores

if TYPE_CHECKING:
    from harbor_secrets.testing.contract import ProviderContract

__all__ = ["MemoryProvider", "MemoryStore", "ProviderContract", "reset_memory_stores"]


def __getattr__(name: str) -> Any:
    if name == "ProviderContract":
        from harbor_secrets.testing.contract import ProviderContract

        return ProviderContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
