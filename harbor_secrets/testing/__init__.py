"""Test support shipped with the core for provider authors: the provider contract suite, an
in-memory store, and :func:`sink_from_options` to build a sink as the core does.

``ProviderContract`` is imported lazily because it needs pytest; the rest does not, so code
that only wants :class:`MemoryProvider` never pulls pytest in. The project's own test kit
(proxies, server launchers, fake clocks) is not here: it is the unpublished
``harbor_testkit`` package, which no wheel contains.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harbor_secrets.testing.memory import MemoryProvider, MemoryStore, reset_memory_stores
from harbor_secrets.testing.sinks import sink_from_options

if TYPE_CHECKING:
    from harbor_secrets.testing.contract import ProviderContract

__all__ = [
    "MemoryProvider",
    "MemoryStore",
    "ProviderContract",
    "reset_memory_stores",
    "sink_from_options",
]


def __getattr__(name: str) -> Any:
    if name == "ProviderContract":
        from harbor_secrets.testing.contract import ProviderContract

        return ProviderContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
