"""The whole live path in separate processes: ``aurum gateway`` (simulated session over the
live protocol) -> ``aurum run`` (the daemon: LSG client, native pipeline, engines, decision)
-> shared memory -> ``aurum tail``. Also the daemon's graceful SIGTERM and its metrics."""

from __future__ import annotations

import os
import random
import signal
import string
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import orjson

AURUM = [sys.executable, "-m", "aurum.cli"]


def test_demo_streams_signals_end_to_end() -> None:
    out = subprocess.run([*AURUM, "demo", "--count", "3", "--json", "--timeout", "150"],
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    sigs = [orjson.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(sigs) == 3
    assert [s["seq"] for s in sigs] == sorted(s["seq"] for s in sigs)
    for s in sigs:
        assert s["action"] in ("BUY", "SELL", "FLAT") and s["instrument_id"] > 0 and s["reason"]
    assert "db-" not in out.stdout + out.stderr  # the throwaway key is never printed


def _fake_key() -> str:
    return "db-" + "".join(random.choice(string.ascii_letters + string.digits) for _ in range(29))


def test_daemon_stops_gracefully_on_sigterm_with_a_checkpoint(tmp_path: Path) -> None:
    key = _fake_key()
    gw = subprocess.Popen([*AURUM, "gateway", "--sim", "mixed", "--sim-records", "200000", "--sim-dir",
                           str(tmp_path / "sim"), "--port", "0", "--speed", "20x", "--at-end", "idle"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          env={**os.environ, "AURUM_GATEWAY_KEYS": key})
    shm = f"aurum-test-{uuid.uuid4().hex[:8]}"
    try:
        assert gw.stdout is not None
        port = int(gw.stdout.readline().split("127.0.0.1:")[1].split()[0])
        ckpt = tmp_path / "memory.json"
        env = {**os.environ, "DATABENTO_API_KEY": key, "AURUM_FEED_GATEWAY": "127.0.0.1",
               "AURUM_FEED_PORT": str(port), "AURUM_FEED_SYMBOLS": "GCZ6", "AURUM_FEED_STYPE_IN": "raw_symbol",
               "AURUM_FEED_SCHEMAS": "mbo", "AURUM_FEED_CLOCK": "data", "AURUM_SHM_NAME": shm,
               "AURUM_PERSISTENCE_CHECKPOINT": str(ckpt), "AURUM_METRICS_PORT": "0"}
        log = tmp_path / "daemon.log"
        d = subprocess.Popen([*AURUM, "run"], stderr=log.open("w"), stdout=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 60
        while "metrics on http://" not in log.read_text() or "connected" not in log.read_text():
            assert d.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        url = log.read_text().split("metrics on ")[1].split()[0]
        time.sleep(2)
        body = urllib.request.urlopen(url, timeout=5).read().decode()
        mbo = [line for line in body.splitlines() if line.startswith('aurum_records_total{rtype="mbo"}')]
        assert mbo and float(mbo[0].split()[-1]) > 0, body[:2000]
        assert 'aurum_feed_state{state="live"} 1.0' in body
        assert key not in body and key not in log.read_text()
        t0 = time.monotonic()
        d.send_signal(signal.SIGTERM)
        assert d.wait(timeout=10) == 0, log.read_text()
        assert time.monotonic() - t0 < 2.0, "graceful stop took too long"
        assert ckpt.exists() and orjson.loads(ckpt.read_bytes())["format"].startswith("aurum-iceberg-memory")
        assert "stopped:" in log.read_text()
    finally:
        gw.terminate()
        gw.wait(timeout=10)
        Path("/dev/shm", shm).unlink(missing_ok=True)


def test_wrong_key_falls_back_then_recovers_when_the_key_is_accepted(tmp_path: Path) -> None:
    """The daemon's key is refused -> after 3 attempts the source is Yahoo (shared memory says
    so) -> the gateway starts accepting the key -> the daemon is back on Databento, live."""
    from aurum.consumer import ShmReader

    gw_key, key = _fake_key(), _fake_key()
    gw = subprocess.Popen([*AURUM, "gateway", "--sim", "quiet", "--sim-records", "100000", "--sim-dir",
                           str(tmp_path / "sim"), "--port", "0", "--speed", "10x", "--at-end", "idle", "--admin-stdin"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          env={**os.environ, "AURUM_GATEWAY_KEYS": gw_key})
    shm = f"aurum-test-{uuid.uuid4().hex[:8]}"
    d = None
    try:
        assert gw.stdout is not None and gw.stdin is not None
        port = int(gw.stdout.readline().split("127.0.0.1:")[1].split()[0])
        env = {**os.environ, "DATABENTO_API_KEY": key, "AURUM_FEED_GATEWAY": "127.0.0.1",
               "AURUM_FEED_PORT": str(port), "AURUM_FEED_SYMBOLS": "GCZ6", "AURUM_FEED_STYPE_IN": "raw_symbol",
               "AURUM_FEED_SCHEMAS": "mbo", "AURUM_FEED_CLOCK": "data", "AURUM_SHM_NAME": shm,
               "AURUM_FEED_BACKOFF_INITIAL_S": "0.05", "AURUM_FEED_BACKOFF_MAX_S": "0.2",
               "AURUM_FEED_RETRY_INTERVAL_S": "0.5", "AURUM_PERSISTENCE_CHECKPOINT": str(tmp_path / "m.json"),
               "AURUM_METRICS_ENABLED": "false"}
        log = tmp_path / "daemon.log"
        d = subprocess.Popen([*AURUM, "run"], stderr=log.open("w"), stdout=subprocess.DEVNULL, env=env)

        def wait_state(source: str, timeout: float) -> dict[str, object]:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                assert d is not None and d.poll() is None, log.read_text()
                if Path("/dev/shm", shm).exists():
                    with ShmReader(shm) as r:
                        st = r.state()
                    if st is not None and st["source"] in (source, {"databento": 0, "yahoo": 1}[source]):
                        return st
                time.sleep(0.1)
            raise AssertionError(f"source never became {source}: {log.read_text()[-2000:]}")

        wait_state("yahoo", 60)
        assert "giving up after 3 failed attempts" in log.read_text()
        gw.stdin.write(f"add_key {key}\n")
        gw.stdin.flush()
        st = wait_state("databento", 60)
        assert st["feed_state"] in ("live", 1)
        text = log.read_text()
        assert "recovered" in text and key not in text
    finally:
        if d is not None and d.poll() is None:
            d.send_signal(signal.SIGTERM)
            d.wait(timeout=10)
        gw.terminate()
        gw.wait(timeout=10)
        Path("/dev/shm", shm).unlink(missing_ok=True)
