"""Repeats `cargo bench --bench pipeline` on several inputs, interleaved, and reports the median
over runs of each run's median (issue 4's full-pipeline target: >= 15 M MBO records/s).

One run of the Rust bench takes a median over its passes; on this shared 2-vCPU VM whole runs
still differ by up to 1.5x from one minute to the next, so a single run says little. Here the
inputs take turns (ES as stored, ES as v3, GC), run after run, so a slow spell hits them alike,
and the table gives the median, min and max over runs, and how many runs reached the target.

    python bench/pipeline_runs.py --runs 10 --gc /tmp/gc3m.dbn.zst --out bench/results/DATE-pipeline-runs.md

The GC file is `aurum sim --scenario mixed --records 3000000 --seed 5 --out /tmp/gc3m.dbn.zst`
(not in the repo: 52 MB). Without --gc only the ES day runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ES = ROOT.parent / "shared" / "data" / "es-real" / "esh4-20231225.mbo.dbn.zst"
ROW = re.compile(r"^(decode only|decode \+ books \+ rings|full: \+ every engine|L3 book alone)\s+[\d.]+ ms\s+([\d.]+) M rec/s")
SECTION = re.compile(r"^(file as stored|upgraded to DBN v3 \(live wire format\)): (.+?): (\d+) records")
TARGET = 15.0


def bench_binary() -> Path:
    """Builds the bench once and returns its executable (so runs time the bench, not cargo)."""
    out = subprocess.run(["cargo", "bench", "--bench", "pipeline", "--no-run", "--message-format=json"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    import json

    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "pipeline" and msg.get("executable"):
            return Path(msg["executable"])
    sys.exit("pipeline_runs: cargo built no pipeline bench executable")


def one_run(exe: Path, path: Path, only_v3: bool, passes: int) -> dict[str, dict[str, float]]:
    env = {**os.environ, "AURUM_BENCH_PASSES": str(passes)}
    if only_v3:
        env["AURUM_BENCH_ONLY"] = "v3"
    out = subprocess.run([str(exe), "--bench", str(path)], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    got: dict[str, dict[str, float]] = {}
    section = None
    for line in out.splitlines():
        if m := SECTION.match(line):
            section = "v1 as stored" if m.group(1).startswith("file") else "v3"
            got[section] = {}
        elif (m := ROW.match(line)) and section:
            got[section][m.group(1)] = float(m.group(2))
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--gc", type=Path, help="the simulated GC file (see the module note)")
    ap.add_argument("--es-passes", type=int, default=30)
    ap.add_argument("--gc-passes", type=int, default=7)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    exe = bench_binary()
    inputs = [("ES day", ES, False, a.es_passes)]
    if a.gc:
        inputs.append(("simulated GC mixed seed 5", a.gc, True, a.gc_passes))
    started = dt.datetime.now(dt.timezone.utc)
    load0 = Path("/proc/loadavg").read_text().split()[:3]
    results: dict[tuple[str, str, str], list[float]] = {}
    for r in range(a.runs):
        for name, path, only_v3, passes in inputs:
            for section, rows in one_run(exe, path, only_v3, passes).items():
                for measure, rate in rows.items():
                    results.setdefault((name, section, measure), []).append(rate)
        print(f"run {r + 1}/{a.runs} done", file=sys.stderr)
    load1 = Path("/proc/loadavg").read_text().split()[:3]
    ended = dt.datetime.now(dt.timezone.utc)
    lines = [
        f"# Pipeline throughput over {a.runs} runs, {started:%Y-%m-%d %H:%M}-{ended:%H:%M} UTC",
        "",
        f"`python bench/pipeline_runs.py --runs {a.runs}` (`cargo bench --bench pipeline`, release, "
        f"{a.es_passes} passes per run for the ES day, {a.gc_passes} for GC; inputs alternate run by run). "
        f"Load average {' '.join(load0)} at the start, {' '.join(load1)} at the end. "
        "Each cell: the median over runs of each run's median pass, then the slowest and fastest run.",
        "",
        "| input | as | measure | median of runs | min | max | runs >= 15 M/s |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for (name, section, measure), v in results.items():
        full = measure.startswith("full")
        cell = f"**{statistics.median(v):.1f} M/s**" if full else f"{statistics.median(v):.1f} M/s"
        hits = f"{sum(x >= TARGET for x in v)}/{len(v)}" if full else ""
        lines.append(f"| {name} | {section} | {measure} | {cell} | {min(v):.1f} | {max(v):.1f} | {hits} |")
    lines += ["", "Every run, full pipeline (M records/s):", ""]
    for (name, section, measure), v in results.items():
        if measure.startswith("full"):
            lines.append(f"- {name}, {section}: " + ", ".join(f"{x:.1f}" for x in v))
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
