"""Native latency histograms and the ``ts_out`` carried by each signal.

A live-style stream (v3 metadata with ``ts_out``, every record followed by its gateway send
time, as ``aurum gateway`` writes it) goes through a real daemon into real shared memory;
the signal records, the pipeline's histograms and the Prometheus exposition must agree."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from aurum import _native
from aurum.config import load_config
from aurum.consumer import ShmReader
from aurum.daemon import Daemon
from aurum.gateway import records as R
from aurum.gateway.sources import _load_v3

BATCH = 512


@pytest.fixture(scope="module")
def live_stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], list[int]]:
    """(chunks, send time of each chunk): the metadata header then batches of BATCH records,
    each record carrying its batch's send time, distinct per batch."""
    from aurum.sim import run_to_files

    out = tmp_path_factory.mktemp("lat") / "s.dbn.zst"
    _, summary = run_to_files("mixed", out, seed=5, records=200_000)
    f = _load_v3(Path(summary["paths"]["mbo"]))
    starts = np.cumsum(f.lengths) - f.lengths
    chunks = [R.metadata_header("GLBX.MDP3", schema="mbo", stype_in="raw_symbol", start=0, ts_out=True)]
    sends = [0]
    base = 1_900_000_000_000_000_000  # made-up send times, far from any record's ts_event
    for k, lo in enumerate(range(0, len(f.lengths), BATCH)):
        hi = min(lo + BATCH, len(f.lengths))
        a, b = int(starts[lo]), int(starts[hi - 1] + f.lengths[hi - 1])
        data, _ = R.add_ts_out(f.data[a:b].tobytes(), f.lengths[lo:hi], base + k)
        chunks.append(data)
        sends.append(base + k)
    return chunks, sends


def test_pipeline_reports_the_send_time_of_the_record_that_closed_a_bar(live_stream) -> None:
    chunks, sends = live_stream
    p = _native.Pipeline(bar_interval_ns=5_000_000_000)
    bars_seen = 0
    for chunk, sent in zip(chunks, sends):
        before = p.ring_written("bars")
        p.feed(chunk)
        got = p.take_close_ts_out()
        if p.ring_written("bars") > before:
            # Each chunk is one send time, so the closing record's ts_out is this chunk's.
            assert got == sent
            bars_seen += 1
        else:
            assert got == 0
    assert bars_seen >= 3
    # A wall-clock close has no triggering record: unknown, not the last record's ts_out.
    p.advance_clock(p.clock + 3_600_000_000_000)
    assert p.take_close_ts_out() == 0


def test_socket_to_processed_histogram_counts_timed_chunks_only(live_stream) -> None:
    chunks, _ = live_stream
    p = _native.Pipeline()
    p.feed(chunks[0])  # untimed: not a sample
    t0 = time.time_ns()
    for c in chunks[1:21]:
        p.feed(c, recv_ns=time.time_ns())
    elapsed = time.time_ns() - t0
    bounds, counts, total = p.latency()["socket_to_processed"]
    assert len(counts) == len(bounds) + 1 and counts[-1] == 20
    assert all(x <= y for x, y in zip(counts, counts[1:]))
    assert 0 < total <= elapsed * 1e-9
    assert p.latency()["gateway_to_signal"][1][-1] == 0


def test_daemon_stamps_signals_with_ts_out_and_fills_both_histograms(live_stream, tmp_path: Path) -> None:
    from aurum.metrics import make_registry, scrape

    chunks, sends = live_stream
    name = f"aurum-test-{uuid.uuid4().hex[:10]}"
    cfg_file = tmp_path / "aurum.toml"
    cfg_file.write_text(f'[shm]\nname = "{name}"\ncapacity = 1024\n[persistence]\ncheckpoint = "{tmp_path / "m.json"}"\n'
                        '[feed]\nclock = "data"\n[signals]\nbar_interval_s = 5.0\n')
    try:
        d = Daemon(load_config(cfg_file, environ={}), None)
        reader = ShmReader(name, from_start=True)
        for chunk in chunks:
            d.pipeline.feed(chunk, recv_ns=time.time_ns())
            d.on_chunk(len(chunk), 0, now_ns=d.pipeline.clock)
        got, lost = reader.poll()
        published = sum(d.stats.signals.values())
        assert lost == 0 and len(got) == published >= 3
        assert d.decision.signals == [], "the daemon keeps no signal history in memory (shm has it)"
        sent = set(sends[1:])
        stamped = [s for s in got if s["ts_out"]]
        # Every signal decided on a record-closed bar carries that record's send time.
        assert stamped and all(s["ts_out"] in sent for s in stamped)
        lat = d.pipeline.latency()
        assert lat["gateway_to_signal"][1][-1] == len(stamped)
        assert lat["socket_to_processed"][1][-1] == len(chunks)
        # The made-up send times are in the future, so each span is negative: counted in
        # the lowest bucket, never lost and never a crash.
        assert lat["gateway_to_signal"][1][0] == len(stamped)
        body = scrape(make_registry(d.pipeline, d.metrics_state)).decode()
        assert f"aurum_gateway_to_signal_seconds_count {float(len(stamped))}" in body
        assert f"aurum_socket_to_processed_seconds_count {float(len(chunks))}" in body
        ms = d.metrics_state()
        assert ms["rings"]["shm_signals"] == (published, 1024)
        assert ms["last_signal"]["confidence"] == got[-1]["confidence"]
        assert set(ms["pillars"]) >= {"qmo", "imo"} and ms["last_heartbeat_ns"] > 0
        assert f"aurum_signal_confidence {got[-1]['confidence']}" in body
        d.shutdown()  # publishes the final state block
        st = reader.state()
        assert st is not None and st["last"] and st["volume"] > 0
        assert st["ts_out"] == sends[-1], "the state says how fresh it is: the newest record's send time"
        assert reader.state_seq() == st["update_seq"]
        assert st["bid"] < st["ask"]
        from aurum.engines import table_array

        zt = table_array(d.pipeline, "zones")
        live = int(((zt["instrument_id"] == st["instrument_id"]) & (zt["state"] != 3)).sum())
        assert live > 0 and len(st["zones"]) == min(32, live)
        for z in st["zones"]:
            assert z["kind"] in (1, 2) and z["state"] != 3 and z["side"] in ("B", "A")
        reader.close()
    finally:
        Path("/dev/shm", name).unlink(missing_ok=True)
