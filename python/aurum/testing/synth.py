"""Synthetic CME GC market-by-order (MBO) streams as DBN v3 bytes, generated with numpy.

No Python object or loop per record: every field of every record is computed with whole-array
numpy operations, then the records are written through a structured dtype that matches the
56-byte ``MboMsg`` layout (databento.md §3.3). Five million records take a few seconds.

The stream is book-consistent (databento.md §3.9-3.11):

* It opens with a snapshot event: one ``R`` clear, then ``A`` adds of the initial book, every
  record flagged ``F_SNAPSHOT | F_BAD_TS_RECV`` (0x28), ``F_LAST`` on the last one.
* A latent mid price follows a random walk of +-1 tick steps on the 0.10 tick grid
  (``100_000_000`` fixed-point units); the mid sits half a tick between grid prices. Every order is
  added within some ticks of the current mid: bids at or below the grid price just under the mid,
  asks at or above the one just over it.
* An order may later be partially cancelled (``C`` with a quantity smaller than its size) or
  modified down (``M``, same price, smaller size), once.
* It then ends in one of two ways: a full cancel (``C`` with its remaining size) at the end of its
  lifetime, or, if the mid walks through its price first, a fill. All orders crossed by one mid
  step form one match event: ``T`` (aggressor side, price, total size, a fresh aggressor order id),
  one ``F`` per resting order (FIFO order, size = filled quantity, resting side), then one ``C``
  per resting order with the filled quantity, ``F_LAST`` on the last record.

So live bids always sit below the mid and live asks above it: the book is never crossed. Cancels
never exceed the remaining size, no record names an order before its add, ``F_LAST`` closes every
event, ``ts_event``/``ts_recv``/``sequence`` never decrease. Orders still alive at the end of
the stream stay in the book.

``synth_mbo(n)`` returns exactly ``n`` records (after the metadata header): it cuts the generated
stream at the last whole event that fits and pads the remainder with single-record adds deep in
the book.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from types import SimpleNamespace
from typing import Any

import numpy as np

FIXED_PRICE_SCALE = 1_000_000_000
UNDEF_PRICE = 2**63 - 1
GC_TICK = 100_000_000  # 0.10 USD/oz in DBN fixed-point units
F_LAST = 0x80
F_SNAPSHOT = 0x20
F_BAD_TS_RECV = 0x08
MBO_RTYPE = 0xA0
MBO_LENGTH_WORDS = 14  # 56 bytes

# The 56-byte MboMsg (databento.md §3.3), little-endian, explicit offsets.
MBO_DTYPE = np.dtype(
    {
        "names": [
            "length", "rtype", "publisher_id", "instrument_id", "ts_event", "order_id", "price",
            "size", "flags", "channel_id", "action", "side", "ts_recv", "ts_in_delta", "sequence",
        ],
        "formats": ["u1", "u1", "<u2", "<u4", "<u8", "<u8", "<i8", "<u4", "u1", "u1", "S1", "S1", "<u8", "<i4", "<u4"],
        "offsets": [0, 1, 2, 4, 8, 16, 24, 32, 36, 37, 38, 39, 40, 48, 52],
        "itemsize": 56,
    }
)
assert MBO_DTYPE.itemsize == 56

# 2026-11-02 14:30:00 UTC (a Monday, during the COMEX day session).
DEFAULT_START_NS = int(dt.datetime(2026, 11, 2, 14, 30, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000_000

_A, _C, _M, _R, _T, _F = (ord(c) for c in "ACMRTF")
_B, _ASK, _N = ord("B"), ord("A"), ord("N")

# Generator parameters (rates are per second of exchange time).
_ADD_RATE = 250.0            # new orders per second
_STEP_MEAN_S = 0.5           # mean time between mid steps
_SNAPSHOT_LEVELS = 10        # initial book: levels per side
_SNAPSHOT_PER_LEVEL = 2      # orders per level
_DIST_P = 0.25               # geometric parameter of the distance (ticks) from the mid
_MAX_DIST = 30
_SIZE_P = 0.45               # geometric parameter of the order size
_MAX_SIZE = 50
_FAST_SHARE = 0.80           # share of short-lived orders
_FAST_LIFE_S = 0.5
_SLOW_LIFE_S = 8.0
_MIN_LIFE_NS = 1_000
_PARTIAL_P = 0.25            # chance of one partial cancel / modify-down
_FILLS_PER_TRADE = 2.0       # mean resting orders filled per aggressor (T) event
_PAD_DEPTH = 60              # padding adds sit this many ticks away from the mid


def metadata_bytes(
    symbol: str = "GCZ6",
    instrument_id: int = 42,
    start_ns: int = DEFAULT_START_NS,
    end_ns: int | None = None,
) -> bytes:
    """The DBN v3 metadata header of a GLBX.MDP3 MBO stream with one raw symbol."""
    import databento_dbn as dbn

    start_date = dt.datetime.fromtimestamp(start_ns / 1e9, tz=dt.timezone.utc).date()
    end_date = start_date + dt.timedelta(days=1)
    mapping = SimpleNamespace(
        raw_symbol=symbol,
        intervals=[SimpleNamespace(start_date=start_date, end_date=end_date, symbol=str(instrument_id))],
    )
    meta = dbn.Metadata(
        dataset="GLBX.MDP3",
        start=int(start_ns),
        stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID,
        schema=dbn.Schema.MBO,
        symbols=[symbol],
        partial=[],
        not_found=[],
        mappings=[mapping],
        end=None if end_ns is None else int(end_ns),
        version=3,
    )
    return bytes(meta.encode())


def _geometric(rng: np.random.Generator, p: float, n: int, cap: int) -> np.ndarray:
    """Geometric numbers starting at 0, capped."""
    return np.minimum(rng.geometric(p, n) - 1, cap).astype(np.int64)


def _generate(n_orders: int, rng: np.random.Generator) -> dict[str, Any]:
    """Generate ``n_orders`` order lifecycles; return the records as per-event-sorted arrays.

    Times are int64 nanoseconds relative to the stream start. Returns the fields of every
    record in stream order plus event boundaries and the stream horizon (the last add time:
    records later than it belong to a thinner stream and must not be kept).
    """
    n_snap = 2 * _SNAPSHOT_LEVELS * _SNAPSHOT_PER_LEVEL
    n_orders = max(n_orders, n_snap + 1)

    # --- order arrivals -----------------------------------------------------------------------
    gaps = rng.exponential(1e9 / _ADD_RATE, n_orders).astype(np.int64) + 1
    gaps[:n_snap] = 0
    t_add = np.cumsum(gaps)
    t_add[:n_snap] = 0
    horizon = int(t_add[-1])

    # --- latent mid: +-1 tick random walk, step 0 at time 0 -----------------------------------
    n_steps = int(horizon / (_STEP_MEAN_S * 1e9) * 1.2) + 16
    step_gaps = rng.exponential(_STEP_MEAN_S * 1e9, n_steps).astype(np.int64) + 1
    step_gaps[0] = 0
    step_t = np.cumsum(step_gaps)
    steps = rng.integers(0, 2, n_steps, dtype=np.int64) * 2 - 1
    steps[0] = 0
    mid = np.cumsum(steps)
    # mid[s] = k means the mid price is (k + 0.5) ticks: bids at <= k, asks at >= k + 1.

    s0 = np.searchsorted(step_t, t_add, side="right") - 1  # step in force when the order is added

    # --- order attributes ---------------------------------------------------------------------
    is_bid = rng.random(n_orders) < 0.5
    dist = _geometric(rng, _DIST_P, n_orders, _MAX_DIST)
    # Snapshot: _SNAPSHOT_PER_LEVEL orders on each of the first _SNAPSHOT_LEVELS levels per side.
    snap_idx = np.arange(n_snap)
    is_bid[:n_snap] = snap_idx < n_snap // 2
    dist[:n_snap] = (snap_idx % (n_snap // 2)) // _SNAPSHOT_PER_LEVEL
    level = np.where(is_bid, mid[s0] - dist, mid[s0] + 1 + dist)
    size0 = 1 + _geometric(rng, _SIZE_P, n_orders, _MAX_SIZE - 1)

    # --- first mid step that walks through the order's price (a fill) -------------------------
    # Steps are +-1, so the first passage is the first later step whose mid equals the target:
    # a bid at b is crossed when the mid reaches b - 1, an ask at a when it reaches a.
    target = np.where(is_bid, level - 1, level)
    mid_lo = int(mid.min())
    width = np.int64(n_steps)
    keys = np.sort((mid - mid_lo) * width + np.arange(n_steps, dtype=np.int64))
    query = (target - mid_lo) * width + s0
    pos = np.searchsorted(keys, query, side="right")
    found = keys[np.minimum(pos, n_steps - 1)]
    crossed = (pos < n_steps) & (target >= mid_lo) & (found // width == target - mid_lo)
    s_cross = np.where(crossed, found % width, 0)
    big = np.iinfo(np.int64).max // 4
    t_cross = np.where(crossed, step_t[s_cross], big)

    # --- lifetimes: cancel at the end of life unless filled first ----------------------------
    fast = rng.random(n_orders) < _FAST_SHARE
    life = rng.exponential(1.0, n_orders) * np.where(fast, _FAST_LIFE_S, _SLOW_LIFE_S) * 1e9
    t_want = t_add + np.maximum(life.astype(np.int64), _MIN_LIFE_NS)
    filled = t_cross <= t_want
    t_end = np.where(filled, t_cross, t_want)

    # --- optional partial cancel / modify-down, strictly between add and end -------------------
    span = t_end - t_add
    has_partial = (rng.random(n_orders) < _PARTIAL_P) & (size0 >= 2) & (span >= 2)
    q_removed = 1 + np.floor(rng.random(n_orders) * (size0 - 1)).astype(np.int64)
    q_removed = np.minimum(q_removed, size0 - 1)
    partial_is_modify = rng.random(n_orders) < 0.5
    u = rng.random(n_orders)
    t_mid = t_add + 1 + np.floor(u * (span - 1).astype(np.float64)).astype(np.int64)
    t_mid = np.clip(t_mid, t_add + 1, t_end - 1)
    remaining = np.where(has_partial, size0 - q_removed, size0)

    # --- order ids (sparse, increasing, CME-like magnitudes) ----------------------------------
    order_id = 6_400_000_000_000 + np.cumsum(rng.integers(1, 9, n_orders, dtype=np.int64))
    price = level * GC_TICK  # relative to price0, added later

    # --- events ------------------------------------------------------------------------------
    # Kinds: 0 snapshot (R + adds), 1 add, 2 partial, 3 cancel-end, 4 fill group.
    live = np.arange(n_snap, n_orders)
    part = np.nonzero(has_partial)[0]
    canc = np.nonzero(~filled)[0]
    fill = np.nonzero(filled)[0]
    fill = fill[np.lexsort((order_id[fill], t_add[fill], s_cross[fill]))]  # by step, then FIFO
    f_step = s_cross[fill]
    new_group = np.ones(fill.size, dtype=bool)
    new_group[1:] = f_step[1:] != f_step[:-1]
    # A step's sweep of a level is split into several aggressor events (mean _FILLS_PER_TRADE
    # resting orders each), all at the step time, in queue order.
    new_group |= rng.random(fill.size) < 1.0 / _FILLS_PER_TRADE
    g_start = np.nonzero(new_group)[0]
    g_size = np.diff(np.append(g_start, fill.size))
    g_id = np.cumsum(new_group) - 1
    g_rank = np.arange(fill.size) - g_start[g_id]
    n_groups = g_start.size

    ev_time = np.concatenate([
        np.zeros(1, np.int64), t_add[live], t_mid[part], t_end[canc], step_t[f_step[g_start]],
    ])
    ev_size = np.concatenate([
        np.array([1 + n_snap], np.int64), np.ones(live.size + part.size + canc.size, np.int64),
        1 + 2 * g_size.astype(np.int64),
    ])
    # At equal times a fill group (a mid step) goes first: an order added at the step time is
    # priced off the new mid. The snapshot is first of all.
    ev_prio = np.concatenate([
        np.zeros(1, np.int8), np.ones(live.size + part.size + canc.size, np.int8), np.zeros(n_groups, np.int8),
    ])
    order = np.lexsort((ev_prio, ev_time))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    sorted_size = ev_size[order]
    ev_end_sorted = np.cumsum(sorted_size)
    ev_start_sorted = ev_end_sorted - sorted_size
    ev_start = ev_start_sorted[rank]  # record offset of each event (original indexing)
    n_records = int(ev_end_sorted[-1])

    e_add0 = 1
    e_part0 = e_add0 + live.size
    e_canc0 = e_part0 + part.size
    e_fill0 = e_canc0 + canc.size

    ts = np.empty(n_records, np.int64)
    oid = np.empty(n_records, np.uint64)
    px = np.empty(n_records, np.int64)
    sz = np.empty(n_records, np.uint32)
    act = np.empty(n_records, np.uint8)
    sid = np.empty(n_records, np.uint8)
    flg = np.zeros(n_records, np.uint8)
    side_code = np.where(is_bid, _B, _ASK).astype(np.uint8)

    # snapshot: R then the adds, all at time 0, flagged 0x28
    p = ev_start[0] + np.arange(1 + n_snap)
    ts[p] = 0
    oid[p[0]], px[p[0]], sz[p[0]], act[p[0]], sid[p[0]] = 0, 0, 0, _R, _N
    oid[p[1:]] = order_id[:n_snap]
    px[p[1:]] = price[:n_snap]
    sz[p[1:]] = size0[:n_snap]
    act[p[1:]] = _A
    sid[p[1:]] = side_code[:n_snap]
    flg[p] = F_SNAPSHOT | F_BAD_TS_RECV

    # adds
    p = ev_start[e_add0:e_part0]
    ts[p], oid[p], px[p], sz[p], act[p], sid[p] = (
        t_add[live], order_id[live], price[live], size0[live], _A, side_code[live])

    # partial cancels (size = quantity removed) and modifies (size = new size)
    p = ev_start[e_part0:e_canc0]
    is_mod = partial_is_modify[part]
    ts[p], oid[p], px[p], sid[p] = t_mid[part], order_id[part], price[part], side_code[part]
    sz[p] = np.where(is_mod, size0[part] - q_removed[part], q_removed[part])
    act[p] = np.where(is_mod, _M, _C)

    # full cancels of the remaining size
    p = ev_start[e_canc0:e_fill0]
    ts[p], oid[p], px[p], sz[p], act[p], sid[p] = (
        t_end[canc], order_id[canc], price[canc], remaining[canc], _C, side_code[canc])

    # fill groups: T (aggressor), F per resting order, C per resting order
    g_ev_start = ev_start[e_fill0:]
    g_first = fill[g_start]
    g_qty = np.add.reduceat(remaining[fill], g_start) if fill.size else np.zeros(0, np.int64)
    aggressor_id = 7_300_000_000_000 + np.cumsum(rng.integers(1, 9, n_groups, dtype=np.int64))
    p = g_ev_start
    ts[p], oid[p], px[p], sz[p], act[p] = step_t[f_step[g_start]], aggressor_id, price[g_first], g_qty, _T
    sid[p] = np.where(is_bid[g_first], _ASK, _B)  # a sell aggressor hits bids, a buy lifts asks
    base = g_ev_start[g_id]
    for offset, code in ((1 + g_rank, _F), (1 + g_size[g_id] + g_rank, _C)):
        p = base + offset
        ts[p], oid[p], px[p], sz[p], act[p], sid[p] = (
            step_t[f_step], order_id[fill], price[fill], remaining[fill], code, side_code[fill])

    flg[ev_end_sorted - 1] |= F_LAST
    event_seq = np.repeat(np.arange(order.size, dtype=np.int64), sorted_size)

    return {
        "ts": ts, "order_id": oid, "price": px, "size": sz, "action": act, "side": sid,
        "flags": flg, "event_seq": event_seq, "ev_end": ev_end_sorted,
        "ev_time": ev_time[order], "horizon": horizon, "step_t": step_t, "mid": mid,
    }


def synth_records(
    n_records: int,
    seed: int = 0,
    instrument_id: int = 42,
    price0: float = 2400.0,
    start_ns: int = DEFAULT_START_NS,
) -> np.ndarray:
    """Exactly ``n_records`` MBO records as a structured array of ``MBO_DTYPE``."""
    if n_records < 1:
        raise ValueError("n_records must be >= 1")
    rng = np.random.default_rng(seed)
    n_orders = int(n_records / 2.2) + 64
    while True:
        g = _generate(n_orders, rng)
        ev_end = g["ev_end"]
        whole = int(np.searchsorted(ev_end, n_records, side="right"))  # whole events that fit
        n_cut = int(ev_end[whole - 1]) if whole else 0
        if whole == 0 or g["ev_time"][whole - 1] <= g["horizon"]:
            break  # (whole == 0: even the snapshot is too long; the padding adds fill in)
        n_orders = int(n_orders * 1.3) + 64  # the prefix must not outrun the order arrivals

    pad = n_records - n_cut
    recs = np.zeros(n_records, dtype=MBO_DTYPE)
    tick0 = int(round(price0 * FIXED_PRICE_SCALE / GC_TICK))
    px = g["price"][:n_cut] + tick0 * GC_TICK
    px[g["action"][:n_cut] == _R] = UNDEF_PRICE
    ts = g["ts"][:n_cut]
    recs["ts_event"][:n_cut] = ts
    recs["order_id"][:n_cut] = g["order_id"][:n_cut]
    recs["price"][:n_cut] = px
    recs["size"][:n_cut] = g["size"][:n_cut]
    recs["flags"][:n_cut] = g["flags"][:n_cut]
    recs["action"][:n_cut] = g["action"][:n_cut].view("S1")
    recs["side"][:n_cut] = g["side"][:n_cut].view("S1")
    seq = g["event_seq"][:n_cut]
    if pad:
        # Single-record adds deep in the book at the last kept time: exactly n_records.
        t_last = int(ts[-1]) if n_cut else 0
        s = int(np.searchsorted(g["step_t"], t_last, side="right") - 1)
        m = int(g["mid"][s])
        k = np.arange(pad)
        bid = k % 2 == 0
        lvl = np.where(bid, m - _PAD_DEPTH - k // 2, m + 1 + _PAD_DEPTH + k // 2)
        recs["ts_event"][n_cut:] = t_last
        recs["order_id"][n_cut:] = 9_100_000_000_000 + k
        recs["price"][n_cut:] = (lvl + tick0) * GC_TICK
        recs["size"][n_cut:] = 1
        recs["flags"][n_cut:] = F_LAST
        recs["action"][n_cut:] = b"A"
        recs["side"][n_cut:] = np.where(bid, b"B", b"A")
        seq = np.concatenate([seq, (seq[-1] if n_cut else 0) + 1 + k])

    recs["length"] = MBO_LENGTH_WORDS
    recs["rtype"] = MBO_RTYPE
    recs["publisher_id"] = 1
    recs["instrument_id"] = instrument_id
    recs["channel_id"] = 0
    ts_event = recs["ts_event"].astype(np.int64) + start_ns
    recs["ts_event"] = ts_event
    # ts_recv: a jittered capture latency, kept non-decreasing; the snapshot at the start time.
    latency = 15_000 + rng.integers(0, 40_000, n_records, dtype=np.int64)
    snap = (recs["flags"] & F_SNAPSHOT) != 0
    latency[snap] = 0
    recs["ts_recv"] = np.maximum.accumulate(ts_event + latency)
    recs["ts_in_delta"] = rng.integers(3_000, 25_000, n_records, dtype=np.int64).astype(np.int32)
    recs["sequence"] = (1_000 + seq).astype(np.uint32)
    return recs


def synth_mbo(
    n_records: int,
    seed: int = 0,
    instrument_id: int = 42,
    price0: float = 2400.0,
    symbol: str = "GCZ6",
    start_ns: int = DEFAULT_START_NS,
) -> bytes:
    """A DBN v3 GLBX.MDP3 MBO stream: metadata header + exactly ``n_records`` records."""
    recs = synth_records(n_records, seed=seed, instrument_id=instrument_id, price0=price0, start_ns=start_ns)
    end_ns = int(recs["ts_event"][-1]) + 1
    return metadata_bytes(symbol, instrument_id, start_ns, end_ns) + recs.tobytes()


def write_synth(path: str | os.PathLike[str], n: int, seed: int = 0, **kwargs: Any) -> int:
    """Write a synthetic stream to ``path`` (``.zst`` suffix: zstd-compressed). Returns bytes written."""
    data = synth_mbo(n, seed=seed, **kwargs)
    if str(path).endswith(".zst"):
        import zstandard

        data = zstandard.ZstdCompressor(level=3).compress(data)
    with open(path, "wb") as fh:
        fh.write(data)
    return len(data)


def records_view(data: bytes | bytearray | memoryview) -> np.ndarray:
    """Zero-copy view of the records of an uncompressed DBN v2/v3 stream of MBO records only."""
    buf = memoryview(data)
    if bytes(buf[:3]) != b"DBN":
        raise ValueError("not a DBN stream")
    header_len = 8 + int.from_bytes(buf[4:8], "little")
    return np.frombuffer(buf, dtype=MBO_DTYPE, offset=header_len)


def check_invariants(recs: np.ndarray) -> None:
    """Vectorised stream checks (raises AssertionError): layout constants, F_LAST on each event's
    last record (events = runs of one ``sequence``), non-decreasing timestamps and sequence, and
    every order's lifecycle well formed (first record an add, no duplicate add, cancels within
    the remaining size, no record after its size reaches zero). Book crossing is checked by
    ``verify``."""
    assert (recs["length"] == MBO_LENGTH_WORDS).all() and (recs["rtype"] == MBO_RTYPE).all()
    assert (np.diff(recs["ts_event"].astype(np.int64)) >= 0).all(), "ts_event decreases"
    assert (np.diff(recs["ts_recv"].astype(np.int64)) >= 0).all(), "ts_recv decreases"
    seq = recs["sequence"].astype(np.int64)
    assert (np.diff(seq) >= 0).all(), "sequence decreases"
    flags = recs["flags"]
    last = (flags & F_LAST) != 0
    assert last[-1], "the stream ends inside an event"
    # an event = a run of one sequence number; F_LAST exactly on its last record
    change = np.append(seq[1:] != seq[:-1], True)
    assert (change == last).all(), "F_LAST not on the last record of each event"

    act = recs["action"].view(np.uint8)
    book = np.isin(act, (_A, _C, _M))
    idx = np.nonzero(book)[0]
    oid = recs["order_id"][idx]
    o = np.lexsort((idx, oid))  # per order, in stream order
    idx, oid = idx[o], oid[o]
    a = act[idx]
    first = np.ones(idx.size, dtype=bool)
    first[1:] = oid[1:] != oid[:-1]
    assert (a[first] == _A).all(), "a record names an order before its add"
    assert (a[~first] != _A).all(), "duplicate add"
    size = recs["size"][idx].astype(np.int64)
    # remaining size after each record: reset at adds, -= at cancels, = at modifies
    group = np.cumsum(first) - 1
    is_mod = a == _M
    # piecewise: the last add/modify value before each record minus cancels since it
    anchor = first | is_mod
    anchor_pos = np.maximum.accumulate(np.where(anchor, np.arange(idx.size), 0))
    cancel = np.where(a == _C, size, 0)
    csum = np.cumsum(cancel)
    rem = size[anchor_pos] - (csum - csum[anchor_pos])
    assert (rem >= 0).all(), "a cancel exceeds the remaining size"
    dead = rem == 0
    # nothing follows a record that took the order to zero
    follows = np.zeros(idx.size, dtype=bool)
    follows[:-1] = dead[:-1] & (group[1:] == group[:-1])
    assert not follows.any(), "a record for an order already removed"
    # fills name live orders with their filled size
    fidx = np.nonzero(act == _F)[0]
    if fidx.size:
        assert (recs["size"][fidx] > 0).all()


def verify(data: bytes, max_records: int | None = None) -> tuple[int, int, int, int, int, int]:
    """Decode ``data`` with the official ``databento`` package, replay it through
    ``aurum.testing.reference_book.ReferenceBook`` checking for anomalies and crossed tops at
    every F_LAST, and return the final top (bid_px, bid_sz, bid_ct, ask_px, ask_sz, ask_ct)."""
    import databento as db

    from aurum.testing.reference_book import ReferenceBook

    store = db.DBNStore.from_bytes(io.BytesIO(data))
    book = ReferenceBook()
    iid = None
    for i, rec in enumerate(store):
        if max_records is not None and i >= max_records:
            break
        book.apply(rec)
        iid = rec.instrument_id
        if int(rec.flags) & F_LAST:
            top = book.top(iid)
            if top[0] != UNDEF_PRICE and top[3] != UNDEF_PRICE:
                assert top[0] < top[3], f"crossed book at record {i}: {top}"
    anomalies = book.anomalies()
    assert not anomalies, f"reference book anomalies: {dict(anomalies)}"
    assert iid is not None
    return book.top(iid)


if __name__ == "__main__":  # python -m aurum.testing.synth N [path]
    import sys
    import time

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    t = time.perf_counter()
    blob = synth_mbo(n)
    print(f"{n:,} records, {len(blob):,} bytes in {time.perf_counter() - t:.2f} s")
    if len(sys.argv) > 2:
        write_synth(sys.argv[2], n)
