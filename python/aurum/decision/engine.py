"""The bar-close driver: at every closed time bar, read the engines' outputs, score the five
pillars, and let the signal builder decide.

It runs between chunks (never per record): the pipeline closes bars natively, and this reads
the bar, order-flow and sweep rings with lap-aware readers and the iceberg and zone tables as
views. Engine state (pressure, zones) is read as of the end of the chunk that closed the bar;
replays feed fixed-size chunks, so the same input always gives the same signals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aurum import _native
from aurum.decision.pillars import imo_pillar, qmo_pillar
from aurum.decision.scorer import ConfidenceScorer, Pillar, Score
from aurum.decision.signal import Level, Market, Signal, SignalBuilder, SignalConfig
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


@dataclass
class DecisionConfig:
    weights: dict[str, float] | None = None
    signal: SignalConfig = field(default_factory=SignalConfig)
    tick: int = 100_000_000  # GC: 0.10 USD in DBN fixed point
    atr_period: int = 14


class DecisionEngine:
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
        for reader, name, keep in ((self._flow, "flow", FLOW_KEEP * 8), (self._sweeps, "sweeps", SWEEP_KEEP)):
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
            except (ValueError, FloatingPointError) as e:
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


__all__ = ["BarWindow", "DecisionConfig", "DecisionEngine", "PillarProvider"]
