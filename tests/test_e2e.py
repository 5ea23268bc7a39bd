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


def test_live_signals_are_the_replay_of_the_daemons_own_journal(tmp_path: Path) -> None:
    """The daemon decides at each bar close with the engines as of the bar's end, not of
    wherever a TCP read ended (``hold_at_bar_close``): so ``aurum replay`` of the journal it
    wrote, read in whole 1 MiB pieces, gives the signals it published live, bit for bit."""
    from aurum.consumer import ShmReader
    from aurum.config import load_config
    from aurum.replay import Replayer, options_from_config

    key = fake_key()
    gw = GatewayProc([], "--sim", "mixed", "--sim-records", "400000", "--sim-dir", str(tmp_path / "sim"),
                     "--speed", "max", "--at-end", "idle", log_path=tmp_path / "gateway.log", env_keys=key)
    journal = tmp_path / "journal"
    env = {"AURUM_PERSISTENCE_JOURNAL_DIR": str(journal), "AURUM_SIGNALS_BAR_INTERVAL_S": "5"}
    try:
        with DaemonProc(tmp_path, gw.port, key, env=env) as d:
            d.wait_log("connected")
            # The whole session is in when the record count stops moving.
            last, still = -1.0, 0
            while still < 10:
                time.sleep(0.2)
                n = d.metric('aurum_records_total{rtype="mbo"}')
                still = still + 1 if n == last and n > 0 else 0
                last = n
            with ShmReader(d.shm, from_start=True) as r:
                live, lost = r.poll()
            assert lost == 0
            assert d.terminate(timeout=10) == 0, d.log()
    finally:
        gw.stop()
    assert len(live) >= 4, "the session should produce signals"
    files = sorted(journal.rglob("*.dbn.zst"))
    assert files
    cfg = load_config(None, environ=env)  # the daemon's settings, as `aurum replay --config` takes them
    replayed = Replayer(options_from_config(cfg)).run(files).report["signals"]
    # Neither the daemon at SIGTERM nor the replay at the end of its files decides on the last,
    # unfinished bar: the same signals, all of them.
    pick = lambda s: (s["action"], s["direction"], s["confidence"], s["entry"], s["stop"])  # noqa: E731
    assert [pick(s) for s in replayed] == [pick(s) for s in live]
    assert [s["ts"] for s in replayed] == [s["ts_ns"] for s in live]
