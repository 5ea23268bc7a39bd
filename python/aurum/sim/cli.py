"""``aurum sim``: the command-line front of the simulator.

    aurum sim --scenario mixed --seed 7 --out s.dbn.zst --records 1000000
    aurum sim --scenario icebergs --duration 2h --symbols GCZ6,GCG7 --price 4100
    aurum sim --scenario quiet --set add_rate=300 --set spoofs_per_h=60 --out q.dbn

``--out NAME.dbn.zst`` writes the MBO file there and its siblings NAME.mbp-10.dbn.zst,
NAME.trades.dbn.zst and NAME.labels.jsonl. They are written in a hidden folder next to them
and renamed into place at the end: Ctrl-C (exit 130) or a failure leaves no partial file.
Every flag and ``--set`` value is checked before anything is generated (exit 2, one line
naming it). The lead wires ``add_parser``/``run`` into ``aurum.cli``; ``python -m
aurum.sim.cli ...`` runs it standalone.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aurum.cliargs import non_negative_int
from aurum.sim.params import SCENARIOS, check_field, coerce_field, start_ns_of

ZSTD_LEVELS = (-131_072, 22)  # zstd's fastest (negative) to its strongest level


def _duration_s(text: str) -> float:
    """'90s', '30m', '2h', '1d' or plain seconds."""
    t = text.strip().lower()
    v: float | None = None
    for suffix, mult in (("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0), ("d", 86400.0)):
        if t.endswith(suffix) and t[: -len(suffix)].replace(".", "", 1).isdigit():
            v = float(t[: -len(suffix)]) * mult
            break
    if v is None:
        try:
            v = float(t)
        except ValueError:
            raise argparse.ArgumentTypeError(f"duration was {text!r}, expected e.g. 90s, 30m, 2h") from None
    try:
        check_field("duration_s", v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"duration was {text!r}, expected more than 0 and at most 400d") from None
    return v


def record_count(text: str) -> int:
    try:
        f = float(text.replace("_", "").replace(",", ""))
    except ValueError:
        f = math.nan
    if not math.isfinite(f):
        raise argparse.ArgumentTypeError(f"records was {text!r}, expected a count such as 1000000")
    n = int(f)
    if n < 100:
        raise argparse.ArgumentTypeError(f"records was {text!r}, expected at least 100")
    return n


def _field_type(name: str) -> Any:
    """An argparse type: a float checked as SimParams field ``name`` (the message names it)."""

    def parse(text: str) -> float:
        try:
            v = float(text)
            check_field(name, v)
        except ValueError as e:
            msg = str(e) if "expected" in str(e) else f"{name} was {text!r}, expected a number"
            raise argparse.ArgumentTypeError(msg) from None
        return v

    return parse


def _start(text: str) -> str:
    try:
        start_ns_of(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _zstd_level(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = ZSTD_LEVELS[1] + 1
    if not ZSTD_LEVELS[0] <= v <= ZSTD_LEVELS[1]:
        raise argparse.ArgumentTypeError(f"was {text!r}, expected an integer from {ZSTD_LEVELS[0]} to "
                                         f"{ZSTD_LEVELS[1]} (default 3)")
    return v


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``sim`` subcommand on an ``argparse`` subparsers object."""
    s = subparsers.add_parser(
        "sim", help="simulate labelled CME GC order flow to DBN (MBO + MBP-10 + trades + labels)",
        description="Seeded, labelled CME GC market simulator. Same arguments, same bytes.")
    s.add_argument("--scenario", default="mixed", choices=sorted(SCENARIOS), help="preset (default: mixed)")
    s.add_argument("--seed", type=non_negative_int, default=0, help="random seed, an integer >= 0 (default 0)")
    s.add_argument("--out", default="sim.dbn.zst",
                   help="MBO output, .dbn or .dbn.zst (siblings go next to it)")
    size = s.add_mutually_exclusive_group()
    size.add_argument("--records", type=record_count, help="about this many MBO records (cut at a whole event); "
                      "default 1,000,000")
    size.add_argument("--duration", type=_duration_s, help="wall-clock span from --start, e.g. 30m, 6h "
                      "(the daily break is inside it)")
    s.add_argument("--symbols", help="raw symbols, front first (default GCZ6), e.g. GCZ6,GCG7")
    s.add_argument("--price", type=_field_type("price"), help="front contract's starting price in USD/oz (default 4100)")
    s.add_argument("--start", type=_start, help="UTC start, ISO 8601 (default 2026-09-14T13:30:00Z)")
    s.add_argument("--break", dest="session_break", choices=("utc", "et"),
                   help="daily break: utc = 21:00-22:00 UTC (default), et = 17:00-18:00 New York with DST")
    s.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override any SimParams field, e.g. --set native_icebergs_per_h=120 (repeatable)")
    s.add_argument("--no-inband-mappings", action="store_true",
                   help="no SymbolMappingMsg records: schema-homogeneous files")
    s.add_argument("--zstd-level", type=_zstd_level, default=3,
                   help="zstd level for .zst outputs, -131072 (fastest) to 22 (default 3)")
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
        try:
            check_field("symbols", out["symbols"])
        except ValueError as e:
            raise ValueError(f"--symbols {args.symbols}: {e}") from None
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
        try:
            out[name.strip()] = coerce_field(name.strip(), value.strip())
        except ValueError as e:
            raise ValueError(f"--set {item}: {e}") from None
    return out


def check_out(out: str | os.PathLike[str]) -> None:
    """``ValueError`` naming ``out`` unless its files can be written: a name ending in .dbn or
    .dbn.zst, in a writable directory, none of the four names a directory. Checked before the
    generation, which may take minutes."""
    from aurum.sim.writer import sibling_paths

    paths = sibling_paths(out)
    folder = paths["mbo"].parent
    if not folder.is_dir():
        raise ValueError(f"no such directory: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write in {folder}")
    for path in paths.values():
        if path.is_dir():
            raise ValueError(f"{path} is a directory")


class OutputError(ValueError):
    """``out``'s folder cannot be written (found before the generation starts)."""


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ctrl-C ignored for the block (a few renames): the outputs appear all or not at all."""
    old = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if old is None:  # not the main thread, or a handler set outside Python: leave it alone
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def generate(params: Any, out: str | os.PathLike[str], scenario: str | None = None,
             level: int = 3) -> tuple[Any, dict[str, Any]]:
    """``simulate`` then ``write`` to ``out`` and its siblings, through a hidden folder next to
    them: the files are renamed into place only once all are written, so an interrupted
    (``KeyboardInterrupt`` is re-raised) or failed run leaves no partial file, and an earlier
    run's files stand. Returns the result and ``write``'s summary (plus ``generate_s``).
    ``OutputError`` if the folder cannot be written, before anything is generated."""
    from aurum.sim import simulate, write
    from aurum.sim.writer import sibling_paths

    final = sibling_paths(out)
    try:
        stage = Path(tempfile.mkdtemp(prefix=".aurum-sim-", dir=final["mbo"].parent))
    except OSError as e:
        raise OutputError(f"cannot write in {final['mbo'].parent}: {e.strerror or e}") from None
    try:
        t0 = time.perf_counter()
        result = simulate(params)
        gen_s = time.perf_counter() - t0
        summary = write(result, stage / final["mbo"].name, scenario=scenario, level=level)
        with _sigint_ignored():
            for path in final.values():
                os.replace(stage / path.name, path)
        summary["paths"] = {k: str(v) for k, v in final.items()}
        summary["generate_s"] = gen_s
        return result, summary
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    """Generate and write; print what was written and how fast. Returns the exit code."""
    from aurum.sim import scenario_params, tune_malloc

    try:
        params = scenario_params(args.scenario, **_overrides(args))
    except (ValueError, TypeError) as e:
        print(f"aurum sim: {e}", file=sys.stderr)
        return 2
    try:
        check_out(args.out)
    except ValueError as e:
        print(f"aurum sim: --out {args.out}: {e}", file=sys.stderr)
        return 2
    tune_malloc()  # a dedicated process: keep freed arrays mapped (see tune_malloc)
    t0 = time.perf_counter()
    try:
        result, summary = generate(params, args.out, scenario=args.scenario, level=args.zstd_level)
    except KeyboardInterrupt:
        print("aurum sim: interrupted; no files written", file=sys.stderr)
        return 130
    except OutputError as e:
        print(f"aurum sim: --out {args.out}: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"aurum sim: --out {args.out}: {e.strerror or e}; no files written", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"aurum sim: {e}", file=sys.stderr)
        return 1
    t2 = time.perf_counter()
    if not args.quiet:
        n = summary["counts"]["mbo"]
        gen = max(summary["generate_s"], 1e-9)
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
