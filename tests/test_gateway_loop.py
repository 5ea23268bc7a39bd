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
