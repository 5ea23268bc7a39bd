"""``aurum eval``: score the detectors against the simulator's labels, or list what they find
in real files.

    aurum eval                                   # seeded scenarios, MBO, precision/recall/F1
    aurum eval --schema mbp-10                   # the same sessions through MBP-10 (L2) only
    aurum eval ../shared/data/es-real/esh4-20231225.mbo.dbn.zst   # real data: what was found
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from aurum.cliargs import finite_non_negative, non_negative_int
from aurum.evaluation.matching import Score, rules_text, score_all

DEFAULT_SCENARIOS = ("icebergs", "absorption", "sweeps", "mixed")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("eval", help="score the detectors on simulated sessions, or list detections in files")
    p.add_argument("paths", nargs="*", type=Path, help="DBN files to scan (no scoring); none = simulate and score")
    p.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                   help=f"comma-separated simulator scenarios (default {','.join(DEFAULT_SCENARIOS)})")
    p.add_argument("--seed", type=non_negative_int, default=1, help="simulator seed (default 1)")
    p.add_argument("--records", type=int, default=400_000, help="MBO records per scenario (default 400000)")
    p.add_argument("--schema", choices=("mbo", "mbp-10"), default="mbo",
                   help="which of the simulated files to feed (default mbo)")
    p.add_argument("--hold-tol", type=finite_non_negative, default=5.0, metavar="S",
                   help="time tolerance for icebergs/absorption windows, seconds (default 5)")
    p.add_argument("--event-tol", type=finite_non_negative, default=50.0, metavar="MS",
                   help="time tolerance for sweeps and stop runs, milliseconds (default 50)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    p.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR", help="keep the simulated files in DIR")
    return p


def _load_labels(path: Path) -> list[dict[str, Any]]:
    lines = path.read_bytes().splitlines()
    return [orjson.loads(x) for x in lines[1:] if x.strip()]


def evaluate(scenarios: list[str], *, seed: int, records: int, schema: str, hold_tol_s: float,
             event_tol_ms: float, workdir: Path) -> dict[str, Any]:
    from aurum.evaluation.runner import detect
    from aurum.sim import run_to_files

    per: list[dict[str, Any]] = []
    totals: dict[str, Score] = {}
    for name in scenarios:
        out = workdir / f"{name}-{seed}.dbn.zst"
        _, summary = run_to_files(name, out, seed=seed, records=records)
        labels = _load_labels(Path(summary["paths"]["labels"]))
        feed = Path(summary["paths"]["mbo" if schema == "mbo" else "mbp-10"])
        det = detect(feed)
        scores = score_all(labels, det.icebergs, det.absorption_signals, det.sweeps,
                           hold_tol_s=hold_tol_s, event_tol_ms=event_tol_ms)
        _mark_inactive(scores, det.engines)
        for s in scores:
            t = totals.setdefault(s.kind, Score(s.kind))
            t.labels += s.labels
            t.detections += s.detections
            t.labels_found += s.labels_found
            t.detections_correct += s.detections_correct
            for k, v in s.notes.items():
                t.notes[k] = t.notes.get(k, 0) + v
            t.inactive = t.inactive or s.inactive
        per.append({"scenario": name, "seed": seed, "file": str(feed), "records": det.records,
                    "records_per_s": round(det.records / det.seconds) if det.seconds else None,
                    "scores": [s.as_dict() for s in scores]})
    return {"schema": schema, "matching": rules_text(hold_tol_s, event_tol_ms), "scenarios": per,
            "total": [totals[k].as_dict() for k in totals]}


ENGINE_OF = {"native_iceberg": "iceberg", "synthetic_iceberg": "synthetic_iceberg", "absorption": "absorption",
             "sweep": "sweeps", "stop_run": "sweeps"}


def _mark_inactive(scores: list[Score], engines: dict[str, Any]) -> None:
    """A detector that cannot run on this schema has no target to meet: say why instead."""
    for s in scores:
        name = ENGINE_OF[s.kind]
        states = [e[name] for e in engines.values() if name in e]
        if states and not any(st["active"] for st in states):
            s.inactive = states[0].get("reason", "inactive")


def _fmt(v: float | None) -> str:
    return "   -  " if v is None else f"{v:6.3f}"


def print_scores(result: dict[str, Any], out: Any = sys.stdout) -> None:
    w = out.write
    hdr = f"  {'event type':<18}{'labels':>7}{'found':>7}{'detect':>8}{'correct':>8}  {'prec':>6} {'recall':>6} {'F1':>6}  target\n"

    def rows(scores: list[dict[str, Any]]) -> None:
        w(hdr)
        for s in scores:
            met = s["target_met"]
            mark = "" if met is None else ("met" if met else "MISSED")
            if s.get("inactive"):
                mark = f"n/a: engine inactive ({s['inactive']})"
            w(f"  {s['kind']:<18}{s['labels']:>7}{s['labels_found']:>7}{s['detections']:>8}{s['detections_correct']:>8}"
              f"  {_fmt(s['precision'])} {_fmt(s['recall'])} {_fmt(s['f1'])}  {s['target']} {mark}\n")

    for sc in result["scenarios"]:
        w(f"scenario {sc['scenario']} (seed {sc['seed']}, {sc['records']:,} {result['schema']} records, "
          f"{(sc['records_per_s'] or 0):,} rec/s)\n")
        rows(sc["scores"])
    w("all scenarios\n")
    rows(result["total"])
    w("matching rules (labels: the simulator's planted events; incomplete labels are not in recall; "
      "one-to-one: a maximum matching pairs each label with at most one detection and each detection with at "
      "most one label):\n")
    for k, v in result["matching"].items():
        w(f"  {k}: {v}\n")
    w("synthetic icebergs are an experimental heuristic (microstructure reference 1.4).\n")


def _never_ran(engines: dict[str, Any]) -> dict[str, str]:
    """Engines inactive on every instrument of the file -> why (the first reason given)."""
    out: dict[str, str] = {}
    per = list(engines.values())
    for name in (per[0] if per else {}):
        states = [e.get(name, {}) for e in per]
        if not any(st.get("active") for st in states):
            out[name] = states[0].get("reason", "inactive")
    return out


def scan_files(paths: list[Path], out: Any = sys.stdout, as_json: bool = False) -> int:
    from aurum.evaluation.runner import detect

    from aurum import _native

    docs = []
    for p in paths:
        if not p.exists():
            print(f"aurum eval: no such file: {p}", file=sys.stderr)
            return 2
        if not p.is_file():
            print(f"aurum eval: {p} is not a file (a directory?); give DBN files", file=sys.stderr)
            return 2
        try:
            d = detect(p)
        except (_native.DecodeError, OSError) as e:
            print(f"aurum eval: {p}: {e}", file=sys.stderr)
            return 1
        nat = [i for i in d.icebergs if i["kind"] == "native"]
        syn = [i for i in d.icebergs if i["kind"] == "synthetic"]
        doc = {"file": str(p), "records": d.records, "engines": d.engines,
               "native_icebergs": len(nat), "native_refills": sum(i["refills"] for i in nat),
               "native_refill_events": sum(i["events"] for i in nat),
               "native_hidden_qty": sum(i["hidden_qty"] for i in nat),
               "synthetic_icebergs": len(syn),
               "absorption_signals": len(d.absorption_signals),
               "zones": {"iceberg": sum(1 for z in d.zones if z["kind"] == "iceberg"),
                         "absorption": sum(1 for z in d.zones if z["kind"] == "absorption")},
               "sweeps": sum(1 for s in d.sweeps if s["kind"] == "sweep"),
               "stop_runs": sum(1 for s in d.sweeps if s["kind"] == "stop_run"),
               "top_icebergs": sorted(nat, key=lambda i: -i["hidden_qty"])[:10]}
        docs.append(doc)
        if not as_json:
            w = out.write
            w(f"{p} ({d.records:,} records, {d.records / d.seconds:,.0f} rec/s)\n")
            off = _never_ran(d.engines)
            if off:  # their zeros below mean "not looked for", not "none found"
                w("  not run on this file: " + "; ".join(f"{k} ({why})" for k, why in off.items()) + "\n")
            w(f"  native icebergs {doc['native_icebergs']} (refill events {doc['native_refill_events']}, "
              f"est. refills {doc['native_refills']}, hidden qty {doc['native_hidden_qty']})\n")
            w(f"  synthetic icebergs (experimental) {doc['synthetic_icebergs']}\n")
            w(f"  absorption signals {doc['absorption_signals']}; zones {doc['zones']}\n")
            w(f"  sweeps {doc['sweeps']}, stop runs {doc['stop_runs']}\n")
            for i in doc["top_icebergs"][:5]:
                w(f"    iceberg {i['order_id']} {i['side']} @ {i['price']} clip {i['clip']} "
                  f"refills {i['refills']} hidden {i['hidden_qty']} {i['state']}\n")
    if as_json:
        out.write(orjson.dumps(docs, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.paths:
        ignored = [f for f, v in (("--check", args.check), ("--keep", args.keep is not None)) if v]
        ignored += [f for f, d in (("--scenarios", ",".join(DEFAULT_SCENARIOS)), ("--schema", "mbo")) if getattr(args, f[2:]) != d]
        if ignored:
            print(f"aurum eval: ignoring {', '.join(ignored)}: they apply to scoring simulated sessions; "
                  "scanning files lists detections and scores nothing", file=sys.stderr)
        return scan_files(list(args.paths), as_json=args.json)
    from aurum.sim.params import SCENARIOS

    scenarios = list(dict.fromkeys(s.strip() for s in args.scenarios.split(",") if s.strip()))  # once each
    bad = [s for s in scenarios if s not in SCENARIOS]
    if bad or not scenarios:
        print(f"aurum eval: unknown scenario {bad[0] if bad else '(none)'!r}; choose from {', '.join(SCENARIOS)}",
              file=sys.stderr)
        return 2
    if args.records < 10_000:
        print("aurum eval: --records must be >= 10000", file=sys.stderr)
        return 2
    kw = dict(seed=args.seed, records=args.records, schema=args.schema, hold_tol_s=args.hold_tol,
              event_tol_ms=args.event_tol)
    if args.keep is not None:
        if args.keep.exists() and not args.keep.is_dir():
            print(f"aurum eval: --keep {args.keep} exists and is not a directory", file=sys.stderr)
            return 2
        args.keep.mkdir(parents=True, exist_ok=True)
        result = evaluate(scenarios, workdir=args.keep, **kw)
    else:
        with tempfile.TemporaryDirectory(prefix="aurum-eval-") as tmp:
            result = evaluate(scenarios, workdir=Path(tmp), **kw)
    if args.json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print_scores(result)
    if args.check and any(s["target_met"] is False for s in result["total"]):
        return 1
    return 0
