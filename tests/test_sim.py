"""``aurum sim``: decoding, book invariants, schema agreement, labels against the stream,
determinism, scenarios, the daily break and the CLI.

Every check reads the files back (official ``databento`` and the native decoder) rather than
trusting the simulator's internals.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import subprocess
import sys
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Any

import databento as db
import numpy as np
import pytest

from aurum import _native
from aurum.rings import RingReader
from aurum.sim import SCENARIOS, run_to_files, scenario_params, simulate
from aurum.sim.writer import encode_files, sibling_paths
from aurum.testing.reference_book import ReferenceBook
from aurum.testing.synth import check_invariants

UNDEF = 2**63 - 1
F_LAST = 0x80
GC_TICK = 100_000_000


def _files_equal(a: dict[str, str], b: dict[str, str]) -> bool:
    return all(Path(a[k]).read_bytes() == Path(b[k]).read_bytes() for k in a)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A two-contract mixed session with every planted kind, written to disk."""
    d = tmp_path_factory.mktemp("sim")
    result, summary = run_to_files("mixed", d / "s.dbn.zst", seed=12, records=150_000,
                                   symbols=("GCZ6", "GCG7"), native_icebergs_per_h=40.0,
                                   synthetic_icebergs_per_h=40.0, absorptions_per_h=30.0,
                                   sweeps_per_h=200.0, stop_runs_per_h=100.0, spoofs_per_h=80.0)
    paths = summary["paths"]
    mbo = db.DBNStore.from_file(paths["mbo"]).to_ndarray(schema="mbo")
    labels = [json.loads(line) for line in Path(paths["labels"]).read_text().splitlines()]
    return {"result": result, "summary": summary, "paths": paths, "mbo": mbo,
            "meta": labels[0], "labels": labels[1:]}


def _events(mbo: np.ndarray) -> list[np.ndarray]:
    """Record index ranges of each event (runs ending at F_LAST)."""
    ends = np.nonzero(mbo["flags"] & F_LAST)[0]
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [np.arange(s, e + 1) for s, e in zip(starts, ends)]


# --- files and decoding --------------------------------------------------------------------------


def test_files_decode_with_databento_and_native(mixed: dict[str, Any]) -> None:
    paths, counts = mixed["paths"], mixed["summary"]["counts"]
    assert set(paths) == {"mbo", "mbp-10", "trades", "labels"}
    assert Path(paths["mbp-10"]).name == "s.mbp-10.dbn.zst" and Path(paths["labels"]).name == "s.labels.jsonl"
    ids = scenario_params("mixed", symbols=("GCZ6", "GCG7")).ids()
    for kind, schema, rtype in (("mbo", "mbo", 0xA0), ("mbp-10", "mbp-10", 0x0A), ("trades", "trades", 0x00)):
        store = db.DBNStore.from_file(paths[kind])
        assert store.metadata.version == 3 and store.metadata.dataset == "GLBX.MDP3"
        assert store.schema is None  # in-band mappings + one market schema = a mixed stream
        assert store.metadata.symbols == ["GCZ6", "GCG7"]
        assert {s: m[0]["symbol"] for s, m in store.metadata.mappings.items()} == {
            "GCZ6": str(ids[0]), "GCG7": str(ids[1])}
        recs = list(store)
        # The live-session prologue: one SymbolMappingMsg per instrument, first.
        assert [type(r).__name__ for r in recs[:2]] == ["SymbolMappingMsg", "SymbolMappingMsg"]
        assert {r.instrument_id: r.stype_out_symbol for r in recs[:2]} == {ids[0]: "GCZ6", ids[1]: "GCG7"}
        assert len(recs) - 2 == counts[kind] == len(store.to_ndarray(schema=schema))
        assert all(int(r.rtype) == rtype for r in recs[2:])

        p = _native.Pipeline()
        f = _native.DbnFile(paths[kind])
        while p.feed_file(f):
            pass
        p.finish()
        st = p.stats()
        assert st["records_total"] == counts[kind] + 2 and st["error_count"] == 0 and p.failed is None
        assert st["unknown_rtypes"] == 0
        assert p.instruments() == {ids[0]: "GCZ6", ids[1]: "GCG7"}
        if kind == "mbo":
            assert all(v == 0 for v in st["mbo_anomalies"].values()), st["mbo_anomalies"]
            assert st["trades"] == int((mixed["mbo"]["action"] == b"T").sum())


def test_homogeneous_files_without_inband_mappings(tmp_path: Path) -> None:
    _, summary = run_to_files("quiet", tmp_path / "h.dbn", seed=1, records=5_000, inband_mappings=False)
    for kind, schema in (("mbo", "mbo"), ("mbp-10", "mbp-10"), ("trades", "trades")):
        store = db.DBNStore.from_file(summary["paths"][kind])
        assert str(store.schema) == schema
        assert len(store.to_ndarray()) == summary["counts"][kind]  # the fast path needs one rtype


def test_stream_structure(mixed: dict[str, Any]) -> None:
    mbo = mixed["mbo"]
    recs = mixed["result"].mbo
    assert bytes(recs.tobytes()) == bytes(mbo.tobytes())  # what databento reads is what we built
    # F_LAST closes each event, timestamps and sequence never decrease, no order is touched
    # before its add or after it left, no cancel exceeds the size (sizes never go negative).
    check_invariants(recs)
    # Snapshot first: R then adds, flags F_SNAPSHOT|F_BAD_TS_RECV, per instrument.
    assert recs["action"][0] == b"R" and recs["flags"][0] & 0x28 == 0x28
    assert (recs["action"] == b"R").sum() == 2
    assert (recs["price"] % GC_TICK == 0)[recs["action"] != b"R"].all()
    assert ((recs["ts_recv"] >= recs["ts_event"]) | (recs["flags"] & 0x20 > 0)).all()
    # Batching: besides trade events, some events carry several adds (a ladder) or several
    # cancels (the ladder pulled), one sequence number and F_LAST only on the last record.
    seq, act = recs["sequence"].astype(np.int64), recs["action"]
    for code in (b"A", b"C"):
        only = np.bincount(seq[act == code] - seq[0], minlength=int(seq[-1] - seq[0]) + 1)
        size = np.bincount(seq - seq[0])
        multi = (only >= 2) & (only == size[: only.size])  # events made only of that action
        assert multi[1:].sum() > 100, code  # (index 0 is the snapshot)


def test_trade_events_look_like_glbx(mixed: dict[str, Any]) -> None:
    """T (aggressor side), then F per resting order (resting side, filled size), then the C/M
    book updates; F_LAST on the last record; every F matched by a C or M of its order."""
    mbo = mixed["mbo"]
    act = mbo["action"]
    n_trade_events = 0
    for ev in _events(mbo):
        a = act[ev]
        if b"T" not in a:
            continue
        n_trade_events += 1
        assert a[0] == b"T"
        kinds = [x for x in a.tolist()]
        # stage order: T/F block(s), then an optional A (aggressor remainder), then C/M only
        first_upd = next((i for i, x in enumerate(kinds) if x in (b"C", b"M")), len(kinds))
        assert set(kinds[:first_upd]) <= {b"T", b"F", b"A"} and set(kinds[first_upd:]) <= {b"C", b"M"}
        t_side = mbo["side"][ev][a == b"T"]
        f_side = mbo["side"][ev][a == b"F"]
        assert (f_side != t_side[0]).all() and (t_side == t_side[0]).all()
        assert mbo["size"][ev][a == b"T"].sum() == mbo["size"][ev][a == b"F"].sum()
        f_ids = set(mbo["order_id"][ev][a == b"F"].tolist())
        u_ids = set(mbo["order_id"][ev][(a == b"C") | (a == b"M")].tolist())
        assert f_ids == u_ids
        assert len(set(mbo["ts_event"][ev].tolist())) == 1
    assert n_trade_events > 500


# --- book invariants -----------------------------------------------------------------------------


def test_native_book_never_crosses_and_mbp10_trades_agree(mixed: dict[str, Any]) -> None:
    paths, mbo = mixed["paths"], mixed["mbo"]
    p = _native.Pipeline(top_capacity=1 << 20, trade_capacity=1 << 18)
    f = _native.DbnFile(paths["mbo"])
    while p.feed_file(f):
        pass
    p.finish()
    batch = RingReader(p, "tops").poll()
    tops = batch.records.copy()
    assert batch.lost == 0 and len(tops) > 1000
    both = (tops["bid_px"] != UNDEF) & (tops["ask_px"] != UNDEF)
    assert both.mean() > 0.99
    assert (tops["bid_px"][both] < tops["ask_px"][both]).all(), "crossed book at an F_LAST"
    assert (tops["bid_sz"][tops["bid_px"] != UNDEF] > 0).all()
    assert (tops["ask_sz"][tops["ask_px"] != UNDEF] > 0).all()

    # Trades file == the MBO T records, one for one.
    trades = db.DBNStore.from_file(paths["trades"]).to_ndarray(schema="trades")
    t = mbo[mbo["action"] == b"T"]
    assert len(trades) == len(t) and trades["size"].sum() == t["size"].sum()
    for name in ("price", "size", "side", "ts_event", "instrument_id", "sequence"):
        assert (trades[name] == t[name]).all(), name

    # MBP-10 after each event == the L3 book top as of that event, per instrument.
    mbp = db.DBNStore.from_file(paths["mbp-10"]).to_ndarray(schema="mbp-10")
    mbp = mbp[(mbp["flags"] & F_LAST) > 0]
    for iid in np.unique(mbo["instrument_id"]):
        tp = tops[tops["instrument_id"] == iid]
        mp = mbp[mbp["instrument_id"] == iid]
        assert len(mp) >= len(tp) > 100
        at = np.searchsorted(tp["sequence"], mp["sequence"], side="right") - 1
        assert (at >= 0).all()
        for ours, theirs in (("bid_px", "bid_px_00"), ("ask_px", "ask_px_00"), ("bid_sz", "bid_sz_00"),
                             ("ask_sz", "ask_sz_00"), ("bid_ct", "bid_ct_00"), ("ask_ct", "ask_ct_00")):
            assert (tp[ours][at].astype(np.int64) == mp[theirs].astype(np.int64)).all(), ours
        assert set(tp["sequence"].tolist()) <= set(mp["sequence"].tolist())  # every top change is there


def test_reference_book_at_every_event(tmp_path: Path) -> None:
    """The official decoder + the Python reference book: never crossed at any F_LAST, no
    anomaly (no unknown order, no over-cancel), and the same final top as the native book."""
    result, summary = run_to_files("mixed", tmp_path / "r.dbn", seed=5, records=40_000,
                                   native_icebergs_per_h=120.0, sweeps_per_h=120.0, warmup_s=1.0)
    book = ReferenceBook()
    checked = 0
    for rec in db.DBNStore.from_file(summary["paths"]["mbo"]):
        book.apply(rec)
        if int(rec.rtype) == 0xA0 and int(rec.flags) & F_LAST:
            bid, _, _, ask, _, _ = book.top(rec.instrument_id)
            assert bid == UNDEF or ask == UNDEF or bid < ask
            checked += 1
    assert not book.anomalies(), dict(book.anomalies())
    for b in book.books.values():
        b.check_invariants()
    p = _native.Pipeline()
    p.feed(Path(summary["paths"]["mbo"]).read_bytes())
    iid = result.params.ids()[0]
    assert p.book_top(iid) == book.top(iid) and checked > 10_000


def test_fills_follow_fifo_queue_priority(mixed: dict[str, Any]) -> None:
    """Each F takes the order at the front of its price level, in time priority. A native
    iceberg that is refilled goes to the back of the queue (CME display-quantity rule)."""
    mbo = mixed["mbo"]
    clip = {lab["order_id"]: lab["display_qty"] for lab in mixed["labels"] if lab["kind"] == "native_iceberg"}
    queues: dict[tuple[int, bytes, int], OrderedDict[int, int]] = defaultdict(OrderedDict)
    where: dict[int, tuple[int, bytes, int]] = {}
    act, oid, px, sz, side, iid = (mbo[c].tolist() for c in ("action", "order_id", "price", "size", "side",
                                                             "instrument_id"))
    n_f = 0
    for ev in _events(mbo):
        virtual: dict[tuple[int, bytes, int], list[list[int]]] = {}
        for i in ev.tolist():
            a = act[i]
            if a == b"F":
                n_f += 1
                lvl = (iid[i], side[i], px[i])
                q = virtual.setdefault(lvl, [[o, s] for o, s in queues[lvl].items()])
                assert q and q[0][0] == oid[i], f"F for {oid[i]} is not at the front of its queue"
                q[0][1] -= sz[i]
                assert q[0][1] >= 0
                if q[0][1] == 0:
                    done = q.pop(0)
                    if done[0] in clip:  # a refill (if any) re-enters at the back
                        q.append([done[0], clip[done[0]]])
            elif a in (b"A", b"C", b"M", b"R"):
                if a == b"R":
                    for lvl in [k for k in queues if k[0] == iid[i]]:
                        for o in queues[lvl]:
                            where.pop(o, None)
                        del queues[lvl]
                elif a == b"A":
                    lvl = (iid[i], side[i], px[i])
                    queues[lvl][oid[i]] = sz[i]
                    where[oid[i]] = lvl
                elif a == b"C":
                    lvl = where[oid[i]]
                    left = queues[lvl][oid[i]] - sz[i]
                    if left == 0:
                        del queues[lvl][oid[i]]
                        del where[oid[i]]
                    else:
                        queues[lvl][oid[i]] = left
                else:  # M: same price; a refill or a size increase goes to the back
                    lvl = where[oid[i]]
                    refill = oid[i] in clip and any(act[j] == b"F" and oid[j] == oid[i] for j in ev.tolist())
                    if refill or sz[i] > queues[lvl][oid[i]]:
                        del queues[lvl][oid[i]]
                    queues[lvl][oid[i]] = sz[i]
    assert n_f > 2000


# --- labels ----------------------------------------------------------------------------------------


def _by_order(mbo: np.ndarray) -> dict[int, np.ndarray]:
    """order id -> its record indices, in stream order."""
    idx = np.argsort(mbo["order_id"], kind="stable")
    ids = mbo["order_id"][idx]
    starts = np.concatenate([[0], np.nonzero(np.diff(ids))[0] + 1])
    return {int(ids[s]): g for s, g in zip(starts, np.split(idx, starts[1:]))}


def test_labels_match_the_stream(mixed: dict[str, Any]) -> None:
    mbo, labels = mixed["mbo"], mixed["labels"]
    kinds = {lab["kind"] for lab in labels}
    assert kinds == {"native_iceberg", "synthetic_iceberg", "absorption", "sweep", "stop_run", "spoof"}
    assert mixed["meta"]["label_counts"] == {k: sum(lab["kind"] == k for lab in labels) for k in kinds}
    rows = _by_order(mbo)
    act, seq = mbo["action"], mbo["sequence"]
    for lab in labels:
        assert lab["price"] % GC_TICK == 0 and lab["ts_start"] <= lab["ts_end"]
        kind = lab["kind"]
        if kind == "native_iceberg":
            r = rows[lab["order_id"]]
            a = act[r]
            assert a[0] == b"A" and mbo["size"][r[0]] == lab["display_qty"]
            assert (mbo["price"][r] == lab["price"]).all()
            fills = r[a == b"F"]
            assert mbo["size"][fills].sum() == lab["filled_qty"] <= lab["total_qty"]
            refill_ms = r[a == b"M"]
            assert len(refill_ms) == lab["refill_records"] <= lab["refills"]
            for m in refill_ms:  # the refill M comes after an F of the same order, in its event
                assert any(act[f] == b"F" and seq[f] == seq[m] and f < m for f in fills)
            clip, refills = lab["display_qty"], lab["refills"]
            assert clip * refills <= lab["filled_qty"] <= clip * (refills + 1)
            assert lab["hidden_filled_qty"] == max(0, lab["filled_qty"] - clip)
            if lab["end_reason"] == "exhausted":
                assert lab["filled_qty"] == lab["total_qty"] and a[-1] == b"C"
            if lab["end_reason"] == "cancelled":
                assert a[-1] == b"C" and not (act[seq == seq[r[-1]]] == b"F").any()
        elif kind == "synthetic_iceberg":
            ids = lab["order_ids"]
            assert len(set(ids)) == len(ids) >= 1
            prev_gone = None
            for oid in ids:
                r = rows[oid]
                assert act[r[0]] == b"A" and mbo["size"][r[0]] == lab["clip"]
                assert mbo["price"][r[0]] == lab["price"]
                if prev_gone is not None:  # re-added about 1 ms after the previous clip filled
                    gap = int(mbo["ts_event"][r[0]]) - prev_gone
                    assert 500_000 <= gap <= 2_000_000, gap
                fully_filled = mbo["size"][r][act[r] == b"F"].sum() == lab["clip"]
                prev_gone = int(mbo["ts_event"][r[-1]]) if fully_filled else None
        elif kind == "absorption":
            w = (mbo["ts_event"] >= lab["ts_start"]) & (mbo["ts_event"] <= lab["ts_end"]) & \
                (mbo["instrument_id"] == lab["instrument_id"]) & (act == b"T")
            aggr = b"A" if lab["side"] == "B" else b"B"
            at = w & (mbo["price"] == lab["price"]) & (mbo["side"] == aggr)
            assert mbo["size"][at].sum() == lab["aggressor_volume"] > 0
            beyond = w & (mbo["side"] == aggr) & ((mbo["price"] < lab["price"]) if lab["side"] == "B"
                                                  else (mbo["price"] > lab["price"]))
            assert lab["held"] and not beyond.any()  # the level held: nothing traded through it
            for oid in lab["order_ids"]:
                assert mbo["price"][rows[oid][0]] == lab["price"]
        elif kind in ("sweep", "stop_run"):
            same = (mbo["ts_event"] == lab["ts_end"]) & (mbo["instrument_id"] == lab["instrument_id"])
            ev = np.nonzero(same)[0]
            t = ev[act[ev] == b"T"]
            aggr_ids = list(dict.fromkeys(mbo["order_id"][t].tolist()))
            assert aggr_ids == lab["aggressor_order_ids"] and len(set(seq[ev].tolist())) == 1
            prices = sorted(set(mbo["price"][t].tolist()))
            assert prices == lab["prices"] and lab["levels_cleared"] == len(prices) >= 2
            assert (mbo["side"][t] == lab["aggressor_side"].encode()).all()
            # every swept level is empty afterwards: all its resting orders are taken off
            resting = b"A" if lab["aggressor_side"] == "B" else b"B"
            filled = set(mbo["order_id"][ev][act[ev] == b"F"].tolist())
            for oid in filled:
                r = rows[oid]
                assert act[r[-1]] == b"C" and r[-1] in ev
            assert (mbo["side"][ev][act[ev] == b"F"] == resting).all()
            if kind == "stop_run":
                assert len(aggr_ids) >= 2 and lab["stop_order_ids"] == aggr_ids[1:]
                assert len(prices) >= 3
        elif kind == "spoof":
            r = rows[lab["order_id"]]
            assert act[r].tolist() == [b"A", b"C"]  # pulled, never traded
            assert mbo["size"][r[0]] == mbo["size"][r[1]] == lab["size"]
            assert mbo["ts_event"][r[1]] == lab["ts_end"] and lab["end_reason"] == "cancelled"


def test_iceberg_hidden_fills_inside_one_event(tmp_path: Path) -> None:
    """An aggressor larger than the clip takes several refills in one event: several F for one
    order id whose sum exceeds the size displayed when the event began."""
    result = simulate(scenario_params("icebergs", seed=3, records=200_000, synthetic_icebergs_per_h=0.0))
    mbo = result.mbo
    ice = {lab["order_id"]: lab for lab in result.labels if lab["kind"] == "native_iceberg"}
    assert len(ice) >= 5 and any(lab["max_fills_in_event"] >= 2 for lab in ice.values())
    assert any(lab["end_reason"] == "exhausted" for lab in ice.values())
    # Big reserves and little aggression: the icebergs are pulled when their episode ends.
    pulled = simulate(scenario_params("icebergs", seed=3, records=60_000, synthetic_icebergs_per_h=0.0,
                                      iceberg_exhaust_prob=0.0, episode_aggr_rate=0.2,
                                      iceberg_tranches=(40, 60)))
    labs = [lab for lab in pulled.labels if lab["kind"] == "native_iceberg" and lab["complete"]]
    assert labs and all(lab["end_reason"] == "cancelled" for lab in labs)
    for lab in labs:
        r = np.nonzero(pulled.mbo["order_id"] == lab["order_id"])[0]
        last = pulled.mbo[r[-1]]
        assert last["action"] == b"C" and last["ts_event"] == lab["ts_end"]
        assert not ((pulled.mbo["sequence"] == last["sequence"]) & (pulled.mbo["action"] == b"F")).any()
    multi = 0
    for oid in ice:
        r = np.nonzero(mbo["order_id"] == oid)[0]
        shown = 0  # size on the book (as MBO shows it) before each event
        i = 0
        while i < r.size:
            seq = mbo["sequence"][r[i]]
            j = i
            while j < r.size and mbo["sequence"][r[j]] == seq:
                j += 1
            ev = mbo[r[i:j]]
            fills = ev["size"][ev["action"] == b"F"]
            if fills.size >= 2:  # several refills consumed by one aggressor
                multi += 1
                assert fills.sum() > shown
            for rec in ev:
                if rec["action"] in (b"A", b"M"):
                    shown = int(rec["size"])
                elif rec["action"] == b"C":
                    shown -= int(rec["size"])
            assert shown >= 0
            i = j
    assert multi > 0


# --- determinism, scenarios, clock, cli ------------------------------------------------------------


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    kw = dict(seed=42, records=30_000, symbols=("GCZ6", "GCG7"))
    _, a = run_to_files("mixed", tmp_path / "a.dbn.zst", **kw)
    _, b = run_to_files("mixed", tmp_path / "b.dbn.zst", **kw)
    assert _files_equal({k: v for k, v in a["paths"].items() if k != "labels"},
                        {k: v for k, v in b["paths"].items() if k != "labels"})
    la = [json.loads(x) for x in Path(a["paths"]["labels"]).read_text().splitlines()]
    lb = [json.loads(x) for x in Path(b["paths"]["labels"]).read_text().splitlines()]
    assert la[1:] == lb[1:]
    _, c = run_to_files("mixed", tmp_path / "c.dbn.zst", **{**kw, "seed": 43})
    assert Path(c["paths"]["mbo"]).read_bytes() != Path(a["paths"]["mbo"]).read_bytes()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios(name: str) -> None:
    n = 150_000 if name == "trend" else 60_000  # a drift needs a few minutes to beat the noise
    result = simulate(scenario_params(name, seed=9, records=n))
    kinds = {lab["kind"] for lab in result.labels}
    expect = {"quiet": {"spoof"}, "trend": {"sweep"}, "icebergs": {"native_iceberg", "synthetic_iceberg"},
              "absorption": {"absorption"}, "sweeps": {"sweep", "stop_run"}, "mixed": set()}[name]
    assert expect <= kinds, kinds
    if name == "mixed":  # two minutes of trading hold a few of the six kinds
        assert len(kinds) >= 2
    if name == "quiet":
        assert kinds <= {"spoof"}
    mbo = result.mbo
    assert n - 100 <= len(mbo) <= n
    if name == "trend":
        t = mbo[mbo["action"] == b"T"]
        assert t["price"][-50:].mean() > t["price"][:50].mean() + 10 * GC_TICK  # it trended up
        assert (t["side"] == b"B").mean() > 0.55


def test_fast_and_quiet_regimes_differ() -> None:
    result = simulate(scenario_params("mixed", seed=4, duration_s=1800.0, records=None, quiet_mean_s=120.0,
                                      fast_mean_s=120.0, fast_rate_mult=4.0))
    ts = result.mbo["ts_event"].astype(np.int64)
    per_10s = np.bincount((ts - ts[0]) // 10_000_000_000)
    assert np.percentile(per_10s, 90) > 2.0 * np.percentile(per_10s, 10)


def test_daily_break_has_no_records() -> None:
    p = scenario_params("quiet", seed=2, start="2026-09-15T20:40:00Z", duration_s=2 * 3600.0, records=None)
    result = simulate(p)
    ts = result.mbo["ts_event"].astype(np.int64)
    b0 = int(dt.datetime(2026, 9, 15, 21, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    assert result.breaks == [(b0, b0 + 3600 * 10**9)]
    assert not ((ts >= b0) & (ts < b0 + 3600 * 10**9)).any()
    assert (ts < b0).sum() > 1000 and (ts >= b0 + 3600 * 10**9).sum() > 1000
    assert b0 + 5900 * 10**9 < ts[-1] < b0 + 6000 * 10**9  # 20:40 + 2 h of wall clock = 22:40
    # New York convention in winter (EST): the break is 22:00-23:00 UTC.
    w = simulate(scenario_params("quiet", seed=2, start="2026-12-01T21:30:00Z", duration_s=7200.0,
                                 records=None, session_break="et"))
    b1 = int(dt.datetime(2026, 12, 1, 22, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    wt = w.mbo["ts_event"].astype(np.int64)
    assert w.breaks == [(b1, b1 + 3600 * 10**9)] and not ((wt >= b1) & (wt < b1 + 3600 * 10**9)).any()


def test_sibling_paths() -> None:
    assert {k: v.name for k, v in sibling_paths("x/s.dbn.zst").items()} == {
        "mbo": "s.dbn.zst", "mbp-10": "s.mbp-10.dbn.zst", "trades": "s.trades.dbn.zst",
        "labels": "s.labels.jsonl"}
    assert sibling_paths("t.mbo.dbn")["trades"].name == "t.trades.dbn"
    with pytest.raises(ValueError):
        sibling_paths("s.csv")


def test_cli(tmp_path: Path) -> None:
    out = tmp_path / "c.dbn.zst"
    cmd = [sys.executable, "-m", "aurum.sim.cli", "sim", "--scenario", "sweeps", "--seed", "7",
           "--out", str(out), "--records", "20000", "--symbols", "GCZ6,GCG7", "--price", "2450",
           "--set", "spoofs_per_h=30"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "records/s" in res.stdout and "c.labels.jsonl" in res.stdout
    meta = json.loads((tmp_path / "c.labels.jsonl").read_text().splitlines()[0])
    assert meta["kind"] == "meta" and meta["seed"] == 7 and meta["scenario"] == "sweeps"
    assert meta["params"]["spoofs_per_h"] == 30.0 and meta["instruments"] and meta["records"]["mbo"] <= 20_000
    mbo = db.DBNStore.from_file(out).to_ndarray(schema="mbo")
    px = mbo["price"][mbo["action"] == b"A"] / 1e9
    assert 2400 < np.median(px) < 2500
    bad = subprocess.run([*cmd[:-2], "--set", "no_such=1"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown parameter" in bad.stderr


def test_encode_is_deterministic_and_in_memory() -> None:
    p = scenario_params("quiet", seed=1, records=3_000)
    r = simulate(p)
    a = encode_files(r.mbo, p, r.start_ns)
    b = encode_files(simulate(p).mbo, p, r.start_ns)
    assert {k: hashlib.sha256(v).hexdigest() for k, v in a.items()} == {
        k: hashlib.sha256(v).hexdigest() for k, v in b.items()}
    store = db.DBNStore.from_bytes(io.BytesIO(a["mbo"]))
    assert len(store.to_ndarray(schema="mbo")) == len(r.mbo)
