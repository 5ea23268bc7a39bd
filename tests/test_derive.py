"""MBP-10 and trades derived natively from MBO must describe the same market as the MBO book."""

from __future__ import annotations

import io
from pathlib import Path

import databento as db
import databento_dbn as dbn
import pytest

from aurum import _native
from conftest import read_dbn_bytes, split_dbn


def _header(schema: dbn.Schema) -> bytes:
    return dbn.Metadata(dataset="GLBX.MDP3", start=0, stype_in=dbn.SType.RAW_SYMBOL,
                        stype_out=dbn.SType.INSTRUMENT_ID, schema=schema).encode()


@pytest.fixture(scope="module")
def derived(es_real: Path):
    data = read_dbn_bytes(es_real / "esh4-20231225.mbo.dbn.zst")
    mbp10, trades = _native.derive_mbp10_trades(data)
    return data, mbp10, trades


def test_trades_equal_the_mbo_trade_records(derived) -> None:
    data, _, trades = derived
    official = list(db.DBNStore.from_bytes(io.BytesIO(_header(dbn.Schema.TRADES) + trades)))
    mbo_t = [r for r in db.DBNStore.from_bytes(io.BytesIO(data)) if str(r.action) in ("T", "Action.TRADE")]
    assert len(official) == len(mbo_t) == 2973
    for t, m in zip(official, mbo_t):
        assert (t.ts_event, t.price, t.size, t.sequence) == (m.ts_event, m.price, m.size, m.sequence)
        assert str(t.side) == str(m.side)


def test_mbp10_matches_the_l3_book_at_every_event(derived) -> None:
    data, mbp10, _ = derived
    stream = _header(dbn.Schema.MBP_10) + mbp10
    official = list(db.DBNStore.from_bytes(io.BytesIO(stream)))  # decodes: valid records
    assert official
    # Replay MBO record by record; after each F_LAST the latest MBP-10 record with F_LAST
    # published so far must show the book's top 10.
    meta, records = split_dbn(data)
    l3 = _native.Pipeline()
    l3.feed(meta)
    # Book records only: an event whose top 10 did not change ends on its T record instead.
    published = iter(r for r in official if r.flags & _native.F_LAST and str(r.action) not in ("T", "Action.TRADE"))
    expected_levels = None
    last_pub = None
    checked = 0
    for raw in records:
        l3.feed(raw)
        if raw[36] & _native.F_LAST:
            bids, asks = l3.book_levels(17077, 10)
            levels = (bids, asks)
            if levels != expected_levels:
                last_pub = next(published)
                expected_levels = levels
            got_b = [(lv.bid_px, lv.bid_sz, lv.bid_ct) for lv in last_pub.levels if lv.bid_ct > 0]
            got_a = [(lv.ask_px, lv.ask_sz, lv.ask_ct) for lv in last_pub.levels if lv.ask_ct > 0]
            assert got_b == bids and got_a == asks
            checked += 1
    assert checked == 47_022
    assert next(published, None) is None  # no extra book records


def test_mbp10_feeds_the_pipeline_mbp10_book(derived) -> None:
    data, mbp10, _ = derived
    p = _native.Pipeline()
    p.feed(_header(dbn.Schema.MBP_10) + mbp10)
    p.finish()
    l3 = _native.Pipeline()
    l3.feed(data)
    assert p.mbp10_levels(17077) == l3.book_levels(17077, 10)
    assert p.last_top(17077) == l3.last_top(17077)


def test_bad_input_raises_decode_error() -> None:
    with pytest.raises(_native.DecodeError):
        _native.derive_mbp10_trades(b"not dbn at all")
