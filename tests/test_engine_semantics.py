"""Engine outputs on hand-built MBO streams, checked against the reference's own rules
(../shared/reference/microstructure.md) computed independently here."""

from __future__ import annotations

import struct

import databento_dbn as dbn

from aurum import _native
from aurum.engines import table_array, zone_dict

TICK = 100_000_000
PX = 2_400 * 1_000_000_000
F_LAST, F_SNAPSHOT, F_BAD_TS = 0x80, 0x20, 0x08
SNAP = F_SNAPSHOT | F_BAD_TS
IID = 42
SECOND = 1_000_000_000


class Stream:
    """MBO records of one instrument, in order, as DBN v3 bytes."""

    def __init__(self, t0: int = 1_700_000_000_000_000_000) -> None:
        self.recs: list[bytes] = []
        self.t = t0
        self.seq = 0

    def r(self, action: str, side: str, oid: int, price: int, size: int, last: bool = True, flags: int = 0) -> None:
        self.seq += 1
        self.recs.append(struct.pack("<BBHIQQqIBBccQiI", 14, 0xA0, 1, IID, self.t, oid, price, size,
                                     flags | (F_LAST if last else 0), 0, action.encode(), side.encode(), self.t, 0,
                                     self.seq))

    def snapshot(self, levels: list[tuple[str, int, int, int]]) -> None:
        """A clear, then resting orders (side, order id, price, size), F_LAST on the last."""
        self.r("R", "N", 0, 2**63 - 1, 0, last=False, flags=SNAP)
        for k, (side, oid, px, sz) in enumerate(levels):
            self.r("A", side, oid, px, sz, last=k == len(levels) - 1, flags=SNAP)

    def run(self) -> _native.Pipeline:
        meta = dbn.Metadata(dataset="GLBX.MDP3", start=0, stype_in=dbn.SType.RAW_SYMBOL,
                            stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.MBO, symbols=["GCZ6"], partial=[],
                            not_found=[], mappings=[], end=2**64 - 1, version=3)
        p = _native.Pipeline()
        p.feed(bytes(meta.encode()) + b"".join(self.recs))
        p.finish()
        return p


def test_a_new_snapshot_is_not_order_flow() -> None:
    """"F_SNAPSHOT records are excluded from activity counts": the jump from the old book to
    a re-snapshot (a reconnect, the next day's file) is no OFI. Two one-lot lifts of the ask
    are each e = +1 (CKS: the ask queue shrinks); the snapshot's bid 10 -> 50 counted +40."""
    s = Stream()
    s.snapshot([("B", 100, PX - TICK, 10), ("A", 1, PX, 5)])
    for oid in (1, 201):
        if oid == 201:
            s.t += SECOND
            s.snapshot([("B", 200, PX - TICK, 50), ("A", 201, PX, 4)])
        s.t += SECOND
        s.r("T", "B", 900 + oid, PX, 1, last=False)
        s.r("F", "A", oid, PX, 1, last=False)
        s.r("C", "A", oid, PX, 1)
    assert s.run().pressure(IID)["ofi_total"] == 2


def test_a_snapshot_completed_by_a_real_time_record_is_not_order_flow() -> None:
    """"The book is complete at the first record with F_LAST", which may be a real-time
    record's (files before 2024-02-10 start their snapshot without an R or an F_LAST): the
    rebuilt book's first top is still no OFI, whatever record closes the event."""
    s = Stream()
    s.snapshot([("B", 100, PX - TICK, 10), ("A", 1, PX, 5)])
    s.t += SECOND
    s.r("T", "B", 901, PX, 1, last=False)
    s.r("F", "A", 1, PX, 1, last=False)
    s.r("C", "A", 1, PX, 1)  # e = +1
    s.t += SECOND
    for side, oid, px, sz in (("B", 200, PX - TICK, 50), ("A", 201, PX, 4)):
        s.r("A", side, oid, px, sz, last=False, flags=SNAP)
    s.t += SECOND
    s.r("A", "B", 202, PX - 2 * TICK, 7)  # real time, closes the snapshot's event
    assert s.run().pressure(IID)["ofi_total"] == 1


def test_absorption_replenishment_when_the_level_refills_to_its_size() -> None:
    """Sellers hit bid L eight times for 40 lots, 0.5 s apart; the resting order refills to
    100 each time. Reference: replenishment = sum of trades at L - (depth_start - depth_end)
    = 320 - (100 - 100) = 320, strength min(1, V/600) * (0.5 + 0.5 * min(1, R/V)). A refill
    to exactly the same size publishes no new top: the engine kept the prints in its tally
    and reported 220."""
    low = PX - TICK
    for sizes in ([100] * 8, [99, 100] * 4):  # the second: the top changes at every event
        s = Stream()
        s.snapshot([("B", 1, low, 100), ("B", 2, low - TICK, 100), ("A", 3, PX, 100)])
        for k, size in enumerate(sizes):
            s.t += SECOND // 2
            s.r("T", "A", 900 + k, low, 40, last=False)
            s.r("F", "B", 1, low, 40, last=False)
            s.r("M", "B", 1, low, size)
        zones = [zone_dict(r) for r in table_array(s.run(), "zones") if zone_dict(r)["kind"] == "absorption"]
        volume, repl = 320, 320 - (100 - sizes[-1])
        assert len(zones) == 1 and zones[0]["volume"] == volume and zones[0]["hidden_qty"] == repl, (sizes, zones)
        assert abs(zones[0]["strength"] - min(1, volume / 600) * (0.5 + 0.5 * min(1, repl / volume))) < 1e-6


def test_the_daemons_gc_tick_keeps_prints_two_ticks_apart_apart() -> None:
    """Buys at 0, +2 and +4 ticks, the first prints of a stream: with the tick inferred from
    the prints (engines' default 0) they looked adjacent, a stacked run of 3; with the GC tick
    the daemon's config now passes (0.10), they are three runs of 1."""
    from aurum.config import load_config
    from aurum.rings import ring_array

    def stacked(engine_config: dict[str, object] | None) -> int:
        s = Stream(1_700_000_040 * SECOND)
        for k, px in enumerate((PX, PX + 2 * TICK, PX + 4 * TICK)):
            s.t += 1000
            s.r("T", "B", 10 + k, px, 10)
        p = _native.Pipeline(engine_config=engine_config)
        meta = dbn.Metadata(dataset="GLBX.MDP3", start=0, stype_in=dbn.SType.RAW_SYMBOL,
                            stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.MBO, symbols=["GCZ6"], partial=[],
                            not_found=[], mappings=[], end=2**64 - 1, version=3)
        p.feed(bytes(meta.encode()) + b"".join(s.recs))
        p.flush_bars()
        return int(ring_array(p, "flow")[: p.ring_written("flow")][0]["stacked_buy"])

    assert stacked(None) == 3
    assert stacked(load_config(None, environ={}).engines) == 1
