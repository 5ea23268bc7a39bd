"""The bar-level pillars (Gann, Cycle, Astro) as providers for the decision engine.

Each provider maps the instrument's bar window to a pillar, or None while it lacks data.
They are filled in as their kernels land; a missing provider is a missing pillar, which the
scorer reports as degraded rather than guessing.
"""

from __future__ import annotations

from aurum.decision.engine import PillarProvider


def default_providers() -> dict[str, PillarProvider]:
    return {}


__all__ = ["default_providers"]
