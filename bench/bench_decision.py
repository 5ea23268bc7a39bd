"""Per-bar cost of the decision layer: every bar-level engine (Gann, Cycle, Astro providers),
the QMO/IMO pillars, the scorer and the signal builder together, at each time-bar close.

    python bench/bench_decision.py [--records N] [--seed S] [--bar-interval-s 5] [--passes 2]
                                   [--no-reference]

A seeded simulated GC session is replayed through the native pipeline in 64 KiB chunks, as
the daemon feeds it. After each chunk the new bars are read from the bar ring (poll + copy,
as the daemon does) and given to the decision engine; the read and the ``on_bars`` call are
timed, the record path is not. A bar close costs (read + on_bars) / time bars in the batch,
with the caches as the chunk left them.

Configurations, each replaying the whole session on a fresh pipeline in its own pass (so
none pollutes another's caches), passes interleaved in one run (c, n, r, c, n, r, ...):

* ``compiled``: ``DecisionEngine`` with ``default_providers()``, what the daemon runs;
* ``compiled, no bar-level providers``: the same without Gann/Cycle/Astro (their share);
* ``reference``: ``aurum.testing.reference_decision``, the plain-Python layer the compiled
  path replaced (the "before"); its signals must be identical to the compiled ones.

Reports median and p99 over all passes per configuration, the reference/compiled ratio of
the medians, next to the 50 us target.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from aurum import _native
from aurum.decision.engine import DecisionEngine
from aurum.decision.providers import default_providers
from aurum.rings import RingReader

TARGET_US = 50.0


def engine(name: str, pl: _native.Pipeline) -> Any:
    if name == "compiled":
        return DecisionEngine(pl, providers=default_providers())
    if name == "compiled, no bar-level providers":
        return DecisionEngine(pl, providers={})
    from aurum.testing.reference_decision import ReferenceDecisionEngine, reference_providers

    return ReferenceDecisionEngine(pl, providers=reference_providers())


def replay(name: str, path: str, bar_ns: int) -> tuple[list[float], list[float], bytes, int]:
    """One pass: per-bar-close seconds, the read's share, the signals (JSON) and the closes."""
    pl = _native.Pipeline(bar_interval_ns=bar_ns)
    eng = engine(name, pl)
    bars = RingReader(pl, "bars")
    f = _native.DbnFile(path)
    per_bar: list[float] = []
    reads: list[float] = []
    closes = 0
    while pl.feed_file(f, 1 << 16):
        t = time.perf_counter()
        recs = bars.poll().records
        batch = np.frombuffer(recs.tobytes(), dtype=recs.dtype)  # the daemon's snapshot of the bars
        read = time.perf_counter() - t
        n = int((batch["kind"] == _native.BAR_KIND_TIME).sum())
        if not n:
            continue
        t = time.perf_counter()
        eng.on_bars(batch)
        per_bar.append((read + time.perf_counter() - t) / n)
        reads.append(read / n)
        closes += n
    return per_bar, reads, orjson.dumps([s.as_dict() for s in eng.signals]), closes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--bar-interval-s", type=float, default=5.0,
                    help="short bars give many closes per run (default 5 s)")
    ap.add_argument("--passes", type=int, default=2, help="replays per configuration (default 2)")
    ap.add_argument("--no-reference", action="store_true", help="skip the slow plain-Python reference")
    args = ap.parse_args(argv)
    from aurum.sim import run_to_files

    names = ["compiled", "compiled, no bar-level providers"] + ([] if args.no_reference else ["reference"])
    per_bar: dict[str, list[float]] = {name: [] for name in names}
    reads: dict[str, list[float]] = {name: [] for name in names}
    signals: dict[str, set[bytes]] = {name: set() for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        _, summary = run_to_files("mixed", Path(tmp) / "s.dbn.zst", seed=args.seed, records=args.records)
        for _ in range(args.passes):
            for name in names:
                t, r, sig, closes = replay(name, summary["paths"]["mbo"], int(args.bar_interval_s * 1e9))
                per_bar[name] += t
                reads[name] += r
                signals[name].add(sig)

    same = len(signals["compiled"]) == 1 and ("reference" not in signals or signals["reference"] == signals["compiled"])
    n_sig = len(orjson.loads(next(iter(signals["compiled"]))))
    print(f"decision layer per bar close: {closes} closes a pass, {args.passes} passes per configuration, "
          f"{n_sig} signals, providers: {', '.join(sorted(default_providers()))}")
    med = {}
    for name in names:
        us = np.array(per_bar[name]) * 1e6
        med[name] = statistics.median(us)
        print(f"  {name:34s} median {med[name]:8.1f} us   p99 {np.percentile(us, 99):8.1f} us   "
              f"(reading the bars: {statistics.median(reads[name]) * 1e6:.1f} us)")
    if "reference" in med:
        print(f"  reference / compiled (medians): {med['reference'] / med['compiled']:.1f}x")
    print(f"  signals {'identical' if same else 'DIFFER'}; target < {TARGET_US:.0f} us per bar close: "
          f"{'met' if med['compiled'] < TARGET_US else 'NOT met'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
