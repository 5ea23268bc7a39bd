//! Sweeps and stop runs (`microstructure.md` §3).
//!
//! MBO: an event (records up to `F_LAST`) is one match. Its `T` records are grouped by
//! aggressor order id (id 0 = unknown: a run of consecutive id-0 `T`s on one side is one
//! aggressor). An aggressor sweeps when it filled at ≥ `min_levels` distinct prices with
//! ≥ `min_volume` lots. CME elects stops inside the triggering event, so ≥ 2 distinct
//! nonzero same-side aggressor ids whose first sweeps are reported as ONE `STOP_RUN`
//! (stops = ids after the first, prices and volume over all of them); otherwise each
//! sweeping aggressor gives a `SWEEP`. Records carry the event end's timestamps.
//!
//! L2 (trades, MBP-10/MBP-1 prints): no order ids, so same-side prints sharing a `ts_event`
//! or within `group_ns` of the group's first print form one group; it sweeps when it traded
//! at ≥ `min_levels` prices with ≥ `min_volume` lots AND exhausted the best level it met
//! (Σ prints at the best price of the top seen with its first print ≥ that level's size).
//! Stop runs are approximated: a sweep starting within `run_ns` after the previous
//! same-side sweep's last print, and reaching further, continues a run and is emitted as
//! `STOP_RUN` with stops = sweeps in the run so far − 1 (fills of elected stops are not
//! distinguishable from the triggering order without MBO). A sweep that does not continue a
//! run starts a new one. Records carry the group's first `ts_event` and last `ts_recv`.
//! `N`-side prints carry no direction; they are skipped (counted) and never close a group.

use dbn::MboMsg;

use super::records::{SweepRec, STOP_RUN, SWEEP};
use super::Outputs;
use crate::book::{Top, UNDEF_PRICE};

#[derive(Clone, Copy, Debug)]
pub struct SweepConfig {
    pub enabled: bool,
    /// Distinct prices an aggressor (MBO) or print group (L2) must trade at.
    pub min_levels: u16,
    /// Lots the aggressor or group must trade.
    pub min_volume: u64,
    /// L2: prints within this of a group's first print join it (one match rarely spans more).
    pub group_ns: u64,
    /// L2: longest gap between the sweeps of one stop run.
    pub run_ns: u64,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self { enabled: true, min_levels: 2, min_volume: 1, group_ns: 1_000_000, run_ns: 50_000_000 }
    }
}

/// Losses of detail, never errors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepCounters {
    /// MBO `T`s of an event beyond `MAX_AGGRESSORS` aggressors: ignored.
    pub aggressor_overflow: u64,
    /// Distinct prices beyond `MAX_PRICES` for one aggressor or group: not listed (levels
    /// then reads as at least `MAX_PRICES`).
    pub price_overflow: u64,
    /// Prints without an aggressor side.
    pub unsided: u64,
}

const MAX_AGGRESSORS: usize = 32;
const MAX_PRICES: usize = 16;

#[derive(Clone, Copy, Default)]
struct Prices {
    px: [i64; MAX_PRICES],
    n: usize,
}

impl Prices {
    fn list(&self) -> &[i64] {
        &self.px[..self.n.min(MAX_PRICES)]
    }
    fn contains(&self, p: i64) -> bool {
        self.list().contains(&p)
    }
    /// False when `p` is new and there is no room for it.
    fn add(&mut self, p: i64) -> bool {
        if self.contains(p) {
            return true;
        }
        if self.n >= MAX_PRICES {
            return false;
        }
        self.px[self.n] = p;
        self.n += 1;
        true
    }
}

/// The price further in the aggressor's direction (buyers lift upward, sellers hit down).
fn further(side: u8, a: i64, b: i64) -> i64 {
    if side == b'B' { a.max(b) } else { a.min(b) }
}

#[derive(Clone, Copy, Default)]
struct Fills {
    side: u8,
    prices: Prices,
    volume: u64,
    first_px: i64,
    far_px: i64,
}

impl Fills {
    fn start(side: u8, price: i64) -> Self {
        Self { side, prices: Prices::default(), volume: 0, first_px: price, far_px: price }
    }
    fn add(&mut self, price: i64, size: u32, c: &mut SweepCounters) {
        if !self.prices.add(price) {
            c.price_overflow += 1;
        }
        self.volume = self.volume.saturating_add(size as u64);
        self.far_px = further(self.side, self.far_px, price);
    }
    fn levels(&self) -> u16 {
        self.prices.n.min(u16::MAX as usize) as u16
    }
    fn sweeps(&self, cfg: &SweepConfig) -> bool {
        self.levels() >= cfg.min_levels && self.volume >= cfg.min_volume
    }
}

#[derive(Clone, Copy, Default)]
struct Aggressor {
    order_id: u64,
    fills: Fills,
}

/// An open L2 print group.
#[derive(Clone, Copy, Default)]
struct Group {
    open: bool,
    rtype: u8,
    first_ts: u64,
    last_ts: u64,
    ts_recv: u64,
    fills: Fills,
    best_px: i64,
    best_size: u64,
    at_best: u64,
}

/// The last L2 sweep, for run detection.
#[derive(Clone, Copy, Default)]
struct Run {
    side: u8,
    last_ts: u64,
    far_px: i64,
    sweeps: u16,
}

pub struct SweepDetector {
    instrument_id: u32,
    aggs: [Aggressor; MAX_AGGRESSORS],
    n_aggs: usize,
    /// The aggressor the previous `T` of this event went to: id-0 runs continue it.
    last_agg: Option<usize>,
    ev_ts: u64,
    ev_recv: u64,
    group: Group,
    run: Run,
    pub counters: SweepCounters,
}

impl SweepDetector {
    pub fn new(instrument_id: u32, _cfg: &SweepConfig) -> Self {
        Self {
            instrument_id,
            aggs: [Aggressor::default(); MAX_AGGRESSORS],
            n_aggs: 0,
            last_agg: None,
            ev_ts: 0,
            ev_recv: 0,
            group: Group::default(),
            run: Run::default(),
            counters: SweepCounters::default(),
        }
    }

    pub fn on_mbo_trade(&mut self, cfg: &SweepConfig, m: &MboMsg) {
        if !cfg.enabled || m.action as u8 != b'T' || m.price == UNDEF_PRICE {
            return;
        }
        let side = m.side as u8;
        if side != b'B' && side != b'A' {
            self.counters.unsided += 1;
            return;
        }
        self.ev_ts = m.hd.ts_event;
        self.ev_recv = m.ts_recv;
        let aggs = &self.aggs[..self.n_aggs];
        let found = if m.order_id != 0 {
            aggs.iter().position(|a| a.order_id == m.order_id && a.fills.side == side)
        } else {
            self.last_agg.filter(|&i| aggs.get(i).is_some_and(|a| a.order_id == 0 && a.fills.side == side))
        };
        let i = match found {
            Some(i) => i,
            None if self.n_aggs < MAX_AGGRESSORS => {
                self.aggs[self.n_aggs] = Aggressor { order_id: m.order_id, fills: Fills::start(side, m.price) };
                self.n_aggs += 1;
                self.n_aggs - 1
            }
            None => {
                self.counters.aggressor_overflow += 1;
                self.last_agg = None;
                return;
            }
        };
        self.aggs[i].fills.add(m.price, m.size, &mut self.counters);
        self.last_agg = Some(i);
    }

    /// Runs at nearly every MBO record; only events with prints have work, out of line.
    #[inline]
    pub fn on_event_end(&mut self, cfg: &SweepConfig, ts_event: u64, ts_recv: u64, out: &mut Outputs) {
        if cfg.enabled && self.n_aggs > 0 {
            self.emit_event(cfg, ts_event, ts_recv, out);
        }
        self.reset_event();
    }

    #[inline(never)]
    fn emit_event(&self, cfg: &SweepConfig, ts_event: u64, ts_recv: u64, out: &mut Outputs) {
        let aggs = &self.aggs[..self.n_aggs];
        // Per side (0 = B, 1 = A): the first named aggressor, if a stop run starts with it.
        // Reference §3: two or more same-side aggressor ids in one event is a stop run (on CME
        // only elected stops add aggressors to a match event), whatever the trigger swept.
        let mut run_head: [Option<usize>; 2] = [None, None];
        for (k, side) in [b'B', b'A'].into_iter().enumerate() {
            let named = || aggs.iter().enumerate().filter(move |(_, a)| a.order_id != 0 && a.fills.side == side);
            if let Some((first, _)) = named().next() {
                if named().count() >= 2 {
                    run_head[k] = Some(first);
                }
            }
        }
        for (i, a) in aggs.iter().enumerate() {
            let head = run_head[usize::from(a.fills.side == b'A')];
            if a.order_id != 0 && head.is_some() {
                if head == Some(i) {
                    out.sweeps.push(self.stop_run(i, ts_event, ts_recv));
                }
                continue;
            }
            if a.fills.sweeps(cfg) {
                out.sweeps.push(self.record(&a.fills, SWEEP, 0, a.order_id, dbn::rtype::MBO, ts_event, ts_recv));
            }
        }
    }

    /// The stop run led by aggressor `head`: it and every later named aggressor of its side.
    fn stop_run(&self, head: usize, ts_event: u64, ts_recv: u64) -> SweepRec {
        let aggs = &self.aggs[head..self.n_aggs];
        let lead = aggs[0];
        let side = lead.fills.side;
        let members = || aggs.iter().filter(|a| a.order_id != 0 && a.fills.side == side);
        let mut all = lead.fills;
        let (mut levels, mut stops) = (0u16, 0u16);
        for (j, a) in members().enumerate() {
            if j > 0 {
                stops = stops.saturating_add(1);
                all.volume = all.volume.saturating_add(a.fills.volume);
                all.far_px = further(side, all.far_px, a.fills.far_px);
            }
            // Count a price once, at the first member that traded it.
            let new = a.fills.prices.list().iter().filter(|&&p| !members().take(j).any(|b| b.fills.prices.contains(p))).count();
            levels = levels.saturating_add(new.min(u16::MAX as usize) as u16);
        }
        let mut rec = self.record(&all, STOP_RUN, stops, lead.order_id, dbn::rtype::MBO, ts_event, ts_recv);
        rec.levels = levels;
        rec
    }

    #[allow(clippy::too_many_arguments)]
    fn record(&self, f: &Fills, kind: u8, stops: u16, order_id: u64, source: u8, ts_event: u64, ts_recv: u64) -> SweepRec {
        SweepRec {
            ts_event,
            ts_recv,
            first_px: f.first_px,
            last_px: f.far_px,
            volume: f.volume,
            order_id,
            instrument_id: self.instrument_id,
            levels: f.levels(),
            stops,
            side: f.side,
            kind,
            source,
            _pad: [0; 5],
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn on_print(&mut self, cfg: &SweepConfig, ts_event: u64, ts_recv: u64, price: i64, size: u32, side: u8, rtype: u8, top: &Top, out: &mut Outputs) {
        if !cfg.enabled || price == UNDEF_PRICE {
            return;
        }
        if side != b'B' && side != b'A' {
            self.counters.unsided += 1;
            return;
        }
        let g = &self.group;
        if g.open {
            let joins = g.fills.side == side && (ts_event == g.last_ts || ts_event <= g.first_ts.saturating_add(cfg.group_ns));
            if !joins {
                self.close_group(cfg, out);
            }
        }
        if !self.group.open {
            // A buyer meets the ask, a seller the bid.
            let best = if side == b'B' { top.ask } else { top.bid };
            self.group = Group {
                open: true,
                rtype,
                first_ts: ts_event,
                last_ts: ts_event,
                ts_recv,
                fills: Fills::start(side, price),
                best_px: best.price,
                best_size: best.size,
                at_best: 0,
            };
        }
        let g = &mut self.group;
        g.last_ts = g.last_ts.max(ts_event);
        g.ts_recv = ts_recv;
        if price == g.best_px {
            g.at_best = g.at_best.saturating_add(size as u64);
        }
        g.fills.add(price, size, &mut self.counters);
    }

    fn close_group(&mut self, cfg: &SweepConfig, out: &mut Outputs) {
        let g = self.group;
        self.group.open = false;
        // No best level known (empty side): exhaustion cannot be shown, so no sweep.
        let exhausted = g.best_px != UNDEF_PRICE && g.at_best >= g.best_size;
        if !(g.open && exhausted && g.fills.sweeps(cfg)) {
            return;
        }
        let f = &g.fills;
        let r = self.run;
        let continues = r.sweeps > 0
            && r.side == f.side
            && g.first_ts <= r.last_ts.saturating_add(cfg.run_ns)
            && further(f.side, f.far_px, r.far_px) != r.far_px;
        let sweeps = if continues { r.sweeps.saturating_add(1) } else { 1 };
        self.run = Run { side: f.side, last_ts: g.last_ts, far_px: f.far_px, sweeps };
        let (kind, stops) = if sweeps > 1 { (STOP_RUN, sweeps - 1) } else { (SWEEP, 0) };
        out.sweeps.push(self.record(f, kind, stops, 0, g.rtype, g.first_ts, g.ts_recv));
    }

    /// Closes an L2 group once no print can join it any more: past its window, and later than
    /// its last print (prints sharing that `ts_event` may still arrive until the clock moves).
    /// `now` is compared with `ts_event`s. `u64::MAX` (end of stream) also evaluates an MBO
    /// event left without `F_LAST`, stamped with its last `T`.
    pub fn on_clock(&mut self, cfg: &SweepConfig, now: u64, out: &mut Outputs) {
        let g = &self.group;
        if g.open && (now == u64::MAX || (now > g.first_ts.saturating_add(cfg.group_ns) && now > g.last_ts)) {
            self.close_group(cfg, out);
        }
        if now == u64::MAX && self.n_aggs > 0 {
            self.on_event_end(cfg, self.ev_ts, self.ev_recv, out);
        }
    }

    /// A reconnect voids the open MBO event. An open L2 group is kept: its prints happened,
    /// and the next print or clock tick closes it.
    #[inline]
    pub fn reset_event(&mut self) {
        self.n_aggs = 0;
        self.last_agg = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::LevelView;
    use crate::engines::EngineConfig;

    const TICK: i64 = 100_000_000;
    const PX: i64 = 2_000 * 1_000_000_000;
    const MS: u64 = 1_000_000;
    const T0: u64 = 1_000_000_000;

    fn outputs() -> Outputs {
        let cfg = EngineConfig { zone_capacity: 64, sweep_capacity: 64, iceberg_capacity: 64, flow_capacity: 64, footprint_capacity: 64, ..Default::default() };
        Outputs::new(&cfg)
    }
    fn recs(out: &Outputs) -> Vec<SweepRec> {
        (0..out.sweeps.written()).filter_map(|s| out.sweeps.get(s)).collect()
    }
    fn trade(order_id: u64, side: u8, ticks: i64, size: u32) -> MboMsg {
        MboMsg {
            hd: dbn::RecordHeader::new::<MboMsg>(dbn::rtype::MBO, 1, 7, T0),
            order_id,
            price: PX + ticks * TICK,
            size,
            flags: dbn::FlagSet::from(0u8),
            channel_id: 0,
            action: b'T' as std::ffi::c_char,
            side: side as std::ffi::c_char,
            ts_recv: T0 + 10,
            ts_in_delta: 0,
            sequence: 0,
        }
    }
    /// One MBO event made of these `T`s, then its end.
    fn event(d: &mut SweepDetector, out: &mut Outputs, ts: &[(u64, u8, i64, u32)]) {
        let cfg = SweepConfig::default();
        for &(id, side, ticks, size) in ts {
            d.on_mbo_trade(&cfg, &trade(id, side, ticks, size));
        }
        d.on_event_end(&cfg, T0, T0 + 10, out);
    }

    #[test]
    fn one_price_aggressor_is_not_a_sweep() {
        let (mut d, mut out) = (SweepDetector::new(7, &SweepConfig::default()), outputs());
        event(&mut d, &mut out, &[(5, b'B', 0, 3), (5, b'B', 0, 2)]);
        assert!(recs(&out).is_empty());
    }

    #[test]
    fn three_price_aggressor_sweeps() {
        let (mut d, mut out) = (SweepDetector::new(7, &SweepConfig::default()), outputs());
        event(&mut d, &mut out, &[(5, b'B', 0, 3), (5, b'B', 1, 2), (5, b'B', 2, 4), (5, b'B', 1, 1)]);
        let r = recs(&out);
        assert_eq!(r.len(), 1);
        let r = r[0];
        assert_eq!((r.kind, r.side, r.levels, r.volume, r.order_id, r.stops), (SWEEP, b'B', 3, 10, 5, 0));
        assert_eq!((r.first_px, r.last_px, r.source, r.instrument_id), (PX, PX + 2 * TICK, dbn::rtype::MBO, 7));
        assert_eq!((r.ts_event, r.ts_recv), (T0, T0 + 10));
    }

    #[test]
    fn seller_sweeps_down_and_unknown_ids_group_by_run() {
        let (mut d, mut out) = (SweepDetector::new(7, &SweepConfig::default()), outputs());
        event(&mut d, &mut out, &[(0, b'A', 0, 1), (0, b'A', -1, 1), (0, b'A', -3, 1)]);
        let r = recs(&out);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].kind, r[0].levels, r[0].first_px, r[0].last_px, r[0].order_id), (SWEEP, 3, PX, PX - 3 * TICK, 0));
    }

    #[test]
    fn two_same_side_ids_make_one_stop_run() {
        let (mut d, mut out) = (SweepDetector::new(7, &SweepConfig::default()), outputs());
        event(&mut d, &mut out, &[(5, b'B', 0, 3), (5, b'B', 1, 2), (9, b'B', 1, 4), (9, b'B', 2, 1)]);
        let r = recs(&out);
        assert_eq!(r.len(), 1);
        let r = r[0];
        assert_eq!((r.kind, r.stops, r.levels, r.volume, r.order_id), (STOP_RUN, 1, 3, 10, 5));
        assert_eq!((r.first_px, r.last_px), (PX, PX + 2 * TICK));
    }

    #[test]
    fn a_one_price_trigger_with_an_elected_stop_is_a_stop_run() {
        // Reference §3: a second same-side aggressor id in the event is an elected stop,
        // whether or not the trigger itself swept.
        let (mut d, mut out) = (SweepDetector::new(7, &SweepConfig::default()), outputs());
        event(&mut d, &mut out, &[(5, b'B', 0, 3), (9, b'B', 1, 4), (9, b'B', 2, 1), (11, b'A', 0, 1)]);
        let r = recs(&out);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].kind, r[0].order_id, r[0].stops, r[0].levels), (STOP_RUN, 5, 1, 3));
    }

    #[test]
    fn reconnect_voids_the_open_event_and_overflow_is_counted() {
        let cfg = SweepConfig::default();
        let (mut d, mut out) = (SweepDetector::new(7, &cfg), outputs());
        d.on_mbo_trade(&cfg, &trade(5, b'B', 0, 1));
        d.on_mbo_trade(&cfg, &trade(5, b'B', 1, 1));
        d.reset_event();
        d.on_event_end(&cfg, T0, T0, &mut out);
        assert!(recs(&out).is_empty());
        for id in 1..=40 {
            d.on_mbo_trade(&cfg, &trade(id, b'A', 0, 1));
        }
        for k in 0..20 {
            d.on_mbo_trade(&cfg, &trade(1, b'A', -k, 1));
        }
        d.on_event_end(&cfg, T0, T0, &mut out);
        assert_eq!((d.counters.aggressor_overflow, d.counters.price_overflow), (8, 4));
        let r = recs(&out);
        assert_eq!((r.len(), r[0].kind, r[0].stops, r[0].levels), (1, STOP_RUN, 31, 16));
    }

    fn top(bid: i64, bid_sz: u64, ask: i64, ask_sz: u64) -> Top {
        Top { bid: LevelView { price: bid, size: bid_sz, count: 1 }, ask: LevelView { price: ask, size: ask_sz, count: 1 } }
    }
    fn print(d: &mut SweepDetector, out: &mut Outputs, ts: u64, ticks: i64, size: u32, side: u8, tp: &Top) {
        d.on_print(&SweepConfig::default(), ts, ts + 10, PX + ticks * TICK, size, side, dbn::rtype::MBP_0, tp, out);
    }

    #[test]
    fn l2_prints_sharing_ts_event_sweep_when_the_best_ask_is_exhausted() {
        let (mut d, mut out) = (SweepDetector::new(7, &SweepConfig::default()), outputs());
        let tp = top(PX - TICK, 4, PX, 5);
        // One match: the prints share a ts_event.
        print(&mut d, &mut out, T0, 0, 5, b'B', &tp);
        print(&mut d, &mut out, T0, 1, 2, b'B', &tp);
        print(&mut d, &mut out, T0, 2, 1, b'B', &tp);
        assert!(recs(&out).is_empty(), "still open");
        print(&mut d, &mut out, T0 + 1, -1, 1, b'A', &tp);
        let r = recs(&out);
        assert_eq!(r.len(), 1);
        let r = r[0];
        assert_eq!((r.kind, r.side, r.levels, r.volume, r.order_id, r.source), (SWEEP, b'B', 3, 8, 0, dbn::rtype::MBP_0));
        assert_eq!((r.first_px, r.last_px, r.ts_event, r.ts_recv), (PX, PX + 2 * TICK, T0, T0 + 10));
    }

    #[test]
    fn l2_groups_by_group_ns_and_flushes_on_clock() {
        let cfg = SweepConfig::default();
        let (mut d, mut out) = (SweepDetector::new(7, &cfg), outputs());
        let tp = top(PX + TICK, 3, PX + 2 * TICK, 3);
        print(&mut d, &mut out, T0, 1, 3, b'A', &tp);
        print(&mut d, &mut out, T0 + MS / 2, 0, 1, b'A', &tp);
        print(&mut d, &mut out, T0 + MS, -1, 1, b'A', &tp);
        d.on_clock(&cfg, T0 + MS, &mut out);
        assert!(recs(&out).is_empty(), "within the window");
        // Beyond group_ns: a new group; the first closes as a 3-level sell sweep.
        print(&mut d, &mut out, T0 + 2 * MS, -2, 1, b'A', &top(PX - 2 * TICK, 9, PX, 1));
        let r = recs(&out);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].kind, r[0].side, r[0].levels, r[0].last_px), (SWEEP, b'A', 3, PX - TICK));
        // The second group (one price, best bid not exhausted) is flushed, not a sweep.
        d.on_clock(&cfg, T0 + 4 * MS, &mut out);
        assert_eq!(recs(&out).len(), 1);
        // End of stream flushes an open group regardless of time.
        print(&mut d, &mut out, T0 + 10 * MS, 1, 3, b'A', &tp);
        print(&mut d, &mut out, T0 + 10 * MS, 0, 1, b'A', &tp);
        d.on_clock(&cfg, T0 + 10 * MS, &mut out);
        assert_eq!(recs(&out).len(), 1);
        d.on_clock(&cfg, u64::MAX, &mut out);
        assert_eq!(recs(&out).len(), 2);
    }

    #[test]
    fn l2_needs_the_best_level_exhausted() {
        let cfg = SweepConfig::default();
        let (mut d, mut out) = (SweepDetector::new(7, &cfg), outputs());
        // 5 of 10 lots at the ask traded, then a print a tick up: a stale or refilled book.
        let tp = top(PX - TICK, 4, PX, 10);
        print(&mut d, &mut out, T0, 0, 5, b'B', &tp);
        print(&mut d, &mut out, T0, 1, 5, b'B', &tp);
        d.on_clock(&cfg, T0 + 2 * MS, &mut out);
        assert!(recs(&out).is_empty());
        // No ask at all: exhaustion unknown, no sweep.
        let empty = top(PX - TICK, 4, UNDEF_PRICE, 0);
        print(&mut d, &mut out, T0 + 5 * MS, 0, 5, b'B', &empty);
        print(&mut d, &mut out, T0 + 5 * MS, 1, 5, b'B', &empty);
        d.on_clock(&cfg, u64::MAX, &mut out);
        assert!(recs(&out).is_empty());
    }

    #[test]
    fn l2_back_to_back_sweeps_form_a_stop_run() {
        let cfg = SweepConfig::default();
        let (mut d, mut out) = (SweepDetector::new(7, &cfg), outputs());
        for (k, base) in [0i64, 2, 4].into_iter().enumerate() {
            let ts = T0 + k as u64 * 10 * MS;
            let tp = top(PX + (base - 1) * TICK, 1, PX + base * TICK, 1);
            print(&mut d, &mut out, ts, base, 1, b'B', &tp);
            print(&mut d, &mut out, ts, base + 1, 1, b'B', &tp);
        }
        // Too late for the run (gap > run_ns): a fresh sweep.
        let ts = T0 + 200 * MS;
        let tp = top(PX + 5 * TICK, 1, PX + 6 * TICK, 1);
        print(&mut d, &mut out, ts, 6, 1, b'B', &tp);
        print(&mut d, &mut out, ts, 7, 1, b'B', &tp);
        d.on_clock(&cfg, u64::MAX, &mut out);
        let r: Vec<(u8, u16)> = recs(&out).iter().map(|r| (r.kind, r.stops)).collect();
        assert_eq!(r, vec![(SWEEP, 0), (STOP_RUN, 1), (STOP_RUN, 2), (SWEEP, 0)]);
    }

    #[test]
    fn unsided_prints_are_skipped_and_disabled_does_nothing() {
        let (mut d, mut out) = (SweepDetector::new(7, &SweepConfig::default()), outputs());
        let tp = top(PX - TICK, 1, PX, 1);
        print(&mut d, &mut out, T0, 0, 1, b'N', &tp);
        assert_eq!(d.counters.unsided, 1);
        let off = SweepConfig { enabled: false, ..Default::default() };
        d.on_mbo_trade(&off, &trade(5, b'B', 0, 1));
        d.on_mbo_trade(&off, &trade(5, b'B', 1, 1));
        d.on_event_end(&off, T0, T0, &mut out);
        assert!(recs(&out).is_empty());
    }
}
