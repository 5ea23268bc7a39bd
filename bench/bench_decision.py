"""Per-bar cost of the decision layer: every bar-level engine (Gann, Cycle, Astro providers),
the QMO/IMO pillars, the scorer and the signal builder together, at each time-bar close.

    python bench/bench_decision.py [--records N] [--seed S] [--bar-interval-s 5] [--no-reference]

A seeded simulated GC session runs through the native pipeline chunk by chunk. After each
chunk the new bars are read from the bar ring (poll + copy, as the daemon does) and every
configuration below gets the same batch; the read and each ``on_bars`` call are timed, the
record path is not. All configurations share one pipeline, so they see the same bars, flow,
sweeps, tables and book; their order rotates every batch so none always runs first.

* ``compiled``: ``DecisionEngine`` with ``default_providers()``, what the daemon runs;
* ``compiled, no bar-level providers``: the same without Gann/Cycle/Astro (their share);
* ``reference``: ``aurum.testing.reference_decision``, the plain-Python layer it replaced
  (the "before"), whose signals must equal the compiled ones.

Per bar close = (read + on_bars) / time bars in the batch. Reports median and p99 per
configuration, the reference/compiled ratio of the medians, next to the 50 us target.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from aurum import _native
from aurum.decision.engine import DecisionEngine
from aurum.decision.providers import default_providers
from aurum.rings import RingReader

TARGET_US = 50.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--bar-interval-s", type=float, default=5.0,
                    help="short bars give many closes per run (default 5 s)")
    ap.add_argument("--no-reference", action="store_true", help="skip the slow plain-Python reference")
    args = ap.parse_args(argv)
    from aurum.sim import run_to_files

    with tempfile.TemporaryDirectory() as tmp:
        _, summary = run_to_files("mixed", Path(tmp) / "s.dbn.zst", seed=args.seed, records=args.records)
        pl = _native.Pipeline(bar_interval_ns=int(args.bar_interval_s * 1e9))
        engines = {"compiled": DecisionEngine(pl, providers=default_providers()),
                   "compiled, no bar-level providers": DecisionEngine(pl, providers={})}
        if not args.no_reference:
            from aurum.testing.reference_decision import ReferenceDecisionEngine, reference_providers

            engines["reference"] = ReferenceDecisionEngine(pl, providers=reference_providers())
        names = list(engines)
        bars = RingReader(pl, "bars")
        f = _native.DbnFile(summary["paths"]["mbo"])
        per_bar: dict[str, list[float]] = {name: [] for name in names}
        reads: list[float] = []
        closes = 0
        while pl.feed_file(f, 1 << 16):
            t = time.perf_counter()
            batch = bars.poll().records.copy()
            read = time.perf_counter() - t
            n = int((batch["kind"] == _native.BAR_KIND_TIME).sum())
            if not n:
                continue
            closes += n
            reads.append(read / n)
            turn = len(reads) % len(names)
            for name in names[turn:] + names[:turn]:
                t = time.perf_counter()
                engines[name].on_bars(batch)
                per_bar[name].append((read + time.perf_counter() - t) / n)

    sigs = {name: orjson.dumps([s.as_dict() for s in eng.signals]) for name, eng in engines.items()}
    same = "reference" not in engines or sigs["reference"] == sigs["compiled"]
    print(f"decision layer per bar close: {closes} closes in {len(reads)} batches, "
          f"{len(engines['compiled'].signals)} signals, providers: {', '.join(sorted(default_providers()))}")
    med = {}
    for name in names:
        us = np.array(per_bar[name]) * 1e6
        med[name] = statistics.median(us)
        print(f"  {name:34s} median {med[name]:8.1f} us   p99 {np.percentile(us, 99):8.1f} us")
    print(f"  of which reading the bars (poll + copy, first after the chunk: cold caches) "
          f"median {statistics.median(reads) * 1e6:.1f} us")
    if "reference" in med:
        print(f"  reference / compiled (medians): {med['reference'] / med['compiled']:.1f}x; signals "
              f"{'identical' if same else 'DIFFER'}")
    print(f"  target < {TARGET_US:.0f} us per bar close: {'met' if med['compiled'] < TARGET_US else 'NOT met'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
