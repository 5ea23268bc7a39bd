"""Reconnect delays: exponential backoff with full jitter.

Attempt ``n`` (0-based) waits a uniform random time in ``[0, min(max_s, initial_s * multiplier**n)]``
("full jitter"), so a fleet of clients that lost the same gateway does not reconnect in lock-step.
Give it a seeded ``random.Random`` and the schedule is reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial_s: float = 0.5
    max_s: float = 30.0
    multiplier: float = 2.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    attempt: int = 0  # delays handed out since the last reset

    def __post_init__(self) -> None:
        if not self.initial_s > 0:
            raise ValueError(f"backoff initial_s was {self.initial_s}, expected > 0")
        if not self.max_s >= self.initial_s:
            raise ValueError(f"backoff max_s was {self.max_s}, expected >= initial_s ({self.initial_s})")
        if not self.multiplier >= 1:
            raise ValueError(f"backoff multiplier was {self.multiplier}, expected >= 1")

    def ceiling(self, attempt: int | None = None) -> float:
        """The upper bound of the delay for ``attempt`` (default: the next one)."""
        n = self.attempt if attempt is None else attempt
        ceiling = self.initial_s
        # Multiply up step by step and stop at max_s: no float overflow on a long outage.
        for _ in range(n):
            if ceiling >= self.max_s:
                break
            ceiling *= self.multiplier
        return min(self.max_s, ceiling)

    def next_delay(self) -> float:
        """The next delay in seconds (full jitter), and one more attempt counted."""
        delay = self.rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


__all__ = ["Backoff"]
