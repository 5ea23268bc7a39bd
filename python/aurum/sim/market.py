"""Background order flow for one GC contract (regimes, mid path, orders) and the FIFO matcher.

How the market is built (all times are *trading* time in ns from the session start; the daily
break is not part of trading time, so nothing can be generated in it: ``writer.SessionClock``
puts it back when UTC timestamps are written):

* A latent mid ``k`` (integer ticks) moves in steps; bids rest at ``<= k`` and asks at ``>= k+1``.
  Every resting order is placed relative to ``k`` at its add time and any order the mid walks
  through is filled first (a step's aggressor clears the level), so the book never crosses.
* Limit orders arrive in a regime-modulated Poisson process (quiet / fast spells), cluster near
  the touch (geometric distance), live an exponential-mixture lifetime, and may be partially
  cancelled or modified down once. Some arrive as 2-4 orders in one event (a ladder).
* Market orders hit the level at the latent touch (``k`` for sells, ``k+1`` for buys); an
  aggressor larger than what rests there takes what there is (an IOC at the touch).
* Orders are vectorised; only the matching is a loop, and it visits only "candidate" orders
  (alive at their level while some aggressor hits it), so it costs per fill, not per record.

Keys: every happening has ``key = t * 8 + prio`` so one int64 orders the whole stream; at one
nanosecond a mid step's clear goes first, then market orders, adds, partials, cancels. The
matcher and the record writer use the same keys, so what the matcher decides is what the
stream shows.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aurum.sim.params import SimParams

NS = 1_000_000_000
INF_KEY = np.iinfo(np.int64).max // 4
P_STEP, P_MARKET, P_ADD, P_PARTIAL, P_CANCEL = 0, 1, 2, 3, 4
KIND_PLAIN, KIND_ICEBERG, KIND_CHAIN = 0, 1, 2
BIG_QTY = 1 << 40  # "clear the level"
BID, ASK = 0, 1
ACT_C, ACT_M = ord("C"), ord("M")

Table = dict[str, np.ndarray]

# Narrow types where values are small: every column is copied and gathered several times.
ORDER_COLS: dict[str, Any] = {
    "key_add": np.int64, "side": np.int8, "tick": np.int32, "size": np.int32,
    "key_cancel": np.int64, "key_partial": np.int64, "pq": np.int32, "p_mod": np.bool_,
    "batch": np.int32, "kind": np.int8, "snap": np.bool_, "lab": np.int32, "fill_m": np.bool_,
    "rest_event": np.int32, "alias": np.int32,
}
ENTRY_COLS: dict[str, Any] = {
    "key": np.int64, "side": np.int8, "tick": np.int64, "qty": np.int64,
    "event": np.int64, "rank": np.int64, "aggr": np.int64,
}
EVENT_COLS: dict[str, Any] = {"key": np.int64, "aside": np.int8}
AGGR_COLS: dict[str, Any] = {"event": np.int64, "lab": np.int32}


def empty(cols: dict[str, Any]) -> Table:
    return {k: np.zeros(0, v) for k, v in cols.items()}


def append(table: Table, cols: dict[str, Any], **values: Any) -> np.ndarray:
    """Append rows (missing columns get defaults); returns the new rows' indices."""
    sizes = [np.size(v) for v in values.values() if np.ndim(v) > 0]
    n = max(sizes) if sizes else 1  # arrays set the row count; scalars broadcast
    start = len(table[next(iter(cols))])
    defaults = {"key_cancel": INF_KEY, "key_partial": INF_KEY, "batch": -1, "lab": -1,
                "rest_event": -1, "alias": -1, "aggr": -1}
    for name, dtype in cols.items():
        v = values.get(name, defaults.get(name, 0))
        table[name] = np.concatenate([table[name], np.broadcast_to(np.asarray(v, dtype), (n,))])
    if "batch" in cols:  # an order without a batch is its own add/cancel event
        b = table["batch"][start:]
        idx = np.arange(start, start + n)
        table["batch"][start:] = np.where(b < 0, idx, b)
    return np.arange(start, start + n)


@dataclass
class Chain:
    """Orders that re-add themselves (new order id) after a fill: synthetic icebergs, absorbers."""

    label: int
    side: int
    tick: int
    sizes: list[int]
    delays_ns: list[int]
    key_end: int  # cancel key of every clip; no clip is added at or after it
    used: int = 0


@dataclass
class Plan:
    """Everything one instrument's stream is made of, before matching."""

    inst: int
    horizon: int  # trading-time ns
    k0: int  # starting mid floor, ticks
    step_t: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    step_k: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    orders: Table = field(default_factory=lambda: empty(ORDER_COLS))
    entries: Table = field(default_factory=lambda: empty(ENTRY_COLS))
    events: Table = field(default_factory=lambda: empty(EVENT_COLS))
    aggrs: Table = field(default_factory=lambda: empty(AGGR_COLS))
    icebergs: dict[int, tuple[int, int]] = field(default_factory=dict)  # order -> (clip, reserve)
    chains: list[Chain] = field(default_factory=list)
    chain_of: dict[int, int] = field(default_factory=dict)  # order -> chain
    labels: list[dict[str, Any]] = field(default_factory=list)
    spare: list[int] = field(default_factory=list)  # reserved order rows for chain re-adds
    bg_start: int = 0  # rows from here on are background orders, in add-time order
    cols: tuple[np.ndarray, np.ndarray] | None = None  # writer's per-order cache (side char, entity)

    def k_at(self, t: np.ndarray | int) -> np.ndarray:
        """Mid floor in force at trading time ``t`` (a step at exactly ``t`` counts)."""
        return self.step_k[np.searchsorted(self.step_t, t, side="right") - 1]


# --- regimes and Poisson processes -------------------------------------------------------------


def regimes(rng: np.random.Generator, p: SimParams, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Alternating quiet/fast spells, market-wide: (boundaries in ns from 0 to at least
    ``horizon``, is_fast per spell). Cut with ``clip_regimes``; drawn from their own stream,
    so a longer draw starts with the same spells."""
    if p.fast_mean_s <= 0:
        return np.array([0, horizon], np.int64), np.zeros(1, bool)
    bounds, fast, t, is_fast = [0], [], 0.0, False
    while t < horizon:
        mean = p.fast_mean_s if is_fast else p.quiet_mean_s
        t += rng.exponential(mean * NS) + 1
        bounds.append(int(t))
        fast.append(is_fast)
        is_fast = not is_fast
    return np.array(bounds, np.int64), np.array(fast, bool)


def clip_regimes(seg: tuple[np.ndarray, np.ndarray], horizon: int) -> tuple[np.ndarray, np.ndarray]:
    bounds, fast = seg
    n = int(np.searchsorted(bounds, horizon, side="left"))  # spells starting before the horizon
    return np.append(bounds[:n], horizon).astype(np.int64), fast[:n]


def horizon_for(seg: tuple[np.ndarray, np.ndarray], per_s: float, fast_mult: float, records: float) -> int:
    """Trading time at which the expected record count (``per_s`` per quiet second, times
    ``fast_mult`` in fast spells) reaches ``records``; -1 if the spells end first."""
    bounds, fast = seg
    cum = np.concatenate([[0.0], np.cumsum(per_s * np.where(fast, fast_mult, 1.0) * np.diff(bounds) / NS)])
    if cum[-1] < records:
        return -1
    return int(np.interp(records, cum, bounds.astype(np.float64)))


def poisson_times(rng: np.random.Generator, rate: float, seg: tuple[np.ndarray, np.ndarray],
                  fast_mult: float, horizon: int, t0: int = 1) -> np.ndarray:
    """Event times (sorted int64 ns in [t0, horizon)) of a Poisson process whose rate per second
    is ``rate`` in quiet spells and ``rate * fast_mult`` in fast ones (time change of a unit
    process: one draw per event, no loop)."""
    bounds, fast = seg
    lam = rate * np.where(fast, fast_mult, 1.0) * np.diff(bounds) / NS
    cum = np.concatenate([[0.0], np.cumsum(lam)])
    total = float(cum[-1])
    if total <= 0:
        return np.zeros(0, np.int64)
    n = int(total + 6 * np.sqrt(total) + 16)
    u = np.cumsum(rng.exponential(1.0, n))
    while u[-1] < total:  # rare: top up
        u = np.concatenate([u, u[-1] + np.cumsum(rng.exponential(1.0, n))])
    u = u[u < total]
    t = np.interp(u, cum, bounds.astype(np.float64)).astype(np.int64)
    return t[(t >= t0) & (t < horizon)]


def spell_fast(seg: tuple[np.ndarray, np.ndarray], t: np.ndarray) -> np.ndarray:
    bounds, fast = seg
    return fast[np.clip(np.searchsorted(bounds, t, side="right") - 1, 0, len(fast) - 1)]


def geometric(rng: np.random.Generator, p: float, n: int, lo: int, hi: int) -> np.ndarray:
    """Geometric sizes/distances starting at ``lo``, capped at ``hi``. Inverse transform of a
    float32 uniform: twice as fast as ``rng.geometric``; the float32 tail is cut near 1e-7."""
    u = 1.0 - rng.random(n, np.float32)  # (0, 1]
    k = np.log(u) * np.float32(1.0 / np.log1p(-p))
    return np.minimum(k.astype(np.int64) + lo, hi)


def uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    """Float32 uniforms in [0, 1): for coin flips and fractions, where 24 bits are plenty."""
    return rng.random(n, np.float32)


def base_steps(rng: np.random.Generator, p: SimParams, seg: tuple[np.ndarray, np.ndarray],
               horizon: int, activity: float) -> tuple[np.ndarray, np.ndarray]:
    """The background mid path: step times and +-1 increments."""
    t = poisson_times(rng, p.step_rate * activity, seg, p.fast_rate_mult, horizon, t0=1_000)
    inc = np.where(uniform(rng, t.size) < p.up_prob, 1, -1).astype(np.int64)
    return t, inc


# --- background flow ----------------------------------------------------------------------------


def lifetimes(rng: np.random.Generator, p: SimParams, n: int, fast: np.ndarray) -> np.ndarray:
    u = uniform(rng, n)
    mean = np.where(u < p.fleeting_share, p.fleeting_life_s,
                    np.where(u < 1.0 - p.long_share, p.normal_life_s, p.long_life_s))
    mean = mean / np.where(fast, p.fast_life_div, 1.0)
    return (rng.standard_exponential(n, np.float32) * mean * NS).astype(np.int64) + 2_000


def add_limit_orders(plan: Plan, rng: np.random.Generator, p: SimParams,
                     seg: tuple[np.ndarray, np.ndarray], activity: float) -> None:
    """The snapshot book and the background limit orders (adds, partials, cancels)."""
    H = plan.horizon
    # Snapshot: snapshot_orders_per_level orders on each of the first levels, in queue order.
    lv, per = p.snapshot_levels, p.snapshot_orders_per_level
    j = np.arange(2 * lv * per)
    s_side = (j >= lv * per).astype(np.int8)
    s_dist = (j % (lv * per)) // per
    n_s = j.size
    s_tick = np.where(s_side == BID, plan.k0 - s_dist, plan.k0 + 1 + s_dist)
    s_life = lifetimes(rng, p.replace(fleeting_share=0.0), n_s, np.zeros(n_s, bool))
    append(plan.orders, ORDER_COLS, key_add=np.full(n_s, P_ADD), side=s_side, tick=s_tick,
           size=geometric(rng, p.size_p, n_s, 1, p.max_size), snap=True,
           key_cancel=np.where(s_life < H, s_life * 8 + P_CANCEL, INF_KEY))

    # Add events; a ladder event places 2-4 orders on consecutive levels at once. The events
    # are split in two time chunks with their own child generators, built on both cores.
    t_ev = poisson_times(rng, p.add_rate * activity, seg, p.fast_rate_mult, H, t0=1_000)
    half = t_ev.size // 2
    g0, g1 = rng.spawn(2)
    from aurum.sim.writer import both  # (lazy: writer imports this module)

    a, b = both(lambda: _limit_chunk(plan, g0, p, seg, t_ev[:half]),
                lambda: _limit_chunk(plan, g1, p, seg, t_ev[half:]))
    base = plan.bg_start = len(plan.orders["key_add"])
    b["batch"] += a["batch"].size
    cols = {k: np.concatenate([a[k], b[k]]) for k in a}
    cols["batch"] += base
    append(plan.orders, ORDER_COLS, **cols)


def _limit_chunk(plan: Plan, rng: np.random.Generator, p: SimParams, seg: tuple[np.ndarray, np.ndarray],
                 t_ev: np.ndarray) -> dict[str, np.ndarray]:
    """Order columns for the add events at the sorted times ``t_ev`` (batch ids chunk-local)."""
    H = plan.horizon
    n_ev = t_ev.size
    u_ev = uniform(rng, n_ev)
    mult = np.where(u_ev < p.ladder_prob, 2 + (u_ev * (3 / max(p.ladder_prob, 1e-9))).astype(np.int64), 1)
    side_ev = (uniform(rng, n_ev) < 0.5).astype(np.int8)
    dist_ev = geometric(rng, p.dist_p, n_ev, 0, p.max_dist)
    s_ev = step_index(plan.step_t, t_ev)
    life_ev = lifetimes(rng, p, n_ev, spell_fast(seg, t_ev))  # a ladder is pulled together
    ev = np.repeat(np.arange(n_ev), mult)
    first = np.cumsum(mult) - mult
    rank = np.arange(ev.size) - first[ev]
    t, side, dist, life, s0 = t_ev[ev], side_ev[ev], dist_ev[ev] + rank, life_ev[ev], s_ev[ev]
    k = plan.step_k[s0]
    n = t.size
    tick = np.where(side == BID, k - dist, k + 1 + dist)
    size = geometric(rng, p.size_p, n, 1, p.max_size)
    t_end = t + life
    if p.fade_prob > 0:
        # Liquidity fades before the price moves: an order whose level the mid will walk
        # through is, with fade_prob, pulled 1-200 ms before that step (first passage found
        # with one sort, as one-tick steps cannot skip a level; a sweep jump can, and then
        # the order is simply filled).
        t_hit = first_passage(plan, s0, np.where(side == BID, tick - 1, tick))
        lead = (uniform(rng, n) * (p.fade_ms[1] - p.fade_ms[0]) * 1e6).astype(np.int64)
        lead += int(p.fade_ms[0] * 1e6)
        fade = (uniform(rng, n) < p.fade_prob) & (t_hit - lead > t) & (t_hit - lead < t_end)
        t_end = np.where(fade, t_hit - lead, t_end)
        life = t_end - t
    # One optional partial cancel / modify-down, strictly inside the life; the same uniform
    # also picks C or M (its position inside the "has a partial" band).
    u = uniform(rng, n)
    has_p = (u < p.partial_prob) & (size >= 2) & (life > 4)
    frac = uniform(rng, n).astype(np.float64)
    t_p = t + 1 + (frac * (life - 2)).astype(np.int64)
    return {"key_add": t * 8 + P_ADD, "side": side, "tick": tick, "size": size,
            "key_cancel": np.where(t_end < H, t_end * 8 + P_CANCEL, INF_KEY),
            "key_partial": np.where(has_p & (t_p < H), t_p * 8 + P_PARTIAL, INF_KEY),
            "pq": np.minimum(1 + (frac * (size - 1)).astype(np.int64), size - 1),
            "p_mod": u < p.partial_prob * p.modify_share, "batch": first[ev],
            "fill_m": uniform(rng, n) < p.fill_update_m_share}


def step_index(step_t: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Index of the step in force at each of the *sorted* times ``t`` (a step at exactly t
    counts): one searchsorted per step and a repeat, instead of a binary search per time."""
    pos = np.searchsorted(t, step_t, side="left")
    return np.repeat(np.arange(step_t.size), np.diff(np.append(pos, t.size)))


def first_passage(plan: Plan, s0: np.ndarray, target: np.ndarray) -> np.ndarray:
    """First step time after step ``s0`` at which the mid floor equals ``target`` (INF_KEY if
    none): steps sorted by (mid, index) once, one searchsorted per order."""
    st, sk = plan.step_t, plan.step_k
    ns = st.size
    lo = int(sk.min())
    keys = np.sort((sk - lo) * ns + np.arange(ns))
    q = (target - lo) * ns + s0
    pos = np.searchsorted(keys, q, side="right")
    found = keys[np.minimum(pos, ns - 1)]
    ok = (pos < ns) & (target >= lo) & (found // ns == target - lo)
    return np.where(ok, st[found % ns], INF_KEY)


def add_aggressors(plan: Plan, rng: np.random.Generator, p: SimParams,
                   seg: tuple[np.ndarray, np.ndarray], activity: float,
                   step_inc: np.ndarray, step_lab: np.ndarray) -> None:
    """Market orders at the touch and the clears of every mid step (sweeps: several levels)."""
    H = plan.horizon
    # Mid steps (step_t[0] is the start value, not a step).
    st, sk, inc = plan.step_t[1:], plan.step_k[1:], step_inc
    k_prev = sk - inc
    ns = st.size
    ev0 = len(plan.events["key"])
    up = inc > 0
    append(plan.events, EVENT_COLS, key=st * 8 + P_STEP, aside=np.where(up, BID, ASK))
    ag0 = len(plan.aggrs["event"])
    append(plan.aggrs, AGGR_COLS, event=ev0 + np.arange(ns), lab=step_lab)
    width = np.abs(inc)
    e_step = np.repeat(np.arange(ns), width)
    e_rank = np.arange(e_step.size) - np.concatenate([[0], np.cumsum(width)[:-1]])[e_step]
    e_up = up[e_step]
    e_tick = np.where(e_up, k_prev[e_step] + 1 + e_rank, k_prev[e_step] - e_rank)
    append(plan.entries, ENTRY_COLS, key=st[e_step] * 8 + P_STEP, side=np.where(e_up, ASK, BID),
           tick=e_tick, qty=BIG_QTY, event=ev0 + e_step, rank=e_rank, aggr=ag0 + e_step)
    # A plain one-tick step's aggressor may rest its remainder at the price it cleared: the
    # new best on its side (valid: the mid moved with it). Same order id as the aggressor.
    rest = np.nonzero((width == 1) & (step_lab < 0) & (uniform(rng, ns) < p.rest_prob))[0]
    if rest.size:
        life = lifetimes(rng, p, rest.size, spell_fast(seg, st[rest]))
        t_end = st[rest] + life
        append(plan.orders, ORDER_COLS, key_add=st[rest] * 8 + P_STEP,
               side=np.where(up[rest], BID, ASK), tick=np.where(up[rest], sk[rest], sk[rest] + 1),
               size=geometric(rng, p.size_p, rest.size, 1, p.max_size),
               key_cancel=np.where(t_end < H, t_end * 8 + P_CANCEL, INF_KEY),
               rest_event=ev0 + rest, alias=ag0 + rest)

    # Market orders: a buy lifts the ask at k+1, a sell hits the bid at k.
    tm = poisson_times(rng, p.market_rate * activity, seg, p.fast_rate_mult, H, t0=2_000)
    buy = uniform(rng, tm.size) < p.buy_prob
    add_market(plan, tm, buy, geometric(rng, p.market_size_p, tm.size, 1, p.max_market_size), -1)


def add_market(plan: Plan, t: np.ndarray, buy: np.ndarray, qty: np.ndarray, lab: int | np.ndarray,
               tick: np.ndarray | None = None) -> None:
    """One event, one aggressor, one entry per market order (at the latent touch by default)."""
    n = t.size
    if n == 0:
        return
    ev0 = len(plan.events["key"])
    append(plan.events, EVENT_COLS, key=t * 8 + P_MARKET, aside=np.where(buy, BID, ASK))
    ag0 = len(plan.aggrs["event"])
    append(plan.aggrs, AGGR_COLS, event=ev0 + np.arange(n), lab=lab)
    if tick is None:
        k = plan.k_at(t)
        tick = np.where(buy, k + 1, k)
    append(plan.entries, ENTRY_COLS, key=t * 8 + P_MARKET, side=np.where(buy, ASK, BID), tick=tick,
           qty=qty, event=ev0 + np.arange(n), rank=0, aggr=ag0 + np.arange(n))


# --- matching ------------------------------------------------------------------------------------


@dataclass
class MatchResult:
    fill_entry: np.ndarray  # per F record, in stream order within an entry
    fill_order: np.ndarray
    fill_qty: np.ndarray
    upd_entry: np.ndarray  # per C/M record of a trade event
    upd_order: np.ndarray
    upd_action: np.ndarray
    upd_size: np.ndarray
    rem: np.ndarray  # per order: size on the book after its last fill / partial
    removed: np.ndarray  # per order: key of the trade event that took it off the book
    p_state: np.ndarray  # per order: 1 = partial cancel/modify happened
    p_new: np.ndarray  # per order: size after the partial
    ice_entry: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ice_order: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ice_refills: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def match(plan: Plan) -> MatchResult:
    """FIFO matching, level by level (levels are independent: each aggressor entry names its
    level). Adds orders that chains create while matching to ``plan.orders``."""
    o, e = plan.orders, plan.entries
    n_o = len(o["key_add"])
    ne = len(e["key"])
    if ne == 0:
        z = np.zeros(0, np.int64)
        return _finish(plan, MatchResult(z, z, z, z, z, z, z, o["size"].copy(), np.full(n_o, INF_KEY),
                                         np.zeros(n_o, np.int8), np.zeros(n_o, np.int64)))

    span = int(max(plan.horizon, 1) + 2) * 8
    lvl_e = e["tick"] * 2 + e["side"]
    uniq = np.unique(lvl_e)
    if uniq.size * span >= 2**62:
        raise ValueError("simulation too long for the matcher's composite keys; simulate fewer days")
    dense_e = np.searchsorted(uniq, lvl_e)
    comp_e = dense_e * span + e["key"]
    order_e = np.lexsort((e["event"], comp_e))
    comp_sorted = comp_e[order_e]
    # Dense level of every order through a lookup table (prices span few ticks).
    lo = int(uniq[0])
    table = np.full(int(uniq[-1]) - lo + 1, -1, np.int64)
    table[uniq - lo] = np.arange(uniq.size)

    def levels(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, dense level) of the orders in [start, stop) whose level ever sees an aggressor."""
        lv = o["tick"][start:stop] * 2 + o["side"][start:stop] - lo
        np.clip(lv, -1, table.size, out=lv)
        lv = np.append(table, -1)[lv]  # -1 and table.size both map to "no level"
        rows = np.nonzero(lv >= 0)[0]
        return rows + start, lv[rows]

    # Candidates: some aggressor hits the order's level while it rests (the first entry at
    # its level after its add comes before its cancel). Nobody else can ever be filled.
    # Background rows are in time order: grouped by level with a stable 16-bit radix sort
    # their composite keys come out sorted, so one merge with the entries finds them all.
    rows_b, lv_b = levels(plan.bg_start, n_o)
    grp = np.argsort(lv_b.astype(np.int16 if uniq.size < 2**15 else np.int64), kind="stable")
    rows_b, lv_b = rows_b[grp], lv_b[grp]
    a_b = lv_b.astype(np.int64) * span + o["key_add"][rows_b]
    idx = np.searchsorted(a_b, comp_sorted, side="left")
    j_b = np.repeat(np.arange(ne + 1), np.diff(np.concatenate([[0], idx, [a_b.size]])))
    c_b = lv_b.astype(np.int64) * span + np.minimum(o["key_cancel"][rows_b], span - 1)
    ok_b = (j_b < ne) & (comp_sorted[np.minimum(j_b, ne - 1)] < c_b)
    # The few rows before them (snapshot, planted, remainders, spares): a binary search each.
    rows_p, lv_p = levels(0, plan.bg_start)
    a_p = lv_p * span + np.minimum(o["key_add"][rows_p], span - 1)
    j_p = np.searchsorted(comp_sorted, a_p, side="right")
    c_p = lv_p * span + np.minimum(o["key_cancel"][rows_p], span - 1)
    ok_p = (j_p < ne) & (comp_sorted[np.minimum(j_p, ne - 1)] < c_p)
    a_all = np.concatenate([a_p[ok_p], a_b[ok_b]])
    order_c = np.argsort(a_all, kind="stable")  # by level, then queue (add key, then index)
    cand = np.concatenate([rows_p[ok_p], rows_b[ok_b]])[order_c]
    lv_c = np.concatenate([lv_p[ok_p], lv_b[ok_b]])[order_c]
    lv_e_sorted = dense_e[order_e]

    # Per-candidate state as Python lists (the loop below is the only per-fill Python).
    # flag bits: 1 partial fills reported as M, 2 native iceberg, 4 chain, 8 partial pending.
    # A removed order gets cancel key -1, so "dead" is one comparison.
    kc = o["kind"][cand]
    gidx: list[int] = cand.tolist()
    rem = o["size"][cand].tolist()
    addk = o["key_add"][cand].tolist()
    cank = o["key_cancel"][cand].tolist()
    pk = o["key_partial"][cand].tolist()
    pq = o["pq"][cand].tolist()
    flag = (o["fill_m"][cand] * 1 + (kc == KIND_ICEBERG) * 2 + (kc == KIND_CHAIN) * 4
            + (o["key_partial"][cand] < INF_KEY) * 8).tolist()
    pst = [0] * len(gidx)
    pnew = [0] * len(gidx)
    removed = [INF_KEY] * len(gidx)
    special = np.nonzero(kc != KIND_PLAIN)[0]
    local = dict(zip(cand[special].tolist(), special.tolist()))
    ice = {local[g]: [clip, res, 0] for g, (clip, res) in plan.icebergs.items() if g in local}
    chain_local = {local[g]: ch for g, ch in plan.chain_of.items() if g in local}
    dyn: list[tuple[int, ...]] = []  # (row, key_add, side, tick, size, key_cancel, lab)
    spare = iter(plan.spare)

    F: list[int] = []  # flat (entry, order, qty) per F record
    U: list[int] = []  # flat (entry, order, action, size) per C/M record
    f_ext, u_ext = F.extend, U.extend
    I_e: list[int] = []  # per (event, iceberg): clip re-instatements in that event
    I_o: list[int] = []
    I_n: list[int] = []
    e_key = e["key"][order_e].tolist()
    e_qty = e["qty"][order_e].tolist()
    e_id = order_e.tolist()
    lb_e = np.searchsorted(lv_e_sorted, np.arange(uniq.size + 1)).tolist()
    lb_c = np.searchsorted(lv_c, np.arange(uniq.size + 1)).tolist()

    for g in range(uniq.size):
        queue = list(range(lb_c[g], lb_c[g + 1]))
        qk = addk[lb_c[g]:lb_c[g + 1]]
        level_side, level_tick = int(uniq[g] % 2), int(uniq[g] // 2)
        front = 0
        nq = len(queue)
        for x in range(lb_e[g], lb_e[g + 1]):
            ekey, want, eid = e_key[x], e_qty[x], e_id[x]
            i = front
            touched: dict[int, tuple[int, int]] = {}
            while want > 0 and i < nq:
                if qk[i] > ekey:  # added later (adds never share an aggressor's key;
                    break  # a refilled iceberg is re-queued with exactly this key)
                q = queue[i]
                if cank[q] <= ekey:  # cancelled by now, or already filled away
                    if i == front:
                        front += 1
                    i += 1
                    continue
                r = rem[q]
                fl = flag[q]
                if fl & 8 and pk[q] < ekey:  # the partial happened before this fill: decide it
                    flag[q] = fl = fl & 7
                    if r > pq[q]:
                        r -= pq[q]
                        pst[q] = 1
                        pnew[q] = r
                    else:
                        pst[q] = 2
                take = r if r < want else want
                r -= take
                want -= take
                f_ext((eid, q, take))
                if fl & 2:  # native iceberg
                    st = ice[q]
                    if q not in touched:
                        touched[q] = (rem[q], st[2])  # displayed size as the book knows it
                    if r == 0 and st[1] > 0:
                        # Refill from the reserve: a new clip at the back of the queue. The
                        # same aggressor may reach it again in this event (hidden fill).
                        r = min(st[0], st[1])
                        st[1] -= r
                        st[2] += 1
                        rem[q] = r
                        del queue[i]
                        del qk[i]
                        at = bisect.bisect_right(qk, ekey, i)
                        queue.insert(at, q)
                        qk.insert(at, ekey)
                        continue
                    rem[q] = r
                    if r == 0:
                        removed[q] = ekey
                        cank[q] = -1
                        if i == front:
                            front += 1
                    i += 1
                    continue
                rem[q] = r
                if r == 0:
                    removed[q] = ekey
                    cank[q] = -1
                    u_ext((eid, q, ACT_C, take))
                    if i == front:
                        front += 1
                    if fl & 4:  # a chain re-adds a new clip (new order id) after a delay
                        ch = plan.chains[chain_local[q]]
                        more = ch.used < len(ch.sizes)
                        key_new = ((ekey >> 3) + ch.delays_ns[ch.used]) * 8 + P_ADD if more else 0
                        if 0 < key_new < ch.key_end:
                            size = ch.sizes[ch.used]
                            ch.used += 1
                            new = len(rem)
                            row = next(spare)  # reserved by the planter: no table copy
                            dyn.append((row, key_new, level_side, level_tick, size, ch.key_end, ch.label))
                            for lst, v in ((rem, size), (addk, key_new), (cank, ch.key_end), (pk, INF_KEY),
                                           (pq, 0), (flag, 4), (pst, 0), (pnew, 0), (removed, INF_KEY),
                                           (gidx, row)):
                                lst.append(v)
                            chain_local[new] = chain_local[q]
                            at = bisect.bisect_right(qk, key_new, i)
                            queue.insert(at, new)
                            qk.insert(at, key_new)
                            nq += 1
                elif fl & 1:
                    u_ext((eid, q, ACT_M, r))
                else:
                    u_ext((eid, q, ACT_C, take))
                i += 1
            for q, (before, refills0) in touched.items():  # one book update per iceberg per event
                n_refills = ice[q][2] - refills0
                I_e.append(eid)
                I_o.append(q)
                I_n.append(n_refills)
                if rem[q] == 0:
                    u_ext((eid, q, ACT_C, before))
                elif n_refills:
                    u_ext((eid, q, ACT_M, rem[q]))
                else:
                    u_ext((eid, q, ACT_C, before - rem[q]))

    if dyn:
        d = np.array(dyn, np.int64)
        for col, k in (("key_add", 1), ("side", 2), ("tick", 3), ("size", 4), ("key_cancel", 5), ("lab", 6)):
            o[col][d[:, 0]] = d[:, k]
    gi = np.array(gidx, np.int64)
    rem_g = o["size"].copy()
    rem_g[gi] = np.array(rem, np.int64)
    removed_g = np.full(n_o, INF_KEY, np.int64)
    removed_g[gi] = np.array(removed, np.int64)
    pst_g = np.zeros(n_o, np.int8)
    pst_g[gi] = np.array(pst, np.int8)
    pnew_g = np.zeros(n_o, np.int64)
    pnew_g[gi] = np.array(pnew, np.int64)
    gmap = gi
    f = np.array(F, np.int64).reshape(-1, 3)
    u = np.array(U, np.int64).reshape(-1, 4)
    res = MatchResult(f[:, 0], gmap[f[:, 1]], f[:, 2], u[:, 0], gmap[u[:, 1]], u[:, 2], u[:, 3],
                      rem_g, removed_g, pst_g, pnew_g)
    if I_e:
        res.ice_entry = np.array(I_e, np.int64)
        res.ice_order = gmap[np.array(I_o, np.int64)]
        res.ice_refills = np.array(I_n, np.int64)
    for q, st in ice.items():
        plan.icebergs[gidx[q]] = (st[0], st[1])  # reserve left (refills counted from records)
    return _finish(plan, res)


def _finish(plan: Plan, res: MatchResult) -> MatchResult:
    """Partials that no fill decided: they happen if the order still rests with more than the
    quantity to remove (otherwise they are dropped: the order was filled away first)."""
    o = plan.orders
    r = np.nonzero(o["key_partial"] < INF_KEY)[0]  # the orders with a partial (~1 in 6)
    pend = res.p_state[r] == 0
    ok = pend & (res.removed[r] > o["key_partial"][r]) & (res.rem[r] > o["pq"][r])
    res.rem[r] = np.where(ok, res.rem[r] - o["pq"][r], res.rem[r])
    res.p_new[r] = np.where(ok, res.rem[r], res.p_new[r])
    res.p_state[r] = np.where(ok, 1, np.where(pend, 2, res.p_state[r]))
    return res
