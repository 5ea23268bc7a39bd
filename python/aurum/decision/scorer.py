"""The five-pillar confidence scorer: QMO, IMO, Gann, Astro, Cycle.

Each pillar reports a direction in [-1, 1], a confidence in [0, 1] and its reasons, or
``None`` when it has no data (IMO without MBO, say). Missing pillars drop out and the
remaining weights renormalise; the score says which pillars were missing, so a degraded
decision is never mistaken for a full one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

PILLARS = ("qmo", "imo", "gann", "astro", "cycle")

DEFAULT_WEIGHTS = {"qmo": 0.35, "imo": 0.25, "gann": 0.15, "astro": 0.05, "cycle": 0.20}


@dataclass(frozen=True)
class Pillar:
    name: str
    direction: float
    confidence: float
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in PILLARS:
            raise ValueError(f"unknown pillar {self.name!r}; expected one of {', '.join(PILLARS)}")
        for what, v, lo in (("direction", self.direction, -1.0), ("confidence", self.confidence, 0.0)):
            if not (math.isfinite(v) and lo <= v <= 1.0):
                raise ValueError(f"pillar {self.name}: {what} was {v}, expected a number in [{lo:g}, 1]")

    def as_dict(self) -> dict[str, Any]:
        return {"direction": round(float(self.direction), 6), "confidence": round(float(self.confidence), 6),
                "reasons": [str(r) for r in self.reasons]}


@dataclass(frozen=True)
class Score:
    direction: float
    """Weighted direction of the pillars with data, in [-1, 1]."""
    confidence: float
    """Weighted confidence x agreement, in [0, 1]."""
    pillars: dict[str, Pillar]
    weights: dict[str, float]
    """The weights actually used (renormalised over the pillars with data)."""
    missing: tuple[str, ...] = field(default=())

    @property
    def degraded(self) -> bool:
        return bool(self.missing)

    def as_dict(self) -> dict[str, Any]:
        return {
            "direction": round(float(self.direction), 6), "confidence": round(float(self.confidence), 6),
            "degraded": self.degraded, "missing": list(self.missing),
            "weights": {k: round(float(v), 6) for k, v in self.weights.items()},
            "pillars": {k: p.as_dict() for k, p in self.pillars.items()},
        }


class ConfidenceScorer:
    """Combines pillars. Weights are configurable; they need not sum to 1."""

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        self.weights = self._check(weights or DEFAULT_WEIGHTS)

    @staticmethod
    def _check(weights: dict[str, float]) -> dict[str, float]:
        unknown = set(weights) - set(PILLARS)
        if unknown:
            raise ValueError(f"unknown pillar weight(s) {', '.join(sorted(unknown))}; expected {', '.join(PILLARS)}")
        out = {k: float(weights.get(k, 0.0)) for k in PILLARS}
        bad = [k for k, v in out.items() if not (math.isfinite(v) and v >= 0)]
        if bad:
            raise ValueError(f"pillar weight {bad[0]} was {out[bad[0]]}, expected a number >= 0")
        if sum(out.values()) <= 0:
            raise ValueError("pillar weights sum to 0: at least one must be positive")
        return out

    def set_weights(self, weights: dict[str, float]) -> None:
        """Reload (SIGHUP): validated first, so a bad reload keeps the old weights. Installs a new
        dict: the compiled decision core rereads the weights when the dict changes identity, so
        change them here, never by mutating ``weights`` in place."""
        self.weights = self._check(weights)

    def score(self, pillars: dict[str, Pillar | None]) -> Score:
        have = {k: p for k, p in pillars.items() if p is not None and self.weights.get(k, 0) > 0}
        missing = tuple(k for k in PILLARS if self.weights[k] > 0 and k not in have)
        total = sum(self.weights[k] for k in have)
        if not have or total <= 0:
            return Score(0.0, 0.0, {}, {}, missing)
        w = {k: self.weights[k] / total for k in have}
        # Direction: confidence-weighted mean, so an unsure pillar pulls less.
        num = sum(w[k] * p.confidence * p.direction for k, p in have.items())
        den = sum(w[k] * p.confidence for k, p in have.items())
        direction = num / den if den > 0 else 0.0
        # Confidence: how sure the pillars are, times how much they agree on the side.
        sure = sum(w[k] * p.confidence for k, p in have.items())
        agree = abs(num) / den if den > 0 else 0.0
        return Score(max(-1.0, min(1.0, direction)), max(0.0, min(1.0, sure * agree)), have, w, missing)


__all__ = ["DEFAULT_WEIGHTS", "PILLARS", "ConfidenceScorer", "Pillar", "Score"]
