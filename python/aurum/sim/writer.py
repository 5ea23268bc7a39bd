"""From matched plans to DBN: MBO records, metadata, in-band symbol mappings, the MBP-10 and
trades siblings derived natively from the MBO stream, and the labels sidecar.

File layout for ``--out NAME.dbn.zst`` (``.dbn`` for uncompressed), each a complete DBN v3
stream with its own metadata header, then one SymbolMappingMsg per instrument (as a live
session starts), then the records:

* ``NAME.dbn.zst``          schema ``mbo``: the order-by-order stream (the source of truth);
* ``NAME.mbp-10.dbn.zst``   schema ``mbp-10``; ``NAME.trades.dbn.zst`` schema ``trades``:
  both from ``aurum._native.derive_mbp10_trades`` on the MBO bytes, so the three agree;
* ``NAME.labels.jsonl``     one JSON object per line: a ``meta`` line, then one per planted event.

Record order inside the simulator: every record has ``key = t*8 + prio`` and an event id
(``gid``); classes are built already sorted and merged with one stable sort on ``key``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from aurum.sim.market import BID, INF_KEY, NS, MatchResult, Plan
from aurum.sim.params import GC_TICK, SimParams
from aurum.testing.synth import MBO_DTYPE

UNDEF_PRICE = 2**63 - 1
UNDEF_TS = 2**64 - 1
F_LAST, F_SNAPSHOT, F_BAD_TS_RECV = 0x80, 0x20, 0x08
A_, C_, M_, R_, T_, F_ = (ord(c) for c in "ACMRTF")
_POOL: Any = None


def pool() -> Any:
    """A 2-thread pool for GIL-free numpy work (the machine has 2 cores); created on first use."""
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="aurum-sim")
    return _POOL


def both(f: Any, g: Any) -> tuple[Any, Any]:
    """Run ``g`` on the pool while ``f`` runs here; numpy releases the GIL inside its loops,
    so two array jobs use both cores. Results are identical to running them in sequence."""
    fut = pool().submit(g)
    return f(), fut.result()


# --- the session clock: trading time -> UTC ---------------------------------------------------


class SessionClock:
    """Trading time <-> wall time. The daily 60-minute break is removed from trading time, so
    no generated record can fall in it. ``utc``: 21:00-22:00 UTC (GC's 17:00-18:00 ET break
    under EDT); ``et``: 17:00-18:00 America/New_York with DST (22:00-23:00 UTC in winter)."""

    def __init__(self, start_ns: int, convention: str = "utc", days: int = 400) -> None:
        windows = []
        day0 = dt.datetime.fromtimestamp(start_ns / NS, tz=dt.timezone.utc).date() - dt.timedelta(days=1)
        for d in range(days):
            day = day0 + dt.timedelta(days=d)
            if convention == "et":
                from zoneinfo import ZoneInfo

                local = dt.datetime(day.year, day.month, day.day, 17, tzinfo=ZoneInfo("America/New_York"))
                b0 = int(local.timestamp()) * NS
            else:
                utc = dt.datetime(day.year, day.month, day.day, 21, tzinfo=dt.timezone.utc)
                b0 = int(utc.timestamp()) * NS
            windows.append((b0, b0 + 3600 * NS))
        for b0, b1 in windows:  # a start inside a break waits for the reopen
            if b0 <= start_ns < b1:
                start_ns = b1
        self.start_ns = start_ns
        self.windows = [(b0, b1) for b0, b1 in windows if b1 > start_ns]
        dur = np.array([b1 - b0 for b0, b1 in self.windows], np.int64)
        self.cum = np.concatenate([[0], np.cumsum(dur)])
        wall_b = np.array([b0 for b0, _ in self.windows], np.int64)
        self.active_b = wall_b - start_ns - self.cum[:-1]  # break starts in trading time

    def to_wall(self, t: np.ndarray) -> np.ndarray:
        """Wall-clock ns of trading times ``t`` (int64 array or scalar)."""
        t = np.asarray(t, np.int64)
        if t.ndim and t.size and self.active_b[0] > t.max():
            return self.start_ns + t  # the common case: no break inside the span
        return self.start_ns + t + self.cum[np.searchsorted(self.active_b, t, side="right")]

    def active_span(self, wall_ns: int) -> int:
        """Trading time elapsed between the start and ``start + wall_ns``."""
        end = self.start_ns + wall_ns
        cut = 0
        for b0, b1 in self.windows:
            cut += max(0, min(end, b1) - max(self.start_ns, b0))
        return wall_ns - cut

    def breaks_utc(self, until_ns: int) -> list[tuple[int, int]]:
        return [(b0, b1) for b0, b1 in self.windows if b0 < until_ns]


COLS = ("key", "tick", "size", "action", "side", "ent", "lab", "first", "last")
_DT = {"key": np.int64, "tick": np.int32, "size": np.uint32, "action": np.uint8, "side": np.uint8,
       "ent": np.int64, "lab": np.int32, "first": np.bool_, "last": np.bool_}


def _cls(n: int, gid: Any = None, **cols: Any) -> dict[str, np.ndarray]:
    """One class of records, already in stream order. ``last`` (F_LAST) is decided here, where
    an event is a run of equal (key, gid): no two classes share a key (the prio bits differ),
    so an event never spans classes and the flag survives the merge."""
    out = {c: np.broadcast_to(np.asarray(cols.get(c, 0), _DT[c]), (n,)) for c in COLS if c != "last"}
    last = np.ones(n, bool)
    if gid is not None and n > 1:
        key = out["key"]
        g = np.broadcast_to(np.asarray(gid), (n,))
        last[:-1] = (key[1:] != key[:-1]) | (g[1:] != g[:-1])
    out["last"] = last
    return out


def order_cols(plan: Plan, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each order's side as a DBN char and its entity (an aggressor's remainder shares the
    aggressor's id). Computed once per plan; ``rows``: recompute these (the spare rows the
    matcher filled)."""
    o = plan.orders
    n_o = len(o["key_add"])
    if plan.cols is None:
        plan.cols = (np.where(o["side"] == BID, ord("B"), ord("A")).astype(np.uint8),
                     np.where(o["alias"] >= 0, n_o + o["alias"], np.arange(n_o)))
    if rows is not None and rows.size:
        plan.cols[0][rows] = np.where(o["side"][rows] == BID, ord("B"), ord("A"))
    return plan.cols


def add_records(plan: Plan, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The add events of ``rows`` (default: every order outside the matcher's spare rows, so
    this may run while the matcher fills those in). A ladder shares its batch id = one event."""
    o = plan.orders
    side_c, ent_o = order_cols(plan)
    if rows is None:
        ok = ~o["snap"] & (o["rest_event"] < 0)
        if plan.spare:
            ok[plan.spare[0]:plan.spare[-1] + 1] = False
        rows = np.nonzero(ok)[0]
    a = rows[np.argsort(o["key_add"][rows], kind="stable")]
    return _cls(a.size, gid=o["batch"][a], key=o["key_add"][a], tick=o["tick"][a], size=o["size"][a],
                action=A_, side=side_c[a], ent=ent_o[a], lab=o["lab"][a], first=True)


def instrument_records(plan: Plan, res: MatchResult, adds: dict[str, np.ndarray] | None = None
                       ) -> dict[str, np.ndarray]:
    """All MBO records of one instrument, sorted by key, with ``last`` (F_LAST) set.

    ``ent`` is the entity whose order id the record carries: order ``i`` is ``i``, aggressor
    ``a`` is ``n_orders + a`` (an aggressor's resting remainder shares its id). The snapshot is
    the only event at key 0. ``adds``: ``add_records(plan)``, if already computed."""
    o = plan.orders
    sp = np.array(plan.spare, np.int64)
    sp = sp[o["key_add"][sp] < INF_KEY]  # the spare rows the matcher used for re-added clips
    side_c, ent_o = order_cols(plan, sp)
    parts: list[dict[str, np.ndarray]] = []

    # Snapshot: R then the initial orders in queue order, one event.
    s = np.nonzero(o["snap"])[0]
    snap = _cls(1 + s.size, gid=0, action=A_, first=True, side=np.concatenate([[ord("N")], side_c[s]]),
                tick=np.concatenate([[0], o["tick"][s]]), size=np.concatenate([[0], o["size"][s]]),
                ent=np.concatenate([[-1], ent_o[s]]), lab=np.concatenate([[-1], o["lab"][s]]))
    snap["action"] = snap["action"].copy()
    snap["action"][0] = R_
    snap["first"] = np.concatenate([[False], np.ones(s.size, bool)])
    parts.append(snap)
    parts.append(adds if adds is not None else add_records(plan))
    if sp.size:  # clips the chains added while matching
        parts.append(add_records(plan, sp))
    # Partial cancels (size = quantity removed) and modifies (size = new size): one per event.
    p = np.nonzero(res.p_state == 1)[0]
    p = p[np.argsort(o["key_partial"][p], kind="stable")]
    mod = o["p_mod"][p]
    parts.append(_cls(p.size, gid=p, key=o["key_partial"][p], tick=o["tick"][p],
                      size=np.where(mod, res.p_new[p], o["pq"][p]), action=np.where(mod, M_, C_),
                      side=side_c[p], ent=ent_o[p], lab=o["lab"][p]))
    # Cancels of what is left, for orders no fill took off the book.
    c = np.nonzero((o["key_cancel"] < INF_KEY) & (res.removed == INF_KEY) & (res.rem > 0))[0]
    c = c[np.argsort(o["key_cancel"][c], kind="stable")]
    parts.append(_cls(c.size, gid=o["batch"][c], key=o["key_cancel"][c], tick=o["tick"][c], size=res.rem[c],
                      action=C_, side=side_c[c], ent=ent_o[c], lab=o["lab"][c]))
    parts.append(_trade_records(plan, res, side_c, ent_o))

    key = np.concatenate([pt["key"] for pt in parts])
    order = np.argsort(key, kind="stable")  # classes are sorted runs: a cheap merge

    def gather(cols: tuple[str, ...]) -> dict[str, np.ndarray]:
        return {c_: np.concatenate([pt[c_] for pt in parts])[order] for c_ in cols}

    half = ("tick", "size", "action", "side")
    others = tuple(c_ for c_ in COLS if c_ not in half and c_ != "key")
    out, rest = both(lambda: gather(half), lambda: gather(others))
    out.update(rest)
    out["key"] = key[order]
    return out


def _trade_records(plan: Plan, res: MatchResult, side_c: np.ndarray, ent_o: np.ndarray
                   ) -> dict[str, np.ndarray]:
    """T per (aggressor, level) with fills, its F records, the aggressor's resting remainder (A),
    then the C/M book updates: one event per aggressor event, in CME/Databento order."""
    o, e, ev, ag = plan.orders, plan.entries, plan.events, plan.aggrs
    n_o = len(o["key_add"])
    ne = len(e["key"])
    tot = np.bincount(res.fill_entry, weights=res.fill_qty, minlength=ne).astype(np.int64)
    te = np.nonzero(tot > 0)[0]
    rest = np.nonzero(o["rest_event"] >= 0)[0]
    fe, fo = res.fill_entry, res.fill_order
    ue, uo = res.upd_entry, res.upd_order
    rank_shift, stage_shift = 40, 50
    # Position inside the event: stage (T+F, remainder A, updates), level rank, list order.
    within = np.concatenate([
        e["rank"][te] << rank_shift,
        (e["rank"][fe] << rank_shift) + 1 + np.arange(fe.size),
        np.full(rest.size, np.int64(1) << stage_shift),
        (np.int64(2) << stage_shift) + (e["rank"][ue] << rank_shift) + np.arange(ue.size)])
    event = np.concatenate([e["event"][te], e["event"][fe], o["rest_event"][rest], e["event"][ue]])
    ev_key = ev["key"][event]
    order = np.lexsort((within, event, ev_key))

    def col(*xs: Any) -> np.ndarray:
        return np.concatenate([np.broadcast_to(np.asarray(x), (n,)) for x, n in
                               zip(xs, (te.size, fe.size, rest.size, ue.size))])[order]

    event = event[order]
    rec = _cls(order.size, gid=event, key=ev_key[order],
               tick=col(e["tick"][te], o["tick"][fo], o["tick"][rest], o["tick"][uo]),
               size=col(tot[te], res.fill_qty, o["size"][rest], res.upd_size),
               action=col(T_, F_, A_, res.upd_action),
               side=col(np.where(ev["aside"][e["event"][te]] == BID, ord("B"), ord("A")), side_c[fo],
                        side_c[rest], side_c[uo]),
               ent=col(n_o + e["aggr"][te], ent_o[fo], ent_o[rest], ent_o[uo]),
               lab=col(ag["lab"][e["aggr"][te]], o["lab"][fo], o["lab"][rest], o["lab"][uo]))
    # The aggressor's first record (a T, or its remainder's A when nothing traded) gets the id.
    agg = np.nonzero((rec["action"] == T_) | (rec["action"] == A_))[0]
    first = np.zeros(order.size, bool)
    if agg.size:
        _, at = np.unique(rec["ent"][agg], return_index=True)
        first[agg[at]] = True
    rec["first"] = first
    return rec


def merge(recs: list[dict[str, np.ndarray]], n_ents: list[int]) -> dict[str, np.ndarray]:
    """One stream from several instruments: stable merge on key keeps each event contiguous.
    ``gent`` is a global entity (instrument offsets added); ``inst`` the instrument index."""
    if len(recs) == 1:  # nothing to merge: no copies
        out = dict(recs[0])
        out["gent"] = out["ent"]
        out["inst"] = np.zeros(1, np.int32)  # broadcast by to_mbo
        return out
    offs = np.concatenate([[0], np.cumsum(n_ents)[:-1]])
    out = {c: np.concatenate([r[c] for r in recs]) for c in COLS}
    out["inst"] = np.concatenate([np.full(r["key"].size, i, np.int32) for i, r in enumerate(recs)])
    out["gent"] = np.concatenate([np.where(r["ent"] >= 0, r["ent"] + offs[i], -1)
                                  for i, r in enumerate(recs)])
    order = np.argsort(out["key"], kind="stable")
    return {c: v[order] for c, v in out.items()}


def to_mbo(m: dict[str, np.ndarray], p: SimParams, ids: tuple[int, ...], wall: Any,
           rng: np.random.Generator, n_ents: int) -> tuple[np.ndarray, np.ndarray]:
    """The DBN MboMsg array of a merged stream, and the order id of every entity.

    The 56-byte record is seven little-endian u64 words, written as whole columns (one
    strided pass per word instead of one per field):
    0 length|rtype|publisher|instrument, 1 ts_event, 2 order_id, 3 price,
    4 size|flags|channel|action|side, 5 ts_recv, 6 ts_in_delta|sequence."""
    n = m["key"].size
    u64 = np.uint64
    # Order ids grow in the order entities first appear (CME ids increase with time); the
    # extra last slot is id 0 for the R record (entity -1).
    first = np.nonzero(m["first"])[0]
    last = m["last"]
    ev_start = np.empty(n, bool)
    ev_start[0] = True
    ev_start[1:] = last[:-1]
    ev_idx = np.cumsum(ev_start, dtype=np.int64) - 1
    n_ev = int(ev_idx[-1]) + 1 if n else 0
    n_snap = int(np.searchsorted(m["key"], 1))  # the snapshots are the key-0 prefix
    # Every random draw happens here, in one order, before the two threads start.
    id_steps = rng.integers(1, 12, first.size, dtype=np.uint8)  # small dtypes draw faster
    lat = rng.integers(12_000, 57_000, n_ev, dtype=np.uint16)
    delta = rng.integers(3_000, 25_000, n_ev, dtype=np.uint16)
    if n_snap:
        lat[: ev_idx[n_snap - 1] + 1] = 0  # snapshot records carry the snapshot time
    idmap = np.zeros(n_ents + 1, u64)
    idmap[m["gent"][first]] = np.cumsum(id_steps, dtype=u64) + u64(6_500_000_000_000)
    words = np.empty((n, 7), u64)

    def times_ids() -> None:
        ts = wall(m["key"] >> 3)
        words[:, 1] = ts
        ts += lat[ev_idx]
        words[:, 5] = np.maximum.accumulate(ts)
        w6 = np.empty(n, [("delta", "<i4"), ("seq", "<u4")])  # ts_in_delta | sequence
        w6["delta"] = delta[ev_idx]
        w6["seq"] = ev_idx + p.first_sequence
        words[:, 6] = w6.view(u64)

    def fields() -> None:
        words[:, 2] = idmap[m["gent"]]  # a random gather: here, to balance the two threads
        head = (np.asarray(ids, u64) << u64(32)) | u64(14 | 0xA0 << 8 | p.publisher_id << 16)
        words[:, 0] = head[m["inst"]] if m["inst"].size == n else head[0]
        price = m["tick"].astype(np.int64)
        price *= GC_TICK
        price[:n_snap][m["action"][:n_snap] == R_] = UNDEF_PRICE
        words[:, 3] = price.view(u64)
        w4 = np.empty(n, [("size", "<u4"), ("flags", "u1"), ("channel", "u1"), ("action", "u1"),
                          ("side", "u1")])
        w4["size"] = m["size"]
        flags = last.view(np.uint8) << 7  # F_LAST
        flags[:n_snap] |= F_SNAPSHOT | F_BAD_TS_RECV
        w4["flags"] = flags
        w4["channel"] = p.channel_id
        w4["action"] = m["action"]
        w4["side"] = m["side"]
        words[:, 4] = w4.view(u64)

    both(times_ids, fields)
    return words.view(MBO_DTYPE).reshape(n), idmap


# --- DBN encoding ------------------------------------------------------------------------------


def metadata_bytes(schema: str | None, symbols: tuple[str, ...], ids: tuple[int, ...], start_ns: int,
                   end_ns: int) -> bytes:
    """A DBN v3 GLBX.MDP3 header: raw symbols mapped to instrument ids for the dates spanned
    (``schema`` None: a mixed stream)."""
    import databento_dbn as dbn

    d0 = dt.datetime.fromtimestamp(start_ns / 1e9, tz=dt.timezone.utc).date()
    d1 = dt.datetime.fromtimestamp(end_ns / 1e9, tz=dt.timezone.utc).date() + dt.timedelta(days=1)
    mappings = [SimpleNamespace(raw_symbol=s,
                                intervals=[SimpleNamespace(start_date=d0, end_date=d1, symbol=str(i))])
                for s, i in zip(symbols, ids)]
    meta = dbn.Metadata(dataset="GLBX.MDP3", start=int(start_ns), stype_in=dbn.SType.RAW_SYMBOL,
                        stype_out=dbn.SType.INSTRUMENT_ID,
                        schema=None if schema is None else dbn.Schema.from_str(schema),
                        symbols=list(symbols), partial=[], not_found=[], mappings=mappings,
                        end=int(end_ns), version=3)
    return bytes(meta.encode())


def symbol_mapping_bytes(symbols: tuple[str, ...], ids: tuple[int, ...], start_ns: int) -> bytes:
    """In-band SymbolMappingMsg records, as at the start of a live session (publisher_id 0 and
    open-ended intervals, like Databento's live gateway sends them)."""
    import databento_dbn as dbn

    out = b""
    for s, i in zip(symbols, ids):
        rec = dbn.SymbolMappingMsg(0, i, start_ns, dbn.SType.RAW_SYMBOL, s, dbn.SType.RAW_SYMBOL, s,
                                   UNDEF_TS, UNDEF_TS)
        out += bytes(rec)
    return out


def sibling_paths(out: str | os.PathLike[str]) -> dict[str, Path]:
    """``x.dbn.zst`` -> {mbo: x.dbn.zst, mbp-10: x.mbp-10.dbn.zst, trades: ..., labels: x.labels.jsonl}."""
    path = Path(out)
    name = path.name
    for suffix in (".dbn.zst", ".dbn"):
        if name.endswith(suffix):
            stem, ext = name[: -len(suffix)], suffix
            break
    else:
        raise ValueError(f"output must end in .dbn or .dbn.zst, got {name!r}")
    if stem.endswith(".mbo"):
        stem = stem[:-4]
    d = path.parent
    return {"mbo": path, "mbp-10": d / f"{stem}.mbp-10{ext}", "trades": d / f"{stem}.trades{ext}",
            "labels": d / f"{stem}.labels.jsonl"}


def encode_files(mbo: np.ndarray, p: SimParams, start_ns: int) -> dict[str, bytes]:
    """Uncompressed DBN bytes of the three schemas (MBP-10 and trades derived natively)."""
    from aurum import _native

    ids = p.ids()
    end_ns = int(mbo["ts_event"][-1]) + 1 if mbo.size else start_ns + 1
    sm = symbol_mapping_bytes(p.symbols, ids, start_ns) if p.inband_mappings else b""

    def head(schema: str) -> bytes:
        return metadata_bytes(None if p.inband_mappings else schema, p.symbols, ids, start_ns, end_ns) + sm

    mbo_bytes = head("mbo") + mbo.tobytes()
    mbp10, trades = _native.derive_mbp10_trades(mbo_bytes)
    return {"mbo": mbo_bytes, "mbp-10": head("mbp-10") + bytes(mbp10),
            "trades": head("trades") + bytes(trades)}


def write_files(paths: dict[str, Path], blobs: dict[str, bytes], labels: list[dict[str, Any]],
                meta: dict[str, Any], level: int = 3) -> dict[str, int]:
    """Write the DBN files (zstd when the name ends in .zst) and the labels; returns sizes."""
    sizes: dict[str, int] = {}
    for schema, data in blobs.items():
        path = paths[schema]
        if path.name.endswith(".zst"):
            import zstandard

            # Single-threaded on purpose: identical bytes for one seed on any machine.
            data = zstandard.ZstdCompressor(level=level).compress(data)
        path.write_bytes(data)
        sizes[schema] = len(data)
    with open(paths["labels"], "w", encoding="utf-8") as fh:
        fh.write(json.dumps(meta, sort_keys=True) + "\n")
        for lab in labels:
            fh.write(json.dumps(lab, sort_keys=True) + "\n")
    sizes["labels"] = paths["labels"].stat().st_size
    return sizes
