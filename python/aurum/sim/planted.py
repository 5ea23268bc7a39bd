"""Planted events with ground truth: native and synthetic icebergs, absorption, sweeps, stop
runs and spoof-like pulled orders.

Planting works on the latent mid (see ``market``): an iceberg or absorption episode *holds* the
mid for its window (steps inside it are removed), so the planted level stays the touch while
aggressors hit it; the window ends with a step through the level (a break that clears it,
exhausting an iceberg's reserve) or away from it (the level held). A sweep is a mid jump of 2+
ticks whose single event clears every level on the way; liquidity is placed on each of those
levels just before, so each really clears. A stop run is a 2-level trigger sweep followed, in
the same event, by 1-3 elected stop aggressors (new order ids) that clear one more level each.
A spoof rests 2-6 ticks behind the touch and is pulled one step before the mid could reach it,
so it never trades.

Labels are first *planned* here (kind, side, level, window, sizes) and later *measured* from the
records actually written (``build_labels``), so a label describes the stream, cut included.

Label format: ``NAME.labels.jsonl``, one JSON object per line. Line 1 is ``{"kind": "meta",
"format": "aurum-sim-labels/1", ...}`` (seed, scenario, all parameters, instruments, files, record
counts, session-break windows). Every other line is one planted event with these keys:

* all: ``label_id``, ``kind``, ``instrument_id``, ``symbol``, ``side`` (``"B"``/``"A"``: the
  resting side for icebergs, absorption and spoofs, the aggressor side for sweeps and stop
  runs), ``price`` (DBN fixed point, 1e-9) and ``price_usd``, ``ts_start``/``ts_end`` (UTC ns of
  its first and last record), ``complete`` (false if the stream was cut inside it);
* ``native_iceberg``: ``order_id``, ``display_qty`` (the clip), ``total_qty``, ``hidden_qty``
  (total - clip), ``filled_qty``, ``hidden_filled_qty``, ``refills`` (clip re-instatements),
  ``refill_records`` (M records: one per event, however many refills it held),
  ``max_fills_in_event``, ``end_reason`` (exhausted | cancelled | open);
* ``synthetic_iceberg``: ``order_ids`` (one per clip), ``orders``, ``clip``, ``planned_clips``,
  ``filled_qty``, ``readd_delay_ms``;
* ``absorption``: ``order_ids`` (the replenishing orders), ``orders``, ``chains``, ``filled_qty``,
  ``aggressor_volume``/``aggressor_trades`` (all T at the level from the attacking side in the
  window), ``held`` (no trade beyond the level in the window), ``end_reason`` (held: the price
  turned away | broken: a final aggressor cleared the level);
* ``sweep`` / ``stop_run``: ``aggressor_side``, ``prices`` (every level cleared),
  ``levels_cleared``, ``volume``, ``aggressor_order_ids``; stop runs also ``trigger_order_id``
  and ``stop_order_ids`` (the elected stops, same event);
* ``spoof``: ``order_id``, ``size``, ``distance_ticks`` (behind the touch when placed),
  ``lifetime_ms``, ``end_reason`` (cancelled | open).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aurum.sim.market import (
    AGGR_COLS, ASK, BID, INF_KEY, KIND_CHAIN, KIND_ICEBERG, NS, ORDER_COLS, P_ADD, P_CANCEL, P_MARKET,
    Chain, Plan, add_market, append, geometric,
)
from aurum.sim.params import GC_TICK, SimParams

MS = 1_000_000
_DEFAULTS = {"key_cancel": INF_KEY, "key_partial": INF_KEY, "batch": -1, "lab": -1, "rest_event": -1,
             "alias": -1}
HOLD_KINDS = ("native_iceberg", "synthetic_iceberg", "absorption")


def _rint(rng: np.random.Generator, lo_hi: tuple[int, int]) -> int:
    return int(rng.integers(lo_hi[0], lo_hi[1] + 1))


def _runif(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def schedule(plan: Plan, rng: np.random.Generator, p: SimParams, activity: float,
             step_t: np.ndarray, step_inc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Choose episode windows, sweeps and spoofs; reshape the mid path for them.

    Returns the final (step times, increments, label per step or -1). Labels are appended to
    ``plan.labels`` with their planning fields."""
    H = plan.horizon
    warm = int(p.warmup_s * NS)
    hours = H / 3600 / NS
    room = H - NS > warm + NS  # a run shorter than the warm-up plants nothing
    rates = np.array([p.native_icebergs_per_h, p.synthetic_icebergs_per_h, p.absorptions_per_h]) * activity
    windows: list[tuple[int, int, int]] = []  # (t0, t1, label)
    if rates.sum() > 0 and room:
        n = rng.poisson(rates.sum() * hours * 3 + 1)  # candidates; overlaps are dropped
        starts = np.sort(rng.uniform(warm, H, n).astype(np.int64))
        kinds = rng.choice(3, n, p=rates / rates.sum())
        last_end = 0
        for t0, kd in zip(starts.tolist(), kinds.tolist()):
            kind = HOLD_KINDS[kd]
            dur = _runif(rng, p.absorption_duration_s if kind == "absorption" else p.iceberg_duration_s)
            t1 = t0 + int(dur * NS)
            if t0 < last_end + 2 * NS or t1 >= H - NS:
                continue
            if sum(1 for lab in plan.labels if lab["kind"] == kind) >= rates[kd] * hours + 1:
                continue  # keep the configured rate: candidates were oversampled
            side = BID if rng.random() < 0.5 else ASK
            if kind == "absorption":
                mode = "break" if rng.random() < p.absorption_break_prob else "hold"
            else:
                mode = "exhaust" if rng.random() < p.iceberg_exhaust_prob else "cancel"
            windows.append((t0, t1, len(plan.labels)))
            plan.labels.append({"kind": kind, "side": side, "t0": t0, "t1": t1, "mode": mode})
            last_end = t1

    w0 = np.array([w[0] for w in windows], np.int64)
    w1 = np.array([w[1] for w in windows], np.int64)

    def near_window(t: np.ndarray, pad: int) -> np.ndarray:
        if not windows:
            return np.zeros(t.size, bool)
        i = np.searchsorted(w0, t + pad, side="right") - 1
        return (i >= 0) & (t - pad <= w1[np.maximum(i, 0)])

    # Sweeps and stop runs: instantaneous, kept 2 s clear of hold windows.
    jumps: list[tuple[int, int, int]] = []  # (t, signed levels, label)
    # Sampled on the free time only (outside padded windows), so the configured rate holds.
    pad = 2 * NS
    free0 = np.concatenate([[warm], w1 + pad])
    free1 = np.concatenate([w0 - pad, [H - NS]])
    free0, free1 = free0[free1 > free0], free1[free1 > free0]
    cum = np.concatenate([[0], np.cumsum(free1 - free0)])
    for kind, rate in (("sweep", p.sweeps_per_h), ("stop_run", p.stop_runs_per_h)):
        n = rng.poisson(rate * activity * cum[-1] / 3600 / NS) if cum[-1] > 0 and room else 0
        u = np.sort(rng.uniform(0, cum[-1], n).astype(np.int64))
        seg_i = np.searchsorted(cum, u, side="right") - 1
        ts = free0[seg_i] + (u - cum[seg_i])
        for t in ts.tolist():
            if kind == "sweep":
                levels = _rint(rng, p.sweep_levels)
                stops = 0
            else:
                stops = _rint(rng, p.stop_run_stops)
                levels = 2 + stops
            up = rng.random() < p.up_prob
            jumps.append((t, levels if up else -levels, len(plan.labels)))
            plan.labels.append({"kind": kind, "side": BID if up else ASK, "t0": t, "t1": t,
                                "levels": levels, "stops": stops})

    # Reshape the path: no steps inside a window, a closing step at its end, the jumps.
    keep = ~near_window(step_t, 0) & ~np.isin(step_t, [j[0] for j in jumps])
    add_t = [w[1] for w in windows] + [j[0] for j in jumps]
    add_inc = []
    for t0, t1, lab in windows:
        lb = plan.labels[lab]
        through = lb["mode"] in ("exhaust", "break")
        # bid level: down clears it, up turns away; the ask level the other way round
        add_inc.append((-1 if through else 1) if lb["side"] == BID else (1 if through else -1))
    add_inc += [j[1] for j in jumps]
    add_lab = [w[2] if plan.labels[w[2]]["mode"] in ("exhaust", "break") else -1 for w in windows]
    add_lab += [j[2] for j in jumps]
    t_all = np.concatenate([step_t[keep], np.array(add_t, np.int64)])
    inc_all = np.concatenate([step_inc[keep], np.array(add_inc, np.int64)])
    lab_all = np.concatenate([np.full(int(keep.sum()), -1, np.int32), np.array(add_lab, np.int32)])
    o = np.argsort(t_all, kind="stable")
    t_all, inc_all, lab_all = t_all[o], inc_all[o], lab_all[o]
    # Distinct step times (a coincidence would merge two clears' orderings).
    t_all = t_all + (np.arange(t_all.size) - np.searchsorted(t_all, t_all))
    plan.step_t = np.concatenate([[0], t_all]).astype(np.int64)
    plan.step_k = plan.k0 + np.concatenate([[0], np.cumsum(inc_all)]).astype(np.int64)

    # Spoofs: placed behind the touch, pulled 1 ns before the first step that would bring
    # the mid within one tick of them (or at the end of their planned life).
    n = rng.poisson(p.spoofs_per_h * activity * hours) if room else 0
    for t0 in (np.sort(rng.uniform(warm, H - NS, n).astype(np.int64)).tolist() if n else []):
        side = BID if rng.random() < 0.5 else ASK
        dist = _rint(rng, p.spoof_dist)
        k = int(plan.k_at(t0))
        tick = k - dist if side == BID else k + 1 + dist
        s0 = int(np.searchsorted(plan.step_t, t0, side="right"))
        ks = plan.step_k[s0:]
        threat = np.nonzero(ks <= tick + 1)[0] if side == BID else np.nonzero(ks >= tick - 2)[0]
        t_end = t0 + int(_runif(rng, p.spoof_life_s) * NS)
        if threat.size:
            t_end = min(t_end, int(plan.step_t[s0 + threat[0]]) - 1)
        if t_end - t0 < MS or t_end >= H:
            continue
        plan.labels.append({"kind": "spoof", "side": side, "t0": t0, "t1": t_end, "tick": tick,
                            "dist": dist, "size": _rint(rng, p.spoof_size)})
    return t_all, inc_all, lab_all


def add_planted_orders(plan: Plan, rng: np.random.Generator, p: SimParams, step_ev0: int) -> None:
    """Orders, chains and extra aggressors of every planned label (after the mid path and the
    background aggressors exist)."""
    e = plan.entries
    market_t = np.sort(e["key"][e["key"] % 8 == P_MARKET] >> 3)
    # Rows are collected and appended once: appending per event would copy the big tables.
    rows: dict[str, list[Any]] = {}
    n0 = len(plan.orders["key_add"])
    n_rows = [0]
    mk: list[tuple[np.ndarray, np.ndarray, np.ndarray, int, int]] = []

    def order(**cols: Any) -> int:
        """Queue one planted order (scalars); returns its future index."""
        for name in ORDER_COLS:
            rows.setdefault(name, []).append(cols.get(name, _DEFAULTS.get(name, 0)))
        n_rows[0] += 1
        return n0 + n_rows[0] - 1

    for lab, lb in enumerate(plan.labels):
        kind = lb["kind"]
        if kind in HOLD_KINDS:
            t0, t1, side = lb["t0"], lb["t1"], lb["side"]
            k = int(plan.k_at(t0))
            tick = k if side == BID else k + 1
            lb["tick"] = tick
            key_end = t1 * 8 + P_CANCEL
            t_first = t0 + MS
            if kind == "native_iceberg":
                clip = _rint(rng, p.iceberg_clip)
                total = clip * _rint(rng, p.iceberg_tranches) + int(rng.integers(0, clip))
                idx = order(key_add=t_first * 8 + P_ADD, side=side, tick=tick, size=clip, kind=KIND_ICEBERG,
                            lab=lab, key_cancel=key_end if lb["mode"] == "cancel" else INF_KEY)
                plan.icebergs[int(idx)] = (clip, total - clip)
                lb.update(clip=clip, total=total, order=int(idx))
                aggr_rate, big = p.episode_aggr_rate, clip
            else:
                if kind == "synthetic_iceberg":
                    clip = _rint(rng, p.synthetic_clip)
                    clips = _rint(rng, p.synthetic_clips)
                    sizes = [[clip] * (clips - 1)]
                    lb.update(clip=clip, clips=clips)
                    delay = p.synthetic_delay_ms
                    firsts = [(t_first, clip)]
                    aggr_rate, big = p.episode_aggr_rate, clip
                else:
                    m = _rint(rng, p.absorption_chains)
                    # up to 120 re-adds per chain: an episode fills ~80 clips over all chains
                    sizes = [rng.integers(p.absorption_size[0], p.absorption_size[1] + 1, 120).tolist()
                             for _ in range(m)]
                    delay = p.absorption_delay_ms
                    firsts = [(t_first + int(rng.integers(0, 5 * MS)), _rint(rng, p.absorption_size))
                              for _ in range(m)]
                    lb.update(chains=m)
                    aggr_rate, big = p.episode_aggr_rate * p.absorption_aggr_mult, p.absorption_size[1]
                for (t_a, size), more in zip(firsts, sizes):
                    delays = (rng.uniform(delay[0], delay[1], len(more)) * MS).astype(np.int64).tolist()
                    plan.chains.append(Chain(lab, side, tick, more, delays, key_end))
                    idx = order(key_add=t_a * 8 + P_ADD, side=side, tick=tick, size=size, kind=KIND_CHAIN,
                                lab=lab, key_cancel=key_end)
                    plan.chain_of[int(idx)] = len(plan.chains) - 1
            # Heavy aggression into the level; some aggressors outsize the displayed clip.
            n = rng.poisson(aggr_rate * (t1 - t0) / NS)
            ta = np.sort(rng.uniform(t_first + 2 * MS, t1, n).astype(np.int64))
            qty = geometric(rng, p.episode_aggr_size_p, n, 1, 200)
            bigger = rng.random(n) < 0.25
            qty = np.where(bigger, qty + big * rng.integers(1, 4, n), qty)
            mk.append((ta, np.full(n, side == ASK), qty, lab, tick))
        elif kind in ("sweep", "stop_run"):
            t, levels = lb["t0"], lb["levels"]
            k = int(plan.k_at(t - 1))
            up = lb["side"] == BID
            ticks = [k + 1 + r for r in range(levels)] if up else [k - r for r in range(levels)]
            lb["ticks"] = ticks
            # Liquidity on every level, placed after the last step and market order before t.
            s = int(np.searchsorted(plan.step_t, t, side="left")) - 1
            m = int(np.searchsorted(market_t, t, side="left")) - 1
            t_prev = max(int(plan.step_t[max(s, 0)]), int(market_t[m]) if m >= 0 else 0)
            delta = min(300_000, (t - t_prev) // 2)
            if delta >= 1:
                for tk, sz in zip(ticks, geometric(rng, 0.3, levels, 1, 12).tolist()):
                    order(key_add=(t - delta) * 8 + P_ADD, side=ASK if up else BID, tick=tk, size=sz, lab=lab)
            if kind == "stop_run":
                # Levels 3.. of the jump are taken by elected stops: one new aggressor each.
                st = int(np.searchsorted(plan.step_t, t, side="left")) - 1  # step index (0-based)
                ev = step_ev0 + st
                sel = np.nonzero((e["event"] == ev) & (e["rank"] >= 2))[0]
                ag = append(plan.aggrs, AGGR_COLS, event=np.full(sel.size, ev), lab=lab)
                e["aggr"][sel] = ag
        elif kind == "spoof":
            order(key_add=lb["t0"] * 8 + P_ADD, side=lb["side"], tick=lb["tick"], size=lb["size"],
                  key_cancel=lb["t1"] * 8 + P_CANCEL, lab=lab)
    if n_rows[0]:
        idx = append(plan.orders, ORDER_COLS, **{k: np.array(v) for k, v in rows.items()})
        assert idx[0] == n0
    # Rows for the clips chains will add while matching (filled in place by the matcher).
    n_spare = sum(len(ch.sizes) for ch in plan.chains)
    if n_spare:
        rows = append(plan.orders, ORDER_COLS, key_add=np.full(n_spare, INF_KEY), kind=KIND_CHAIN)
        plan.spare = rows.tolist()
    if mk:
        add_market(plan, np.concatenate([m[0] for m in mk]), np.concatenate([m[1] for m in mk]),
                   np.concatenate([m[2] for m in mk]),
                   np.concatenate([np.full(m[0].size, m[3], np.int32) for m in mk]),
                   np.concatenate([np.full(m[0].size, m[4], np.int64) for m in mk]))


# --- labels measured from the written records -------------------------------------------------


def build_labels(plan: Plan, recs: dict[str, np.ndarray], cut_key: int, idmap: np.ndarray, ent_off: int,
                 wall: Any, instrument_id: int, symbol: str, refills: dict[int, int]) -> list[dict[str, Any]]:
    """One ground-truth dict per planted event, measured from this instrument's records up to
    ``cut_key``. ``idmap[ent + ent_off]`` is a record's order id, ``wall`` maps trading ns to
    UTC ns, ``refills`` counts clip re-instatements per iceberg order (matcher, same cut)."""
    key, lab = recs["key"], recs["lab"]
    m = np.nonzero((lab >= 0) & (key <= cut_key))[0]
    m = m[np.argsort(lab[m], kind="stable")]
    ids_m = idmap[recs["ent"][m] + ent_off]
    bounds = np.searchsorted(lab[m], np.arange(len(plan.labels) + 1))
    act, size, tick, side = recs["action"], recs["size"], recs["tick"], recs["side"]
    is_t = np.nonzero(act == ord("T"))[0]
    out: list[dict[str, Any]] = []
    for j, lb in enumerate(plan.labels):
        r = m[bounds[j]:bounds[j + 1]]
        oids = ids_m[bounds[j]:bounds[j + 1]]
        if r.size == 0:
            continue  # planned after the cut: nothing of it is in the stream
        a = act[r]
        t = key[r] >> 3
        side_c = "B" if lb["side"] == BID else "A"
        base: dict[str, Any] = {"kind": lb["kind"], "instrument_id": instrument_id, "symbol": symbol}
        px = int(lb.get("tick", tick[r[0]]))
        base.update(side=side_c, price=px * GC_TICK, price_usd=round(px * 0.1, 1),
                    ts_start=int(wall(t.min())), ts_end=int(wall(t.max())),
                    complete=bool(lb["t1"] * 8 + 7 <= cut_key))
        adds = a == ord("A")
        fills = a == ord("F")
        if lb["kind"] == "native_iceberg":
            oid = int(oids[adds][0])
            filled = int(size[r][fills].sum())
            ev_fills = np.unique(t[fills], return_counts=True)[1] if fills.any() else np.zeros(0, int)
            exhausted = filled >= lb["total"]
            base.update(order_id=oid, order_ids=[oid], display_qty=lb["clip"], total_qty=lb["total"],
                        hidden_qty=lb["total"] - lb["clip"], filled_qty=filled,
                        hidden_filled_qty=max(0, filled - lb["clip"]),
                        refills=int(refills.get(lb["order"], 0)),
                        refill_records=int((a == ord("M")).sum()),
                        max_fills_in_event=int(ev_fills.max()) if ev_fills.size else 0,
                        end_reason="exhausted" if exhausted else (
                            "cancelled" if lb["mode"] == "cancel" and base["complete"] else "open"))
        elif lb["kind"] in ("synthetic_iceberg", "absorption"):
            ids_added = oids[adds].tolist()
            base.update(order_ids=[int(x) for x in ids_added], orders=len(ids_added),
                        filled_qty=int(size[r][fills].sum()))
            if lb["kind"] == "synthetic_iceberg":
                base.update(clip=lb["clip"], planned_clips=lb["clips"],
                            readd_delay_ms=_readd_delays(t, a))
            else:
                aside = ord("A") if lb["side"] == BID else ord("B")
                lo, hi = np.searchsorted(key[is_t], [lb["t0"] * 8, lb["t1"] * 8 + 7], side="right")
                w = is_t[lo:hi]
                w = w[w <= np.searchsorted(key, cut_key, side="right") - 1]
                at_level = w[(tick[w] == px) & (side[w] == aside)]
                beyond = w[(side[w] == aside) & ((tick[w] < px) if lb["side"] == BID else (tick[w] > px))]
                base.update(chains=lb["chains"], aggressor_volume=int(size[at_level].sum()),
                            aggressor_trades=int(at_level.size), held=bool(beyond.size == 0),
                            end_reason="broken" if lb["mode"] == "break" else "held")
        elif lb["kind"] in ("sweep", "stop_run"):
            tr = r[a == ord("T")]
            aggr_ids = list(dict.fromkeys(int(x) for x in oids[a == ord("T")]))
            prices = sorted(set(int(x) for x in tick[tr]))
            base.update(side="B" if lb["side"] == BID else "A", aggressor_side=side_c,
                        price=int(tick[tr][0]) * GC_TICK if tr.size else px * GC_TICK,
                        prices=[x * GC_TICK for x in prices], levels_cleared=len(prices),
                        volume=int(size[tr].sum()), aggressor_order_ids=aggr_ids)
            if lb["kind"] == "stop_run":
                base.update(trigger_order_id=aggr_ids[0] if aggr_ids else None, stop_order_ids=aggr_ids[1:])
        elif lb["kind"] == "spoof":
            oid = int(oids[adds][0])
            base.update(order_id=oid, order_ids=[oid], size=lb["size"], distance_ticks=lb["dist"],
                        lifetime_ms=round((lb["t1"] - lb["t0"]) / MS, 3),
                        end_reason="cancelled" if (a == ord("C")).any() else "open")
        out.append(base)
    return out


def _readd_delays(t: np.ndarray, a: np.ndarray) -> list[float]:
    """Milliseconds from a clip's removal (the C/M closing its fill) to the next clip's add."""
    out = []
    for i in np.nonzero(a == ord("A"))[0][1:].tolist():
        if a[i - 1] in (ord("C"), ord("M")):
            out.append(round(float(t[i] - t[i - 1]) / MS, 3))
    return out
