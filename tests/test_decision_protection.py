"""Capital protection around the signal builder, on hand-made MBO streams through a real native
pipeline and decision engine (the score is forced through a plain provider, so each test
decides what the builder wants and checks what protection does with it).

- a feed gone silent closes an open position at the daemon's tick, not at a bar that never comes;
- depth pulled behind an unchanged best bid and offer is a liquidity vacuum at the next bar close;
- a stop is never nearer the entry than ``min_stop_ticks``;
- the shared-memory reason names the veto once;
- one instrument's order-flow pillar does not depend on how many others trade;
- a position held by an instrument later mapped to a calendar spread is closed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aurum import _native
from aurum.config import load_config
from aurum.daemon import Daemon, _veto_first
from aurum.decision.engine import DecisionConfig, DecisionEngine
from aurum.decision.scorer import Pillar
from aurum.decision.signal import SignalConfig
from aurum.rings import RingReader
from aurum.sim.writer import symbol_mapping_bytes
from aurum.testing.synth import DEFAULT_START_NS, MBO_DTYPE, metadata_bytes

T0 = DEFAULT_START_NS
S = 1_000_000_000
TICK = 100_000_000
PX = 4_000_000_000_000  # 4000.00
IID = 42
F_LAST = 0x80


class Stream:
    """MBO records of one instrument, one event each (F_LAST)."""

    def __init__(self, iid: int = IID) -> None:
        self.iid, self.oid, self.seq = iid, 1, 1

    def rec(self, ts: int, action: bytes, side: bytes, price: int, size: int, oid: int | None = None) -> tuple[bytes, int]:
        r = np.zeros(1, MBO_DTYPE)
        r["length"], r["rtype"], r["publisher_id"], r["instrument_id"] = 14, 0xA0, 1, self.iid
        r["ts_event"] = r["ts_recv"] = ts
        if oid is None:
            oid, self.oid = self.oid, self.oid + 1
        r["order_id"], r["price"], r["size"], r["flags"] = oid, price, size, F_LAST
        r["action"], r["side"], r["sequence"] = action, side, self.seq
        self.seq += 1
        return r.tobytes(), oid

    def add(self, ts: int, side: bytes, price: int, size: int = 10) -> tuple[bytes, int]:
        return self.rec(ts, b"A", side, price, size)

    def trade(self, ts: int, side: bytes, price: int, size: int = 1) -> bytes:
        return self.rec(ts, b"T", side, price, size, oid=0)[0]

    def book(self, ts: int, levels: int = 5, size: int = 10) -> bytes:
        return b"".join(self.add(ts, b"B", PX - k * TICK, size)[0] + self.add(ts, b"A", PX + (k + 1) * TICK, size)[0]
                        for k in range(levels))


class Forced:
    """A bar-level pillar set by hand: (direction, confidence), or None for no data."""

    def __init__(self) -> None:
        self.value: tuple[float, float] | None = (1.0, 1.0)

    def __call__(self, win: Any, ts: int, price: float) -> Pillar | None:
        return None if self.value is None else Pillar("gann", *self.value)


def forced_engine(p: Any, weights: dict[str, float] | None = None) -> tuple[DecisionEngine, Forced]:
    prov = Forced()
    cfg = DecisionConfig(weights=weights or {"gann": 1.0, "qmo": 0.0, "imo": 0.0, "astro": 0.0, "cycle": 0.0},
                         signal=SignalConfig(cooldown_bars=0))
    return DecisionEngine(p, cfg, providers={"gann": prov}), prov


def drain(eng: DecisionEngine, reader: RingReader, now_ns: int = 0) -> list[Any]:
    b = reader.poll().records
    return eng.on_bars(np.frombuffer(b.tobytes(), dtype=b.dtype), now_ns=now_ns) if len(b) else []


def pipeline(**kw: Any) -> Any:
    p = _native.Pipeline(bar_interval_ns=S, **kw)
    p.feed(metadata_bytes("GCZ6", IID, T0))
    return p


def warm_ladder(p: Any, st: Stream, levels: int) -> list[tuple[int, bytes, int]]:
    """``levels`` levels of 10 lots a side, then 10 top changes 20 ms apart (depth samples
    that warm the vacuum's norm up). Returns the ladder's orders: (order id, side, price)."""
    orders = []
    for k in range(levels):
        for side, px in ((b"B", PX - k * TICK), (b"A", PX + (k + 1) * TICK)):
            b, o = st.add(T0, side, px, 10)
            p.feed(b)
            orders.append((o, side, px))
    for i in range(10):
        p.feed(st.add(T0 + (i + 1) * 20_000_000, b"B", PX, 1)[0])
    return orders


class ShmRecorder:
    """The daemon's shared-memory writer, recording what it is given (the segment itself is
    tested elsewhere; here the question is what the daemon publishes and when)."""

    def __init__(self) -> None:
        self.signals: list[dict[str, Any]] = []
        self.capacity, self.written = 1, 0

    def publish(self, rec: dict[str, Any]) -> None:
        self.signals.append(rec)

    def heartbeat(self, ns: int) -> None: ...
    def wake(self) -> None: ...
    def update_state(self, fields: dict[str, Any]) -> None: ...


def test_a_silent_feed_closes_an_open_position_at_the_tick(tmp_path: Path) -> None:
    cfg_file = tmp_path / "aurum.toml"
    cfg_file.write_text(f'[persistence]\ncheckpoint = "{tmp_path / "m.bin"}"\n'
                        "[signals]\nbar_interval_s = 1.0\ncooldown_bars = 0\n[fallback]\nenabled = false\n")
    cfg = load_config(cfg_file, environ={})
    assert cfg.feed.clock == "wall"
    shm = ShmRecorder()
    d = Daemon(cfg, None, shm_writer=shm)
    d.decision.providers.clear()
    d.decision.providers["gann"] = Forced()
    d.decision.scorer.set_weights({"gann": 1.0})
    p, st = d.pipeline, Stream()
    p.feed(metadata_bytes("GCZ6", IID, T0))
    p.feed(st.book(T0))
    t = T0 + S
    for _ in range(3):
        p.feed(st.trade(t + 1000, b"A", PX + TICK), recv_ns=0)
        t += S
        d.on_chunk(now_ns=t + 2000)
    d.tick(t + 5000)
    assert [s["action"] for s in shm.signals] == ["BUY"]
    # 4 s of silence: within engines.protect.stale_ns (5 s), the position stays.
    d.tick(t + 4 * S)
    assert [s["action"] for s in shm.signals] == ["BUY"]
    # 10 s: no bar closes (no trade), but the tick sees the feed stale and closes it.
    d.tick(t + 10 * S)
    assert [s["action"] for s in shm.signals] == ["BUY", "FLAT"]
    assert shm.signals[-1]["veto"] == 1 and shm.signals[-1]["reason"].startswith("veto: stale data")
    assert d.decision._builders[IID].position == "FLAT"
    d.tick(t + 60 * S)
    assert len(shm.signals) == 2  # closed once


def test_depth_pulled_behind_an_unchanged_touch_is_a_vacuum_at_the_bar_close() -> None:
    p = pipeline(engine_config={"protect": {"min_samples": 5}})
    st = Stream()
    behind = [o for o in warm_ladder(p, st, 10) if o[2] not in (PX, PX + TICK)]
    reader = RingReader(p, "bars", from_start=True)
    eng, _ = forced_engine(p)
    t = T0 + S
    for k, (o, side, px) in enumerate(behind):  # levels 2-10 pulled; the touch never moves
        p.feed(st.rec(t + k, b"C", side, px, 10, oid=o)[0])
    p.feed(st.trade(t + 100_000_000, b"A", PX + TICK))
    t += S
    p.feed(st.trade(t + 100_000_000, b"A", PX + TICK))
    sigs = drain(eng, reader)
    risk = p.risk(IID, 0)
    assert risk["depth"] < 0.25 * risk["depth_ema"] and risk["liquidity_vacuum"]
    assert sigs == []  # the forced BUY is vetoed: no entry into a book with nothing behind the touch


def test_a_stop_is_never_nearer_the_entry_than_min_stop_ticks() -> None:
    p = pipeline()
    st = Stream()
    p.feed(st.book(T0))
    reader = RingReader(p, "bars", from_start=True)
    eng, prov = forced_engine(p)
    prov.value = (0.0, 0.0)  # no entry while the window fills
    p.feed(st.trade(T0 + 10, b"A", PX + TICK))
    p.feed(st.trade(T0 + 20, b"B", PX))  # one bar a tick wide, then bars of one price
    for i in range(1, 40):
        p.feed(st.trade(T0 + i * S + 10, b"B", PX))
        drain(eng, reader)
    atr = eng._atr(IID)
    assert atr is not None and atr * 1.5 < 0.05  # the ATR stop would round onto the entry
    prov.value = (1.0, 1.0)
    p.feed(st.trade(T0 + 40 * S + 10, b"B", PX))
    p.feed(st.trade(T0 + 41 * S + 10, b"B", PX))
    (sig,) = drain(eng, reader)
    assert sig.action == "BUY" and sig.entry == pytest.approx(4000.0)
    assert sig.stop == pytest.approx(3999.8)  # 2 ticks (the default), not 4000.0
    assert all(x > sig.entry for x in sig.targets)
    assert "minimum distance (2 ticks" in sig.reasons[1]  # the stop's reason, right after the decision's


def test_the_shared_memory_reason_names_the_veto_once() -> None:
    assert _veto_first("crossed book", ["veto: crossed book", "qmo: OFI +5"]) == ["veto: crossed book", "qmo: OFI +5"]
    assert _veto_first("crossed book", ["qmo: OFI +5"]) == ["veto: crossed book", "qmo: OFI +5"]
    assert _veto_first(None, ["score +0.50"]) == ["score +0.50"]


@pytest.mark.parametrize("others", [0, 30, 140])
def test_order_flow_of_one_instrument_does_not_depend_on_how_many_others_trade(others: int) -> None:
    p = pipeline()
    streams = {iid: Stream(iid) for iid in [IID, *range(1000, 1000 + others)]}
    for s in streams.values():
        p.feed(s.book(T0))
    reader = RingReader(p, "bars", from_start=True)
    eng, prov = forced_engine(p, weights={"qmo": 1.0})
    prov.value = None
    for k in range(1, 12):
        for iid, s in streams.items():
            side = b"B" if (k + iid) % 3 else b"A"
            p.feed(s.trade(T0 + k * S + 10 + iid, side, PX + TICK if side == b"B" else PX, size=1 + k % 4))
        drain(eng, reader)
    q = eng.last_score[IID].pillars["qmo"]
    # The same with no other instrument (k + 42: sides B, B, A, ...; sizes 1 + k % 4).
    assert (round(q.direction, 4), round(q.confidence, 4)) == (0.6806, 0.6806)
    assert any("CVD" in r for r in q.reasons)


def test_a_position_on_an_instrument_later_mapped_to_a_spread_is_closed() -> None:
    p = _native.Pipeline(bar_interval_ns=S)
    p.feed(metadata_bytes("GCZ6", 7, T0))  # the header maps another id: 42's symbol is unknown
    st = Stream()
    p.feed(st.book(T0))
    reader = RingReader(p, "bars", from_start=True)
    eng, _ = forced_engine(p)
    t = T0 + S
    for _ in range(2):
        p.feed(st.trade(t + 1000, b"A", PX + TICK))
        t += S
    assert [(x.instrument_id, x.action) for x in drain(eng, reader)] == [(IID, "BUY")]
    p.feed(symbol_mapping_bytes(("GCZ6-GCG7",), (IID,), t))
    for _ in range(3):
        p.feed(st.trade(t + 1000, b"A", PX + TICK))
        t += S
    sigs = drain(eng, reader)
    assert [(x.instrument_id, x.action) for x in sigs] == [(IID, "FLAT")]
    assert "calendar spread" in sigs[0].veto and eng.scope.excluded == {IID: "GCZ6-GCG7"}
    assert eng._builders[IID].position == "FLAT"


def test_a_bar_closed_by_the_wall_clock_inside_an_event_does_not_sample_a_half_applied_book() -> None:
    p = pipeline(engine_config={"protect": {"min_samples": 5}})
    st = Stream()
    orders = warm_ladder(p, st, 5)
    p.feed(st.trade(T0 + S, b"A", PX + TICK))  # opens a time bar
    before = p.risk(IID, 0)["depth"]
    # One event pulling and re-adding every level, split across two reads: the first half now.
    t = T0 + S + 1000
    for o, side, px in orders:
        r = np.frombuffer(st.rec(t, b"C", side, px, 10, oid=o)[0], MBO_DTYPE).copy()
        r["flags"] = 0  # not the event's last record
        p.feed(r.tobytes())
    assert p.advance_clock(T0 + 3 * S) == 1  # the wall-clock tick closes the bar mid-event
    risk = p.risk(IID, 0)
    assert risk["depth"] == before and not risk["liquidity_vacuum"]
