"""The bar-close driver: at every closed time bar, read the engines' outputs, score the five
pillars, and let the signal builder decide.

It runs between chunks (never per record): the pipeline closes bars natively, and this reads
the bar, order-flow and sweep rings and the iceberg and zone tables in place. Engine state
(pressure, zones) is read as of the end of the chunk that closed the bar; replays feed
fixed-size chunks, so the same input always gives the same signals.

The per-bar work is compiled (``aurum.kernels.decision_core``): a bar close costs tens of
microseconds, and Python objects are only built when needed, a ``Signal`` when the decision
changes and a ``Score`` (with its pillars' reasons) when ``last_score`` is read. The
plain-Python original, ``aurum.testing.reference_decision``, is the oracle it is tested
against bit for bit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aurum import _native
from aurum.decision.scope import InstrumentScope
from aurum.decision.scorer import ConfidenceScorer, Pillar, Score
from aurum.decision.signal import Level, Market, Signal, SignalBuilder, SignalConfig
from aurum.kernels.barwindow import HISTORY, PACKED_BAR, BarWindow
from aurum.kernels.decision_core import DecisionCore

SCALE = 1e-9

# A bar-level pillar: (window, ts_close ns, last price) -> Pillar or None (no data). The
# built-in ones (aurum.decision.providers) also have a C entry point the core calls directly.
PillarProvider = Callable[[BarWindow, int, float], "Pillar | None"]


@dataclass
class DecisionConfig:
    weights: dict[str, float] | None = None
    signal: SignalConfig = field(default_factory=SignalConfig)
    tick: int = 100_000_000  # GC: 0.10 USD in DBN fixed point
    atr_period: int = 14
    include_spreads: bool = False  # decide on calendar spreads too (aurum.decision.scope)


class DecisionEngine:
    def __init__(self, pipeline: _native.Pipeline, config: DecisionConfig | None = None,
                 providers: dict[str, PillarProvider] | None = None) -> None:
        self.pipeline = pipeline
        self.config = config or DecisionConfig()
        self.scorer = ConfidenceScorer(self.config.weights)
        self.providers = dict(providers or {})
        self._builders: dict[int, SignalBuilder] = {}
        self.provider_errors: dict[str, str] = {}  # the latest error per provider, for logs
        self.signals: list[Signal] = []
        self.scope = InstrumentScope(pipeline, self.config.include_spreads)
        self._core = DecisionCore(self)
        # Instrument id -> Score of its last bar close (read-only; built when read).
        self.last_score: Mapping[int, Score] = self._core.scores

    def on_bars(self, bars: np.ndarray, now_ns: int = 0, feed_degraded: str | None = None) -> list[Signal]:
        """New closed bars (BAR_DTYPE rows, any kinds). Returns the signals they produced (also
        appended to ``signals``). Bars of instruments out of scope (spreads, by default) are
        left out."""
        bars = self.scope.select(bars)
        out: list[Signal] = []
        if self.scope.newly_excluded:
            # Decided on while its symbol was unknown, then mapped to a spread: whatever it
            # holds is closed now, since no later bar of it will be decided on.
            gone = self.scope.take_newly_excluded()
            out = self.force_flat("calendar spread: no signals on it", now_ns or self.pipeline.clock, only=gone)
        if bars.ndim == 1 and not len(bars):  # (other shapes: the core's error names them)
            return out
        out.extend(self._core.on_bars(bars, now_ns, feed_degraded))
        return out

    def _emit(self, iid: int, change: tuple[str, tuple[str, ...], str | None]) -> Signal:
        """The core's call when an instrument's builder changes its decision at this bar."""
        action, why, veto = change
        _, price_fx, _ = self._core.market(iid)
        market = self._market(iid)
        # Zones are levels when unbroken and within 200 ticks: broken zones defend nothing,
        # far ones cannot be a stop or a first target.
        levels = self._core.zone_levels(iid, price_fx, self.config.tick, 200)
        win = self._core.window(iid)
        for prov in self.providers.values():
            extra = getattr(prov, "levels_for", None)
            if extra is not None:
                levels.extend(Level(px, side, "gann level") for px, side in extra(win))
        return self._builders[iid]._emit(action, self.last_score[iid], market, levels, why, veto, instrument_id=iid)

    def prefetch(self, ts_ns: int) -> None:
        """Between bars (the daemon's tick): lets providers compute now what a coming bar would
        otherwise wait for (the astro pillar's next UTC day). A provider's failure is recorded
        in ``provider_errors``, never raised: the tick also beats the systemd watchdog."""
        for name, prov in self.providers.items():
            fn = getattr(prov, "prefetch", None)
            if fn is None:
                continue
            try:
                fn(ts_ns)
            except Exception as e:  # noqa: BLE001 - see the docstring
                self.provider_errors[name] = f"prefetch: {type(e).__name__}: {e}"

    def force_flat(self, reason: str, now_ns: int, only: Collection[int] | None = None) -> list[Signal]:
        """Close every open position (of the instruments in ``only``, if given) at once with a
        veto naming ``reason`` (the feed that carried the instrument is gone, so no bar will
        come to do it)."""
        out: list[Signal] = []
        for iid, builder in sorted(self._builders.items()):
            if only is not None and iid not in only:
                continue
            score, market = self.last_score.get(iid), self._market(iid)
            if score is None or market is None or builder.position == "FLAT":
                continue
            sig = builder.on_bar(score, dataclasses.replace(market, ts=now_ns), [], feed_degraded=reason)
            if sig is not None:
                out.append(dataclasses.replace(sig, instrument_id=iid))
        self.signals.extend(out)
        return out

    def close_stale(self, now_ns: int) -> list[Signal]:
        """Between bars (the daemon's tick, on the wall clock): an open position whose
        instrument has gone silent past the stale threshold (``engines.protect.stale_ns``) is
        closed now, with the stale-data veto. That veto is otherwise judged at a bar close,
        and an instrument with no trade closes no bar: a feed that went quiet right after a
        BUY kept it open for as long as the silence lasted."""
        out: list[Signal] = []
        for iid, builder in sorted(self._builders.items()):
            if builder.position == "FLAT":
                continue
            risk = self.pipeline.risk(iid, now_ns)
            score, market = self.last_score.get(iid), self._market(iid)
            if not risk or not risk.get("stale") or score is None or market is None:
                continue
            sig = builder.on_bar(score, dataclasses.replace(market, ts=now_ns), [], risk=risk)
            if sig is not None:
                out.append(dataclasses.replace(sig, instrument_id=iid))
        self.signals.extend(out)
        return out

    def _market(self, iid: int) -> Market | None:
        """The market at the instrument's last bar close (None before its first)."""
        last = self._core.market(iid)
        if last is None:
            return None
        ts, price_fx, top = last
        bid = ask = None
        if top is not None and top[0] != _native.UNDEF_PRICE and top[3] != _native.UNDEF_PRICE:
            bid, ask = top[0] * SCALE, top[3] * SCALE
        return Market(ts=ts, price=price_fx * SCALE, bid=bid, ask=ask, tick=self.config.tick * SCALE,
                      atr=self._atr(iid))

    def _atr(self, iid: int) -> float | None:
        return self._core.atr(iid, self.config.atr_period)  # type: ignore[no-any-return]

    def pillars_report(self) -> dict[str, Any]:
        return {str(iid): s.as_dict() for iid, s in sorted(self.last_score.items())}


__all__ = ["HISTORY", "PACKED_BAR", "BarWindow", "DecisionConfig", "DecisionEngine", "PillarProvider"]
