"""The decision layer as it was in plain Python (numpy glue around the Cython kernels), kept
as the oracle for the compiled per-bar path: ``tests/test_decision_core.py`` replays sessions
through both and compares every score and signal, and ``bench/bench_decision.py`` times both
on the same bars. Slow by design (about 0.7 ms a bar); never used by the daemon.

Same API as ``aurum.decision.engine.DecisionEngine`` (``on_bars``, ``force_flat``,
``last_score``, ``pillars_report``); providers come from ``reference_providers()``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np

from aurum import _native
from aurum.decision.engine import DecisionConfig
from aurum.decision.pillars import imo_pillar, qmo_pillar
from aurum.decision.scorer import ConfidenceScorer, Pillar, Score
from aurum.decision.signal import Level, Market, Signal, SignalBuilder
from aurum.engines import FLOW_DTYPE, SWEEP_DTYPE, table_array
from aurum.rings import RingReader

SCALE = 1e-9
HISTORY = 512  # bars kept per instrument for the bar-level kernels
FLOW_KEEP = 16
SWEEP_KEEP = 256
EMPTY_FLOW = np.zeros(0, FLOW_DTYPE)
EMPTY_SWEEPS = np.zeros(0, SWEEP_DTYPE)


PACKED_BAR = np.dtype([("high", "<i8"), ("low", "<i8"), ("close", "<i8"), ("ts_close", "<u8")])


class BarWindow:
    """The last ``HISTORY`` time bars of one instrument. Storage is preallocated at twice the
    history and shifted back once full, so appending a bar costs a few stores, not a copy of
    the window; the properties are views (no copies) of the bars in the window."""

    def __init__(self) -> None:
        self._buf = np.zeros(2 * HISTORY, PACKED_BAR)
        self._close = np.zeros(2 * HISTORY)
        self._lo = 0
        self._hi = 0
        self.count = 0  # bars seen in total (the index of the next bar)

    def extend(self, bars: np.ndarray) -> None:
        for b in bars:
            if self._hi == len(self._buf):
                keep = HISTORY - 1
                self._buf[:keep] = self._buf[self._hi - keep:self._hi]
                self._close[:keep] = self._close[self._hi - keep:self._hi]
                self._lo, self._hi = 0, keep
            row = self._buf[self._hi]
            row["high"], row["low"], row["close"], row["ts_close"] = b["high"], b["low"], b["close"], b["ts_close"]
            self._close[self._hi] = b["close"] * SCALE
            self._hi += 1
            self._lo = max(self._lo, self._hi - HISTORY)
            self.count += 1

    @property
    def bars(self) -> np.ndarray:
        """Packed rows (high, low, close in DBN fixed point; ts_close ns)."""
        return self._buf[self._lo:self._hi]

    @property
    def close(self) -> np.ndarray:
        return self._close[self._lo:self._hi]

    @property
    def high_fx(self) -> np.ndarray:
        return self._buf["high"][self._lo:self._hi]

    @property
    def low_fx(self) -> np.ndarray:
        return self._buf["low"][self._lo:self._hi]

    @property
    def close_fx(self) -> np.ndarray:
        return self._buf["close"][self._lo:self._hi]

    @property
    def ts(self) -> np.ndarray:
        return self._buf["ts_close"][self._lo:self._hi]

    @property
    def high(self) -> np.ndarray:
        return self.high_fx * SCALE

    @property
    def low(self) -> np.ndarray:
        return self.low_fx * SCALE


# A bar-level pillar: (window, ts_close ns, last price) -> Pillar or None (no data).
PillarProvider = Callable[[BarWindow, int, float], "Pillar | None"]


class ReferenceDecisionEngine:
    def __init__(self, pipeline: _native.Pipeline, config: DecisionConfig | None = None,
                 providers: dict[str, PillarProvider] | None = None) -> None:
        self.pipeline = pipeline
        self.config = config or DecisionConfig()
        self.scorer = ConfidenceScorer(self.config.weights)
        self.providers = dict(providers or {})
        self._flow = RingReader(pipeline, "flow")
        self._sweeps = RingReader(pipeline, "sweeps")
        self._recent: dict[str, np.ndarray] = {}
        self._mbo: dict[int, bool] = {}
        self._windows: dict[int, BarWindow] = {}
        self._builders: dict[int, SignalBuilder] = {}
        self.last_score: dict[int, Score] = {}
        self.provider_errors: dict[str, str] = {}  # the latest error per provider, for logs
        self._last_market: dict[int, Market] = {}
        self.signals: list[Signal] = []

    def on_bars(self, bars: np.ndarray, now_ns: int = 0, feed_degraded: str | None = None) -> list[Signal]:
        """New closed bars (BAR_DTYPE rows, any kinds). Returns the signals they produced."""
        time_bars = bars[bars["kind"] == _native.BAR_KIND_TIME]
        if not len(time_bars):
            return []
        self._poll_rings()
        out: list[Signal] = []
        icebergs = table_array(self.pipeline, "icebergs")
        zones = table_array(self.pipeline, "zones")
        for bar in time_bars:
            iid = int(bar["instrument_id"])
            win = self._windows.setdefault(iid, BarWindow())
            win.extend(bar[None])
            mbo = self._has_mbo(iid)
            sig = self._decide(iid, bar, win, icebergs[icebergs["instrument_id"] == iid],
                               zones[zones["instrument_id"] == iid], mbo, now_ns, feed_degraded)
            if sig is not None:
                out.append(sig)
        self.signals.extend(out)
        return out

    def _poll_rings(self) -> None:
        # Keep the newest rows of all instruments together; _decide filters its own.
        for reader, name, keep in ((self._flow, "flow", FLOW_KEEP * 128), (self._sweeps, "sweeps", SWEEP_KEEP)):
            batch = reader.poll().records
            if len(batch):
                prev = self._recent.get(name)
                self._recent[name] = (batch if prev is None else np.concatenate((prev, batch)))[-keep:].copy()

    def _decide(self, iid: int, bar: np.void, win: BarWindow, icebergs: np.ndarray, zones: np.ndarray, mbo: bool,
                now_ns: int, feed_degraded: str | None) -> Signal | None:
        cfg = self.config
        price_fx = int(bar["close"])
        ts = int(bar["ts_close"])
        price = price_fx * SCALE
        flow = self._recent.get("flow", EMPTY_FLOW)
        flow = flow[(flow["instrument_id"] == iid) & (flow["ts_close"] <= ts)][-FLOW_KEEP:]
        sweeps = self._recent.get("sweeps", EMPTY_SWEEPS)
        sweeps = sweeps[sweeps["instrument_id"] == iid]
        pillars: dict[str, Pillar | None] = {
            "qmo": qmo_pillar(flow, self.pipeline.pressure(iid), sweeps, zones, price_fx, cfg.tick),
            "imo": imo_pillar(icebergs, zones, price_fx, cfg.tick, mbo),
        }
        for name in ("gann", "astro", "cycle"):
            prov = self.providers.get(name)
            try:
                pillars[name] = prov(win, ts, price) if prov is not None else None
            except (ValueError, ArithmeticError) as e:  # ArithmeticError: FloatingPoint, Overflow, ZeroDivision
                # One pillar's bad bar (e.g. a NaN from a kernel) must not stop the decision:
                # it drops out, and the score reports it as missing.
                pillars[name] = None
                self.provider_errors[name] = f"{type(e).__name__}: {e}"
        score = self.scorer.score(pillars)
        self.last_score[iid] = score
        top = self.pipeline.last_top(iid)
        bid = ask = None
        if top is not None and top[0] != _native.UNDEF_PRICE and top[3] != _native.UNDEF_PRICE:
            bid, ask = top[0] * SCALE, top[3] * SCALE
        market = Market(ts=ts, price=price, bid=bid, ask=ask, tick=cfg.tick * SCALE, atr=self._atr(win))
        self._last_market[iid] = market
        risk = self.pipeline.risk(iid, now_ns)
        builder = self._builders.get(iid)
        if builder is None:
            builder = self._builders[iid] = SignalBuilder(cfg.signal)
        levels = self._levels(zones, price_fx, cfg.tick)
        for prov in self.providers.values():
            extra = getattr(prov, "levels_for", None)
            if extra is not None:
                levels.extend(Level(px, side, "gann level") for px, side in extra(win))
        sig = builder.on_bar(score, market, levels, risk, feed_degraded)
        return None if sig is None else dataclasses.replace(sig, instrument_id=iid)

    def force_flat(self, reason: str, now_ns: int) -> list[Signal]:
        """Close every open position at once with a veto naming ``reason`` (the feed that
        carried the instrument is gone, so no bar will come to do it)."""
        out: list[Signal] = []
        for iid, builder in sorted(self._builders.items()):
            score, market = self.last_score.get(iid), self._last_market.get(iid)
            if score is None or market is None or builder.position == "FLAT":
                continue
            sig = builder.on_bar(score, dataclasses.replace(market, ts=now_ns), [], feed_degraded=reason)
            if sig is not None:
                out.append(dataclasses.replace(sig, instrument_id=iid))
        self.signals.extend(out)
        return out

    def _has_mbo(self, iid: int) -> bool:
        # Once an instrument has MBO it keeps it for the session: ask until it does.
        if not self._mbo.get(iid):
            rows = self.pipeline.engine_status().get(iid, [])
            self._mbo[iid] = any(name == "iceberg" and active for name, active, _ in rows)
        return self._mbo[iid]

    def _atr(self, win: BarWindow) -> float | None:
        from aurum.kernels.bar_stats import wilder_atr

        n = self.config.atr_period
        if len(win.close) <= n:
            return None
        atr = wilder_atr(win.high_fx, win.low_fx, win.close_fx, n)
        v = float(atr[-1])
        return v if np.isfinite(v) else None

    @staticmethod
    def _levels(zones: np.ndarray, price: int, tick: int, span_ticks: int = 200) -> list[Level]:
        # Broken zones defend nothing; far ones cannot be a stop or a first target.
        live = zones[(zones["state"] != 3) & (np.abs(zones["price"] - price) <= span_ticks * tick)]
        src = {1: "iceberg zone", 2: "absorption zone"}
        return [Level(float(r["price"]) * SCALE, chr(r["side"]), src.get(int(r["kind"]), "zone"), float(r["strength"]))
                for r in live]

    def pillars_report(self) -> dict[str, Any]:
        return {str(iid): s.as_dict() for iid, s in sorted(self.last_score.items())}


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


def reference_providers() -> dict[str, PillarProvider]:
    feed = PivotFeed()
    out: dict[str, PillarProvider] = {"gann": GannProvider(feed), "cycle": CycleProvider(feed)}
    try:
        out["astro"] = AstroProvider()
    except ImportError:  # the ephemeris package is a pinned dependency; without it, no astro pillar
        pass
    return out


__all__ = ["BarWindow", "ReferenceDecisionEngine", "reference_providers"]
