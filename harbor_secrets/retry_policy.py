"""The ``[http]`` table: timeouts, attempts and backoff of one token request.

Its own light module (no HTTP stack imported) because the configuration parses into it and
the token client runs by it: one type for both, so a new setting is added once.
"""

from __future__ import annotations

from dataclasses import dataclass

from harbor_secrets.errors import ConfigError


@dataclass(frozen=True)
class RetryPolicy:
    """Timeouts, attempts and backoff for one fetch; ``total_budget`` bounds all of it."""

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_budget: float = 30.0
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "total_budget", "max_delay"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"retry policy: {name} must be positive", fix=f"set {name} > 0")
        if self.base_delay < 0:
            raise ConfigError("retry policy: base_delay cannot be negative", fix="set it >= 0")
        if self.max_attempts < 1:
            raise ConfigError("retry policy: max_attempts must be at least 1", fix="set it >= 1")

    def backoff_window(self, retry_number: int) -> float:
        """Upper bound of the full-jitter delay before retry ``retry_number`` (0-based)."""
        # Cap the exponent so a large attempt count cannot overflow the float.
        return min(self.max_delay, self.base_delay * 2.0 ** min(retry_number, 62))
