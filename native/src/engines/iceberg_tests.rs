//! Unit tests of the iceberg detector, driving a real `MboBook` in pipeline order.
use super::*;
use crate::book::MboBook;
use crate::engines::records::ZoneRec;
use crate::engines::EngineConfig;

const IID: u32 = 7;
const PX: i64 = 2_400_000_000_000;
const TICK: i64 = 100_000_000;
const MS: u64 = 1_000_000;

/// Drives detector and book exactly as the pipeline does: detector first, then the book,
/// then the event end at F_LAST.
struct Sim {
    cfg: IcebergConfig,
    det: IcebergDetector,
    mbo: MboBook,
    out: Outputs,
    ts: u64,
}

type Rec = (u8, u8, u64, i64, u32);

impl Sim {
    fn new() -> Self {
        Self::with(IcebergConfig::default(), 64)
    }

    fn with(cfg: IcebergConfig, capacity: usize) -> Self {
        let ecfg = EngineConfig { iceberg: cfg, iceberg_capacity: capacity, zone_capacity: 64, sweep_capacity: 8, flow_capacity: 8, footprint_capacity: 8, ..Default::default() };
        Self { cfg, det: IcebergDetector::new(IID, &cfg), mbo: MboBook::default(), out: Outputs::new(&ecfg), ts: 1_700_000_000_000_000_000 }
    }

    fn send(&mut self, (action, side, oid, px, sz): Rec, flags: u8) {
        let m = MboMsg {
            hd: dbn::RecordHeader::new::<MboMsg>(dbn::rtype::MBO, 1, IID, self.ts),
            order_id: oid,
            price: px,
            size: sz,
            flags: dbn::FlagSet::from(flags),
            channel_id: 0,
            action: action as std::ffi::c_char,
            side: side as std::ffi::c_char,
            ts_recv: self.ts,
            ts_in_delta: 0,
            sequence: 0,
        };
        self.det.on_mbo(&self.cfg, &m, &self.mbo.book, &mut self.out);
        if self.mbo.apply(&m) {
            self.det.on_event_end(&self.cfg, self.ts, self.ts, &mut self.out);
        }
    }

    /// One event (F_LAST on its final record), then 10 µs pass.
    fn ev(&mut self, recs: &[Rec]) {
        self.ev_flags(recs, 0);
    }

    fn ev_flags(&mut self, recs: &[Rec], extra: u8) {
        for (i, r) in recs.iter().enumerate() {
            let last = if i + 1 == recs.len() { dbn::flags::LAST } else { 0 };
            self.send(*r, last | extra);
        }
        self.ts += 10_000;
    }

    fn add(&mut self, oid: u64, side: u8, px: i64, sz: u32) {
        self.ev(&[(b'A', side, oid, px, sz)]);
    }

    /// A buy aggressor lifting ask order `oid` for `sz` lots, then `tail` (the C/M).
    fn lift(&mut self, oid: u64, px: i64, fills: &[u32], tail: &[Rec]) {
        let mut recs = vec![(b'T', b'B', 999, px, fills.iter().sum())];
        recs.extend(fills.iter().map(|&f| (b'F', b'A', oid, px, f)));
        recs.extend_from_slice(tail);
        self.ev(&recs);
    }

    fn rows(&self) -> Vec<IcebergRec> {
        self.out.icebergs.rows.iter().copied().collect()
    }

    fn zone(&self, side: u8, px: i64) -> Option<ZoneRec> {
        self.out.zones.get(IID, ZONE_ICEBERG, side, px).copied()
    }
}

fn one(s: &Sim) -> IcebergRec {
    let rows = s.rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0]
}

#[test]
fn same_size_refill_is_detected() {
    let mut s = Sim::new();
    s.add(1, b'A', PX, 5);
    s.lift(1, PX, &[5], &[(b'M', b'A', 1, PX, 5)]);
    let r = one(&s);
    assert_eq!((r.kind, r.state, r.side, r.price), (ICEBERG_NATIVE, ICEBERG_ACTIVE, b'A', PX));
    assert_eq!((r.order_id, r.first_order_id, r.clip), (1, 1, 5));
    assert_eq!((r.hidden_qty, r.filled_qty, r.refills, r.events), (5, 5, 1, 1));
    assert_eq!(r.first_ts, r.last_ts);
    assert_eq!(s.out.icebergs.find_active(IID, 1), Some(0));
}

#[test]
fn plain_partial_and_full_fills_are_not_icebergs() {
    let mut s = Sim::new();
    s.add(1, b'A', PX, 5);
    s.add(2, b'A', PX, 5);
    s.lift(1, PX, &[2], &[(b'C', b'A', 1, PX, 2)]);
    s.lift(1, PX, &[3], &[(b'M', b'A', 1, PX, 0)]);
    s.lift(2, PX, &[5], &[(b'C', b'A', 2, PX, 5)]);
    s.det.flush(&s.cfg, s.ts, &mut s.out);
    assert!(s.rows().is_empty());
    assert!(s.out.zones.is_empty());
}

#[test]
fn fill_beyond_display_counts_hidden_and_refills() {
    let mut s = Sim::new();
    s.add(1, b'B', PX, 5);
    let recs = [(b'T', b'A', 999, PX, 12), (b'F', b'B', 1, PX, 5), (b'F', b'B', 1, PX, 5), (b'F', b'B', 1, PX, 2), (b'M', b'B', 1, PX, 3)];
    s.ev(&recs);
    let r = one(&s);
    assert_eq!((r.hidden_qty, r.filled_qty, r.refills, r.events, r.side), (10, 12, 2, 1, b'B'));
}

#[test]
fn exhaustion_is_filled_and_cancel_is_cancelled() {
    let mut s = Sim::new();
    s.add(1, b'A', PX, 5);
    s.add(2, b'A', PX + TICK, 4);
    s.lift(1, PX, &[5], &[(b'M', b'A', 1, PX, 5)]);
    // Partial fill of the refilled clip: counted, still active.
    s.lift(1, PX, &[2], &[(b'C', b'A', 1, PX, 2)]);
    s.lift(1, PX, &[3, 1], &[(b'C', b'A', 1, PX, 3)]);
    let r = one(&s);
    assert_eq!((r.state, r.filled_qty, r.hidden_qty, r.refills, r.events), (ICEBERG_FILLED, 11, 6, 2, 2));
    assert_eq!(s.out.icebergs.find_active(IID, 1), None);

    s.lift(2, PX + TICK, &[4], &[(b'M', b'A', 2, PX + TICK, 4)]);
    s.ev(&[(b'C', b'A', 2, PX + TICK, 4)]);
    let r = s.rows()[1];
    assert_eq!((r.order_id, r.state, r.filled_qty, r.hidden_qty), (2, ICEBERG_CANCELLED, 4, 4));
}

#[test]
fn fill_away_from_resting_price_is_aggressor_volume() {
    let mut s = Sim::new();
    s.add(1, b'A', PX, 5);
    s.ev(&[(b'T', b'B', 999, PX - TICK, 5), (b'F', b'A', 1, PX - TICK, 5), (b'M', b'A', 1, PX, 5)]);
    // Fills of an order the book never saw cannot be balanced either.
    s.ev(&[(b'T', b'B', 998, PX, 5), (b'F', b'A', 77, PX, 5), (b'M', b'A', 77, PX, 5)]);
    // Filled, then moved to another price: it left the level, nothing is revealed.
    s.add(2, b'A', PX + TICK, 5);
    s.lift(2, PX + TICK, &[5], &[(b'M', b'A', 2, PX + 2 * TICK, 5)]);
    assert!(s.rows().is_empty());
}

#[test]
fn fixed_capacities_overflow_without_panicking() {
    let mut s = Sim::new();
    let n = TRACK_CAPACITY as u64 + 10;
    for oid in 1..=n {
        s.add(oid, b'A', PX + oid as i64 * TICK, 2);
    }
    let mut recs = vec![(b'T', b'B', 999, PX, 0)];
    recs.extend((1..=n).map(|oid| (b'F', b'A', oid, PX + oid as i64 * TICK, 2)));
    recs.extend((1..=n).map(|oid| (b'C', b'A', oid, PX + oid as i64 * TICK, 2)));
    s.ev(&recs);
    assert_eq!(s.det.overflow, 10);
    assert_eq!(s.det.tracks.capacity(), TRACK_CAPACITY);
    assert_eq!(s.det.awaiting as usize, CHAINS, "oldest chains were overwritten");
    s.ts += 10 * MS;
    s.add(n + 1, b'B', PX - TICK, 1);
    assert_eq!(s.det.awaiting, 0);
    assert!(s.rows().is_empty());
}

#[test]
fn snapshot_records_are_excluded() {
    let mut s = Sim::new();
    s.add(1, b'A', PX, 5);
    s.ev_flags(&[(b'F', b'A', 1, PX, 5), (b'M', b'A', 1, PX, 5)], dbn::flags::SNAPSHOT);
    assert!(s.rows().is_empty());
}

#[test]
fn refill_in_the_next_event_is_detected() {
    let mut s = Sim::new();
    s.add(1, b'A', PX, 5);
    s.add(2, b'A', PX + TICK, 5);
    s.lift(1, PX, &[5], &[]);
    assert!(s.rows().is_empty());
    s.ev(&[(b'M', b'A', 1, PX, 5)]);
    assert_eq!(one(&s).hidden_qty, 5);
    // A late plain reduction is no iceberg.
    s.lift(2, PX + TICK, &[2], &[]);
    s.ev(&[(b'C', b'A', 2, PX + TICK, 2)]);
    assert_eq!(s.rows().len(), 1);
}

#[test]
fn unexplained_fills_only_count_beyond_display() {
    let mut s = Sim::new();
    s.add(1, b'A', PX, 5);
    s.add(2, b'A', PX + TICK, 5);
    s.lift(2, PX + TICK, &[5], &[]);
    s.add(3, b'B', PX - TICK, 1);
    s.add(4, b'B', PX - TICK, 1);
    assert!(s.rows().is_empty(), "a missing reduction alone proves nothing");
    s.lift(1, PX, &[5, 3], &[]);
    s.det.flush(&s.cfg, s.ts, &mut s.out);
    let r = one(&s);
    assert_eq!((r.order_id, r.hidden_qty, r.filled_qty), (1, 3, 8));
}

/// Fills clip `oid` away (T, F, C) at ask PX.
fn fill_away(s: &mut Sim, oid: u64, sz: u32) {
    s.lift(oid, PX, &[sz], &[(b'C', b'A', oid, PX, sz)]);
}

#[test]
fn synthetic_chain_of_three_clips() {
    let mut s = Sim::new();
    s.add(1, b'A', PX, 5);
    fill_away(&mut s, 1, 5);
    s.ts += MS;
    s.add(2, b'A', PX, 5);
    fill_away(&mut s, 2, 5);
    assert!(s.rows().is_empty(), "two clips are not enough");
    s.ts += MS;
    s.add(3, b'A', PX, 5);
    let r = one(&s);
    assert_eq!((r.kind, r.state, r.first_order_id, r.order_id, r.clip), (ICEBERG_SYNTHETIC, ICEBERG_ACTIVE, 1, 3, 5));
    assert_eq!((r.refills, r.events, r.filled_qty, r.hidden_qty), (2, 3, 10, 5));
    let z = s.zone(b'A', PX).unwrap();
    assert_eq!((z.count, z.volume, z.hidden_qty), (1, 10, 5));

    fill_away(&mut s, 3, 5);
    assert_eq!(one(&s).state, ICEBERG_ACTIVE);
    s.ts += 3 * MS;
    s.add(50, b'B', PX - TICK, 1);
    let r = one(&s);
    assert_eq!((r.state, r.filled_qty, r.hidden_qty), (ICEBERG_FILLED, 15, 10));
    let z = s.zone(b'A', PX).unwrap();
    assert_eq!((z.count, z.volume, z.hidden_qty), (1, 15, 10));
}

#[test]
fn synthetic_chain_breaks_after_the_window_and_on_cancel() {
    let mut s = Sim::new();
    s.add(1, b'A', PX, 5);
    fill_away(&mut s, 1, 5);
    s.ts += 3 * MS;
    s.add(2, b'A', PX, 5); // too late: starts over
    fill_away(&mut s, 2, 5);
    s.ts += MS;
    s.add(3, b'A', PX, 5);
    s.det.flush(&s.cfg, s.ts, &mut s.out);
    assert!(s.rows().is_empty());

    // A different size does not continue a chain either.
    fill_away(&mut s, 3, 5);
    s.ts += MS;
    s.add(4, b'A', PX, 4);
    fill_away(&mut s, 4, 4);
    s.ts += MS;
    s.add(5, b'A', PX, 5);
    assert!(s.rows().is_empty());

    let mut s = Sim::new();
    for oid in 1..=3 {
        s.add(oid, b'A', PX, 2);
        if oid < 3 {
            fill_away(&mut s, oid, 2);
            s.ts += MS;
        }
    }
    s.ev(&[(b'C', b'A', 3, PX, 2)]);
    let r = one(&s);
    assert_eq!((r.kind, r.state, r.filled_qty, r.hidden_qty), (ICEBERG_SYNTHETIC, ICEBERG_CANCELLED, 4, 2));
}

#[test]
fn zones_count_icebergs_per_bucket() {
    let cfg = IcebergConfig { zone_width: 10 * TICK, synthetic_enabled: false, ..Default::default() };
    let mut s = Sim::with(cfg, 64);
    s.add(1, b'A', PX + TICK, 5);
    s.add(2, b'A', PX + 2 * TICK, 3);
    s.lift(1, PX + TICK, &[5], &[(b'M', b'A', 1, PX + TICK, 5)]);
    s.lift(1, PX + TICK, &[2], &[(b'C', b'A', 1, PX + TICK, 2)]);
    s.lift(2, PX + 2 * TICK, &[3, 3], &[(b'M', b'A', 2, PX + 2 * TICK, 3)]);
    let z = s.zone(b'A', PX).unwrap();
    assert_eq!((z.count, z.volume, z.hidden_qty, z.state), (2, 13, 11, ZONE_ACTIVE));
    assert!((z.strength - (1.0 - (-11.0f64 / 50.0).exp())).abs() < 1e-12);
    assert_eq!(s.out.zones.len(), 1);
}

#[test]
fn restored_active_iceberg_keeps_its_row() {
    let mut s = Sim::new();
    s.add(1, b'A', PX, 5);
    s.lift(1, PX, &[5], &[(b'M', b'A', 1, PX, 5)]);
    let saved = s.rows();
    let other = IcebergRec { instrument_id: IID + 1, ..saved[0] };

    let mut s = Sim::new();
    assert_eq!(s.out.icebergs.restore(&[other, saved[0]]), 2);
    s.add(1, b'A', PX, 5);
    s.lift(1, PX, &[5], &[(b'M', b'A', 1, PX, 5)]);
    let rows = s.rows();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[1].hidden_qty, rows[1].filled_qty, rows[1].events, rows[1].first_ts), (10, 10, 2, saved[0].first_ts));
    assert_eq!(rows[0], other, "another instrument's row is untouched");
}

#[test]
fn full_table_counts_the_loss() {
    let mut s = Sim::with(IcebergConfig::default(), 1);
    s.add(1, b'A', PX, 5);
    s.add(2, b'A', PX + TICK, 5);
    s.lift(1, PX, &[5], &[(b'M', b'A', 1, PX, 5)]);
    s.lift(2, PX + TICK, &[5], &[(b'M', b'A', 2, PX + TICK, 5)]);
    assert_eq!(s.rows().len(), 1);
    assert_eq!(s.out.icebergs.dropped, 1);
    assert_eq!(s.out.icebergs.restore(&[IcebergRec::default(); 3]), 1);
}

#[test]
fn book_clear_and_reconnect_drop_pending_fills() {
    let mut s = Sim::new();
    s.add(1, b'A', PX, 5);
    s.lift(1, PX, &[5], &[(b'M', b'A', 1, PX, 5)]);
    s.add(2, b'A', PX + TICK, 5);
    s.lift(2, PX + TICK, &[5], &[]);
    s.ev(&[(b'R', b'N', 0, crate::book::UNDEF_PRICE, 0)]);
    s.det.flush(&s.cfg, s.ts, &mut s.out);
    let r = one(&s);
    assert_eq!(r.state, ICEBERG_ACTIVE, "a book clear does not end an iceberg");
    // The order comes back after the clear and keeps its row.
    s.add(1, b'A', PX, 5);
    s.lift(1, PX, &[5], &[(b'M', b'A', 1, PX, 5)]);
    assert_eq!(one(&s).hidden_qty, 10);
    s.send((b'T', b'B', 999, PX, 5), 0);
    s.send((b'F', b'A', 1, PX, 5), 0);
    s.det.reset_event();
    s.mbo.reset_event();
    s.ev(&[(b'M', b'A', 1, PX, 5)]);
    assert_eq!(one(&s).hidden_qty, 10);
}
