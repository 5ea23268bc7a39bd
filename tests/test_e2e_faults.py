"""Feed faults at the daemon level, all in real processes: ``aurum gateway`` (a simulated GC
session with one fault armed for its first session) -> ``aurum run`` -> shared memory, read
back with ``aurum.consumer.ShmReader`` and the daemon's Prometheus endpoint.

Each fault is armed with the gateway's admin ``fault`` command, so only the first session
misbehaves and the daemon's reconnect gets a clean one. In every case the daemon must log
what happened in one clear line, count it in its metrics, reconnect, rebuild its book from the
fresh MBO snapshot and keep publishing, without ever exiting. The last test restarts the
daemon on its own checkpoint and checks the Iceberg Memory comes back.

Sessions start at ``--now`` (one minute into the data), so every snapshot carries a real book:
after a reconnect the daemon must replace what it had with that book, not add to it. (This
gateway starts every session at the same ``--now``, so a reconnect replays data the daemon has
seen; orders of the lost session that were not cleared would come back as duplicate adds.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_proc import DaemonProc, fake_key
from gateway_proc import GatewayProc

from aurum import _native
from aurum.memory import read_memory

# A minute after the simulator's default start: history before it (in the snapshots), live after.
NOW = "2026-09-14T13:31:00Z"
FAULT_AT = 20_000  # records into the first session: about a second of it at 40x
ANOMALIES = ("bad_price", "bad_side", "cancel_unknown", "duplicate_add", "modify_unknown", "over_cancel")
RECORDS = 'aurum_records_total{rtype="mbo"}'


@pytest.fixture(scope="module")
def mbo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 8.5 minutes of simulated GC MBO (icebergs, sweeps, absorption): 13 s at 40x."""
    from aurum.sim import run_to_files

    _, info = run_to_files("mixed", tmp_path_factory.mktemp("sim") / "mixed.dbn.zst", seed=7, records=200_000)
    return Path(info["paths"]["mbo"])


@pytest.fixture(scope="module")
def final_top(mbo_file: Path) -> tuple[int, float, float]:
    """(instrument, bid, ask) at the end of the data, from one uninterrupted replay: what the
    daemon's book must converge to after any reconnect (snapshot at --now + the rest)."""
    p = _native.Pipeline()
    f = _native.DbnFile(str(mbo_file))
    while p.feed_file(f):
        pass
    iid = p.book_ids()[0]
    top = p.last_top(iid)
    assert top is not None
    return iid, top[0] * 1e-9, top[3] * 1e-9


@pytest.fixture()
def key() -> str:
    return fake_key()


@pytest.fixture()
def gateway(tmp_path: Path, mbo_file: Path, key: str) -> Iterator[GatewayProc]:
    g = GatewayProc([mbo_file], "--speed", "40x", "--now", NOW, "--at-end", "idle",
                    log_path=tmp_path / "gateway.log", env_keys=key)
    try:
        yield g
    finally:
        g.stop()


# 5 s bars and low thresholds: a signal every few bars (a second or two at 40x), so "signals
# keep coming after the reconnect" does not hang on how eventful the rest of the session is.
SIGNAL_ENV = {"AURUM_SIGNALS_BAR_INTERVAL_S": "5", "AURUM_SIGNALS_ENTER": "0.2", "AURUM_SIGNALS_EXIT": "0.1",
              "AURUM_SIGNALS_MIN_CONFIDENCE": "0.1", "AURUM_SIGNALS_COOLDOWN_BARS": "1"}


def start_daemon(tmp_path: Path, gateway: GatewayProc, key: str, **kw: object) -> DaemonProc:
    env = {**SIGNAL_ENV, **kw.pop("env", {})}  # type: ignore[dict-item]
    return DaemonProc(tmp_path, gateway.port, key, env=env, **kw)  # type: ignore[arg-type]


def assert_book_sane(d: DaemonProc) -> dict[str, object]:
    st = d.state()
    assert st is not None and st["bid"] is not None and st["ask"] is not None, st
    assert 3000 < st["bid"] < st["ask"] < 5000, f"crossed or absurd top of book: {st}"
    return st


def assert_recovers(d: DaemonProc, gateway: GatewayProc, final_top: tuple[int, float, float]) -> None:
    """After the reconnect: data flows, signals keep coming, and once the second session has
    sent all its data the book ends at the reference top, never crossed on the way (so it was
    rebuilt from the snapshot, with nothing left over from the lost session)."""
    records, signals = d.metric(RECORDS), d.signals_written()
    d.wait_for("records after the reconnect", lambda: d.metric(RECORDS) > records + 10_000, 60)
    d.wait_for("signals after the reconnect", lambda: d.signals_written() > signals, 60)
    d.wait_for("the end of the data", lambda: assert_book_sane(d) and "session 2: end of data" in gateway.log(), 60)
    iid, bid, ask = final_top

    def converged() -> bool:
        st = assert_book_sane(d)
        return st.get("instrument_id") == iid and st.get("feed_state") == "live" and (
            abs(st["bid"] - bid) < 1e-6 and abs(st["ask"] - ask) < 1e-6)

    # The daemon may still be reading the last bytes the gateway wrote.
    d.wait_for(f"the book to end at the reference top {bid}/{ask}", converged, 10)
    m = d.metrics()
    for kind in ANOMALIES:
        assert m[f'aurum_mbo_anomalies_total{{kind="{kind}"}}'] == 0, f"{kind}: the book was not rebuilt cleanly"
    assert m["aurum_pipeline_failed"] == 0
    assert m['aurum_feed_state{state="live"}'] == 1
    assert d.alive()


def test_disconnect_reconnects_and_rebuilds_the_book_from_the_snapshot(
        tmp_path: Path, gateway: GatewayProc, key: str, final_top: tuple[int, float, float]) -> None:
    # cut: half a record, then close. The daemon holds a partial record it must throw away.
    gateway.admin(f"fault cut@{FAULT_AT}")
    with start_daemon(tmp_path, gateway, key) as d:
        log = d.wait_log("reconnected, session 2")
        assert "disconnected after" in log and "gateway closed the connection" in log
        assert re.search(r"reconnected, session 2, gap \d+\.\d{3} s \(reconnect 1\)", log), log
        m = d.metrics()
        assert m["aurum_reconnects_total"] == 1 and m["aurum_gaps_total"] == 1
        assert_recovers(d, gateway, final_top)
        assert key not in d.log()
        assert d.terminate() == 0


def test_stall_trips_the_heartbeat_watchdog_then_reconnects(
        tmp_path: Path, gateway: GatewayProc, key: str, final_top: tuple[int, float, float]) -> None:
    # Heartbeats every 5 s (the smallest the config allows): the watchdog fires after 15 s of
    # silence. The stall is longer, so only the watchdog can end it.
    gateway.admin(f"fault stall=25@{FAULT_AT}")
    with start_daemon(tmp_path, gateway, key, env={"AURUM_FEED_HEARTBEAT_INTERVAL_S": "5"}) as d:
        d.wait_log("connected, session 1")
        # Silent for longer than a heartbeat interval: consumers must see that the book is stale
        # well before the watchdog gives up on the connection.
        st = d.wait_for("feed_state stale in shared memory",
                        lambda: (s := d.state()) is not None and s["feed_state"] == "stale" and s, 30)
        assert "considered dead" not in d.log(), st
        assert d.metric('aurum_feed_state{state="stale"}') == 1
        d.wait_log("no data for 15.0 s: connection considered dead", 30)
        d.wait_log("reconnected, session 2", 30)
        assert "(no data for 15.0 s (heartbeat timeout)); reconnecting" in d.log()
        assert d.metric("aurum_reconnects_total") == 1
        assert_recovers(d, gateway, final_top)
        assert d.terminate() == 0


def test_garbage_on_the_wire_is_one_clear_error_then_a_reconnect(
        tmp_path: Path, gateway: GatewayProc, key: str, final_top: tuple[int, float, float]) -> None:
    # 64 zero bytes: a record of length 0, which no decoder can step over.
    gateway.admin(f"fault garbage=64@{FAULT_AT}")
    with start_daemon(tmp_path, gateway, key) as d:
        d.wait_log("reconnected, session 2")
        errors = [line for line in d.log().splitlines() if " ERROR " in line]
        assert len(errors) == 1, errors
        assert "decode error in session 1 at stream offset" in errors[0], errors[0]
        assert "impossible length 0" in errors[0]
        m = d.metrics()
        assert m["aurum_decode_errors_total"] == 1 and m["aurum_reconnects_total"] == 1
        assert_recovers(d, gateway, final_top)
        assert d.metric("aurum_decode_errors_total") == 1
        assert d.terminate() == 0


def test_restart_restores_the_iceberg_memory_from_the_sigterm_checkpoint(
        tmp_path: Path, gateway: GatewayProc, key: str) -> None:
    ckpt = tmp_path / "iceberg-memory.bin"
    ice, zones = 'aurum_engine_events_total{engine="icebergs"}', 'aurum_engine_events_total{engine="zones"}'
    with start_daemon(tmp_path, gateway, key, checkpoint=ckpt, log_name="daemon1.log") as d:
        seen = d.wait_for("icebergs and zones", lambda: (m := d.metrics())[ice] > 0 and m[zones] > 0 and m, 60)
        assert d.terminate() == 0
        assert "stopped:" in d.log()
    ice_rows, zone_rows = read_memory(ckpt)
    n_ice, n_zones = len(ice_rows), len(zone_rows)
    assert n_ice >= seen[ice] > 0 and n_zones >= seen[zones] > 0

    with start_daemon(tmp_path, gateway, key, checkpoint=ckpt, log_name="daemon2.log") as d:
        d.wait_log(f"restored Iceberg Memory from {ckpt}: {n_ice} icebergs, {n_zones} zones")
        m = d.metrics()  # the restored rows are in the live tables, not only in the log
        assert m[ice] >= n_ice and m[zones] >= n_zones
        d.wait_log("connected, session")
        assert d.terminate() == 0


def test_an_invalid_subscription_stops_the_daemon_with_exit_2(tmp_path: Path, gateway: GatewayProc, key: str) -> None:
    """INVALID_SUBSCRIPTION is the config's to fix (feed.symbols, schemas): exit 2, which the
    unit's RestartPreventExitStatus keeps from restarting every 2 s (it exited 1 before)."""
    gateway.admin("fault error=5@0")
    with start_daemon(tmp_path, gateway, key) as d:
        rc = d.proc.wait(timeout=30)
        errors = [line for line in d.log().splitlines() if " ERROR " in line]
    assert rc == 2, d.log()[-2000:]
    assert any("fatal error 5 INVALID_SUBSCRIPTION" in line for line in errors), errors
    assert "Traceback" not in d.log() and key not in d.log()
