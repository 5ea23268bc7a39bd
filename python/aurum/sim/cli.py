"""``aurum sim``: the command-line front of the simulator.

    aurum sim --scenario mixed --seed 7 --out s.dbn.zst --records 1000000
    aurum sim --scenario icebergs --duration 2h --symbols GCZ6,GCG7 --price 4100
    aurum sim --scenario quiet --set add_rate=300 --set spoofs_per_h=60 --out q.dbn

``--out NAME.dbn.zst`` writes the MBO file there and its siblings NAME.mbp-10.dbn.zst,
NAME.trades.dbn.zst and NAME.labels.jsonl. The lead wires ``add_parser``/``run`` into
``aurum.cli``; ``python -m aurum.sim.cli ...`` runs it standalone.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from aurum.sim.params import SCENARIOS, coerce_field


def _duration_s(text: str) -> float:
    """'90s', '30m', '2h', '1d' or plain seconds."""
    t = text.strip().lower()
    for suffix, mult in (("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0), ("d", 86400.0)):
        if t.endswith(suffix) and t[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(t[: -len(suffix)]) * mult
    try:
        return float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"duration was {text!r}, expected e.g. 90s, 30m, 2h") from None


def _records(text: str) -> int:
    try:
        n = int(float(text.replace("_", "").replace(",", "")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"records was {text!r}, expected a count such as 1000000") from None
    if n < 100:
        raise argparse.ArgumentTypeError("records must be >= 100")
    return n


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``sim`` subcommand on an ``argparse`` subparsers object."""
    s = subparsers.add_parser(
        "sim", help="simulate labelled CME GC order flow to DBN (MBO + MBP-10 + trades + labels)",
        description="Seeded, labelled CME GC market simulator. Same arguments, same bytes.")
    s.add_argument("--scenario", default="mixed", choices=sorted(SCENARIOS), help="preset (default: mixed)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="sim.dbn.zst",
                   help="MBO output, .dbn or .dbn.zst (siblings go next to it)")
    size = s.add_mutually_exclusive_group()
    size.add_argument("--records", type=_records, help="about this many MBO records (cut at a whole event); "
                      "default 1,000,000")
    size.add_argument("--duration", type=_duration_s, help="wall-clock span from --start, e.g. 30m, 6h "
                      "(the daily break is inside it)")
    s.add_argument("--symbols", help="raw symbols, front first (default GCZ6), e.g. GCZ6,GCG7")
    s.add_argument("--price", type=float, help="front contract's starting price in USD/oz (default 4100)")
    s.add_argument("--start", help="UTC start, ISO 8601 (default 2026-09-14T13:30:00Z)")
    s.add_argument("--break", dest="session_break", choices=("utc", "et"),
                   help="daily break: utc = 21:00-22:00 UTC (default), et = 17:00-18:00 New York with DST")
    s.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override any SimParams field, e.g. --set native_icebergs_per_h=120 (repeatable)")
    s.add_argument("--no-inband-mappings", action="store_true",
                   help="no SymbolMappingMsg records: schema-homogeneous files")
    s.add_argument("--zstd-level", type=int, default=3, help="zstd level for .zst outputs (default 3)")
    s.add_argument("--quiet", action="store_true", help="print nothing on success")
    return s


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"seed": args.seed}
    if args.duration is not None:
        out.update(duration_s=args.duration, records=None)
    elif args.records is not None:
        out["records"] = args.records
    if args.symbols:
        out["symbols"] = tuple(x.strip().upper() for x in args.symbols.split(",") if x.strip())
    if args.price is not None:
        out["price"] = args.price
    if args.start:
        out["start"] = args.start
    if args.session_break:
        out["session_break"] = args.session_break
    if args.no_inband_mappings:
        out["inband_mappings"] = False
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set wants NAME=VALUE, got {item!r}")
        out[name.strip()] = coerce_field(name.strip(), value.strip())
    return out


def run(args: argparse.Namespace) -> int:
    """Generate and write; print what was written and how fast. Returns the exit code."""
    from aurum.sim import scenario_params, simulate, tune_malloc, write

    tune_malloc()  # a dedicated process: keep freed arrays mapped (see tune_malloc)

    try:
        params = scenario_params(args.scenario, **_overrides(args))
    except (ValueError, TypeError) as e:
        print(f"aurum sim: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    result = simulate(params)
    t1 = time.perf_counter()
    try:
        summary = write(result, args.out, scenario=args.scenario, level=args.zstd_level)
    except (OSError, ValueError) as e:
        print(f"aurum sim: {e}", file=sys.stderr)
        return 1
    t2 = time.perf_counter()
    if not args.quiet:
        n = summary["counts"]["mbo"]
        gen = t1 - t0
        print(f"scenario {args.scenario}, seed {params.seed}, symbols {','.join(params.symbols)}")
        print(f"generated {n:,} MBO records in {gen:.2f} s ({n / gen:,.0f} records/s)")
        for kind in ("mbo", "mbp-10", "trades"):
            print(f"  {summary['paths'][kind]}: {summary['counts'][kind]:,} records, "
                  f"{summary['bytes'][kind]:,} bytes")
        counts: dict[str, int] = {}
        for lab in result.labels:
            counts[lab["kind"]] = counts.get(lab["kind"], 0) + 1
        text = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
        print(f"  {summary['paths']['labels']}: {len(result.labels)} labels ({text})")
        print(f"derived MBP-10/trades in {summary['derive_s']:.2f} s, "
              f"wrote files in {summary['write_s']:.2f} s; total {t2 - t0:.2f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aurum")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
