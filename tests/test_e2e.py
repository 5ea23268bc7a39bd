"""The whole live path in separate processes: ``aurum gateway`` (simulated session over the
live protocol) -> ``aurum run`` (the daemon: LSG client, native pipeline, engines, decision)
-> shared memory -> ``aurum tail``. Also the daemon's graceful SIGTERM and its metrics."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import orjson
from daemon_proc import AURUM, DaemonProc, fake_key, parse_metrics
from gateway_proc import GatewayProc

from aurum.memory import read_memory


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


def test_daemon_stops_gracefully_on_sigterm_with_a_checkpoint(tmp_path: Path) -> None:
    key = fake_key()
    gw = GatewayProc([], "--sim", "mixed", "--sim-records", "200000", "--sim-dir", str(tmp_path / "sim"),
                     "--speed", "20x", "--at-end", "idle", log_path=tmp_path / "gateway.log", env_keys=key)
    try:
        with DaemonProc(tmp_path, gw.port, key) as d:
            d.wait_log("connected")
            time.sleep(2)
            body = d.metrics_text()
            m = parse_metrics(body)
            assert m['aurum_records_total{rtype="mbo"}'] > 0, body[:2000]
            assert m['aurum_feed_state{state="live"}'] == 1
            assert key not in body and key not in d.log()
            t0 = time.monotonic()
            assert d.terminate(timeout=10) == 0, d.log()
            assert time.monotonic() - t0 < 2.0, "graceful stop took too long"
            assert d.checkpoint.exists()
            read_memory(d.checkpoint)  # a complete, valid snapshot (header, rows, checksum)
            assert "stopped:" in d.log()
    finally:
        gw.stop()


def test_wrong_key_falls_back_then_recovers_when_the_key_is_accepted(tmp_path: Path) -> None:
    """The daemon's key is refused -> after 3 attempts the source is Yahoo (shared memory says
    so) -> the gateway starts accepting the key -> the daemon is back on Databento, live."""
    gw_key, key = fake_key(), fake_key()
    gw = GatewayProc([], "--sim", "quiet", "--sim-records", "100000", "--sim-dir", str(tmp_path / "sim"),
                     "--speed", "10x", "--at-end", "idle", log_path=tmp_path / "gateway.log", env_keys=gw_key)
    env = {"AURUM_FALLBACK_ENABLED": "true", "AURUM_FEED_RETRY_INTERVAL_S": "0.5", "AURUM_METRICS_ENABLED": "false"}
    try:
        with DaemonProc(tmp_path, gw.port, key, env=env) as d:

            def source_is(source: str) -> dict[str, object] | None:
                st = d.state()
                return st if st is not None and st["source"] == source else None

            d.wait_for("source yahoo", lambda: source_is("yahoo"), 60)
            assert "giving up after 3 failed attempts" in d.log()
            gw.admin(f"add_key {key}")
            st = d.wait_for("source databento", lambda: source_is("databento"), 60)
            assert st["feed_state"] == "live"
            text = d.log()
            assert "recovered" in text and key not in text
    finally:
        gw.stop()
