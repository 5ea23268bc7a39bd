"""``aurum gateway``: a local Live Subscription Gateway serving DBN files.

Wired into ``aurum.cli`` through ``add_parser(subparsers)`` and ``run(args)``; also runnable on
its own as ``python -m aurum.gateway.cli --data FILE --port N``.

On start-up it prints one line to stdout, ``aurum gateway: listening on HOST:PORT ...``, once
the port is bound (``--port 0`` picks a free port and that line names it). Logs go to stderr.
With ``--admin-stdin`` it reads control commands from stdin, one per line, and answers each
with one ``ok ...`` or ``error ...`` line on stdout: ``ping``, ``fault SPEC [SPEC...]`` (arm
faults for the next session), ``clear_faults``, ``add_key KEY``, ``del_key KEY``, ``sessions``,
``disconnect [ID|all]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from aurum.cliargs import bounded, non_negative_int, speed, tcp_port
from aurum.sim.cli import record_count
from aurum.sim.params import SCENARIOS

PROG = "aurum gateway"
# --speed not given: max for files, real time for --sim (an explicit "max" is max for both).
_SPEED_UNSET: Any = object()


def parse_time_ns(text: str) -> int:
    """UNIX nanoseconds, or an ISO 8601 time (UTC when no zone is given)."""
    t = text.strip()
    if t.isdigit():
        return int(t)
    try:
        when = dt.datetime.fromisoformat(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--now was {text!r}, expected UNIX ns or an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


port = tcp_port
_batch_ms = bounded(float, 0, 1000, expect="0 to 1000 milliseconds")
_positive_s = bounded(float, 0, 86_400, lo_open=True, expect="more than 0 and at most 86400 seconds")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "gateway", help="serve DBN files over Databento's live protocol (for databento.Live)",
        description="A local Live Subscription Gateway: databento.Live(key, gateway='127.0.0.1', port=N) "
                    "streams the given DBN files from it.",
    )
    configure_parser(p)
    return p


def configure_parser(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, action="append", metavar="FILE",
                     help=".dbn or .dbn.zst file (DBN v1/v2/v3); repeat to merge several by time")
    src.add_argument("--sim", metavar="SCENARIO", choices=sorted(SCENARIOS),
                     help="serve a simulated GC session (aurum sim scenario: quiet, trend, icebergs, "
                          "absorption, sweeps, mixed). It is generated at start-up (MBO, MBP-10, trades "
                          "and labels, written to --sim-dir) and paced in real time unless --speed says "
                          "otherwise; it is not generated incrementally")
    p.add_argument("--seed", type=non_negative_int, default=7, help="simulator seed for --sim, >= 0 (default 7)")
    p.add_argument("--sim-records", type=record_count, default=1_000_000, metavar="N",
                   help="approximate MBO records of the --sim session (default 1,000,000)")
    p.add_argument("--sim-dir", type=Path, default=None, metavar="DIR",
                   help="where --sim writes its session files and labels (default: a temporary folder)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=port, default=13000, help="TCP port, 0-65535 (default 13000; 0 picks a free one)")
    p.add_argument("--key-file", type=Path, metavar="PATH",
                   help="API keys, one per line (also: AURUM_GATEWAY_KEYS, comma-separated)")
    p.add_argument("--speed", type=speed, default=_SPEED_UNSET, metavar="max|realtime|Nx",
                   help="pacing of the real-time part by ts_event (default max; realtime for --sim)")
    p.add_argument("--now", type=parse_time_ns, default=None, metavar="TIME",
                   help="the data time treated as 'now': history before it (start=, snapshots), "
                        "real time after it (default: the first record)")
    p.add_argument("--at-end", choices=("close", "idle", "loop"), default="close",
                   help="when the data runs out: close each session (default), keep it open with heartbeats, "
                        "or loop: replay it again forever, times and order ids moved on (soak and latency runs)")
    p.add_argument("--batch-ms", type=_batch_ms, default=1.0, metavar="MS",
                   help="paced sessions send what is due at most every MS milliseconds (default 1; 0: as soon "
                        "as due, which at high rates keeps a core busy for smaller batches)")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="inject a fault into every session (see aurum.gateway.faults), e.g. cut@100, stall=2@50")
    p.add_argument("--slow-reader-lag", type=_positive_s, default=2.0, metavar="S",
                   help="a paced session this many seconds behind is a slow reader (default 2)")
    p.add_argument("--lsg-version", default=None, help="version string of the greeting")
    p.add_argument("--admin-stdin", action="store_true", help="read admin commands from stdin")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))


def _fail(msg: str) -> int:
    print(f"{PROG}: {msg}", file=sys.stderr)
    return 1


def _simulate(args: argparse.Namespace) -> list[Path]:
    """Runs the simulator into --sim-dir (or a temporary folder) and returns its DBN files.
    Interrupted (Ctrl-C), it leaves no partial file: a temporary folder is removed, and in
    --sim-dir the files appear only once all are written (``aurum.sim.cli.generate``)."""
    import tempfile

    from aurum.sim import scenario_params, tune_malloc
    from aurum.sim.cli import generate

    tune_malloc()
    made = args.sim_dir is None
    out_dir = Path(tempfile.mkdtemp(prefix="aurum-gateway-sim-")) if made else args.sim_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        params = scenario_params(args.sim, seed=args.seed, records=args.sim_records)
        _, info = generate(params, out_dir / f"{args.sim}-seed{args.seed}.dbn.zst", scenario=args.sim)
    except BaseException:
        if made:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    paths = info["paths"]
    print(f"{PROG}: simulated {args.sim} (seed {args.seed}) into {out_dir}; labels {paths['labels']}",
          file=sys.stderr)
    return [Path(paths[k]) for k in ("mbo", "mbp-10", "trades")]


def run(args: argparse.Namespace) -> int:
    """Run the gateway until interrupted (Ctrl-C: one line, exit 130). Returns the exit code."""
    try:
        return _run(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    from aurum.gateway.faults import FaultPlan, FaultSpecError
    from aurum.gateway.server import LSG_VERSION, Gateway, GatewayConfig, GatewayError, KeyStore
    from aurum.gateway.sources import FileSource

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.sim is not None:
        try:
            args.data = _simulate(args)
        except (OSError, ValueError, KeyError) as e:
            return _fail(f"cannot simulate scenario {args.sim!r}: {e}")
        if args.speed is _SPEED_UNSET:
            args.speed = 1.0
    if args.speed is _SPEED_UNSET:
        args.speed = None
    missing = [p for p in args.data if not p.is_file()]
    if missing:
        return _fail(f"no such file: {missing[0]}")
    try:
        faults = FaultPlan.parse(args.fault)
    except FaultSpecError as e:
        return _fail(str(e))
    try:
        keys = KeyStore.load(args.key_file, os.environ.get("AURUM_GATEWAY_KEYS"))
    except (GatewayError, ValueError) as e:
        return _fail(str(e))
    if len(keys) == 0 and not args.admin_stdin:
        return _fail("no API keys: give --key-file or set AURUM_GATEWAY_KEYS")
    try:
        source = FileSource(args.data, now=args.now, speed=args.speed, loop=args.at_end == "loop",
                            batch_every_s=args.batch_ms / 1e3)
    except (OSError, ValueError) as e:
        return _fail(f"cannot load the data: {e}")
    config = GatewayConfig(
        host=args.host, port=args.port, lsg_version=args.lsg_version or LSG_VERSION, at_end=args.at_end,
        faults=faults, slow_reader_lag_s=args.slow_reader_lag,
    )
    gateway = Gateway(config, source, keys)
    try:
        import uvloop  # as the daemon: its transports write from C, a third of the cost at 1M rec/s

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        return int(runner(_main(gateway, source, args.admin_stdin)))
    except GatewayError as e:
        return _fail(str(e))


async def _main(gateway: Any, source: Any, admin_stdin: bool) -> int:
    port = await gateway.start()
    speed = "max" if source.speed is None else f"{source.speed:g}x"
    print(
        f"{PROG}: listening on {gateway.config.host}:{port} ({len(source):,} records, "
        f"{len(source.instruments())} instruments, dataset {source.dataset}, speed {speed})",
        flush=True,
    )
    tasks = [asyncio.create_task(gateway.serve_forever())]
    if admin_stdin:
        tasks.append(asyncio.create_task(_admin_loop(gateway)))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await gateway.close()
        for t in tasks:
            t.cancel()
    return 0


async def _admin_loop(gateway: Any) -> None:
    """Admin commands on stdin; EOF on stdin stops the gateway (its parent has gone)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        text = line.decode("utf-8", errors="replace").strip()
        if text:
            print(gateway.admin(text), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description="A local Databento Live Subscription Gateway.")
    configure_parser(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
