"""QMO and IMO pillars from the native engines' outputs, read at a bar close.

Inputs are the engines' numpy views (``aurum.engines``), filtered with vectorised masks so
a bar close costs microseconds however many icebergs the session has; Python objects are
built only for the few components that make it into the reasons.

QMO (quote and market-order flow) weighs the order-flow bar (delta, CVD slope, stacked
imbalances, divergence), book pressure (depth imbalance, decayed OFI), the bar's sweeps and
absorption near the price. IMO (institutional order memory) weighs active icebergs and Iceberg
Memory zones near the price: resting buyers below the price support it, resting sellers above
cap it. Each component is a value in [-1, 1] with a weight; the pillar's direction is their
weighted mean and its confidence is how strong and how unanimous they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from aurum.decision.scorer import Pillar

# These functions are the readable definition and the public API; the decision engine runs
# their compiled twins (aurum.kernels.flow_pillars), which tests hold to the same bits.
Component = tuple[float, float, str]  # (value in [-1, 1], weight, reason)


def combine(name: str, comps: Sequence[Component]) -> Pillar | None:
    live = [(v, w, r) for v, w, r in comps if w > 0 and math.isfinite(v)]
    wsum = sum(w for _, w, _ in live)
    if not live or wsum <= 0:
        return None
    num = sum(v * w for v, w, _ in live)
    mag = sum(abs(v) * w for v, w, _ in live)
    direction = max(-1.0, min(1.0, num / wsum))
    agreement = abs(num) / mag if mag > 0 else 0.0
    confidence = max(0.0, min(1.0, (mag / wsum) * agreement))
    return Pillar(name, direction, confidence, top_reasons(live))


def top_reasons(comps: Sequence[Component]) -> tuple[str, ...]:
    """The reasons of the four strongest live components (|value x weight|; ties keep their
    order). Also used by the compiled pillars (``aurum.kernels.flow_pillars``) for theirs."""
    live = [c for c in comps if c[1] > 0 and math.isfinite(c[0])]
    top = sorted((c for c in live if abs(c[0]) > 1e-9), key=lambda c: -abs(c[0] * c[1]))[:4]
    return tuple(r for _, _, r in top)


SCALE = 1e-9
ZONE_ICEBERG, ZONE_ABSORPTION, ZONE_BROKEN = 1, 2, 3
ICEBERG_ACTIVE = 1
SIDE_B, SIDE_A = ord("B"), ord("A")
FLAG_BEAR, FLAG_BULL, FLAG_STACKED_BUY, FLAG_STACKED_SELL = 1, 2, 4, 8
SWEEP_STOP_RUN = 2


def qmo_pillar(flow: np.ndarray, pressure: dict[str, Any] | None, sweeps: np.ndarray, zones: np.ndarray,
               price: int, tick: int, near_ticks: int = 10) -> Pillar | None:
    """``flow``: this instrument's flow bars (FLOW_DTYPE), oldest first, the last just closed;
    ``sweeps`` and ``zones`` are this instrument's rows. Prices are DBN fixed point."""
    if len(flow) == 0:
        return None
    bar = flow[-1]
    comps: list[Component] = []
    vol = int(bar["buy_volume"]) + int(bar["sell_volume"])
    if vol > 0:
        comps.append((int(bar["delta"]) / vol, 0.30, f"bar delta {int(bar['delta']):+d} of {vol} lots"))
    if len(flow) >= 5:
        span = int(flow["buy_volume"][-5:].sum() + flow["sell_volume"][-5:].sum()) or 1
        d_cvd = int(bar["cvd"]) - int(flow["cvd"][-5])
        comps.append((math.tanh(3 * d_cvd / span), 0.20, f"CVD {d_cvd:+d} over 5 bars"))
    flags = int(bar["flags"])
    if flags & (FLAG_STACKED_BUY | FLAG_STACKED_SELL):
        v = float(bool(flags & FLAG_STACKED_BUY)) - float(bool(flags & FLAG_STACKED_SELL))
        comps.append((v, 0.15, "stacked buy imbalance" if v > 0 else "stacked sell imbalance" if v < 0 else "stacked both ways"))
    if flags & (FLAG_BULL | FLAG_BEAR):
        v = float(bool(flags & FLAG_BULL)) - float(bool(flags & FLAG_BEAR))
        comps.append((v, 0.15, "bullish delta divergence" if v > 0 else "bearish delta divergence"))
    if pressure is not None and pressure.get("updates", 0) > 0:
        di = float(pressure["depth_imbalance"])
        if math.isfinite(di):
            comps.append((di, 0.10, f"depth imbalance {di:+.2f}"))
        ofi = float(pressure["ofi_decayed"])
        depth = max(1.0, (pressure["bid_depth"] + pressure["ask_depth"]) / 20)
        if math.isfinite(ofi):
            comps.append((math.tanh(ofi / depth), 0.10, f"OFI {ofi:+.0f}"))
    if len(sweeps):
        m = (sweeps["ts_event"] >= bar["ts_open"]) & (sweeps["ts_event"] < bar["ts_close"])
        if m.any():
            sw = sweeps[m]
            sign = np.where(sw["side"] == SIDE_B, 1, -1) * np.where(sw["kind"] == SWEEP_STOP_RUN, 2, 1)
            net = int(sign.sum())
            if net:
                comps.append((max(-1.0, min(1.0, net / 2)), 0.10,
                              f"{abs(net)} net {'buy' if net > 0 else 'sell'} sweep weight"))
    if len(zones) and tick > 0:
        z = zones[(zones["kind"] == ZONE_ABSORPTION) & (zones["state"] != ZONE_BROKEN)]
        dist = np.abs(z["price"] - price) / tick
        near = dist <= near_ticks
        if near.any():
            # Sellers absorbed at a bid: support (bullish). Buyers absorbed at an ask: bearish.
            sign = np.where(z["side"][near] == SIDE_B, 1.0, -1.0)
            absorb = float((sign * z["strength"][near] * (1 - dist[near] / (near_ticks + 1))).sum())
            if absorb:
                comps.append((max(-1.0, min(1.0, absorb)), 0.15,
                              f"absorption {'at the bid' if absorb > 0 else 'at the ask'} near {price * SCALE:.2f}"))
    return combine("qmo", comps)


def imo_pillar(icebergs: np.ndarray, zones: np.ndarray, price: int, tick: int, mbo: bool,
               near_ticks: int = 30) -> Pillar | None:
    """None without MBO: icebergs and Iceberg Memory need order ids. Rows are this
    instrument's; prices DBN fixed point."""
    if not mbo:
        return None
    comps: list[Component] = []
    if len(icebergs) and tick > 0:
        ice = icebergs[icebergs["state"] == ICEBERG_ACTIVE]
        dist = np.abs(ice["price"] - price) / tick
        support = (ice["side"] == SIDE_B) & (ice["price"] <= price)
        resist = (ice["side"] == SIDE_A) & (ice["price"] >= price)
        keep = (dist <= near_ticks) & (support | resist)
        # Column lists, not structured-row access: a row scalar costs microseconds per field.
        for px, hid, fil, kd, d, up in zip(ice["price"][keep].tolist(), ice["hidden_qty"][keep].tolist(),
                                           ice["filled_qty"][keep].tolist(), ice["kind"][keep].tolist(),
                                           dist[keep].tolist(), support[keep].tolist()):
            size = math.tanh((hid + fil) / 100)
            kind = "native" if kd == 1 else "synthetic"
            comps.append((size if up else -size, 1 - d / (near_ticks + 1),
                          f"{kind} iceberg {'support' if up else 'resistance'} at {px * SCALE:.2f} (hidden {hid})"))
    if len(zones) and tick > 0:
        z = zones[zones["kind"] == ZONE_ICEBERG]
        dist = np.abs(z["price"] - price) / tick
        support = (z["side"] == SIDE_B) & (z["price"] <= price)
        resist = (z["side"] == SIDE_A) & (z["price"] >= price)
        keep = (dist <= near_ticks) & (support | resist)
        for px, st, d, up in zip(z["price"][keep].tolist(), z["strength"][keep].tolist(), dist[keep].tolist(),
                                 support[keep].tolist()):
            comps.append((st if up else -st, 0.5 * (1 - d / (near_ticks + 1)),
                          f"iceberg memory {'support' if up else 'resistance'} {px * SCALE:.2f}"))
    if not comps:
        return Pillar("imo", 0.0, 0.0, ("no icebergs or memory zones near the price",))
    return combine("imo", comps)


__all__ = ["combine", "imo_pillar", "qmo_pillar", "top_reasons"]
