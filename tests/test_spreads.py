"""Calendar spreads under a parent subscription (GC.FUT): decided on only when asked.

The session is a seeded simulation of three instruments, the front month, a back month and
their spread, the spread simulated as the busiest (the simulator prices it as any book; the
scope goes by symbol, and the busiest instrument is the one a naive choice would show), with
the spread's mapping in-band (as the live gateway sends it) or in the file header (as a
historical file has it). The daemon's state block shows the most traded outright.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from aurum import _native
from aurum.config import load_config
from aurum.consumer import ShmReader
from aurum.daemon import Daemon
from aurum.decision.engine import DecisionConfig
from aurum.decision.scope import InstrumentScope, header_symbols, is_spread
from aurum.replay import Replayer, ReplayOptions
from aurum.sim import run_to_files

BAR_NS = 5_000_000_000
OUTRIGHT, BACK, SPREAD = "GCZ6", "GCG7", "GCZ6-GCG7"


def _session(directory: Path, inband: bool) -> tuple[Path, dict[str, int]]:
    result, summary = run_to_files("mixed", directory / "s.dbn.zst", seed=11, records=300_000,
                                   symbols=(SPREAD, OUTRIGHT, BACK), inband_mappings=inband)
    ids = dict(zip(result.params.symbols, result.params.ids()))
    return Path(summary["paths"]["mbo"]), ids


@pytest.fixture(scope="module", params=[True, False], ids=["inband-mappings", "header-mappings"])
def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    return _session(tmp_path_factory.mktemp("spreads"), request.param)


def test_spread_symbols_are_told_from_outrights() -> None:
    assert is_spread("GCZ6-GCG7") and is_spread("GCZ6-GCZ7")
    assert not is_spread("GCZ6") and not is_spread("GC.c.0") and not is_spread(None)
    meta = {"stype_out": "instrument_id", "mappings": [["GCZ6", [["2026-09-14", "2026-09-15", "42"]]],
                                                       ["GCZ6-GCG7", [["2026-09-14", "2026-09-15", "43"]]]]}
    assert header_symbols(meta) == {42: "GCZ6", 43: "GCZ6-GCG7"}
    assert header_symbols({"stype_out": "raw_symbol", "mappings": meta["mappings"]}) == {}
    assert header_symbols(None) == {}
    # A file requested as GC.FUT maps every instrument, spreads too, to GC.FUT: not a symbol of
    # the instrument, so the scope does not use it (the replay report still lists it).
    parent = {"stype_in": "parent", "stype_out": "instrument_id",
              "mappings": [["GC.FUT", [["2026-09-14", "2026-09-15", "42"], ["2026-09-14", "2026-09-15", "43"]]]]}
    assert header_symbols(parent) == {42: "GC.FUT", 43: "GC.FUT"}
    assert header_symbols(parent, raw_only=True) == {}
    assert header_symbols({**meta, "stype_in": "raw_symbol"}, raw_only=True) == {42: "GCZ6", 43: "GCZ6-GCG7"}


def _replay(path: Path, include_spreads: bool) -> dict:
    opts = ReplayOptions(bar_interval_ns=BAR_NS, decision=DecisionConfig(include_spreads=include_spreads))
    return Replayer(opts).run([path]).report


def test_replay_decides_on_the_outright_only_by_default(session: tuple[Path, dict[str, int]]) -> None:
    path, ids = session
    out, back, spread = ids[OUTRIGHT], ids[BACK], ids[SPREAD]
    rep = _replay(path, include_spreads=False)
    assert rep["instruments"] == {str(out): OUTRIGHT, str(back): BACK, str(spread): SPREAD}
    # Every instrument traded and closed bars; only the outrights were scored.
    assert {b["instrument_id"] for b in rep["bars"]} == {out, back, spread}
    assert set(rep["pillars"]) == {str(out), str(back)}
    assert rep["not_decided"] == {str(spread): SPREAD}
    assert rep["signals"] and {s["instrument_id"] for s in rep["signals"]} <= {out, back}

    both = _replay(path, include_spreads=True)
    assert set(both["pillars"]) == {str(out), str(back), str(spread)}
    assert both["not_decided"] == {}
    # The outrights' decisions do not depend on whether the spread is decided on.
    assert [s for s in both["signals"] if s["instrument_id"] != spread] == rep["signals"]


def test_scope_keeps_unknown_instruments_and_remembers_spreads() -> None:
    pl = _native.Pipeline()
    scope = InstrumentScope(pl)
    assert scope.allows(7)  # no symbol known: a single-instrument feed must not go silent
    assert 7 not in scope._verdict  # asked again once a mapping may have arrived
    assert scope.excluded == {}


def test_daemon_state_block_shows_the_most_traded_outright(session: tuple[Path, dict[str, int]], tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    path, ids = session
    name = f"aurum-test-{uuid.uuid4().hex[:10]}"
    cfg_file = tmp_path / "aurum.toml"
    cfg_file.write_text(f'[shm]\nname = "{name}"\ncapacity = 256\n[persistence]\ncheckpoint = "{tmp_path / "m.bin"}"\n'
                        "[signals]\nbar_interval_s = 5.0\n")
    try:
        d = Daemon(load_config(cfg_file, environ={}), None, config_path=str(cfg_file))
        reader = ShmReader(name, from_start=True)
        f = _native.DbnFile(str(path))
        while n := d.pipeline.feed_file(f, 1 << 16):
            d.on_chunk(n, 0, now_ns=d.pipeline.clock)
        got, _ = reader.poll()
        assert got and {g["instrument_id"] for g in got} <= {ids[OUTRIGHT], ids[BACK]}
        assert set(d.decision.last_score) == {ids[OUTRIGHT], ids[BACK]}
        vol = d._session_volume
        assert vol[ids[SPREAD]] > vol[ids[OUTRIGHT]] > vol[ids[BACK]] > 0
        st = reader.state()
        assert st is not None and st["instrument_id"] == ids[OUTRIGHT]
        assert set(d.pipeline.book_ids()) == {ids[OUTRIGHT], ids[BACK], ids[SPREAD]}
        # Prometheus shows the pillars of the same instrument (it read the first book's).
        want = d.decision.last_score[ids[OUTRIGHT]].pillars
        assert d.metrics_state()["pillars"] == {n: (p.direction, p.confidence) for n, p in want.items()}
        # A reload cannot change the scope of a running daemon: it says so and keeps it.
        cfg_file.write_text(cfg_file.read_text() + "include_spreads = true\n")
        with caplog.at_level("WARNING"):
            assert d.reload()
        assert "signals.include_spreads changed" in caplog.text and not d.cfg.signals.include_spreads
        assert d.decision.scope.include_spreads is False
        d.shutdown()
        reader.close()
    finally:
        Path("/dev/shm", name).unlink(missing_ok=True)
