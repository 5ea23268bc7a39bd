"""The microstructure engines through the real pipeline: layouts, degradation by schema,
the replay report, Iceberg Memory snapshots, and native icebergs on real ES data counted
independently from the raw records."""

from __future__ import annotations

import os
import time
from pathlib import Path

import databento_dbn
import numpy as np
import orjson
import pytest

from aurum import _native
from aurum.engines import (
    ENGINE_RING_DTYPES, TABLE_DTYPES, engine_status, iceberg_dict, table_array,
)
from aurum.memory import MAGIC, SnapshotError, export_memory, load_memory, read_memory, restore_memory, save_memory
from aurum.replay import ReplayOptions, Replayer
from aurum.rings import ring_array
from aurum.testing.refills import count_refills
from conftest import read_dbn_bytes

ES_DAY = "esh4-20231225.mbo.dbn.zst"


def test_numpy_layouts_match_native_records() -> None:
    sizes = {"icebergs": _native.ICEBERG_RECORD_SIZE, "zones": _native.ZONE_RECORD_SIZE,
             "sweeps": _native.SWEEP_RECORD_SIZE, "flow": _native.FLOW_RECORD_SIZE,
             "footprint": _native.FOOTPRINT_RECORD_SIZE}
    dtypes = {**TABLE_DTYPES, **ENGINE_RING_DTYPES}
    for name, size in sizes.items():
        assert dtypes[name].itemsize == size, name
    pl = _native.Pipeline()
    for name in ENGINE_RING_DTYPES:
        assert ring_array(pl, name).dtype.itemsize == sizes[name]
    for name in TABLE_DTYPES:
        assert len(table_array(pl, name)) == 0


@pytest.fixture(scope="module")
def sim_session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from aurum.sim import run_to_files

    out = tmp_path_factory.mktemp("sim") / "s.dbn.zst"
    _, summary = run_to_files("mixed", out, seed=11, records=150_000)
    return {k: Path(v) for k, v in summary["paths"].items()}


def _run(path: Path, **kw: object) -> _native.Pipeline:
    pl = _native.Pipeline(**kw)  # type: ignore[arg-type]
    f = _native.DbnFile(str(path))
    while pl.feed_file(f):
        pass
    pl.finish()
    pl.flush_bars()
    return pl


def test_engines_degrade_by_schema(sim_session: dict[str, Path]) -> None:
    mbo = engine_status(_run(sim_session["mbo"]))
    (st,) = mbo.values()
    assert all(e["active"] for e in st.values()), st

    (l2,) = engine_status(_run(sim_session["mbp-10"])).values()
    assert not l2["iceberg"]["active"] and "MBO" in l2["iceberg"]["reason"]
    for name in ("absorption", "sweeps", "orderflow", "pressure", "protection"):
        assert l2[name]["active"], name

    pl = _run(sim_session["trades"])
    (l1,) = engine_status(pl).values()
    assert l1["orderflow"]["active"]
    for name in ("iceberg", "absorption", "sweeps", "pressure", "protection"):
        assert not l1[name]["active"] and l1[name]["reason"], name
    assert len(table_array(pl, "icebergs")) == 0

    (off,) = engine_status(_run(sim_session["mbo"], engines=False)).values()
    assert not any(e["active"] for e in off.values())


def test_bad_engine_config_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"absorption\.min_volumee"):
        _native.Pipeline(engine_config={"absorption": {"min_volumee": 5}})
    with pytest.raises(ValueError, match="iceberg.synthetic_min_clips"):
        _native.Pipeline(engine_config={"iceberg": {"synthetic_min_clips": "three"}})
    with pytest.raises(ValueError, match="bogus"):
        _native.Pipeline(engine_config={"bogus": 1})


def test_replay_report_has_engine_sections(sim_session: dict[str, Path]) -> None:
    rep = Replayer(ReplayOptions()).run([sim_session["mbo"]]).report
    for key in ("icebergs", "zones", "sweeps", "engines", "flow"):
        assert key in rep
    labels = [orjson.loads(x) for x in sim_session["labels"].read_bytes().splitlines()[1:]]
    native_ids = {lab["order_id"] for lab in labels if lab["kind"] == "native_iceberg"}
    found = {i["order_id"] for i in rep["icebergs"] if i["kind"] == "native"}
    assert native_ids and native_ids <= found
    for ice in rep["icebergs"]:
        assert {"order_id", "price", "side", "refills", "hidden_qty", "kind"} <= set(ice)
        assert ice["side"] in ("B", "A") and ice["kind"] in ("native", "synthetic")
    # Order flow bars line up with the time bars and their volumes agree.
    bars = {(b["instrument_id"], b["ts_close"]): b for b in rep["bars"] if b["kind"] == "time"}
    assert rep["flow"]
    for fl in rep["flow"]:
        b = bars[(fl["instrument_id"], fl["ts_close"])]
        assert (fl["buy_volume"], fl["sell_volume"]) == (b["buy_volume"], b["sell_volume"])
        assert fl["delta"] == b["buy_volume"] - b["sell_volume"]
    assert rep["sweeps"] and {s["kind"] for s in rep["sweeps"]} <= {"sweep", "stop_run"}


def test_iceberg_memory_snapshot_round_trip(sim_session: dict[str, Path], tmp_path: Path) -> None:
    pl = _run(sim_session["mbo"])
    ice = table_array(pl, "icebergs").copy()
    zones = table_array(pl, "zones").copy()
    assert len(ice) and len(zones)
    # A checkpoint write killed earlier left its temporary file; an old one is cleared, a
    # fresh one (a write in progress elsewhere) is left alone.
    orphan, fresh_tmp = tmp_path / "memory.bin.abc123.tmp", tmp_path / "memory.bin.def456.tmp"
    orphan.write_bytes(b"half a snapshot")
    fresh_tmp.write_bytes(b"being written")
    os.utime(orphan, (time.time() - 3600, time.time() - 3600))
    snap = save_memory(pl, tmp_path / "memory.bin")
    assert not orphan.exists() and fresh_tmp.exists()
    fresh_tmp.unlink()
    data = snap.read_bytes()
    assert data.startswith(MAGIC)
    # Header + the native rows, nothing else.
    assert len(data) == 40 + len(ice) * ice.dtype.itemsize + len(zones) * zones.dtype.itemsize
    fresh = _native.Pipeline()
    assert load_memory(fresh, snap) == (len(ice), len(zones))
    r_ice, r_zones = read_memory(snap)
    assert np.array_equal(r_ice, ice) and np.array_equal(r_zones, zones)
    assert np.array_equal(table_array(fresh, "icebergs"), ice)
    assert np.array_equal(table_array(fresh, "zones"), zones)
    assert not list(tmp_path.glob("*.tmp"))

    # The JSON export (and JSON snapshots of earlier builds) restores to the same tables.
    js = tmp_path / "memory.json"
    js.write_bytes(orjson.dumps(export_memory(pl)))
    other = _native.Pipeline()
    assert load_memory(other, js) == (len(ice), len(zones))
    assert np.array_equal(table_array(other, "icebergs"), ice)
    assert np.array_equal(table_array(other, "zones"), zones)

    bad = tmp_path / "bad.json"
    bad.write_bytes(b"{not json")
    with pytest.raises(SnapshotError, match="bad.json"):
        load_memory(fresh, bad)
    with pytest.raises(SnapshotError, match="format"):
        restore_memory(fresh, {"format": "other"})
    corrupt = bytearray(data)
    corrupt[-3] ^= 0x40
    cases = {
        "truncated": (data[:-5], "truncated"),
        "header": (data[:20], "header"),
        "corrupt": (bytes(corrupt), "checksum"),
        "layout": (data[:8] + (ice.dtype.itemsize + 8).to_bytes(4, "little") + data[12:], "layout"),
        "garbage": (b"\x00garbage", "not an Iceberg Memory snapshot"),
    }
    for name, (blob, why) in cases.items():
        f = tmp_path / f"{name}.bin"
        f.write_bytes(blob)
        with pytest.raises(SnapshotError, match=f"{name}.bin.*{why}|{why}.*{name}.bin"):
            load_memory(fresh, f)
    # A refused snapshot leaves the tables as they were.
    assert np.array_equal(table_array(fresh, "icebergs"), ice)
    assert np.array_equal(table_array(fresh, "zones"), zones)


def test_every_native_refill_in_real_es_day_is_found(es_real: Path) -> None:
    path = es_real / ES_DAY
    dec = databento_dbn.DBNDecoder(upgrade_policy=databento_dbn.VersionUpgradePolicy.UPGRADE_TO_V3)
    dec.write(read_dbn_bytes(path))
    truth = count_refills(r for r in dec.decode() if isinstance(r, databento_dbn.MBOMsg))
    assert truth, "the ES day has native refills (12 orders, 83 refill events)"

    pl = _run(path)
    found = {int(r["order_id"]): iceberg_dict(r) for r in table_array(pl, "icebergs") if r["kind"] == 1}
    missing = sorted(set(truth) - set(found))
    assert not missing, f"refilled orders not detected: {missing}"
    for oid, events in truth.items():
        # Every refill event is an event with hidden quantity revealed.
        assert found[oid]["events"] >= events, (oid, found[oid], events)
        assert found[oid]["refills"] >= events
        assert found[oid]["hidden_qty"] > 0


def test_pressure_and_risk_are_sane_on_a_simulated_session(sim_session: dict[str, Path]) -> None:
    pl = _run(sim_session["mbo"])
    (iid,) = pl.book_ids()
    bid_px, _, _, ask_px, _, _ = pl.last_top(iid)
    p = pl.pressure(iid)
    assert p["updates"] > 1000
    assert -1.0 <= p["imbalance"] <= 1.0 and -1.0 <= p["depth_imbalance"] <= 1.0
    assert bid_px / 1e9 <= p["microprice"] <= ask_px / 1e9
    assert p["spread"] == ask_px - bid_px > 0
    assert p["bid_depth"] > 0 and p["ask_depth"] > 0
    r = pl.risk(iid)
    assert not (r["crossed"] or r["locked"] or r["maybe_bad_book"] or r["stale"])
    assert r["spread_ema"] > 0 and r["depth_ema"] > 0
    # Judged an hour after the last record, the data is stale.
    late = pl.risk(iid, r["last_ts_recv"] + 3600 * 10**9)
    assert late["stale"] and late["flags"] & 4
    assert pl.cvd(iid) is not None
    assert pl.pressure(123456789) is None and pl.risk(123456789) is None


def test_crossed_book_and_maybe_bad_book_are_flagged() -> None:
    """A hand-built MBO stream: a normal book, then a bid above the ask, then F_MAYBE_BAD_BOOK."""
    from aurum.testing.synth import MBO_DTYPE, metadata_bytes

    px = 4100 * 10**9
    tick = 10**8
    rows = [("A", "B", 1, px - tick, 5, 128), ("A", "A", 2, px, 5, 128),
            ("A", "B", 3, px + tick, 1, 128),  # crosses: bid above ask
            ("C", "B", 3, px + tick, 1, 128 | _native.F_MAYBE_BAD_BOOK)]
    recs = np.zeros(len(rows), dtype=MBO_DTYPE)
    for i, (action, side, oid, price, size, flags) in enumerate(rows):
        recs[i]["action"], recs[i]["side"] = action.encode(), side.encode()
        recs[i]["order_id"], recs[i]["price"], recs[i]["size"], recs[i]["flags"] = oid, price, size, flags
        recs[i]["instrument_id"], recs[i]["ts_event"], recs[i]["ts_recv"] = 7, 10**18 + i, 10**18 + i
    recs["length"], recs["rtype"], recs["publisher_id"] = 14, 0xA0, 1
    pl = _native.Pipeline()
    pl.feed(metadata_bytes(instrument_id=7) + recs.tobytes())
    r = pl.risk(7)
    assert r["crossed_count"] == 1
    assert r["maybe_bad_book"] and r["maybe_bad_book_records"] == 1


def test_instruments_beyond_the_cap_are_counted_and_skipped(sim_session: dict[str, Path]) -> None:
    from aurum.testing.synth import MBO_DTYPE, metadata_bytes

    recs = np.zeros(3, dtype=MBO_DTYPE)
    recs["length"], recs["rtype"], recs["publisher_id"] = 14, 0xA0, 1
    recs["action"], recs["side"], recs["flags"] = b"A", b"B", 128
    recs["instrument_id"] = [1, 2, 3]
    recs["order_id"], recs["price"], recs["size"] = [1, 2, 3], 4100 * 10**9, 1
    recs["ts_event"] = recs["ts_recv"] = 10**18
    pl = _native.Pipeline(max_instruments=2)
    assert pl.feed(metadata_bytes() + recs.tobytes()) == 3
    assert sorted(pl.book_ids()) == [1, 2]
    assert pl.stats()["instruments_refused"] == 1
    with pytest.raises(ValueError, match="max_instruments"):
        _native.Pipeline(max_instruments=0)
    with pytest.raises(ValueError, match="flow.max_cells"):
        _native.Pipeline(engine_config={"flow": {"max_cells": 100_000}})


def test_memory_restore_keeps_the_recent_rows(sim_session: dict[str, Path], tmp_path: Path) -> None:
    """The tables have a fixed size: restored day after day, old rows would fill them and new
    icebergs and zones would be refused. Rows seen more than keep_days before the snapshot's
    newest are left out at restore."""
    pl = _run(sim_session["mbo"])
    ice, zones = table_array(pl, "icebergs").copy(), table_array(pl, "zones").copy()
    assert len(ice) >= 2 and len(zones) >= 2
    day = 86_400_000_000_000
    # Age half of each table by ten days (as if seen in an earlier session).
    ice["last_ts"][: len(ice) // 2] -= 10 * day
    zones["last_ts"][: len(zones) // 2] -= 10 * day
    fresh = _native.Pipeline()
    fresh.memory_restore(ice.tobytes(), zones.tobytes())
    snap = save_memory(fresh, tmp_path / "memory.bin")
    for keep_days, want in ((0, (len(ice), len(zones))), (7, (len(ice) - len(ice) // 2, len(zones) - len(zones) // 2)),
                            (30, (len(ice), len(zones)))):
        assert load_memory(_native.Pipeline(), snap, keep_days=keep_days) == want, keep_days
    st = fresh.stats()["memory"]
    assert st["icebergs"][:2] == (len(ice), 1 << 16) and st["icebergs"][2] == 0 and st["zones"][0] == len(zones)
    # A full table refuses rows, and says how many (aurum_memory_rows_dropped_total).
    tiny = _run(sim_session["mbo"], engine_config={"iceberg_capacity": 1, "zone_capacity": 1})
    st = tiny.stats()["memory"]
    assert st["icebergs"][:2] == (1, 1) and st["icebergs"][2] >= len(table_array(pl, "icebergs")) - 1 > 0
    assert st["zones"][:2] == (1, 1) and st["zones"][2] > 0
