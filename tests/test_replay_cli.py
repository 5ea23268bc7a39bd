"""`aurum replay` end to end, through the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import databento as db
import databento_dbn as dbn
import pytest

from aurum.replay import parse_speed
from aurum.testing.reference_book import ReferenceBook
from conftest import read_dbn_bytes

DAY = "esh4-20231225.mbo.dbn.zst"


def aurum(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    exe = shutil.which("aurum", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "aurum.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout)


def test_replay_report_matches_the_reference_book(es_real: Path, tmp_path: Path) -> None:
    path = es_real / DAY
    report = tmp_path / "r.json"
    res = aurum("replay", str(path), "--report", str(report))
    assert res.returncode == 0, res.stderr
    assert "68,792" in res.stdout
    r = json.loads(report.read_text())
    for key in ("records_total", "records_by_type", "instruments", "bars", "book_top", "elapsed_s", "records_per_s"):
        assert key in r
    assert r["records_total"] == 68_792
    assert r["records_by_type"] == {"mbo": 68_792}
    assert r["instruments"] == {"17077": "ESH4"}
    ref = ReferenceBook()
    for rec in db.DBNStore.from_file(path):
        ref.apply(rec)
    bid_px, bid_sz, _, ask_px, ask_sz, _ = ref.top(17077)
    assert r["book_top"]["17077"] == {
        "bid_px": bid_px * 1e-9, "bid_sz": bid_sz, "bid_ct": r["book_top"]["17077"]["bid_ct"],
        "ask_px": ask_px * 1e-9, "ask_sz": ask_sz, "ask_ct": r["book_top"]["17077"]["ask_ct"],
    }
    assert r["book_top"]["17077"]["bid_px"] == 4810.0
    assert r["records_per_s"] > 0 and r["elapsed_s"] > 0
    assert r["bars"] and all(b["kind"] == "time" for b in r["bars"])
    assert r["decode_errors"] == []


def test_replay_of_several_files_and_schemas(es_real: Path, glbx_samples: Path, tmp_path: Path) -> None:
    files = sorted(glbx_samples.glob("*.dbn.zst")) + sorted(es_real.glob("*.dbn.zst"))
    report = tmp_path / "all.json"
    res = aurum("replay", *map(str, files), "--report", str(report), "--quiet")
    assert res.returncode == 0, res.stderr
    r = json.loads(report.read_text())
    official = sum(sum(1 for _ in db.DBNStore.from_file(f)) for f in files)
    assert r["records_total"] == official
    # Symbols come from in-band SymbolMappingMsg (live capture) and from file headers.
    assert r["instruments"]["183748"] == "ESZ4" and r["instruments"]["5602"] == "ESM4"
    assert {"mbo", "mbp-1", "mbp-10", "symbol-mapping", "statistics"} <= set(r["records_by_type"])


def test_malformed_file_names_file_and_offset_and_keeps_what_it_read(es_real: Path, tmp_path: Path) -> None:
    data = read_dbn_bytes(es_real / DAY)
    meta_len = 8 + int.from_bytes(data[4:8], "little")
    bad_at = meta_len + 56 * 1000
    broken = bytearray(data)
    broken[bad_at] = 0  # record length 0
    bad = tmp_path / "broken.dbn"
    bad.write_bytes(bytes(broken))
    report = tmp_path / "r.json"
    res = aurum("replay", str(bad), "--report", str(report))
    assert res.returncode == 1
    assert str(bad) in res.stderr and f"byte offset {bad_at}" in res.stderr
    assert len([line for line in res.stderr.splitlines() if line.strip()]) == 1
    r = json.loads(report.read_text())
    assert r["records_total"] == 1000
    assert r["trades_refused"] == 0
    assert r["decode_errors"] and f"byte offset {bad_at}" in r["decode_errors"][0]


@pytest.mark.parametrize("args, message", [
    (["replay"], "no input"),
    (["replay", "/nonexistent/x.dbn"], "no such file: /nonexistent/x.dbn"),
    (["replay", "x.dbn", "--speed", "fast"], "--speed was 'fast'"),
    (["replay", "x.dbn", "--bar-interval", "abc"], "duration was 'abc'"),
    # These ended in tracebacks (exit 1), the last one only after the whole replay.
    (["replay", "x.dbn", "--bar-interval", "inf"], "duration was 'inf'"),
    (["replay", "x.dbn", "--bar-interval", "1e30s"], "duration was '1e30s'"),
    (["replay", "x.dbn", "--tick-bars", "99999999999"], "--tick-bars must be 0..4294967295"),
    (["replay", "x.dbn", "--report", "/nonexistent/dir/r.json"], "--report: no such directory: /nonexistent/dir"),
])
def test_bad_arguments_give_one_clear_error(args, message) -> None:
    res = aurum(*args)
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr


def test_parse_speed() -> None:
    assert parse_speed("max") is None
    assert parse_speed("realtime") == 1.0
    assert parse_speed("10x") == 10.0
    assert parse_speed("0.5X") == 0.5
    for bad in ("0x", "-2x", "x", "nanx", "infx", "fast"):
        with pytest.raises(ValueError):
            parse_speed(bad)


def test_paced_replay_follows_record_time(tmp_path: Path) -> None:
    # 2 s of records: at 4x they take about 0.5 s, at max speed far less.
    s = 1_000_000_000
    meta = dbn.Metadata(dataset="GLBX.MDP3", start=0, stype_in=dbn.SType.RAW_SYMBOL,
                        stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.MBO).encode()
    recs = b"".join(
        bytes(dbn.MBOMsg(publisher_id=1, instrument_id=7, ts_event=100 * s + i * (s // 200), order_id=i + 1,
                         price=2_400_000_000_000, size=1, action=dbn.Action.ADD, side=dbn.Side.BID,
                         ts_recv=100 * s + i * (s // 200), flags=0x80))[:56]
        for i in range(401)
    )
    f = tmp_path / "two-seconds.dbn"
    f.write_bytes(meta + recs)
    t = time.perf_counter()
    res = aurum("replay", str(f), "--speed", "4x", "--quiet")
    paced = time.perf_counter() - t
    assert res.returncode == 0, res.stderr
    # A lower bound only: pacing waited for record time (2 s / 4, less the first chunk,
    # which only anchors the clock).
    assert paced >= 0.35


def test_replay_decides_as_the_daemon_config_says(tmp_path: Path) -> None:
    """`--config` takes the daemon's bar length, weights and signal thresholds: the signals are
    those of Replayer(options_from_config(...)), and not the defaults' (the README promises a
    journal replay gives the daemon's signals; without the settings it could not)."""
    from conftest import simulated_mbo

    from aurum.config import load_config
    from aurum.replay import Replayer, ReplayOptions, options_from_config

    mbo = simulated_mbo(tmp_path, seed=21, records=200_000)
    cfg = tmp_path / "aurum.toml"
    cfg.write_text("[signals]\nbar_interval_s = 5.0\nenter = 0.2\nexit = 0.1\nmin_confidence = 0.1\ncooldown_bars = 1\n"
                   "weights = { qmo = 0.5, imo = 0.3, gann = 0.1, astro = 0.0, cycle = 0.1 }\n")
    report = tmp_path / "r.json"
    res = aurum("replay", "--quiet", "--no-progress", "--config", str(cfg), "--report", str(report), str(mbo))
    assert res.returncode == 0, res.stderr
    got = json.loads(report.read_text())["signals"]
    want = Replayer(options_from_config(load_config(cfg, environ={}))).run([mbo]).report["signals"]
    default = Replayer(ReplayOptions()).run([mbo]).report["signals"]
    key = lambda s: (s["ts"], s["action"], s["confidence"])  # noqa: E731
    assert got and [key(s) for s in got] == [key(s) for s in want]
    assert [key(s) for s in got] != [key(s) for s in default]
    bad = tmp_path / "bad.toml"
    bad.write_text("[signals]\nenter = 2\n")
    res = aurum("replay", "--quiet", "--config", str(bad), str(mbo))
    assert res.returncode == 2 and "bad.toml: signals.enter was 2" in res.stderr


def test_ctrl_c_stops_a_replay_and_reports_what_was_replayed(tmp_path: Path) -> None:
    import signal

    report = tmp_path / "r.json"
    exe = shutil.which("aurum", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "aurum.cli"]
    p = subprocess.Popen([*cmd, "replay", "--sample", "--speed", "1x", "--report", str(report), "--quiet"],
                         stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)  # real time: the sample's first seconds
    p.send_signal(signal.SIGINT)
    rc = p.wait(timeout=20)
    err = p.stderr.read() if p.stderr else ""
    assert rc == 130 and "Traceback" not in err
    r = json.loads(report.read_text())
    assert r["interrupted"] is True and 0 < r["records_total"] < 1_000_000
    assert f"interrupted after {r['records_total']:,} records" in err


def test_a_directory_as_input_or_report_is_one_line(tmp_path: Path) -> None:
    res = aurum("replay", str(tmp_path))
    assert res.returncode == 2 and res.stderr.strip() == f"aurum replay: is a directory, not a DBN file: {tmp_path}"
    res = aurum("replay", "--sample", "--report", str(tmp_path))
    assert res.returncode == 2 and "is a directory; give a file name" in res.stderr


def test_an_interrupted_replay_still_raises_keyboardinterrupt_with_its_report() -> None:
    """Library callers see Ctrl-C as a KeyboardInterrupt (it was swallowed, ok=True); the
    exception carries the report of what was replayed, the file it stopped in included."""
    from aurum.replay import ReplayInterrupted, ReplayOptions, Replayer
    from aurum.sample import sample_session

    calls = 0

    def hook(done: int, size: int, records: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt

    path = sample_session()
    with pytest.raises(KeyboardInterrupt) as e:
        Replayer(ReplayOptions()).run([path], progress=hook)
    assert isinstance(e.value, ReplayInterrupted)
    r = e.value.result
    assert r.interrupted and r.report["interrupted"] is True and not r.ok
    assert [(f.path, f.error) for f in r.files] == [(str(path), "interrupted")]
    assert 0 < r.files[0].records == r.report["records_total"] < 1_000_000
