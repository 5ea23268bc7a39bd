"""End-to-end latency and memory of the live path: gateway -> daemon -> shared memory -> consumer.

Three processes on loopback, as in production:

- ``aurum gateway`` replays a simulated GC MBO session, paced by ts_event so that it sends
  ``--rate`` records/s, looping (``--at-end loop``) for as long as the run lasts; every record
  carries its send time (``ts_out``), stamped just before the socket write;
- ``aurum run`` (the daemon) decodes, runs every engine, closes bars and
  publishes signals to shared memory, each stamped with the ``ts_out`` of the record that
  closed its bar; bars span ``speed / 10`` data-seconds, so they close about 10 times per
  wall second, and loose thresholds make most closes publish a signal;
- a consumer process (this file, ``--consumer``) blocks in ``ShmReader.wait`` (the segment's
  notify futex; ``--spin`` busy-polls instead) and records ``time.time_ns() - ts_out`` for
  every signal and state update: gateway send -> visible to another process.

Also reported: the daemon's own native histograms (socket read -> chunk processed, gateway
send -> signal published, from the Prometheus endpoint), the records rate it achieved, and
its RSS sampled every second (peak, and drift after the first minute).

Usage::

    python bench/bench_latency.py                     # 10 minutes at 1M records/s
    python bench/bench_latency.py --duration 60 --out /tmp/lat.md

Keep the machine otherwise idle: on 2 cores, gateway and daemon (and a spinning consumer)
already compete for CPU, and that contention shows in the tail.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import signal
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import orjson

AURUM = [sys.executable, "-m", "aurum.cli"]


def consumer(shm: str, out: Path, duration: float, sleep_s: float = 0.0, wait: bool = False) -> int:
    """Watch the ring (spinning, napping ``sleep_s``, or blocked in ``ShmReader.wait``); save
    one latency sample (ns) per stamped signal and per state update."""
    from aurum.consumer import SegmentMissing, ShmReader

    deadline = time.monotonic() + duration + 60
    while True:
        try:
            r = ShmReader(shm)
            break
        except SegmentMissing:
            if time.monotonic() > deadline:
                return 1
            time.sleep(0.05)
    lats: list[int] = []
    state_lats: list[int] = []
    unstamped = 0
    seen_state = 0
    end = time.monotonic() + duration
    stop = Path(str(out) + ".stop")
    while time.monotonic() < end and not stop.exists():
        if wait:
            r.wait(0.1)  # blocked on the notify futex until the daemon publishes
        sigs, _ = r.poll()
        if sleep_s and not sigs:
            time.sleep(sleep_s)  # yield the core (2-core machines): costs up to sleep_s of visibility
        if sigs:
            now = time.time_ns()
            for s in sigs:
                if s["ts_out"]:
                    lats.append(now - s["ts_out"])
                else:
                    unstamped += 1
        if r.state_seq() != seen_state:
            now = time.time_ns()
            st = r.state()
            if st is not None:
                seen_state = st["update_seq"]
                if st["ts_out"]:
                    state_lats.append(now - st["ts_out"])
    np.save(out, np.array(lats, dtype=np.int64))
    np.save(str(out) + ".state.npy", np.array(state_lats, dtype=np.int64))
    Path(str(out) + ".meta").write_text(f"{unstamped} {r.lost}\n")
    return 0


def _rss_kb(pid: int) -> tuple[int, int]:
    txt = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", txt).group(1))  # type: ignore[union-attr]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", txt).group(1))  # type: ignore[union-attr]
    return rss, hwm


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _metric(body: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", body, re.M)
    return float(m.group(1)) if m else 0.0


def _hist_quantiles(body: str, name: str, qs: tuple[float, ...]) -> dict[float, str]:
    """Upper bucket bound holding each quantile (what the histogram can say, coarsely)."""
    rows = [(float(le), float(v)) for le, v in re.findall(rf'^{name}_bucket{{le="([^"]+)"}} (\S+)$', body, re.M)]
    total = rows[-1][1] if rows else 0.0
    out = {}
    for q in qs:
        if total == 0:
            out[q] = "n/a"
            continue
        le = next(le for le, c in rows if c >= q * total)
        out[q] = "> 10 s" if le == float("inf") else f"<= {le * 1e6:g} µs"
    return out


def _fake_key() -> str:
    rng = random.SystemRandom()
    return "db-" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(29))


def run(args: argparse.Namespace) -> str:
    from aurum.gateway.sources import FileSource
    from aurum.sim import run_to_files

    work = Path(tempfile.mkdtemp(prefix="aurum-bench-lat-"))
    _, summary = run_to_files("mixed", work / "s.dbn.zst", seed=11, records=args.records)
    mbo = Path(summary["paths"]["mbo"])
    src = FileSource([mbo])
    span_s = (int(src.ts[-1]) - int(src.ts[0])) / 1e9
    density = len(src) / span_s  # records per data-second
    speed = args.rate / density
    # Replayed faster than real time, the data clock runs `speed` times the wall clock. Bars
    # of speed/10 data-seconds close about 10 times per wall second (ten times the cadence of
    # live 1 s bars, for enough signal samples), each closed by a record whose ts_out then
    # stamps the signal. Loose thresholds and no cooldown make most bar closes a signal.
    bar_s = max(1, round(speed / 10))
    key, shm = _fake_key(), f"aurum-bench-{os.getpid()}"
    procs: list[subprocess.Popen] = []
    try:
        gw = subprocess.Popen([*AURUM, "gateway", "--data", str(mbo), "--port", "0", "--speed", f"{speed:g}x",
                               "--at-end", "loop", "--slow-reader-lag", "3600",
                               "--batch-ms", f"{args.batch_ms:g}"],
                              stdout=subprocess.PIPE, stderr=(work / "gateway.log").open("w"), text=True,
                              env={**os.environ, "AURUM_GATEWAY_KEYS": key})
        procs.append(gw)
        assert gw.stdout is not None
        port = int(gw.stdout.readline().split("127.0.0.1:")[1].split()[0])
        denv = {**os.environ, "DATABENTO_API_KEY": key, "AURUM_FEED_GATEWAY": "127.0.0.1",
                "AURUM_FEED_PORT": str(port), "AURUM_FEED_SYMBOLS": "GCZ6", "AURUM_FEED_STYPE_IN": "raw_symbol",
                "AURUM_FEED_SCHEMAS": "mbo", "AURUM_FEED_CLOCK": "data", "AURUM_SHM_NAME": shm,
                "AURUM_PERSISTENCE_CHECKPOINT": str(work / "iceberg-memory.bin"), "AURUM_SIGNALS_BAR_INTERVAL_S": str(bar_s),
                "AURUM_SIGNALS_ENTER": "0.06", "AURUM_SIGNALS_EXIT": "0.05", "AURUM_SIGNALS_MIN_CONFIDENCE": "0.01",
                "AURUM_SIGNALS_COOLDOWN_BARS": "0",
                "AURUM_METRICS_PORT": "0"}
        log = work / "daemon.log"
        stages_path = work / "stages.json"
        if args.probe:  # the same daemon, with stage timers (bench/latency_probe.py)
            cmd = [sys.executable, str(Path(__file__).with_name("latency_probe.py"))]
            denv["AURUM_PROBE_OUT"] = str(stages_path)
        else:
            cmd = [*AURUM, "run"]
        daemon = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("w"), env=denv)
        procs.append(daemon)
        samples = work / "lat.npy"
        cons = subprocess.Popen([sys.executable, __file__, "--consumer", shm, "--samples", str(samples),
                                 "--duration", str(args.duration), "--poll-sleep-us", str(args.poll_sleep_us),
                                 *(["--spin"] if args.spin else [])])
        procs.append(cons)
        deadline = time.monotonic() + 60
        while "metrics on http://" not in log.read_text():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        url = log.read_text().split("metrics on ")[1].split()[0]
        t0 = time.monotonic()
        rss: list[tuple[float, int]] = []
        rec0 = None
        while time.monotonic() - t0 < args.duration:
            time.sleep(1.0)
            if daemon.poll() is not None:
                raise RuntimeError(f"daemon exited: {log.read_text()[-2000:]}")
            rss.append((time.monotonic() - t0, _rss_kb(daemon.pid)[0]))
            if rec0 is None and time.monotonic() - t0 >= 5:
                body = urllib.request.urlopen(url, timeout=5).read().decode()
                rec0 = (time.monotonic(), _metric(body, 'aurum_records_total{rtype="mbo"}'))
                cpu0 = {name: _cpu_s(p.pid) for name, p in (("gateway", gw), ("daemon", daemon), ("consumer", cons))}
        body = urllib.request.urlopen(url, timeout=5).read().decode()
        rec1 = (time.monotonic(), _metric(body, 'aurum_records_total{rtype="mbo"}'))
        cpu1 = {name: _cpu_s(p.pid) for name, p in (("gateway", gw), ("daemon", daemon), ("consumer", cons))}
        hwm = _rss_kb(daemon.pid)[1]
        Path(str(samples) + ".stop").touch()
        cons.wait(timeout=60)
        lats = np.load(samples) / 1e3  # µs
        state_lats = np.load(str(samples) + ".state.npy") / 1e3
        unstamped, lost = (int(x) for x in Path(str(samples) + ".meta").read_text().split())
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        Path("/dev/shm", shm).unlink(missing_ok=True)
    rate = (rec1[1] - rec0[1]) / (rec1[0] - rec0[0]) if rec0 else 0.0
    cpu = ", ".join(f"{k} {100 * (cpu1[k] - cpu0[k]) / (rec1[0] - rec0[0]):.0f} %" for k in cpu1) if rec0 else "n/a"
    t = np.array([x for x, _ in rss])
    r = np.array([y for _, y in rss], dtype=float) / 1024
    steady = t >= min(60.0, args.duration / 2)
    slope = np.polyfit(t[steady], r[steady], 1)[0] * 60 if steady.sum() > 2 else float("nan")
    q = (0.5, 0.99, 0.999)
    def row(name: str, x: np.ndarray) -> str:
        if not len(x):
            return f"| {name} | 0 | n/a | n/a | n/a | n/a |"
        p = np.percentile(x, [50, 99, 99.9])
        return f"| {name} | {len(x)} | {p[0]:.1f} | {p[1]:.1f} | {p[2]:.1f} | {x.max():.1f} |"

    mode = ("blocked in ShmReader.wait on the notify futex" if not args.spin else
            "spinning" if not args.poll_sleep_us else f"napping {args.poll_sleep_us:g} us when idle")
    sock = _hist_quantiles(body, "aurum_socket_to_processed_seconds", q)
    g2s = _hist_quantiles(body, "aurum_gateway_to_signal_seconds", q)
    date = dt.date.today().isoformat()
    lines = [
        f"# Live-path latency and memory ({date})",
        "",
        f"`python bench/bench_latency.py --duration {args.duration:g} --rate {args.rate:g} "
        f"--batch-ms {args.batch_ms:g}{' --spin --poll-sleep-us ' + format(args.poll_sleep_us, 'g') if args.spin else ''}`; "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}. Gateway, daemon and the consumer "
        f"({mode}) share the machine. Simulated GC MBO session "
        f"({len(src):,} records, looped), paced at {speed:.1f}x real time; bars of {bar_s} data-seconds "
        "(about 10 bar closes per wall second), loose signal thresholds so most closes publish.",
        "",
        f"- records/s processed by the daemon (from its counters): **{rate:,.0f}** (target {args.rate:,.0f})",
        f"- CPU per process over the same span (100 % = one core): {cpu}",
        f"- signals seen by the consumer: {len(lats)} stamped, {unstamped} without ts_out, {lost} lost to laps",
        "",
        "Gateway send (ts_out) -> visible to the consumer process, µs, exact per sample:",
        "",
        "| what the consumer read | samples | p50 | p99 | p99.9 | max |",
        "|---|---|---|---|---|---|",
        row("signal record (ts_out of the record that closed its bar)", lats),
        row("latest-state block (ts_out of the newest record processed)", state_lats),
        "",
        "| daemon's native histograms (bucket bound) | p50 | p99 | p99.9 |",
        "|---|---|---|---|",
        f"| socket read -> chunk processed | {sock[0.5]} | {sock[0.99]} | {sock[0.999]} |",
        f"| gateway send -> signal published | {g2s[0.5]} | {g2s[0.99]} | {g2s[0.999]} |",
        "",
        f"- daemon RSS: start {r[0]:.1f} MiB, end {r[-1]:.1f} MiB, peak (VmHWM) {hwm / 1024:.1f} MiB; "
        f"drift after the first minute {slope:+.3f} MiB/min (least squares over {int(steady.sum())} samples)",
        "",
    ]
    if args.probe:
        lines += _stage_table(stages_path)
    return "\n".join(lines)


def _stage_table(path: Path) -> list[str]:
    """The daemon's stage timers (--probe), first 10 % of each dropped as warm-up."""
    if not path.exists():
        return ["In-daemon stages: the probe wrote nothing (did the daemon stop cleanly?)", ""]
    stages = orjson.loads(path.read_bytes())
    out = ["In-daemon stages (`--probe`, bench/latency_probe.py; its timers add ~1 µs a call), µs:", "",
           "| stage | samples | p50 | p90 | p99 |", "|---|---|---|---|---|"]
    for name, values in stages.items():
        x = np.array(values[len(values) // 10:] if len(values) >= 20 else values)
        p = np.percentile(x, [50, 90, 99])
        out.append(f"| {name} | {len(x)} | {p[0]:.1f} | {p[1]:.1f} | {p[2]:.1f} |")
    return [*out, ""]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of measurement (default 600)")
    ap.add_argument("--rate", type=float, default=1e6, help="gateway records/s (default 1,000,000)")
    ap.add_argument("--records", type=int, default=2_000_000, help="simulated session size, looped (default 2M)")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    ap.add_argument("--batch-ms", type=float, default=1.0,
                    help="gateway --batch-ms: send what is due at most this often (default 1; 0 spins the "
                         "gateway for batches of a few records)")
    ap.add_argument("--spin", action="store_true",
                    help="the consumer spins on poll() (or naps --poll-sleep-us) instead of blocking in "
                         "ShmReader.wait() on the segment's notify futex (the default)")
    ap.add_argument("--poll-sleep-us", type=float, default=0.0,
                    help="with --spin: nap this long when nothing is new (default 0: spin on a core)")
    ap.add_argument("--probe", action="store_true",
                    help="run the daemon with stage timers (bench/latency_probe.py) and add where its time "
                         "goes to the report; the timers cost ~1 us a call, so quote the headline without it")
    ap.add_argument("--consumer", metavar="SHM", help=argparse.SUPPRESS)
    ap.add_argument("--samples", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.consumer:
        return consumer(args.consumer, args.samples, args.duration, args.poll_sleep_us * 1e-6, wait=not args.spin)
    md = run(args)
    print(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
