"""The bar-level pillars (Gann, Cycle, Astro) as providers for the decision engine.

Each provider maps the instrument's bar window to a pillar, or None while it lacks data. A
missing provider is a missing pillar, which the scorer reports as degraded rather than
guessing.

Timing pillars (Astro, and the cycle windows) say *when*, not *which way*. They are turned
into a direction the way timing tools are used on a chart: inside a window, expect the move
that led into it to turn, so the direction opposes the recent trend, weighted by how deep
into the window the bar is.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from aurum.decision.engine import BarWindow, PillarProvider
from aurum.decision.scorer import Pillar

TREND_BARS = 10


def _recent_trend(win: BarWindow) -> float:
    """Sign and size of the move over the last bars, in [-1, 1] (relative to the range)."""
    c = win.close
    if len(c) <= TREND_BARS:
        return 0.0
    move = c[-1] - c[-1 - TREND_BARS]
    rng = float(np.max(win.high[-TREND_BARS:]) - np.min(win.low[-TREND_BARS:]))
    return max(-1.0, min(1.0, move / rng)) if rng > 0 else 0.0


class AstroProvider:
    """Lunar phases, aspects, stations and ingresses as timing windows (``aurum.astro``)."""

    def __init__(self) -> None:
        from aurum.astro import AstroWindows

        self.windows = AstroWindows()

    def __call__(self, win: BarWindow, ts: int, price: float) -> Pillar | None:
        t = dt.datetime.fromtimestamp(ts / 1e9, tz=dt.timezone.utc)
        s = self.windows.score_inputs(t)
        if not s["active"]:
            near = s["nearest_type"]
            why = f"no astro window (nearest {near} {s['nearest_hours']:+.0f} h)" if near else "no astro window"
            return Pillar("astro", 0.0, 0.0, (why,))
        trend = _recent_trend(win)
        w = float(s["proximity"])
        direction = -trend * w
        conf = min(1.0, w * abs(trend))
        return Pillar("astro", max(-1.0, min(1.0, direction)), conf,
                      (f"inside {', '.join(s['types'])} window (weight {w:.2f}); recent trend {trend:+.2f} may turn",))


def default_providers() -> dict[str, PillarProvider]:
    out: dict[str, PillarProvider] = {}
    try:
        out["astro"] = AstroProvider()
    except ImportError:  # the ephemeris package is a pinned dependency; without it, no astro pillar
        pass
    return out


__all__ = ["AstroProvider", "default_providers"]
