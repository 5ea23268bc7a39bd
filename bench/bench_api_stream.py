"""Signal published -> received by a WebSocket client of ``aurum api``, with the API's poller
woken by each publication (``api.wake_on_publish``, the default) and on its timer alone.

    python bench/bench_api_stream.py [--signals 200] [--every-ms 20] [--out FILE]

This process owns a real shared-memory segment (``aurum._native.ShmSignalWriter``, as the
daemon does) and publishes a signal every ``--every-ms`` with its wall-clock send time in
``ts_ns``; ``aurum api`` runs as its own process on loopback, and a ``websockets`` client here
records ``now - ts_ns`` for each signal it receives on ``/api/v1/stream``. Both configurations
run in the same invocation, alternating in rounds (a, b, a, b, ...), with the default
``poll_interval_s`` (50 ms), each round after ``WARMUP`` unmeasured signals. Reports p50/p99/max
per configuration and the ratio of medians.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import orjson
import websockets

from aurum import _native

WARMUP = 10  # signals per round before the measured ones
CONFIGS = {"woken by each publication": "true", "timer only (every 50 ms)": "false"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _round(shm: str, wake: str, n: int, every_s: float) -> list[float]:
    port = _free_port()
    tag = f"bench {port}"
    env = {**os.environ, "AURUM_API_WAKE_ON_PUBLISH": wake, "AURUM_SHM_NAME": shm}
    env.pop("AURUM_API_TOKEN", None)
    errors = tempfile.TemporaryFile()  # a pipe nobody reads while it runs could fill and stall it
    api = subprocess.Popen([sys.executable, "-m", "aurum.cli", "api", "--port", str(port), "--log-level", "warning"],
                           env=env, stdout=subprocess.DEVNULL, stderr=errors)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).read()
                break
            except OSError:
                if api.poll() is not None or time.monotonic() > deadline:
                    errors.seek(0)
                    raise RuntimeError(f"aurum api did not start: {errors.read().decode(errors='replace')[-2000:]}")
                await asyncio.sleep(0.1)
        lat: list[float] = []
        async with websockets.connect(f"ws://127.0.0.1:{port}/api/v1/stream") as ws:
            async def receive() -> None:
                while len(lat) < n:
                    m = orjson.loads(await ws.recv())
                    # This round's only: a new API process first streams the ring's newest
                    # signal, which is the previous round's last.
                    if m["type"] == "signal" and m["reason"] == tag:
                        lat.append((time.time_ns() - m["ts_ns"]) / 1e3)

            rx = asyncio.create_task(receive())
            await asyncio.sleep(0.5)  # the snapshot first
            # First uses of the API's serialisation path: not measured.
            for _ in range(WARMUP):
                _publish(shm, time.time_ns(), "warm-up")
                await asyncio.sleep(every_s)
            for _ in range(n):
                _publish(shm, time.time_ns(), tag)
                await asyncio.sleep(every_s)
            await asyncio.wait_for(rx, timeout=10)
        return lat
    finally:
        api.terminate()
        api.wait(timeout=10)
        errors.close()


_WRITERS: dict[str, _native.ShmSignalWriter] = {}


def _publish(shm: str, ts_ns: int, reason: str) -> None:
    _WRITERS[shm].heartbeat()  # a writer silent for 5 s reads as a dead daemon
    _WRITERS[shm].publish({"action": "BUY", "entry": 4100.5, "direction": 0.5, "confidence": 0.5,
                           "reason": reason, "ts_ns": ts_ns})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--signals", type=int, default=200, help="signals per round (default 200)")
    ap.add_argument("--every-ms", type=float, default=20.0, help="between signals (default 20)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds per configuration, alternating (default 2)")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    args = ap.parse_args()
    shm = f"aurum-bench-api-{os.getpid()}"
    w = _native.ShmSignalWriter(shm, capacity=1024)
    _WRITERS[shm] = w
    w.update_state({"last": 4100.0, "bid": 4099.9, "ask": 4100.1, "source": "databento", "feed_state": "live"})
    w.heartbeat()
    lats: dict[str, list[float]] = {k: [] for k in CONFIGS}
    try:
        for r in range(args.rounds):
            for name, wake in CONFIGS.items():
                print(f"round {r + 1}: {name}", file=sys.stderr)
                w.heartbeat()
                lats[name] += asyncio.run(_round(shm, wake, args.signals, args.every_ms / 1e3))
    finally:
        Path("/dev/shm", shm).unlink(missing_ok=True)
    med = {k: float(np.median(v)) for k, v in lats.items()}
    a, b = CONFIGS
    lines = [f"# aurum api stream latency ({dt.date.today().isoformat()})", "",
             f"`python bench/bench_api_stream.py --signals {args.signals} --every-ms {args.every_ms:g} "
             f"--rounds {args.rounds}`; {os.cpu_count()} cores, Python {sys.version.split()[0]}. Signal written to "
             "shared memory -> JSON message received by a WebSocket client of `aurum api` (its own process), "
             "µs, rounds alternating in one run.", "",
             "| API poller | signals | p50 | p99 | max |", "|---|---|---|---|---|"]
    for k, v in lats.items():
        x = np.array(v)
        lines.append(f"| {k} | {len(x)} | {med[k]:.0f} | {np.percentile(x, 99):.0f} | {x.max():.0f} |")
    lines += ["", f"Median ratio, timer only / woken: {med[b] / med[a]:.1f}x", ""]
    md = "\n".join(lines)
    print(md)
    if args.out:
        args.out.write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
