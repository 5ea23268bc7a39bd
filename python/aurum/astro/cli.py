"""``aurum astro``: list astronomical events (UTC) between two dates.

    aurum astro --from 2026-01-01 --to 2027-01-01 --json
    aurum astro --from 2026-03-01 --to 2026-04-01 --types new_moon,full_moon
    aurum astro --from 2026-01-01 --to 2026-02-01 --types conjunction,square --orb 2

Dates are UTC: ``YYYY-MM-DD`` (midnight) or ISO-8601 date-times (``2026-01-01T12:00Z``). The
lead wires ``add_parser``/``run`` into ``aurum.cli``; ``python -m aurum.astro.cli ...`` runs
it standalone.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta
from typing import Any

MAX_SPAN_DAYS = 366 * 100  # a typo'd year should fail fast, not compute for minutes


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``astro`` subcommand on an ``argparse`` subparsers object."""
    from aurum.astro.events import DEFAULT_ORB, EVENT_TYPES

    s = subparsers.add_parser(
        "astro", help="astronomical timing events (lunar phases, aspects, stations, ingresses)",
        description="Geocentric tropical events from an offline ephemeris, times in UTC.")
    # Dates are parsed in run(), not by argparse types, so a bad one gives one clear line.
    s.add_argument("--from", dest="start", default=None,
                   help="UTC start, e.g. 2026-01-01 or 2026-01-01T12:00Z (default: today)")
    s.add_argument("--to", dest="end", default=None,
                   help="UTC end, exclusive (default: 30 days after --from)")
    s.add_argument("--types", default=None, metavar="T1,T2",
                   help="only these event types: " + ",".join(EVENT_TYPES))
    s.add_argument("--orb", default=str(DEFAULT_ORB), metavar="DEG",
                   help=f"aspect orb in degrees, bounds each aspect's window (default {DEFAULT_ORB:g})")
    s.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    return s


def _fail(message: str) -> int:
    print(f"aurum astro: {message}", file=sys.stderr)
    return 2


def _parse_time(text: str, flag: str) -> datetime:
    from aurum.astro.ephemeris import as_utc

    try:
        return as_utc(text)
    except ValueError:
        raise ValueError(f"{flag} was {text!r}, expected a UTC date such as 2026-01-01 "
                         f"or 2026-01-01T12:00:00Z") from None


def run(args: argparse.Namespace) -> int:
    """Compute and print the events. Returns the exit code (2 on bad arguments)."""
    from aurum.astro.ephemeris import UTC
    from aurum.astro.events import AstroEngine, check_orb, check_types

    try:
        if args.start is not None:
            start = _parse_time(args.start, "--from")
        else:
            now = datetime.now(UTC)
            start = datetime(now.year, now.month, now.day, tzinfo=UTC)
        end = _parse_time(args.end, "--to") if args.end is not None else start + timedelta(days=30)
        types = check_types(args.types.split(",")) if args.types is not None else None
        try:
            orb = check_orb(float(args.orb))
        except ValueError as e:
            raise ValueError(f"--orb: {e}" if "orb must" in str(e) else
                             f"--orb was {args.orb!r}, expected degrees such as 1.5") from None
    except ValueError as e:
        return _fail(str(e))
    if not end > start:
        return _fail(f"--to ({end.isoformat()}) must be after --from ({start.isoformat()})")
    if end - start > timedelta(days=MAX_SPAN_DAYS):
        return _fail(f"the range spans more than {MAX_SPAN_DAYS // 366} years")
    if types is not None and not types:
        return _fail("--types is empty")

    events = AstroEngine(orb=orb).events_between(start, end, types=types)
    if args.json:
        import orjson

        sys.stdout.buffer.write(orjson.dumps([e.to_dict() for e in events],
                                             option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.flush()
    else:
        _print_table(events)
    return 0


def _print_table(events: list[Any]) -> None:
    from aurum.astro.events import iso_utc

    rows = [(iso_utc(e.time), e.type, "-".join(e.bodies),
             "" if e.angle is None else f"{e.angle:g}", e.sign or "", e.detail) for e in events]
    head = ("time (UTC)", "type", "bodies", "angle", "sign", "detail")
    widths = [max([len(head[i]), *(len(r[i]) for r in rows)]) for i in range(5)]
    for row in [head, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths)) + "  " + row[5])
    print(f"{len(rows)} events")


def main(argv: list[str] | None = None) -> int:
    """Standalone entry: ``python -m aurum.astro.cli [astro] --from ... --to ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "astro":
        args.insert(0, "astro")  # the subcommand word is optional when run standalone
    parser = argparse.ArgumentParser(prog="aurum")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return run(parser.parse_args(args))


if __name__ == "__main__":
    sys.exit(main())
