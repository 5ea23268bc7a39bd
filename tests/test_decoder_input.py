"""Decoder edge cases: malformed input, ts_out, DBN v2 upgrade, recovery after an error.

Streams are built at run time with the official ``databento_dbn`` record classes, so the
bytes are what Databento's own encoder produces.
"""

from __future__ import annotations

import json
import random

import databento_dbn as dbn
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aurum import _native
from aurum.rings import TRADE_DTYPE

PX = 2_400_000_000_000
TICK = 100_000_000


def metadata(version: int = 3, ts_out: bool = False) -> bytes:
    return dbn.Metadata(
        dataset="GLBX.MDP3",
        start=0,
        stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID,
        schema=dbn.Schema.MBO,
        symbols=["GCZ6"],
        ts_out=ts_out,
        version=version,
    ).encode()


def mbo(i: int, action: str = "A", side: str = "B", size: int = 1, flags: int = 0x80, ts_out: bool = False) -> bytes:
    rec = dbn.MBOMsg(
        publisher_id=1, instrument_id=42, ts_event=1_000 + i, order_id=i + 1,
        price=PX - (i % 5) * TICK, size=size, action=dbn.Action(action), side=dbn.Side(side),
        ts_recv=2_000 + i, flags=flags, sequence=i, ts_out=5_000 + i if ts_out else dbn.UNDEF_TIMESTAMP,
    )
    raw = bytes(rec)
    # Without ts_out the record is 56 bytes; the class always reserves room for it.
    return raw if ts_out else raw[: raw[0] * 4]


def stream(n: int = 10, **kw) -> tuple[bytes, int]:
    head = metadata(ts_out=kw.get("ts_out", False))
    return head + b"".join(mbo(i, **kw) for i in range(n)), len(head)


def test_plain_stream_decodes() -> None:
    data, _ = stream(10)
    p = _native.Pipeline()
    assert p.feed(data) == 10
    p.finish()
    assert p.book_top(42)[:3] == (PX, 2, 2)


@pytest.mark.parametrize(
    "mutate, offset_of, words",
    [
        (lambda b, h: b"XBN" + b[3:], lambda h: 0, "bad magic"),
        (lambda b, h: b[:3] + bytes([9]) + b[4:], lambda h: 0, "version 9"),
        (lambda b, h: b[:h + 56] + b"\x00" + b[h + 57:], lambda h: h + 56, "length"),
        (lambda b, h: b[:h + 56] + b"\x02" + b[h + 57:], lambda h: h + 56, "length"),
    ],
    ids=["bad-magic", "bad-version", "record-length-0", "record-shorter-than-header"],
)
def test_malformed_input_names_the_offset(mutate, offset_of, words) -> None:
    data, h = stream(5)
    bad = mutate(data, h)
    p = _native.Pipeline()
    with pytest.raises(_native.DecodeError) as ei:
        p.feed(bad)
        p.finish()
    assert ei.value.offset == offset_of(h)
    assert f"byte offset {offset_of(h)}" in str(ei.value)
    assert words in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_truncated_header_and_record_are_reported_at_finish() -> None:
    data, h = stream(3)
    p = _native.Pipeline()
    p.feed(data[:50])
    with pytest.raises(_native.DecodeError, match="metadata") as ei:
        p.finish()
    assert ei.value.offset == 0

    p = _native.Pipeline()
    assert p.feed(data[:-7]) == 2
    with pytest.raises(_native.DecodeError, match="only 49 present") as ei:
        p.finish()
    assert ei.value.offset == h + 2 * 56


def test_length_longer_than_what_follows_waits_then_fails_at_finish() -> None:
    data, h = stream(3)
    # The last record claims 200 words (800 bytes) but only 56 bytes follow.
    bad = data[: h + 112] + bytes([200]) + data[h + 113 :]
    p = _native.Pipeline()
    assert p.feed(bad) == 2
    assert p.failed is None
    with pytest.raises(_native.DecodeError) as ei:
        p.finish()
    assert ei.value.offset == h + 112
    assert "800 bytes" in str(ei.value)


def test_unknown_rtype_is_counted_and_skipped_or_strict_error() -> None:
    data, h = stream(4)
    bad = bytearray(data)
    bad[h + 56 + 1] = 0x7E
    p = _native.Pipeline()
    assert p.feed(bytes(bad)) == 3
    p.finish()
    assert p.stats()["unknown_rtypes"] == 1
    strict = _native.Pipeline(strict=True)
    with pytest.raises(_native.DecodeError, match="unknown rtype 0x7E") as ei:
        strict.feed(bytes(bad))
    assert ei.value.offset == h + 56


def test_failed_pipeline_refuses_input_until_reset_and_keeps_its_book() -> None:
    data, h = stream(4)
    p = _native.Pipeline()
    p.feed(data)
    top = p.book_top(42)
    with pytest.raises(_native.DecodeError):
        p.feed(b"\x00" * 16)
    assert p.failed is not None and "byte offset" in p.failed
    with pytest.raises(_native.DecodeError, match="earlier error"):
        p.feed(mbo(10))
    assert p.book_top(42) == top  # nothing lost
    p.reset_stream()
    assert p.failed is None
    p.feed(metadata() + mbo(10, size=7))
    assert p.book_top(42)[:2] == (PX, 1 + 7)


def test_accepts_bytearray_and_memoryview_chunks() -> None:
    data, _ = stream(6)
    p = _native.Pipeline()
    p.feed(bytearray(data[:100]))
    p.feed(memoryview(data)[100:])
    p.finish()
    assert p.stats()["records_total"] == 6
    with pytest.raises(TypeError):
        p.feed("not bytes")  # type: ignore[arg-type]


def test_ts_out_records_decode_with_the_send_time() -> None:
    data, h = stream(5, ts_out=True)
    assert data[h] == 16  # 64-byte records: 56 + 8 of ts_out
    plain, _ = stream(5)
    a, b = _native.Pipeline(), _native.Pipeline()
    a.feed(data)
    b.feed(plain)
    a.finish()
    assert a.metadata["ts_out"] is True
    assert a.book_levels(42) == b.book_levels(42)
    dec = _native.StreamDecoder()
    recs = [json.loads(s) for s in dec.feed(data)]
    assert [int(r["ts_out"]) for r in recs] == [5_000 + i for i in range(5)]


def test_dbn_v2_stream_is_upgraded_to_v3_like_the_official_decoder() -> None:
    defn = dbn.InstrumentDefMsgV2(
        publisher_id=1, instrument_id=42, ts_event=10, ts_recv=11, min_price_increment=TICK,
        display_factor=1_000_000_000, raw_symbol="GCZ6", asset="GC", security_type="FUT",
        instrument_class=dbn.InstrumentClass.FUTURE, match_algorithm=dbn.MatchAlgorithm.FIFO,
        security_update_action=dbn.SecurityUpdateAction.ADD, expiration=20,
        activation=5, high_limit_price=PX * 2, low_limit_price=PX // 2, max_price_variation=0,
        unit_of_measure_qty=100_000_000_000, min_price_increment_amount=0, price_ratio=0,
        inst_attrib_value=0, underlying_id=0, raw_instrument_id=42, market_depth_implied=0,
        market_depth=10, market_segment_id=0, max_trade_vol=0, min_lot_size=1,
        min_lot_size_block=0, min_lot_size_round_lot=1, min_trade_vol=1, contract_multiplier=0,
        decay_quantity=0, original_contract_size=0, appl_id=0, maturity_year=2026,
        decay_start_date=0, channel_id=0, currency="USD", settl_currency="", secsubtype="",
        group="GC", exchange="XCEC", cfi="FCAXSX", unit_of_measure="OZTY", underlying="",
        strike_price_currency="", strike_price=dbn.UNDEF_PRICE, main_fraction=0,
        price_display_format=0, sub_fraction=0, underlying_product=0, maturity_month=12,
        maturity_day=0, maturity_week=0, user_defined_instrument=dbn.UserDefinedInstrument.NO, contract_multiplier_unit=0,
        flow_schedule_type=0, tick_rule=0, trading_reference_price=dbn.UNDEF_PRICE,
        trading_reference_date=0, md_security_trading_status=0, settl_price_type=0,
    )
    body = bytes(defn)[: bytes(defn)[0] * 4] + b"".join(mbo(i) for i in range(3))
    data = metadata(version=2) + body
    assert data[3] == 2
    official = dbn.DBNDecoder(upgrade_policy=dbn.VersionUpgradePolicy.UPGRADE_TO_V3)
    official.write(data)
    ours = [json.loads(s) for s in _native.StreamDecoder().feed(data)]
    theirs = official.decode()[1:]
    assert len(ours) == len(theirs) == 4
    assert ours[0]["hd"]["rtype"] == 0x13
    assert ours[0]["raw_symbol"] == theirs[0].raw_symbol == "GCZ6"
    assert ours[0]["asset"] == theirs[0].asset == "GC"
    assert int(ours[0]["min_price_increment"]) == theirs[0].min_price_increment == TICK
    # v3 layout after the upgrade: 520-byte definitions, the size the official decoder reports.
    assert theirs[0].record_size() == 520
    for o, t in zip(ours[1:], theirs[1:]):
        assert int(o["order_id"]) == t.order_id and int(o["price"]) == t.price


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=400), st.integers(min_value=0, max_value=10_000))
def test_random_bytes_and_corruption_never_crash(noise: bytes, seed: int) -> None:
    data, h = stream(8)
    rnd = random.Random(seed)
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 6)):
        buf[rnd.randrange(len(buf))] = rnd.randrange(256)
    for blob in (noise, bytes(buf), metadata() + noise):
        p = _native.Pipeline()
        try:
            for i in range(0, len(blob), 37):
                p.feed(blob[i : i + 37])
            p.finish()
        except _native.DecodeError as e:
            assert 0 <= e.offset <= len(blob)
            assert "byte offset" in str(e)


def test_inspection_decoder_rejects_short_records_instead_of_panicking() -> None:
    head = metadata()
    short = bytearray(16)
    short[0], short[1] = 4, 0xA0  # an MBO rtype with only a header
    with pytest.raises(ValueError, match="expected at least 56") as ei:
        _native.StreamDecoder().feed(head + bytes(short))
    assert isinstance(ei.value, Exception)  # not pyo3's PanicException (a BaseException)
    # A header promising ts_out followed by records without it.
    with pytest.raises(ValueError, match="expected at least 64"):
        _native.StreamDecoder().feed(metadata(ts_out=True) + mbo(0))


def test_odd_word_record_length_is_a_decode_error() -> None:
    data, h = stream(3)
    bad = bytearray(data[:h]) + bytes([13]) + data[h + 1 : h + 52] + data[h + 56 :]
    with pytest.raises(_native.DecodeError, match="not a multiple of 8") as ei:
        _native.Pipeline().feed(bytes(bad))
    assert ei.value.offset == h
    with pytest.raises(_native.DecodeError):
        _native.derive_mbp10_trades(bytes(bad))


def test_add_at_undef_price_is_counted_not_rested() -> None:
    head = metadata()
    rec = dbn.MBOMsg(publisher_id=1, instrument_id=42, ts_event=1, order_id=9, price=dbn.UNDEF_PRICE, size=1,
                     action=dbn.Action.ADD, side=dbn.Side.BID, ts_recv=1, flags=0x80)
    p = _native.Pipeline()
    p.feed(head + bytes(rec)[:56] + mbo(1))
    assert p.stats()["mbo_anomalies"]["bad_price"] == 1
    assert p.book_top(42)[:3] == (PX - TICK, 1, 1)  # only the valid add rests


def test_huge_depth_and_ring_sizes_are_bounded() -> None:
    data, _ = stream(5)
    p = _native.Pipeline()
    p.feed(data)
    bids, asks = p.book_levels(42, 1 << 40)
    assert len(bids) == 5 and asks == []
    with pytest.raises(ValueError, match="trade_capacity was"):
        _native.Pipeline(trade_capacity=1 << 40)
    # The bound holds for what is allocated, a power of two: 22,369,621 rows (1 GiB / 48 bytes)
    # would round up to 2^25 rows, 1.5 GiB.
    with pytest.raises(ValueError, match=r"trade_capacity was 22369621, expected 1\.\.=(\d+)") as err:
        _native.Pipeline(trade_capacity=22_369_621)
    top = int(str(err.value).rsplit("=", 1)[1])
    assert top & (top - 1) == 0 and top * TRADE_DTYPE.itemsize <= 1 << 30 < 2 * top * TRADE_DTYPE.itemsize
