"""The bar-level pillars (Gann, Cycle, Astro) as providers for the decision engine.

Each provider maps the instrument's bar window to a pillar, or None while it lacks data. A
missing provider is a missing pillar, which the scorer reports as degraded rather than
guessing. Any callable ``(window, ts_close ns, last price) -> Pillar | None`` is a provider;
the built-in ones are compiled (``aurum.kernels.bar_pillars``) with a C entry point the
decision core calls in place, and calling them returns the Pillar like any other.

* ``GannProvider``: Square of Nine levels, Gann angles and time windows from the recent pivots
  (``aurum.kernels.gann``); its levels also anchor the signal builder's stops and targets.
* ``CycleProvider``: Hilbert and autocorrelation dominant cycles, Goertzel power at 21/45/90
  and the 21/45/90-bar counts from the pivots (``aurum.kernels.cycles``).
* ``AstroProvider``: lunar phases, aspects, stations and ingresses as timing windows
  (``aurum.astro``), fetched once per UTC day.
* ``PivotFeed``: the causal swing pivots Gann and Cycle share, one tracker per window.

Timing pillars (Astro, and the cycle windows) say *when*, not *which way*. They are turned
into a direction the way timing tools are used on a chart: inside a window, expect the move
that led into it to turn, so the direction opposes the recent trend, weighted by how deep
into the window the bar is.
"""

from __future__ import annotations

from aurum.decision.engine import PillarProvider
from aurum.kernels.bar_pillars import AstroProvider, BarPillar, CycleProvider, GannProvider, PivotFeed


def default_providers() -> dict[str, PillarProvider]:
    feed = PivotFeed()
    out: dict[str, PillarProvider] = {"gann": GannProvider(feed), "cycle": CycleProvider(feed)}
    try:
        out["astro"] = AstroProvider()
    except ImportError:  # the ephemeris package is a pinned dependency; without it, no astro pillar
        pass
    return out


__all__ = ["AstroProvider", "BarPillar", "CycleProvider", "GannProvider", "PivotFeed", "default_providers"]
