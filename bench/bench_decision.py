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
the medians, next to the 50 us target. Then the astro pillar at the first bar close of a UTC
day, with that day's windows computed on the bar or prefetched by the daemon's tick.
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


def day_rollover(days: int = 30) -> dict[str, list[float]]:
    """The astro pillar at the first bar close of each UTC day: with the day's windows computed
    on that bar, and prefetched by the tick before it (``AstroProvider.prefetch``, untimed).
    Fresh providers on disjoint date ranges, alternating which configuration takes which, so
    neither finds the other's ephemeris work cached."""
    from aurum.kernels.bar_pillars import AstroProvider
    from aurum.kernels.barwindow import BarWindow

    out: dict[str, list[float]] = {"computed on the bar": [], "prefetched by the tick": []}
    day0 = 20_454  # 2026-01-01
    ranges = [(day0 + i * 2 * days, day0 + (i * 2 + 1) * days) for i in range(2)]
    win = BarWindow()
    for i, name in enumerate(list(out) * 2):
        prov = AstroProvider()
        start = ranges[i // 2][i % 2] if i < 2 else ranges[i // 2][1 - i % 2]
        for day in range(start, start + days):
            first_bar = day * 86_400_000_000_000 + 5_000_000_000
            if name == "prefetched by the tick":
                prov.prefetch(first_bar - 60_000_000_000)  # a tick in the day before
            t = time.perf_counter()
            prov(win, first_bar, 4100.0)
            out[name].append(time.perf_counter() - t)
    return out


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
    roll = day_rollover()
    print("astro pillar at the first bar close of a UTC day (60 days each):")
    for name, v in roll.items():
        us = np.array(v) * 1e6
        print(f"  {name:34s} median {np.median(us):8.1f} us   max {us.max():8.1f} us")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
