"""`aurum gateway --sim`: the simulator as the gateway's source, through the official client."""

from __future__ import annotations

from pathlib import Path

import databento as db
import databento_dbn as dbn

from gateway_proc import GatewayProc
from test_gateway_live_client import fake_key


def test_simulated_session_reaches_the_official_client_byte_for_byte(tmp_path: Path) -> None:
    key = fake_key()
    sim_dir = tmp_path / "sim"
    gw = GatewayProc([], "--sim", "quiet", "--seed", "3", "--sim-records", "3000", "--sim-dir", str(sim_dir),
                     "--speed", "max", log_path=tmp_path / "gw.log", env_keys=key)
    try:
        client = db.Live(key=key, gateway="127.0.0.1", port=gw.port)
        got: list[bytes] = []
        client.add_callback(lambda r: got.append(bytes(r)) if isinstance(r, dbn.MBOMsg) else None)
        client.subscribe(dataset="GLBX.MDP3", schema="mbo", symbols=["GCZ6"], stype_in="raw_symbol")
        client.start()
        client.block_for_close(timeout=60)
    finally:
        gw.stop()
    mbo_file = sim_dir / "quiet-seed3.dbn.zst"
    assert (sim_dir / "quiet-seed3.labels.jsonl").is_file()
    expected = [bytes(r)[: bytes(r)[0] * 4] for r in db.DBNStore.from_file(mbo_file) if isinstance(r, dbn.MBOMsg)]
    assert len(expected) > 1000
    assert [g[: g[0] * 4] for g in got] == expected
    assert "simulated quiet (seed 3)" in gw.log()
