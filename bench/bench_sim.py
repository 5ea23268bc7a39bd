#!/usr/bin/env python3
"""Generation rate of ``aurum sim``: MBO records per second, median of several runs.

What is timed, per scenario, in one process:

* ``simulate``: ``aurum.sim.simulate(params)`` from parameters to the finished in-memory
  MBO record array and the labels (order flow, planted events, FIFO matching, DBN layout,
  order ids, timestamps). This is "generation". Records/s = MBO records / median wall time.
* with ``--write``: also ``aurum.sim.write`` (MBP-10 and trades derived by the native
  ``derive_mbp10_trades``, metadata, zstd, labels) into a temp dir, reported separately,
  because its cost is the native derivation and compression, not the simulator.

The first run of each scenario is a warm-up (imports, thread pool, first-touch page faults);
it is reported but not in the median. CPU time (all threads) is reported next to wall time:
on a shared 2-vCPU machine wall time varies with other load, CPU time much less.

Usage:  python bench/bench_sim.py [--records 2000000] [--repeats 5] [--scenario mixed|all]
                                  [--symbols GCZ6,GCG7] [--write] [--quick] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

from aurum.sim import SCENARIOS, scenario_params, simulate, tune_malloc, write  # noqa: E402


def _timed(fn):  # type: ignore[no-untyped-def]
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def bench(name: str, records: int, repeats: int, symbols: tuple[str, ...], do_write: bool) -> dict:
    params = scenario_params(name, seed=7, records=records, symbols=symbols)
    first, w_first, _ = _timed(lambda: simulate(params))
    walls, cpus = [], []
    n = len(first.mbo)
    del first
    for _ in range(repeats):
        res, w, c = _timed(lambda: simulate(params))
        assert len(res.mbo) == n  # same seed, same stream
        walls.append(w)
        cpus.append(c)
    row = {"scenario": name, "records": n, "first_s": w_first, "median_s": statistics.median(walls),
           "min_s": min(walls), "max_s": max(walls), "cpu_s": statistics.median(cpus)}
    if do_write:
        with tempfile.TemporaryDirectory() as d:
            ws = []
            for i in range(max(1, repeats // 2)):
                summary, w, _ = _timed(lambda: write(res, Path(d) / f"b{i}.dbn.zst", scenario=name))
                ws.append(w)
            row["write_s"] = statistics.median(ws)
            row["mbp10"] = summary["counts"]["mbp-10"]
            row["derive_s"] = summary["derive_s"]
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--scenario", default="mixed", help="a scenario name or 'all'")
    ap.add_argument("--symbols", default="GCZ6")
    ap.add_argument("--write", action="store_true", help="also time derive + zstd + labels")
    ap.add_argument("--quick", action="store_true", help="300k records, 3 repeats")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--no-malloc-tuning", action="store_true",
                    help="leave glibc malloc alone (aurum sim calls tune_malloc; see its docstring)")
    args = ap.parse_args(argv)
    tuned = False if args.no_malloc_tuning else tune_malloc()
    if args.quick:
        args.records, args.repeats = 300_000, 3
    names = sorted(SCENARIOS) if args.scenario == "all" else [args.scenario]
    symbols = tuple(s for s in args.symbols.split(",") if s)
    load = os.getloadavg()
    lines = [
        f"# aurum sim generation rate ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} vCPU, "
        f"Python {platform.python_version()}, "
        f"load average before: {load[0]:.2f}. {args.records:,} requested MBO records, seed 7, symbols "
        f"{','.join(symbols)}; median of {args.repeats} runs after one warm-up run; "
        f"malloc tuning (aurum.sim.tune_malloc, as `aurum sim` does): {'on' if tuned else 'off'}.",
        "",
        "| scenario | MBO records | median s | min-max s | **records/s (median)** | CPU s | first run s |"
        + (" write s (derive+zstd) | MBP-10 records |" if args.write else ""),
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if args.write else ""),
    ]
    for name in names:
        r = bench(name, args.records, args.repeats, symbols, args.write)
        line = (f"| {name} | {r['records']:,} | {r['median_s']:.3f} | {r['min_s']:.3f}-{r['max_s']:.3f} | "
                f"**{r['records'] / r['median_s']:,.0f}** | {r['cpu_s']:.3f} | {r['first_s']:.3f} |")
        if args.write:
            line += f" {r['write_s']:.2f} | {r['mbp10']:,} |"
        lines.append(line)
        print(line, file=sys.stderr)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
