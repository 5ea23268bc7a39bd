"""``aurum gateway --at-end loop``: the replay goes round forever, each lap a valid
continuation of the last (what the latency bench and soak runs rely on)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from aurum import _native
from aurum.gateway import records as R
from aurum.gateway.sources import FileSource


@pytest.fixture(scope="module")
def mbo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aurum.sim import run_to_files

    _, summary = run_to_files("mixed", tmp_path_factory.mktemp("loop") / "s.dbn.zst", seed=9, records=60_000)
    return Path(summary["paths"]["mbo"])


def _take(src: FileSource, n_records: int) -> list:
    async def go() -> list:
        out, got = [], 0
        async for b in src.stream(start=None, snapshot_ids=()):
            out.append(b)
            got += len(b)
            if got >= n_records:
                break
        return out

    return asyncio.run(go())


def _book_of(batches: list) -> _native.Pipeline:
    p = _native.Pipeline(bar_interval_ns=60_000_000_000)
    p.feed(R.metadata_header("GLBX.MDP3", schema="mbo", stype_in=None, start=0, ts_out=False))
    for b in batches:
        p.feed(b.data.tobytes())
    return p


def test_three_laps_replay_as_one_clean_stream(mbo_file: Path) -> None:
    src = FileSource([mbo_file], loop=True)
    n = len(src)
    batches = _take(src, 3 * n + 1)
    assert sum(len(b) for b in batches) > 3 * n
    ts = np.concatenate([b.ts for b in batches])
    assert np.all(np.diff(ts.astype(np.int64)) >= 0), "data time never goes backwards across laps"
    p = _book_of(batches)
    st = p.stats()
    # A clear at each lap start: the L3 book sees no anomaly, however many laps.
    assert _book_of(_take(FileSource([mbo_file]), n)).stats()["mbo_anomalies"] == st["mbo_anomalies"]
    assert not any(st["mbo_anomalies"].values())
    # Each lap has its own order ids (engines key icebergs by order id across the session).
    ids = [np.frombuffer(b.data.tobytes(), dtype=R.MBO_DTYPE)["order_id"] for b in batches
           if len(b) and np.all(b.rtypes == R.RTYPE_MBO) and len(b.data) % R.MBO_DTYPE.itemsize == 0]
    laps = np.concatenate(ids) >> np.uint64(52)
    assert set(laps.tolist()) == {0, 1, 2}  # laps 0-2 in full; lap 3 has only begun (its clear)
    assert st["records_total"] >= 3 * n
    iid = p.book_ids()[0]
    top = p.book_top(iid)
    assert top is not None and top[0] < top[3], "the book is not crossed after three laps"
    # Lap k is lap 0 with times moved on: same prices and sizes, same record count.
    lap0 = _book_of(_take(FileSource([mbo_file]), n))
    assert p.stats()["trades"] >= 3 * lap0.stats()["trades"]


def test_without_loop_the_source_ends(mbo_file: Path) -> None:
    src = FileSource([mbo_file])
    batches = _take(src, 10 * len(src))
    assert sum(len(b) for b in batches) == len(src)


def test_lap_shift_fast_path_equals_the_general_one(mbo_file: Path) -> None:
    from aurum.gateway.sources import _shift_general, _shift_lap, _shift_uniform

    src = FileSource([mbo_file])
    batches = [b for b in _take(src, 20_000) if len(b) and np.all(b.rtypes == R.RTYPE_MBO)]
    assert batches
    dt, oid = 86_400 * 10**9 + 12_345, 3 << 52
    for b in batches:
        fast, slow = _shift_uniform(b, dt, oid), _shift_general(b, dt, oid)
        assert fast.data.tobytes() == slow.data.tobytes()
        assert np.array_equal(fast.ts, slow.ts)
        assert _shift_lap(b, dt, oid).data.tobytes() == slow.data.tobytes()
        assert b.data.tobytes() != fast.data.tobytes()  # shifted a copy, not the source
    recs = np.frombuffer(fast.data.tobytes(), dtype=R.MBO_DTYPE)
    orig = np.frombuffer(batches[-1].data.tobytes(), dtype=R.MBO_DTYPE)
    assert np.array_equal(recs["ts_event"] - orig["ts_event"], np.full(len(recs), dt, dtype=np.uint64))
    assert np.array_equal(recs["ts_recv"] - orig["ts_recv"], np.full(len(recs), dt, dtype=np.uint64))
    assert np.array_equal(recs["order_id"] - orig["order_id"], np.full(len(recs), oid, dtype=np.uint64))


@pytest.mark.parametrize("mixed", [False, True])
def test_ts_out_frame_appends_the_stamp_to_every_record(mbo_file: Path, mixed: bool) -> None:
    src = FileSource([mbo_file])
    b = next(b for b in _take(src, 5_000) if len(b) > 10)
    data, lengths = b.data.tobytes()[: int(b.lengths[:10].sum())], b.lengths[:10]
    if mixed:  # a record of another size in the middle (the index path)
        extra = R.system_msg(3, "Finished replay", 1)
        cut = int(lengths[:4].sum())
        data = data[:cut] + extra + data[cut:]
        lengths = np.concatenate([lengths[:4], [len(extra)], lengths[4:]])
    frame = R.TsOutFrame(data, lengths)
    ts = 1_765_000_000_123_456_789
    out = frame.stamp(ts).tobytes()
    # The reference: each record, its length byte + 2 words, then the stamp.
    want, pos = b"", 0
    for n in lengths.tolist():
        rec = bytearray(data[pos : pos + n])
        rec[0] += 2
        want += bytes(rec) + ts.to_bytes(8, "little")
        pos += n
    assert out == want
    assert np.array_equal(frame.lengths, lengths + 8)
    assert frame.stamp(ts + 1).tobytes() == want.replace(ts.to_bytes(8, "little"), (ts + 1).to_bytes(8, "little"))
    framed, new_lengths = R.add_ts_out(data, lengths, ts)
    assert framed == want and np.array_equal(new_lengths, lengths + 8)
