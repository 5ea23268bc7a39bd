"""The `aurum` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from aurum.cliargs import speed


def _duration_ns(text: str) -> int:
    """'60s', '5m', '1h', '250ms' or plain seconds -> nanoseconds."""
    t = text.strip().lower()
    units = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
    for suffix in ("ms", "s", "m", "h"):
        if t.endswith(suffix):
            num, mult = t[: -len(suffix)], units[suffix]
            break
    else:
        num, mult = t, units["s"]
    try:
        v = float(num)
    except ValueError:
        raise argparse.ArgumentTypeError(f"duration was {text!r}, expected e.g. 60s, 5m, 1h") from None
    if not (0 <= v * mult < 1 << 63):  # NaN and inf fail here too
        raise argparse.ArgumentTypeError(f"duration was {text!r}, expected a positive value under ~292 years")
    return int(v * mult)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aurum", description="Aurum: orderflow engine for CME gold futures.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("replay", help="replay DBN files through the native pipeline")
    r.add_argument("paths", nargs="*", type=Path, help=".dbn or .dbn.zst files, replayed in order")
    r.add_argument("--sample", action="store_true",
                   help="replay the generated sample GC session (created on first use)")
    r.add_argument("--report", type=Path, help="write the summary as JSON to this file")
    r.add_argument("--speed", type=speed, default=None, metavar="max|realtime|Nx",
                   help="pacing by record timestamps (default: max)")
    r.add_argument("--bar-interval", type=_duration_ns, default=None, metavar="DUR",
                   help="time bar length, e.g. 60s (default), 5m; 0 disables time bars")
    r.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="decide as the daemon with this config does (bar length, engine thresholds, "
                        "weights, signal thresholds); replaying its journal then gives its signals")
    r.add_argument("--tick-bars", type=int, default=0, metavar="N", help="also build bars of N trades")
    r.add_argument("--volume-bars", type=int, default=0, metavar="V", help="also build bars of V contracts")
    r.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    r.add_argument("--quiet", action="store_true", help="do not print the summary")

    r.add_argument("--no-engines", action="store_true",
                   help="run decode, books and bars only (no icebergs, zones, sweeps, order flow)")

    from aurum import demo as demo_cli
    from aurum import doctor as doctor_cli
    from aurum import tail as tail_cli
    from aurum.api import cli as api_cli
    from aurum.astro import cli as astro_cli
    from aurum.evaluation import cli as eval_cli
    from aurum.gateway import cli as gateway_cli
    from aurum.sim import cli as sim_cli

    gateway_cli.add_parser(sub)
    sim_cli.add_parser(sub)
    eval_cli.add_parser(sub)
    astro_cli.add_parser(sub)
    tail_cli.add_parser(sub)
    demo_cli.add_parser(sub)
    doctor_cli.add_parser(sub)
    api_cli.add_parser(sub)
    run = sub.add_parser("run", help="run the daemon (aurumd): live feed, engines, signals to shared memory")
    run.add_argument("--config", default=None, help="TOML config (daemon/aurum.toml shows every key)")
    return p


def cmd_replay(args: argparse.Namespace) -> int:
    from aurum.replay import ReplayInterrupted, ReplayOptions, Replayer, print_summary

    if not (0 <= args.tick_bars < 1 << 32 and 0 <= args.volume_bars < 1 << 63):
        print("aurum replay: --tick-bars must be 0..4294967295 and --volume-bars 0..2^63-1", file=sys.stderr)
        return 2
    if args.report is not None and args.report.is_dir():
        print(f"aurum replay: --report {args.report} is a directory; give a file name", file=sys.stderr)
        return 2
    if args.report is not None and not args.report.parent.is_dir():
        # Checked before the replay, not after it: a typo must not cost a whole run.
        print(f"aurum replay: --report: no such directory: {args.report.parent}", file=sys.stderr)
        return 2
    paths = list(args.paths)
    if args.sample:
        from aurum.sample import sample_session

        paths.insert(0, sample_session())
    if not paths:
        print("aurum replay: no input: give DBN files or --sample", file=sys.stderr)
        return 2
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        what = "is a directory, not a DBN file" if Path(missing[0]).is_dir() else "no such file"
        print(f"aurum replay: {what}: {missing[0]}", file=sys.stderr)
        return 2
    given = {"speed": args.speed, "tick_bar_trades": args.tick_bars, "volume_bar_contracts": args.volume_bars,
             "engines": not args.no_engines}
    if args.bar_interval is not None:
        given["bar_interval_ns"] = args.bar_interval
    if args.config is not None:
        from aurum.config import ConfigError, load_config
        from aurum.replay import options_from_config

        try:
            opts = options_from_config(load_config(args.config), **given)  # AURUM_* apply, as to the daemon
        except ConfigError as e:
            print(f"aurum replay: {e}", file=sys.stderr)
            return 2
    else:
        opts = ReplayOptions(**given)
    replayer = Replayer(opts)
    show_progress = sys.stderr.isatty() and not args.no_progress
    try:
        result = _run_with_progress(replayer, paths) if show_progress else replayer.run(paths)
    except ReplayInterrupted as e:
        result = e.result  # reported and written below, then exit 130
    if not args.quiet:
        print_summary(result.report)
    if args.report is not None:
        try:
            args.report.write_bytes(orjson.dumps(result.report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        except OSError as e:
            print(f"aurum replay: --report {args.report}: {e.strerror or e}", file=sys.stderr)
            return 1
    for f in result.files:
        if f.error and f.error != "interrupted":  # that one is the line below
            print(f"aurum replay: {f.error}", file=sys.stderr)
    if result.interrupted:
        print(f"aurum replay: interrupted after {result.report['records_total']:,} records"
              + (f"; the report covers them ({args.report})" if args.report is not None else ""), file=sys.stderr)
        return 130
    return 0 if result.ok else 1


def _run_with_progress(replayer, paths):  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[records]:>12,} rec"),
        TextColumn("{task.fields[rate]:>12,.0f} rec/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    import time

    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("replay", total=1, records=0, rate=0.0)
        t0 = time.perf_counter()
        state = {"file": 0, "base": 0}
        sizes = [max(Path(p).stat().st_size, 1) for p in paths]
        total = sum(sizes)

        def hook(done: int, size: int, records: int) -> None:
            # Files are replayed in order: add the sizes of those already finished.
            if done < state.get("last", 0):
                state["file"] += 1
            state["last"] = done
            finished = sum(sizes[: state["file"]])
            el = time.perf_counter() - t0
            progress.update(task, completed=(finished + done) / total, records=records,
                            rate=records / el if el > 0 else 0.0)

        result = replayer.run(paths, progress=hook)
        progress.update(task, completed=1)
    return result


# Subcommands whose module has ``run(args)``; imported only when chosen, so `aurum replay`
# never pays for the gateway or the daemon.
SUBCOMMAND_MODULES = {
    "gateway": "aurum.gateway.cli", "sim": "aurum.sim.cli", "eval": "aurum.evaluation.cli",
    "astro": "aurum.astro.cli", "tail": "aurum.tail", "demo": "aurum.demo", "doctor": "aurum.doctor",
    "api": "aurum.api.cli",
}


def main(argv: list[str] | None = None) -> int:
    import importlib

    args = build_parser().parse_args(argv)
    if args.command == "replay":
        return cmd_replay(args)
    if args.command == "run":
        from aurum.daemon import main as daemon_main

        return daemon_main(args.config)
    module = SUBCOMMAND_MODULES.get(args.command)
    if module is None:
        return 2
    return int(importlib.import_module(module).run(args))


if __name__ == "__main__":
    sys.exit(main())
