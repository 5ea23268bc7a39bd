"""``aurum tail``: print the daemon's signals from shared memory as they arrive.

    aurum tail                       # human-readable, until Ctrl-C
    aurum tail --json --count 10     # ten JSON objects, one per line, then exit
    aurum tail --state               # the latest-state block once
    aurum tail --from-start          # first the signals still in the ring

Lost signals (this reader was lapped) and daemon restarts (the segment re-initialised or
replaced by a new writer, which tail waits for and then follows from its signal 0) are
reported on stderr, one line each, so stdout stays clean JSON. So is a writer that stopped
cleanly (the daemon sets its heartbeat to 0 on the way out) or whose heartbeat went stale.
A segment that exists but is not initialised yet (a daemon starting) is waited for, up to
INIT_WAIT_S seconds: one left empty by a writer that died while creating it never will be.
Ctrl-C: one line, exit 130.
The lead wires ``add_parser``/``run`` into ``aurum.cli``; ``python -m aurum.tail`` runs it
standalone.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import orjson

from aurum.cliargs import bounded, positive_int
from aurum.consumer import DEFAULT_NAME, SegmentNotReady, ShmError, ShmReader, segment_path

# A writer initialises its segment in milliseconds (a second for the largest capacity).
INIT_WAIT_S = 5.0


positive_count = positive_int
# 0 or below would spin a core.
_seconds = bounded(float, 0.001, 3600, expect="0.001..3600 seconds")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``tail`` subcommand on an ``argparse`` subparsers object."""
    t = subparsers.add_parser(
        "tail", help="print live signals from the daemon's shared-memory output",
        description="Follow the shared-memory signal ring (/dev/shm/NAME) written by the daemon.")
    _add_arguments(t)
    return t


def _add_arguments(t: argparse.ArgumentParser) -> None:
    t.add_argument("--name", default=os.environ.get("AURUM_SHM_NAME", DEFAULT_NAME),
                   help=f"segment name in /dev/shm (default: $AURUM_SHM_NAME or {DEFAULT_NAME})")
    t.add_argument("--json", action="store_true", help="one JSON object per line")
    t.add_argument("--count", type=positive_count, help="exit after this many signals")
    t.add_argument("--state", action="store_true", help="print the latest-state block once and exit")
    t.add_argument("--from-start", action="store_true", help="start with the signals still in the ring")
    t.add_argument("--interval", type=_seconds, default=1.0,
                   help="longest wait for a publication before re-checking the writer's heartbeat, "
                        "in seconds (default 1; a signal wakes the wait at once)")
    t.add_argument("--max-age", type=_seconds, default=5.0,
                   help="warn when the writer's heartbeat is older than this many seconds (default 5)")


def _json(obj: dict[str, Any]) -> str:
    # orjson writes a NaN or infinite float as null: the stdlib's NaN is not JSON.
    return orjson.dumps(obj).decode()


def _px(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def format_signal(s: dict[str, Any]) -> str:
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s["ts_ns"] // 1_000_000_000))
    ms = s["ts_ns"] // 1_000_000 % 1000
    targets = ",".join(_px(t) for t in s["targets"] if t is not None) or "-"
    line = (f"#{s['seq']} {ts}.{ms:03d}Z inst={s['instrument_id']} {s['action']:<4} entry={_px(s['entry'])} "
            f"stop={_px(s['stop'])} tgt={targets} dir={s['direction']:+.2f} conf={s['confidence']:.2f}")
    if s["veto"]:
        line += f" veto={s['veto']}"
    if s["reason"]:
        line += f" {s['reason']}"
    return line


def format_state(st: dict[str, Any]) -> str:
    lines = [f"market  last={_px(st['last'])} bid={_px(st['bid'])} ask={_px(st['ask'])} volume={st['volume']} "
             f"inst={st['instrument_id']} source={st['source']} feed={st['feed_state']} update#{st['update_seq']}",
             "pillars " + " ".join(f"{d:+.2f}/{c:.2f}" for d, c in zip(st["pillar_dir"], st["pillar_conf"])),
             f"zones   {len(st['zones'])}"]
    for z in st["zones"]:
        lines.append(f"  {_px(z['price'])} {z['side'] or '?'} kind={z['kind']} state={z['state']} "
                     f"strength={z['strength']:.2f} volume={z['volume']}")
    return "\n".join(lines)


def _emit(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _open(args: argparse.Namespace, wait_s: float = INIT_WAIT_S) -> ShmReader:
    """The reader, once the segment is initialised: a daemon starting right now is waited for,
    up to ``wait_s`` seconds (then ``ShmError``: its writer died while creating it)."""
    deadline = time.monotonic() + wait_s
    waiting = False
    while True:
        try:
            return ShmReader(args.name, from_start=args.from_start)
        except SegmentNotReady as e:
            if time.monotonic() >= deadline:
                path = segment_path(args.name)
                try:
                    size = f"{os.stat(path).st_size:,} bytes"
                except OSError:
                    size = "gone"
                raise ShmError(f"shared-memory segment {args.name!r} ({path}, {size}) is still not initialised "
                               f"after {wait_s:g} s: its writer died while creating it? Start the daemon (it "
                               "takes the segment over) or remove the file") from None
            if not waiting:
                print(f"aurum tail: {e}; waiting up to {wait_s:g} s", file=sys.stderr)
                waiting = True
            time.sleep(0.1)


def _writer_note(reader: ShmReader, max_age: float, following: bool = True) -> str | None:
    """A line about a writer that is not running (None while its heartbeat is fresh)."""
    age = reader.heartbeat_age_s()
    if age is None:  # set at initialisation, zeroed by a writer stopping cleanly
        then = "; waiting for a daemon to take the segment over" if following else ""
        return f"writer (pid {reader.writer_pid}) stopped cleanly{then}"
    if age > max_age:
        return f"warning: writer (pid {reader.writer_pid}) last heartbeat {age:.1f} s ago"
    return None


def run(args: argparse.Namespace) -> int:
    try:
        reader = _open(args)
    except (ShmError, ValueError) as e:
        print(f"aurum tail: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aurum tail: interrupted", file=sys.stderr)
        return 130
    try:
        with reader:
            return _run(reader, args)
    except ShmError as e:  # e.g. the daemon came back as another Aurum version
        print(f"aurum tail: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aurum tail: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The consumer (e.g. `| head`) went away: not an error. Keep the interpreter from
        # complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(reader: ShmReader, args: argparse.Namespace) -> int:
    note = _writer_note(reader, args.max_age, following=not args.state)
    if note:
        print(f"aurum tail: {note}", file=sys.stderr)
    if args.state:
        st = reader.state()
        if st is None:
            print(f"aurum tail: segment {args.name!r} has no state block yet", file=sys.stderr)
            return 1
        _emit(_json(st) if args.json else format_state(st))
        return 0
    printed, stale_warned, waiting, resets = 0, note is not None, False, reader.resets
    while True:
        batch, lost = reader.poll(None if args.count is None else args.count - printed)
        if reader.resets != resets:
            resets, waiting, stale_warned = reader.resets, False, False
            print(f"aurum tail: the daemon restarted (writer pid {reader.writer_pid}, capacity {reader.capacity}); "
                  "following it from its signal 0", file=sys.stderr)
        if lost:
            print(f"aurum tail: lost {lost} signals (reader lapped; total {reader.lost})", file=sys.stderr)
        for s in batch:
            _emit(_json(s) if args.json else format_signal(s))
        printed += len(batch)
        if args.count is not None and printed >= args.count:
            return 0
        if not batch:
            if reader.reinitialising:
                if not waiting:
                    print(f"aurum tail: a new daemon is initialising segment {args.name!r}; waiting", file=sys.stderr)
                waiting = True
                # Its first publication wakes the new mapping, not the one we wait on.
                time.sleep(min(args.interval, 0.05))
                continue
            note = _writer_note(reader, args.max_age)
            if note and not stale_warned:
                print(f"aurum tail: {note}", file=sys.stderr)
            stale_warned = note is not None
            reader.wait(args.interval)  # in the kernel until the writer publishes: no polling


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="aurum tail", description="Follow the daemon's shared-memory signals.")
    _add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
