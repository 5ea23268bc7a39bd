"""Rings (zero-copy views, overflow, lap counting) and bars, checked against values computed
independently from the official ``databento`` records."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import databento as db
import databento_dbn as dbn
import numpy as np
import pytest

from aurum import _native
from aurum.kernels.bar_stats import true_range, wilder_atr
from aurum.rings import BAR_DTYPE, TOP_DTYPE, TRADE_DTYPE, RingReader, ring_array
from conftest import read_dbn_bytes

DAY = "esh4-20231225.mbo.dbn.zst"
MINUTE = 60_000_000_000


@pytest.fixture(scope="module")
def day(es_real: Path) -> tuple[bytes, list]:
    path = es_real / DAY
    trades = [r for r in db.DBNStore.from_file(path) if isinstance(r, dbn.MBOMsg) and str(r.action) in ("T", "Action.TRADE")]
    assert trades, "the day file has trades"
    return read_dbn_bytes(path), trades


def feed_chunks(p: _native.Pipeline, data: bytes, size: int = 65536, after=None) -> None:
    for i in range(0, len(data), size):
        p.feed(data[i : i + size])
        if after is not None:
            after()
    p.finish()


def side_char(r) -> str:
    s = str(r.side)
    return {"Side.BID": "B", "Side.ASK": "A", "Side.NONE": "N"}.get(s, s)


def test_dtypes_match_native_layouts() -> None:
    assert TRADE_DTYPE.itemsize == _native.TRADE_RECORD_SIZE
    assert TOP_DTYPE.itemsize == _native.TOP_RECORD_SIZE
    assert BAR_DTYPE.itemsize == _native.BAR_RECORD_SIZE
    p = _native.Pipeline(trade_capacity=1000)
    arr = ring_array(p, "trades")
    assert len(arr) == 1024  # rounded up to a power of two
    assert not arr.flags.writeable
    with pytest.raises(KeyError, match="no ring named"):
        p.ring("nope")


def test_trade_ring_holds_every_trade_exactly(day) -> None:
    data, trades = day
    p = _native.Pipeline(trade_capacity=1 << 14)
    feed_chunks(p, data)
    n = p.ring_written("trades")
    assert n == len(trades) == p.stats()["trades"]
    got = ring_array(p, "trades")[:n]
    assert list(got["ts_event"]) == [t.ts_event for t in trades]
    assert list(got["price"]) == [t.price for t in trades]
    assert list(got["size"]) == [t.size for t in trades]
    assert list(got["order_id"]) == [t.order_id for t in trades]
    assert [chr(c) for c in got["side"]] == [side_char(t) for t in trades]
    assert set(got["rtype"]) == {0xA0}


def test_ring_overflow_counts_laps_and_loses_only_what_it_reports(day) -> None:
    data, trades = day
    cap = 16
    p = _native.Pipeline(trade_capacity=cap)
    reader = RingReader(p, "trades")
    seen: list[int] = []
    polls: list[int] = []

    def poll() -> None:
        batch = reader.poll()
        polls.append(batch.lost)
        seen.extend(int(t) for t in batch.records["order_id"])

    feed_chunks(p, data, size=8192, after=poll)
    total = p.ring_written("trades")
    assert total == len(trades)
    assert reader.lost_total > 0, "a 16-slot ring must be lapped by this day"
    assert len(seen) + reader.lost_total == total
    # What was delivered is in order and is exactly the trades not reported lost.
    ids = [t.order_id for t in trades]
    pos = 0
    for oid in seen:
        pos = ids.index(oid, pos) + 1
    # The final poll drained the ring, so the newest `cap` trades all arrived.
    assert seen[-cap:] == ids[-cap:]
    assert any(polls) and polls[0] == 0
    # A reader starting late sees nothing old and loses nothing.
    late = RingReader(p, "trades", from_start=False)
    assert len(late.poll().records) == 0 and late.lost_total == 0


def test_top_ring_changes_only_at_f_last_and_match_the_book(day) -> None:
    data, _ = day
    p = _native.Pipeline()
    tops = RingReader(p, "tops")
    last = None

    def poll() -> None:
        nonlocal last
        b = tops.poll()
        assert b.lost == 0
        if len(b.records):
            assert np.all(b.records["flags"] & _native.F_LAST)
            last = b.records[-1].copy()

    feed_chunks(p, data, after=poll)
    bid_px, bid_sz, bid_ct, ask_px, ask_sz, ask_ct = p.book_top(17077)
    assert (last["bid_px"], last["bid_sz"], last["bid_ct"]) == (bid_px, bid_sz, bid_ct)
    assert (last["ask_px"], last["ask_sz"], last["ask_ct"]) == (ask_px, ask_sz, ask_ct)


def reference_bars(trades, key) -> dict:
    """OHLCV + aggressor volumes per bar key, computed in plain Python."""
    bars: dict = {}
    for t in trades:
        k = key(t)
        b = bars.get(k)
        px, sz, s = t.price, t.size, side_char(t)
        if b is None:
            b = bars[k] = {"open": px, "high": px, "low": px, "close": px, "volume": 0, "buy": 0, "sell": 0, "n": 0, "pv": 0}
        b["high"] = max(b["high"], px)
        b["low"] = min(b["low"], px)
        b["close"] = px
        b["volume"] += sz
        b["buy"] += sz if s == "B" else 0
        b["sell"] += sz if s == "A" else 0
        b["n"] += 1
        b["pv"] += px * sz
    return bars


def test_time_bars_match_an_independent_computation(day) -> None:
    data, trades = day
    p = _native.Pipeline()
    feed_chunks(p, data)
    closed_before_flush = p.ring_written("bars")
    p.flush_bars()
    bars = ring_array(p, "bars")[: p.ring_written("bars")]
    ref = reference_bars(trades, lambda t: t.ts_event // MINUTE)
    assert len(bars) == len(ref)
    assert closed_before_flush == len(ref) - 1  # only the last bar was still open
    for b, (k, r) in zip(bars, sorted(ref.items())):
        assert b["kind"] == _native.BAR_KIND_TIME
        assert (b["ts_open"], b["ts_close"]) == (k * MINUTE, (k + 1) * MINUTE)
        assert (b["open"], b["high"], b["low"], b["close"]) == (r["open"], r["high"], r["low"], r["close"])
        assert (b["volume"], b["buy_volume"], b["sell_volume"], b["trade_count"]) == (r["volume"], r["buy"], r["sell"], r["n"])
        assert b["vwap"] == pytest.approx(r["pv"] / r["volume"] * 1e-9, rel=1e-12)


def test_tick_and_volume_bars(day) -> None:
    data, trades = day
    p = _native.Pipeline(bar_interval_ns=0, tick_bar_trades=50, volume_bar_contracts=500)
    feed_chunks(p, data)
    bars = ring_array(p, "bars")[: p.ring_written("bars")]
    tick = bars[bars["kind"] == _native.BAR_KIND_TICK]
    assert len(tick) == len(trades) // 50
    for i, b in enumerate(tick):
        chunk = trades[i * 50 : (i + 1) * 50]
        assert b["trade_count"] == 50
        assert b["volume"] == sum(t.size for t in chunk)
        assert (b["open"], b["close"]) == (chunk[0].price, chunk[-1].price)
    vol = bars[bars["kind"] == _native.BAR_KIND_VOLUME]
    # Walk the trades: a volume bar closes on the trade that reaches 500 contracts.
    acc, expected = 0, []
    for t in trades:
        acc += t.size
        if acc >= 500:
            expected.append(acc)
            acc = 0
    assert list(vol["volume"]) == expected


def _mbo(ts: int, action: str, oid: int, flags: int = 0x80, price: int = 2_400_000_000_000) -> bytes:
    rec = dbn.MBOMsg(publisher_id=1, instrument_id=7, ts_event=ts, order_id=oid, price=price, size=1,
                     action=dbn.Action(action), side=dbn.Side("B"), ts_recv=ts, flags=flags)
    return bytes(rec)[:56]


def _meta() -> bytes:
    return dbn.Metadata(dataset="GLBX.MDP3", start=0, stype_in=dbn.SType.RAW_SYMBOL,
                        stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.MBO).encode()


def test_time_bar_closes_on_its_boundary_without_a_trade() -> None:
    s = 1_000_000_000
    p = _native.Pipeline()
    p.feed(_meta() + _mbo(10 * s, "T", 1) + _mbo(20 * s, "A", 2))
    assert p.ring_written("bars") == 0
    p.feed(_mbo(61 * s, "A", 3))  # a non-trade record past the boundary closes the bar
    assert p.ring_written("bars") == 1
    bar = ring_array(p, "bars")[0]
    assert (bar["ts_open"], bar["ts_close"], bar["trade_count"]) == (0, 60 * s, 1)
    # Live: the wall clock closes the open bar with no record at all.
    p.feed(_mbo(70 * s, "T", 4))
    assert p.advance_clock(119 * s) == 0
    assert p.advance_clock(120 * s) == 1
    assert p.ring_written("bars") == 2
    assert p.clock == 120 * s


def test_cython_atr_matches_a_plain_python_reference() -> None:
    rng = np.random.default_rng(7)
    close = (2400 + np.cumsum(rng.normal(0, 0.5, 300))) * 1e9
    high = (close + rng.uniform(0, 1, 300) * 1e9).astype(np.int64)
    low = (close - rng.uniform(0, 1, 300) * 1e9).astype(np.int64)
    close = close.astype(np.int64)
    tr_ref, atr_ref, prev = [], [], None
    for h, l, c in zip(high * 1e-9, low * 1e-9, close * 1e-9):
        tr_ref.append(h - l if prev is None else max(h - l, abs(h - prev), abs(l - prev)))
        prev = c
    for i in range(len(tr_ref)):
        if i < 13:
            atr_ref.append(float("nan"))
        elif i == 13:
            atr_ref.append(sum(tr_ref[:14]) / 14)
        else:
            atr_ref.append((atr_ref[-1] * 13 + tr_ref[i]) / 14)
    np.testing.assert_allclose(true_range(high, low, close), tr_ref, rtol=1e-12)
    np.testing.assert_allclose(wilder_atr(high, low, close, 14), atr_ref, rtol=1e-12)
    with pytest.raises(ValueError, match="column lengths differ"):
        true_range(high, low[:-1], close)
    with pytest.raises(ValueError, match="period"):
        wilder_atr(high, low, close, 0)


def test_kernels_read_ring_columns_without_copies(day) -> None:
    data, _ = day
    p = _native.Pipeline()
    feed_chunks(p, data)
    bars = ring_array(p, "bars")[: p.ring_written("bars")]
    assert bars["high"].base is not None  # a strided view into the ring, not a copy
    atr = wilder_atr(bars["high"], bars["low"], bars["close"], 14)
    assert np.isfinite(atr[-1]) and atr[-1] > 0


def test_trades_with_a_null_price_or_an_impossible_time_are_not_prints() -> None:
    """One trade at UNDEF_PRICE made a bar close at 9.2e9 USD (a tradable signal, an ATR
    absurd for 150 bars); one stamped past 2^63 ns moved the clock past what the decision
    layer holds. Both are refused, counted, and reach no ring, bar or clock."""
    from aurum.feeds.yahoo import stream_header

    t0 = 1_800_000_000_000_000_000

    def trade(ts: int, px: int) -> bytes:
        return bytes(dbn.TradeMsg(publisher_id=1, instrument_id=7, ts_event=ts, price=px, size=2, action=dbn.Action.TRADE,
                                  side=dbn.Side.BID, depth=0, ts_recv=ts, flags=0))

    good = [trade(t0 + k * 10_000_000_000, 4_100_000_000_000 + k * 100_000_000) for k in range(13)]
    data = stream_header() + b"".join(good[:3]) + trade(t0 + 35_000_000_000, dbn.UNDEF_PRICE) \
        + trade((1 << 63) + 5, 4_100_000_000_000) + b"".join(good[3:])
    p = _native.Pipeline(bar_interval_ns=MINUTE)
    p.feed(data)
    p.flush_bars()
    st = p.stats()
    assert st["trades_refused"] == 2 and st["trades"] == len(good)
    assert p.clock < 1 << 63 and p.clock == t0 + 12 * 10_000_000_000
    trades = ring_array(p, "trades")[: p.ring_written("trades")]
    assert len(trades) == len(good) and trades["price"].max() < 4_200_000_000_000
    bars = ring_array(p, "bars")[: p.ring_written("bars")]
    assert len(bars) >= 2 and bars["high"].max() < 4_200_000_000_000 and bars["volume"].sum() == 2 * len(good)
