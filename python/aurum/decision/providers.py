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
    rng = float(win.high_fx[-TREND_BARS:].max() - win.low_fx[-TREND_BARS:].min()) * 1e-9
    return max(-1.0, min(1.0, move / rng)) if rng > 0 else 0.0


class AstroProvider:
    """Lunar phases, aspects, stations and ingresses as timing windows (``aurum.astro``).

    Windows are fetched once per UTC day (the astro package caches the ephemeris work) and
    kept as integer nanoseconds, so a bar close costs a few comparisons, not datetime math."""

    def __init__(self) -> None:
        from aurum.astro import AstroWindows

        self.windows = AstroWindows()
        self._day = -1
        self._spans: list[tuple[int, int, int, str]] = []  # (start, event, end) ns, type

    def _load(self, day: int) -> None:
        d = dt.datetime.fromtimestamp(day * 86_400, tz=dt.timezone.utc).date()
        ns = lambda t: int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1_000  # noqa: E731
        self._spans = [(ns(w.start), ns(w.event.time), ns(w.end), w.event.type) for w in self.windows.windows_on(d)]
        self._day = day

    def __call__(self, win: BarWindow, ts: int, price: float) -> Pillar | None:
        day = ts // (86_400 * 1_000_000_000)
        if day != self._day:
            self._load(day)
        w, types = 0.0, []
        for start, at, end, kind in self._spans:
            if start <= ts <= end:
                edge = end if ts >= at else start
                span = abs(edge - at)
                w = max(w, 1.0 if span == 0 else max(0.0, 1.0 - abs(ts - at) / span))
                types.append(kind)
        if not types:
            return Pillar("astro", 0.0, 0.0, ("no astro window",))
        trend = _recent_trend(win)
        return Pillar("astro", max(-1.0, min(1.0, -trend * w)), min(1.0, w * abs(trend)),
                      (f"inside {', '.join(sorted(set(types)))} window (weight {w:.2f}); recent trend {trend:+.2f} may turn",))


class PivotFeed:
    """Causal swing pivots per instrument window, shared by the Gann and Cycle pillars: each
    bar goes into the instrument's ``PivotTracker`` once, however many providers ask."""

    def __init__(self, threshold_ticks: float = 20.0, tick_size: float = 0.10) -> None:
        self.threshold_ticks = threshold_ticks
        self.tick_size = tick_size
        self._trackers: dict[int, tuple[object, int]] = {}

    def pivots(self, win: BarWindow) -> np.ndarray:
        from aurum.kernels.pivots import PivotTracker

        tracker, seen = self._trackers.get(id(win), (None, 0))
        if tracker is None:
            tracker = PivotTracker(threshold_ticks=self.threshold_ticks, tick_size=self.tick_size)
        new = win.count - seen
        if new > 0:
            k = min(new, len(win.high_fx))
            tracker.update_many(win.high_fx[-k:], win.low_fx[-k:])  # type: ignore[attr-defined]
        self._trackers[id(win)] = (tracker, win.count)
        # The engines look at the last few pivots only (Gann 4, cycle counts 3 anchors).
        return tracker.last_pivots(8)  # type: ignore[attr-defined,no-any-return]


class GannProvider:
    """Square of Nine levels, Gann angles and time windows from the recent pivots.
    ``price_per_bar`` is the 1x1 scale: 0.50 USD per bar suits GC one-minute bars (about a
    third of their ATR); ``decimal_shift=1`` keeps Square-of-Nine steps near 7 USD at 4,000."""

    def __init__(self, feed: PivotFeed, price_per_bar: float = 0.50, decimal_shift: int = 1) -> None:
        from aurum.kernels.gann import GannEngine

        self.feed = feed
        self.engine = GannEngine(price_per_bar, tick_size=feed.tick_size, decimal_shift=decimal_shift)
        self._levels: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def levels_for(self, win: BarWindow) -> list[tuple[float, str]]:
        """The last update's Square-of-Nine supports ("B") and resistances ("A"), for the
        signal builder's stops and targets."""
        sup, res = self._levels.get(id(win), ((), ()))
        return [(float(p), "B") for p in sup if np.isfinite(p)] + [(float(p), "A") for p in res if np.isfinite(p)]

    def __call__(self, win: BarWindow, ts: int, price: float) -> Pillar | None:
        piv = self.feed.pivots(win)
        if len(piv) < 2 or not price > 0:
            return None
        st = self.engine.update(win.bars, piv, price, win.count - len(win.close))
        self._levels[id(win)] = (st.supports, st.resistances)
        d, c = float(st.direction), float(st.confidence)
        if not (np.isfinite(d) and np.isfinite(c)):
            return None  # flat or too-short history: no opinion rather than a wrong one
        return Pillar("gann", float(np.clip(d, -1, 1)), float(np.clip(c, 0, 1)), tuple(st.reasons[:4]))


class CycleProvider:
    """Hilbert and autocorrelation dominant cycles, Goertzel power at 21/45/90 and the
    21/45/90-bar counts from the pivots (``aurum.kernels.cycles``)."""

    def __init__(self, feed: PivotFeed) -> None:
        self.feed = feed
        self._engines: dict[int, object] = {}

    def __call__(self, win: BarWindow, ts: int, price: float) -> Pillar | None:
        from aurum.kernels.cycles import CycleEngine

        if len(win.close) < 40:
            return None  # the estimators need about 32 bars to settle
        eng = self._engines.get(id(win))
        if eng is None:  # not setdefault: building an engine (its DFT tables) costs ~100 us
            eng = self._engines[id(win)] = CycleEngine()
        piv = self.feed.pivots(win)
        pivots = (piv["index"], piv["kind"]) if len(piv) else None
        st = eng.update(win.close, pivots, win.count - 1)  # type: ignore[attr-defined]
        d, c = float(st.direction), float(st.confidence)
        if not (np.isfinite(d) and np.isfinite(c)):
            return None
        return Pillar("cycle", float(np.clip(d, -1, 1)), float(np.clip(c, 0, 1)), tuple(st.reasons[:4]))


def default_providers() -> dict[str, PillarProvider]:
    feed = PivotFeed()
    out: dict[str, PillarProvider] = {"gann": GannProvider(feed), "cycle": CycleProvider(feed)}
    try:
        out["astro"] = AstroProvider()
    except ImportError:  # the ephemeris package is a pinned dependency; without it, no astro pillar
        pass
    return out


__all__ = ["AstroProvider", "CycleProvider", "GannProvider", "PivotFeed", "default_providers"]
