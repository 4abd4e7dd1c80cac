"""Secret values that must appear in no output, and the check that finds them.

The reliability scenarios, the failover harness and the availability bench all prove the
same promise (no client secret, token or store credential in any output), so the list of
values and the search live here once. Each value is kept under a label, so a failure names
what leaked without printing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass
class Canaries:
    """Secret values that must appear in no output; named so a failure does not print one."""

    values: dict[str, str] = field(default_factory=dict)

    def add(self, label: str, value: str) -> None:
        self.values[label] = value
        # A leak of part of a JWT is still a leak: also watch its signature segment.
        head, _, signature = value.rpartition(".")
        if head and len(signature) >= 16:
            self.values[f"{label} (signature)"] = signature

    def add_tokens(self, label: str, tokens: Iterable[str]) -> None:
        for index, token in enumerate(sorted(tokens)):
            self.add(f"{label} #{index}", token)

    def leaks(self, texts: Mapping[str, str]) -> list[str]:
        """``"<canary label> in <where>"`` for every canary found; empty when clean."""
        return [
            f"{label} in {where}"
            for where, text in texts.items()
            for label, value in self.values.items()
            if value and value in text
        ]
