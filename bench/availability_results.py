"""What bench/availability.py measures, as data: filled in by the bench, rendered by
availability_doc.py, and kept by ``--save`` for ``--render``.

Their own module so that the bench and the document generator both import them, without
the generator importing the bench (which imports the generator).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harbor_testkit.failover import Figures
from harbor_testkit.fleet import FleetResult


@dataclass
class Chaos:
    """What one long run did: each failover, and the figures at the end."""

    backend: str
    failovers: list[tuple[float, str]] = field(default_factory=list)
    error: str | None = None
    figures: Figures | None = None


@dataclass(frozen=True)
class CountResult:
    replicas: int
    figures: Figures


@dataclass(frozen=True)
class SimulatedDay:
    one: FleetResult
    counts: dict[int, FleetResult]
    failovers: FleetResult
    failover_events: int
    without_turns: FleetResult
