"""``aurum demo`` (``make run``): the whole live path on one machine, no key needed.

Starts ``aurum gateway`` serving a simulated GC session over Databento's live protocol,
``aurum run`` (the daemon) against it with a throwaway key made up at run time, and prints
the signals arriving in shared memory, as ``aurum tail`` does. Everything binds to
127.0.0.1 and is torn down at the end (or on Ctrl-C: one line, exit 130).

The gateway's and the daemon's logs go to a temporary folder (/tmp/aurum-demo-XXXX). It is
removed when the demo succeeds or is interrupted, and kept when the demo fails (the error
line names it). Set ``AURUM_DEMO_KEEP=1`` to keep it in every case.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aurum.cliargs import non_negative_int, speed
from aurum.sim.params import SCENARIOS
from aurum.tail import positive_count

KEEP_ENV = "AURUM_DEMO_KEEP"


def _timeout(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0 < v <= 86_400:  # NaN fails here too
        raise argparse.ArgumentTypeError(f"was {text!r}, expected more than 0 and at most 86400 seconds")
    return v


def _speed(text: str) -> str:
    speed(text)  # checked here; the gateway is given the text
    return text


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo", help="gateway + daemon + tail on a simulated session (what `make run` does)",
        description="Runs aurum gateway (a simulated session), aurum run and aurum tail together on 127.0.0.1. "
                    "Logs go to a temporary folder, kept when the demo fails and removed otherwise; "
                    f"{KEEP_ENV}=1 keeps it always.")
    p.add_argument("--count", type=positive_count, default=6, help="stop after this many signals (default 6)")
    p.add_argument("--timeout", type=_timeout, default=180.0, help="give up after this many seconds (default 180)")
    p.add_argument("--scenario", default="mixed", choices=sorted(SCENARIOS), help="simulator scenario (default mixed)")
    p.add_argument("--seed", type=non_negative_int, default=7, help="simulator seed, >= 0 (default 7)")
    p.add_argument("--speed", type=_speed, default="40x", metavar="max|realtime|Nx",
                   help="gateway pacing (default 40x real time)")
    p.add_argument("--json", action="store_true", help="one JSON object per signal")
    return p


def _fake_key() -> str:
    # A made-up key in Databento's format; the local gateway accepts it because we hand it
    # the same value. It is never printed.
    rng = random.SystemRandom()
    return "db-" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(29))


def _aurum() -> list[str]:
    return [sys.executable, "-m", "aurum.cli"]


class _Failed(Exception):
    """The demo failed; the message says how (the logs are kept)."""


def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="aurum-demo-"))
    keep = os.environ.get(KEEP_ENV) == "1"
    try:
        rc = _run(args, work)
        if rc == 130:  # tail stopped by the same Ctrl-C (it reaches the whole process group)
            raise KeyboardInterrupt
        if rc != 0:
            raise _Failed(f"aurum tail exited with {rc}")
    except _Failed as e:
        shutil.rmtree(work / "sim", ignore_errors=True)  # the session files: seeded, made again at will
        kept = " (kept)" if str(work) in str(e) else f"; logs kept in {work}"
        print(f"aurum demo: {e}{kept}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        rc = 130
        print("aurum demo: interrupted", file=sys.stderr)
    if keep:
        print(f"aurum demo: kept {work} ({KEEP_ENV}=1)", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return rc


def _run(args: argparse.Namespace, work: Path) -> int:
    key = _fake_key()
    shm_name = f"aurum-demo-{os.getpid()}"
    procs: list[subprocess.Popen[str]] = []
    try:
        genv = {**os.environ, "AURUM_GATEWAY_KEYS": key}
        gw = subprocess.Popen([*_aurum(), "gateway", "--sim", args.scenario, "--seed", str(args.seed),
                               "--sim-records", "600000", "--sim-dir", str(work / "sim"), "--port", "0",
                               "--speed", args.speed, "--at-end", "idle"],
                              stdout=subprocess.PIPE, stderr=(work / "gateway.log").open("w"), text=True, env=genv)
        procs.append(gw)
        assert gw.stdout is not None
        line = gw.stdout.readline()
        if "listening on 127.0.0.1:" not in line:
            raise _Failed(f"the gateway did not start; see {work / 'gateway.log'}")
        port = int(line.split("127.0.0.1:")[1].split()[0])
        print(f"gateway   127.0.0.1:{port} serving a simulated {args.scenario} GC session at {args.speed}")
        denv = {**os.environ, "DATABENTO_API_KEY": key, "AURUM_FEED_GATEWAY": "127.0.0.1",
                "AURUM_FEED_PORT": str(port), "AURUM_FEED_SYMBOLS": "GCZ6", "AURUM_FEED_STYPE_IN": "raw_symbol",
                "AURUM_FEED_SCHEMAS": "mbo", "AURUM_FEED_CLOCK": "data", "AURUM_SHM_NAME": shm_name,
                "AURUM_PERSISTENCE_CHECKPOINT": str(work / "iceberg-memory.bin"), "AURUM_SIGNALS_BAR_INTERVAL_S": "5",
                "AURUM_METRICS_PORT": "0"}
        daemon = subprocess.Popen([*_aurum(), "run"], stdout=subprocess.DEVNULL,
                                  stderr=(work / "daemon.log").open("w"), text=True, env=denv)
        procs.append(daemon)
        print(f"daemon    aurum run -> /dev/shm/{shm_name} (5 s bars; log {work / 'daemon.log'})")
        deadline = time.monotonic() + args.timeout
        while not Path("/dev/shm", shm_name).exists():
            if daemon.poll() is not None:
                raise _Failed(f"the daemon did not start; see {work / 'daemon.log'}")
            if time.monotonic() > deadline:
                raise _Failed(f"the daemon made no segment in --timeout {args.timeout:g} s; "
                              f"see {work / 'daemon.log'}")
            time.sleep(0.1)
        print(f"tail      waiting for {args.count} signals\n")
        sys.stdout.flush()
        tail = subprocess.run([*_aurum(), "tail", "--name", shm_name, "--from-start", "--count", str(args.count),
                               *(["--json"] if args.json else [])], timeout=max(1.0, deadline - time.monotonic()))
        return tail.returncode
    except subprocess.TimeoutExpired:
        raise _Failed(f"fewer than {args.count} signals in --timeout {args.timeout:g} s") from None
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        Path("/dev/shm", shm_name).unlink(missing_ok=True)


__all__ = ["add_parser", "run"]
