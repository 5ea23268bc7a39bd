"""``aurum sim``: a seeded, labelled CME GC market simulator writing DBN v3.

    from aurum.sim import scenario_params, simulate, write
    result = simulate(scenario_params("mixed", seed=7, records=500_000, symbols=("GCZ6", "GCG7")))
    write(result, "s.dbn.zst")   # s.dbn.zst (MBO), s.mbp-10.dbn.zst, s.trades.dbn.zst, s.labels.jsonl

The same parameters (seed included) give byte-identical files. See ``market`` for the order
flow and the matcher, ``planted`` for the labelled events, ``writer`` for the file layout.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aurum.sim.market import (
    NS, MatchResult, Plan, add_aggressors, add_limit_orders, base_steps, clip_regimes, horizon_for,
    match, regimes,
)
from aurum.sim.params import GC_TICK_USD, SCENARIOS, SimParams, scenario_params
from aurum.sim.planted import add_planted_orders, build_labels, schedule
from aurum.sim.writer import (
    SessionClock, add_records, both, encode_files, instrument_records, merge, order_cols, sibling_paths,
    to_mbo, write_files,
)

__all__ = ["SCENARIOS", "SimParams", "SimResult", "scenario_params", "simulate", "tune_malloc", "write"]

LABEL_FORMAT = "aurum-sim-labels/1"


def tune_malloc() -> bool:
    """Keep freed memory in the process instead of returning it to the OS (glibc only).

    The simulator allocates and frees hundreds of MB of numpy arrays per run; glibc serves
    big ones with fresh mmaps, and on a VM their first-touch page faults cost ~2 ms/MB, as
    much as the arithmetic. Raising the mmap and trim thresholds lets later arrays reuse
    already-mapped memory. Process-wide and irreversible, so only ``aurum sim`` and the
    benchmark call it, never the library on import. Returns False where unsupported."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, (1 << 31) - 1))
    except (OSError, AttributeError):
        return False


@dataclass
class SimResult:
    params: SimParams
    mbo: np.ndarray  # MboMsg records (aurum.testing.synth.MBO_DTYPE), the stream after the mappings
    labels: list[dict[str, Any]]
    start_ns: int  # wall clock of the first record
    breaks: list[tuple[int, int]]  # daily breaks (UTC ns) inside the simulated span
    timings: dict[str, float] = field(default_factory=dict)


def _plan(p: SimParams, inst: int, horizon: int, seed: np.random.SeedSequence,
          seg: tuple[np.ndarray, np.ndarray]) -> Plan:
    bg, pl = (np.random.default_rng(s) for s in seed.spawn(2))  # planting never shifts the background draws
    activity = p.activity_decay**inst
    k0 = int(round((p.price + inst * p.carry_usd) / GC_TICK_USD))
    plan = Plan(inst=inst, horizon=horizon, k0=k0)
    st, inc = base_steps(bg, p, seg, horizon, activity)
    st, inc, lab = schedule(plan, pl, p, activity, st, inc)
    step_ev0 = len(plan.events["key"])
    add_aggressors(plan, bg, p, seg, activity, inc, lab)
    add_planted_orders(plan, pl, p, step_ev0)
    add_limit_orders(plan, bg, p, seg, activity)  # the big table last: appended once, no re-copy
    return plan


def _build(p: SimParams, inst: int, horizon: int, seed: np.random.SeedSequence,
           seg: tuple[np.ndarray, np.ndarray]) -> tuple[Plan, MatchResult, dict[str, np.ndarray]]:
    """Plan, match and assemble one instrument. The add records do not depend on matching, so
    they are built on the second core while the (pure Python) matcher runs."""
    plan = _plan(p, inst, horizon, seed, seg)
    order_cols(plan)  # before the matcher writes its spare rows (the thread reads this)
    res, adds = both(lambda: match(plan), lambda: add_records(plan))
    return plan, res, instrument_records(plan, res, adds)


def _records_per_s(p: SimParams) -> float:
    """MBO records per *quiet* trading second, all instruments (fast spells: times
    fast_rate_mult), to size the horizon."""
    act = sum(p.activity_decay**i for i in range(len(p.symbols)))
    per = p.add_rate * (1 + p.ladder_prob * 2) * (1.9 + p.partial_prob) + p.market_rate * 3 + p.step_rate * 5
    return per * act * 1.05  # calibrated on one-hour runs of every scenario


def simulate(p: SimParams) -> SimResult:
    """Generate the MBO stream and the labels in memory (no files)."""
    p.validate()
    t_start = time.perf_counter()
    clock = SessionClock(p.start_ns(), p.session_break)
    root = np.random.SeedSequence(p.seed)
    seeds = root.spawn(len(p.symbols) + 2)  # per instrument, then the writer's, then the regimes'
    reg_rng = np.random.default_rng(seeds[-1])
    if p.duration_s is not None:
        horizon = clock.active_span(int(p.duration_s * NS))
        seg = regimes(reg_rng, p, horizon)
    else:
        # Size the horizon from the regimes actually drawn (a short run's record count hangs
        # on its fast spells), aiming a little over: the stream is cut at a whole event.
        per_s = _records_per_s(p)
        guess = int(p.records / per_s * NS)  # type: ignore[operator]
        seg = regimes(reg_rng, p, 2 * guess + 600 * NS)
        horizon = horizon_for(seg, per_s, p.fast_rate_mult, p.records * 1.08)  # type: ignore[operator]
        horizon = (horizon if horizon > 0 else 2 * guess) + NS
    while True:
        seg_h = clip_regimes(seg, horizon)
        out = [_build(p, i, horizon, seeds[i], seg_h) for i in range(len(p.symbols))]
        built = [(plan, res) for plan, res, _ in out]
        recs = [r for _, _, r in out]
        n_total = sum(r["key"].size for r in recs)
        enough = p.records is None or p.duration_s is not None or n_total > p.records
        if enough or horizon > 400 * 86_400 * NS:
            break
        horizon = int(horizon * min(4.0, 1.05 * p.records / max(n_total, 1))) + NS
        if horizon > int(seg[0][-1]):
            seg = regimes(reg_rng, p, 2 * horizon)  # rare: more spells (a fresh draw, still seeded)
    t_gen = time.perf_counter()
    n_ents = [len(plan.orders["key_add"]) + len(plan.aggrs["event"]) for plan, _ in built]
    m = merge(recs, n_ents)
    cut_key = np.iinfo(np.int64).max
    if p.records is not None and p.duration_s is None and m["key"].size > p.records:
        keys = m["key"]
        cut_key = int(keys[p.records]) - 1  # whole events only: an event's records share a key
        n = int(np.searchsorted(keys, cut_key, side="right"))
        m = {c: v[:n] for c, v in m.items()}
    rng = np.random.default_rng(seeds[-2])
    mbo, idmap = to_mbo(m, p, p.ids(), clock.to_wall, rng, sum(n_ents))

    # Labels, measured per instrument on the records kept, with the ids actually written.
    labels: list[dict[str, Any]] = []
    ents_off = np.concatenate([[0], np.cumsum(n_ents)]).tolist()
    for i, ((plan, res), r) in enumerate(zip(built, recs)):
        keep = plan.entries["key"][res.ice_entry] <= cut_key
        refills: dict[int, int] = {}
        for o_, n_ in zip(res.ice_order[keep].tolist(), res.ice_refills[keep].tolist()):
            refills[o_] = refills.get(o_, 0) + n_
        labels += build_labels(plan, r, cut_key, idmap, ents_off[i], clock.to_wall, p.ids()[i], p.symbols[i],
                               refills)
    labels.sort(key=lambda d: (d["ts_start"], d["instrument_id"], d["kind"]))
    for j, lab in enumerate(labels):
        lab["label_id"] = j
    end = int(mbo["ts_event"][-1]) if mbo.size else clock.start_ns
    t_end = time.perf_counter()
    return SimResult(p, mbo, labels, clock.start_ns, clock.breaks_utc(end),
                     {"generate_s": t_gen - t_start, "assemble_s": t_end - t_gen, "total_s": t_end - t_start})


def write(result: SimResult, out: str | os.PathLike[str], scenario: str | None = None,
          level: int = 3) -> dict[str, Any]:
    """Write the MBO file, its MBP-10 and trades siblings and the labels. Returns a summary."""
    p = result.params
    paths = sibling_paths(out)
    t0 = time.perf_counter()
    blobs = encode_files(result.mbo, p, result.start_ns)
    t1 = time.perf_counter()
    counts = {"mbo": int(result.mbo.size), "mbp-10": (len(blobs["mbp-10"]) - _hdr(blobs["mbp-10"])) // 368,
              "trades": (len(blobs["trades"]) - _hdr(blobs["trades"])) // 48,
              "symbol_mappings": len(p.symbols)}
    meta = {
        "kind": "meta", "format": LABEL_FORMAT, "scenario": scenario, "seed": p.seed,
        "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(p).items()},
        "instruments": {str(i): s for i, s in zip(p.ids(), p.symbols)},
        "files": {k: v.name for k, v in paths.items()},
        "records": counts,
        "start_ns": result.start_ns,
        "end_ns": int(result.mbo["ts_event"][-1]) if result.mbo.size else result.start_ns,
        "session_break": {"convention": p.session_break,
                          "windows_utc_ns": [list(w) for w in result.breaks]},
        "label_counts": {k: sum(1 for lab in result.labels if lab["kind"] == k)
                         for k in sorted({lab["kind"] for lab in result.labels})},
        "price_scale": 1_000_000_000,
    }
    sizes = write_files(paths, blobs, result.labels, meta, level=level)
    t2 = time.perf_counter()
    return {"paths": {k: str(v) for k, v in paths.items()}, "counts": counts, "bytes": sizes,
            "derive_s": t1 - t0, "write_s": t2 - t1}


def _hdr(blob: bytes) -> int:
    """Metadata plus in-band mapping bytes at the head of one of our files."""
    meta_len = 8 + int.from_bytes(blob[4:8], "little")
    pos = meta_len
    while pos < len(blob) and blob[pos + 1] == 0x16:
        pos += blob[pos] * 4
    return pos


def run_to_files(scenario: str, out: str | Path, **overrides: Any) -> tuple[SimResult, dict[str, Any]]:
    """``scenario_params`` + ``simulate`` + ``write`` in one call (tests, the CLI)."""
    result = simulate(scenario_params(scenario, **overrides))
    return result, write(result, out, scenario=scenario)
