"""The signal builder: a score becomes BUY, SELL or FLAT, with entry, stop, targets and the
reasons, behind hysteresis, a cooldown and the capital-protection veto.

State machine. FLAT goes long when the score's direction reaches ``enter`` with enough
confidence, and short at ``-enter``; a position goes back to FLAT when the direction falls
to ``exit`` (hysteresis: ``exit < enter``, so noise around one threshold cannot flip it).
After any change the builder holds for ``cooldown_bars`` bars. A veto (stale data, spread
blow-out, liquidity vacuum, crossed or locked book, a maybe-bad book, a degraded feed) forces
FLAT at once and names its reason; it is never delayed by the cooldown.

Only changes are emitted, so the output is a short list of decisions. The same inputs always
give the same signals (no clocks, no randomness; prices rounded to the tick).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aurum.decision.scorer import Score

# The state machine (SignalBuilder.step, the vetoes) runs at every bar close, so it is compiled.
from aurum.kernels.signal_step import BUY, FLAT, RISK_VETOES, SELL, BuilderCore  # noqa: F401 (RISK_VETOES re-exported)


@dataclass(frozen=True)
class SignalConfig:
    enter: float = 0.35
    exit: float = 0.10
    min_confidence: float = 0.25
    cooldown_bars: int = 3
    stop_buffer_ticks: int = 2
    atr_stop_mult: float = 1.5
    reward_risk: float = 2.0
    max_targets: int = 2
    # The stop is never nearer the entry than this: an ATR of a few cents (bars trading at
    # one price) put the stop on the entry, and the reward-multiple target with it.
    min_stop_ticks: int = 2

    def __post_init__(self) -> None:
        if not (0 <= self.exit < self.enter <= 1):
            raise ValueError(f"signal thresholds need 0 <= exit < enter <= 1 (exit {self.exit}, enter {self.enter})")
        if self.cooldown_bars < 0 or self.max_targets < 1:
            raise ValueError("cooldown_bars must be >= 0 and max_targets >= 1")
        if self.min_stop_ticks < 1:
            raise ValueError(f"min_stop_ticks must be >= 1 (got {self.min_stop_ticks})")


class Level(NamedTuple):
    """A price the builder may anchor a stop or target on. A named tuple, not a frozen
    dataclass: a signal gathers tens of them, and each dataclass cost ~2 us more to build
    (cold, in the daemon)."""

    price: float
    side: str  # "B": support (resting buyers), "A": resistance
    source: str  # "iceberg zone", "absorption zone", "gann"
    strength: float = 0.0


@dataclass(frozen=True)
class Market:
    ts: int
    price: float
    bid: float | None
    ask: float | None
    tick: float
    atr: float | None = None
    source: str = "databento"


@dataclass(frozen=True)
class Signal:
    seq: int
    ts: int
    action: str
    entry: float | None
    stop: float | None
    targets: tuple[float, ...]
    direction: float
    confidence: float
    pillars: dict[str, Any]
    reasons: tuple[str, ...]
    veto: str | None = None
    degraded: tuple[str, ...] = field(default=())
    instrument_id: int = 0

    def as_dict(self) -> dict[str, Any]:
        f = lambda v: None if v is None else float(v)  # noqa: E731  (numpy scalars -> plain JSON numbers)
        return {"seq": self.seq, "ts": int(self.ts), "action": self.action, "entry": f(self.entry), "stop": f(self.stop),
                "targets": [float(t) for t in self.targets], "direction": round(float(self.direction), 6),
                "confidence": round(float(self.confidence), 6), "pillars": self.pillars, "reasons": list(self.reasons),
                "veto": self.veto, "degraded": list(self.degraded), "instrument_id": self.instrument_id}


def _round(px: float, tick: float) -> float:
    return round(round(px / tick) * tick, 10) if tick > 0 else px


class SignalBuilder(BuilderCore):
    """``step`` (inherited, compiled) is the state machine above on a score's numbers; ``on_bar``
    runs it and builds the signal on a change."""

    def __init__(self, config: SignalConfig | None = None) -> None:
        self.config = config or SignalConfig()
        self.position = FLAT
        self.seq = 0
        self._bars_since_change = 10**9

    def on_bar(self, score: Score, market: Market, levels: list[Level], risk: dict[str, Any] | None = None,
               feed_degraded: str | None = None) -> Signal | None:
        """One bar close. Returns a signal when the decision changes, else None."""
        change = self.step(score.direction, score.confidence, risk, feed_degraded)
        if change is None:
            return None
        action, why, veto = change
        return self._emit(action, score, market, levels, why, veto)

    def _emit(self, action: str, score: Score, m: Market, levels: list[Level], why: tuple[str, ...],
              veto: str | None, instrument_id: int = 0) -> Signal:
        self.position = action
        self._bars_since_change = 0
        self.seq += 1
        reasons = list(why)
        entry = stop = None
        targets: tuple[float, ...] = ()
        if action in (BUY, SELL) and math.isfinite(m.price):
            entry = _round(m.price, m.tick)
            stop, stop_why = self._stop(action, entry, m, levels)
            targets = self._targets(action, entry, stop, m, levels)
            # Right after the decision's own reason: where the stop is and why is what a
            # consumer of the shared-memory record (111 bytes of text) must not lose.
            reasons.append(stop_why)
        for name, p in score.pillars.items():
            reasons.extend(f"{name}: {r}" for r in p.reasons[:3])
        if score.missing:
            reasons.append(f"degraded: no data for {', '.join(score.missing)}")
        return Signal(self.seq, m.ts, action, entry, stop, targets, score.direction, score.confidence,
                      {k: p.as_dict() for k, p in score.pillars.items()}, tuple(reasons), veto, score.missing,
                      instrument_id)

    def _stop(self, action: str, entry: float, m: Market, levels: list[Level]) -> tuple[float, str]:
        cfg = self.config
        buf = cfg.stop_buffer_ticks * m.tick
        least = cfg.min_stop_ticks * m.tick
        if action == BUY:
            below = [lv for lv in levels if lv.side == "B" and lv.price < entry]
            if below:
                lv = max(below, key=lambda x: (x.price, x.strength))
                return _round(min(lv.price - buf, entry - least), m.tick), f"stop below the {lv.source} at {lv.price:.2f}"
        else:
            above = [lv for lv in levels if lv.side == "A" and lv.price > entry]
            if above:
                lv = min(above, key=lambda x: (x.price, -x.strength))
                return _round(max(lv.price + buf, entry + least), m.tick), f"stop above the {lv.source} at {lv.price:.2f}"
        dist = (m.atr * cfg.atr_stop_mult) if m.atr and m.atr > 0 else 10 * m.tick
        why = "no defending zone: stop at an ATR multiple"
        if dist < least:
            atr = f"; ATR {m.atr:.3f}" if m.atr else ""
            dist, why = least, f"no defending zone: stop at the minimum distance ({cfg.min_stop_ticks} ticks{atr})"
        stop = entry - dist if action == BUY else entry + dist
        return _round(stop, m.tick), why

    def _targets(self, action: str, entry: float, stop: float, m: Market, levels: list[Level]) -> tuple[float, ...]:
        cfg = self.config
        if action == BUY:
            cands = sorted({_round(lv.price, m.tick) for lv in levels if lv.price > entry + m.tick / 2})
        else:
            cands = sorted({_round(lv.price, m.tick) for lv in levels if lv.price < entry - m.tick / 2}, reverse=True)
        out = cands[: cfg.max_targets]
        if not out:
            risk = abs(entry - stop)
            out = [_round(entry + cfg.reward_risk * risk if action == BUY else entry - cfg.reward_risk * risk, m.tick)]
        return tuple(out)


__all__ = ["BUY", "FLAT", "SELL", "Level", "Market", "Signal", "SignalBuilder", "SignalConfig"]
