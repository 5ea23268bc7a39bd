//! Order flow per time bar (L1, trades only): delta, CVD, buy/sell/none volume, POC, a
//! footprint (volume per price per side), diagonal and stacked imbalances, delta divergence.
//!
//! Bars use exactly the boundaries of `bars.rs` time bars, so a `FlowRec` lines up with the
//! `BarRec` of the same interval: `ts_open` is the interval start `k * interval` (not the
//! first trade's time), `ts_close` the interval end, also for a bar closed by `flush`.
//! A print stamped before the end of the last closed bar joins the next bar, as there.
//!
//! Choices the reference leaves open (microstructure.md section 5):
//! - Diagonal imbalance compares a cell with its neighbour one tick away. A neighbour with
//!   no cell in the bar (no trade there, or dropped by footprint overflow) has volume 0, so
//!   the ratio test passes and only `imbalance_min_volume` decides; a cell also needs
//!   volume on its own side (0 ≥ R·0 is not an imbalance). Without a known tick no
//!   imbalance is marked: "one tick away" is undefined.
//! - POC ties go to the lower price; prices that overflowed the table are not candidates.
//! - OFI (`add_ofi`) carries no timestamp, so OFI arriving while no bar is open is held for
//!   the next bar that opens (bars then sum to the stream total), except across a session
//!   break, where it is dropped: pre-open book building is not the new session's flow.
//! - A session break falling inside an open bar (interval > `session_gap_ns`, or a
//!   `reset_session` mid-bar) resets the CVD at that point; the bar keeps its full delta,
//!   its `cvd` counts from the reset, and it carries FLOW_SESSION_START.

use super::records::{FlowRec, FootprintCell, CELL_BUY_IMBALANCE, CELL_SELL_IMBALANCE, FLOW_DIVERGENCE_BEAR, FLOW_DIVERGENCE_BULL, FLOW_SESSION_START, FLOW_STACKED_BUY, FLOW_STACKED_SELL};
use super::Outputs;
use crate::book::UNDEF_PRICE;

/// Upper bound on `max_cells`: the table is allocated once, in `new`.
pub const MAX_CELLS_LIMIT: usize = 4096;
/// Upper bound on `divergence_bars` (the history is a fixed array).
pub const MAX_DIVERGENCE_BARS: usize = 64;

#[derive(Clone, Copy, Debug)]
pub struct FlowConfig {
    pub enabled: bool,
    /// Bar length; must equal the `bars.rs` time-bar interval for the records to line up.
    pub interval_ns: u64,
    /// Price increment (fixed point 1e-9); 0 infers it from the prints.
    pub tick: i64,
    /// Distinct prices per bar kept in the footprint (clamped to 1..=MAX_CELLS_LIMIT). 64
    /// ticks of GC is $6.40, well above a normal 1-minute range.
    pub max_cells: usize,
    /// R of the diagonal test: 3.0 (300 %) is the low end of the usual 300–350 %.
    pub imbalance_ratio: f64,
    /// Minimum lots on the dominant side: 5 keeps 1-lot prints against an empty neighbour
    /// (GC's thin outer prices) from reading as imbalances.
    pub imbalance_min_volume: u64,
    pub stacked_min: u16,
    /// N of the divergence test (0 = off, at most MAX_DIVERGENCE_BARS).
    pub divergence_bars: usize,
    /// A gap between prints longer than this starts a new session (CVD reset). 30 min:
    /// shorter than GC's 60-minute daily break, longer than any intraday lull.
    pub session_gap_ns: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ns: 60_000_000_000,
            tick: 0,
            max_cells: 64,
            imbalance_ratio: 3.0,
            imbalance_min_volume: 5,
            stacked_min: 3,
            divergence_bars: 10,
            session_gap_ns: 30 * 60 * 1_000_000_000,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Cell {
    price: i64,
    /// Buy-aggressor, sell-aggressor and no-side lots.
    ask: u64,
    bid: u64,
    none: u64,
}

const NO_CELL: Cell = Cell { price: UNDEF_PRICE, ask: 0, bid: 0, none: 0 };

#[derive(Clone, Copy, Debug, Default)]
struct Hist {
    high: i64,
    low: i64,
    cvd: i64,
}

/// The open bar's accumulators (cells live in `OrderFlow::cells`).
#[derive(Clone, Copy, Debug, Default)]
struct Bar {
    ts_open: u64,
    time_end: u64,
    high: i64,
    low: i64,
    close: i64,
    buy: u64,
    sell: u64,
    none: u64,
    ofi: i64,
    session_start: bool,
    overflow: u32,
}

pub struct OrderFlow {
    instrument_id: u32,
    open: bool,
    b: Bar,
    /// End of the last closed bar (late prints join the next bar, as in `bars.rs`).
    closed_until: u64,
    /// OFI seen while no bar was open, for the next bar.
    pending_ofi: i64,
    /// Sorted by price; only `cells[..n_cells]` is live. Allocated once.
    cells: Box<[Cell]>,
    n_cells: usize,
    cvd: i64,
    /// The next print starts a new session (first print, or `reset_session`).
    session_pending: bool,
    seen_print: bool,
    last_print_ts: u64,
    cfg_tick: i64,
    first_price: i64,
    inferred_tick: i64,
    hist: [Hist; MAX_DIVERGENCE_BARS],
    hist_len: usize,
    hist_pos: usize,
}

fn sat_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
fn sat_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl OrderFlow {
    pub fn new(instrument_id: u32, cfg: &FlowConfig) -> Self {
        let cap = cfg.max_cells.clamp(1, MAX_CELLS_LIMIT);
        Self {
            instrument_id,
            open: false,
            b: Bar::default(),
            closed_until: 0,
            pending_ofi: 0,
            cells: vec![Cell::default(); cap].into_boxed_slice(),
            n_cells: 0,
            cvd: 0,
            session_pending: true,
            seen_print: false,
            last_print_ts: 0,
            cfg_tick: cfg.tick,
            first_price: UNDEF_PRICE,
            inferred_tick: 0,
            hist: [Hist::default(); MAX_DIVERGENCE_BARS],
            hist_len: 0,
            hist_pos: 0,
        }
    }

    /// Session CVD, including the open bar's prints.
    pub fn cvd(&self) -> i64 {
        self.cvd
    }

    /// The configured tick, else the inferred one (0 until two distinct prices were seen).
    pub fn tick(&self) -> i64 {
        if self.cfg_tick > 0 { self.cfg_tick } else { self.inferred_tick }
    }

    /// End of the open bar, or `u64::MAX` when none is open (for the pipeline's clock gate).
    pub fn time_end(&self) -> u64 {
        if self.open { self.b.time_end } else { u64::MAX }
    }

    /// Starts a new session now: CVD and divergence history restart. The open bar (if
    /// any), else the next one, is marked FLOW_SESSION_START.
    pub fn reset_session(&mut self) {
        self.start_session();
        if self.open {
            self.b.session_start = true;
        } else {
            self.session_pending = true;
        }
    }

    fn start_session(&mut self) {
        self.cvd = 0;
        self.hist_len = 0;
        self.hist_pos = 0;
        self.pending_ofi = 0;
    }

    pub fn on_trade(&mut self, cfg: &FlowConfig, ts_event: u64, price: i64, size: u32, side: u8, out: &mut Outputs) {
        // UNDEF timestamp cannot be binned (bars.rs skips it too); UNDEF price would poison
        // high/low/POC.
        if !cfg.enabled || cfg.interval_ns == 0 || ts_event == u64::MAX || price == UNDEF_PRICE {
            return;
        }
        self.cfg_tick = cfg.tick;
        self.infer_tick(price);
        if self.open && ts_event >= self.b.time_end {
            self.close_bar(cfg, out, true);
        }
        let gap_break = self.seen_print && ts_event.saturating_sub(self.last_print_ts) > cfg.session_gap_ns;
        // Max: ts_event can run backwards (GLBX orders by ts_recv), which is not a gap.
        self.last_print_ts = if self.seen_print { self.last_print_ts.max(ts_event) } else { ts_event };
        self.seen_print = true;
        let new_session = gap_break || self.session_pending;
        self.session_pending = false;
        if new_session {
            self.start_session();
        }
        if !self.open {
            let bin = ts_event.max(self.closed_until);
            let start = bin - bin % cfg.interval_ns;
            self.open = true;
            self.n_cells = 0;
            let ofi = std::mem::take(&mut self.pending_ofi);
            self.b = Bar { ts_open: start, time_end: start.saturating_add(cfg.interval_ns), high: price, low: price, ofi, ..Bar::default() };
        }
        if new_session {
            self.b.session_start = true;
        }
        self.b.high = self.b.high.max(price);
        self.b.low = self.b.low.min(price);
        self.b.close = price;
        let sz = size as u64;
        match side {
            b'B' => {
                self.b.buy = self.b.buy.saturating_add(sz);
                self.cvd = self.cvd.saturating_add(size as i64);
            }
            b'A' => {
                self.b.sell = self.b.sell.saturating_add(sz);
                self.cvd = self.cvd.saturating_sub(size as i64);
            }
            _ => self.b.none = self.b.none.saturating_add(sz),
        }
        self.add_cell(cfg, price, sz, side);
    }

    fn infer_tick(&mut self, price: i64) {
        if self.first_price == UNDEF_PRICE {
            self.first_price = price;
            return;
        }
        let d = price.abs_diff(self.first_price);
        if d != 0 {
            self.inferred_tick = sat_i64(gcd(self.inferred_tick.unsigned_abs(), d));
        }
    }

    fn add_cell(&mut self, cfg: &FlowConfig, price: i64, sz: u64, side: u8) {
        let live = self.n_cells.min(self.cells.len());
        let idx = match self.cells[..live].binary_search_by_key(&price, |c| c.price) {
            Ok(i) => i,
            Err(i) => {
                // Honour a smaller `max_cells` than the table was built with.
                let cap = cfg.max_cells.clamp(1, self.cells.len());
                if live >= cap {
                    self.b.overflow = self.b.overflow.saturating_add(1);
                    return;
                }
                self.cells.copy_within(i..live, i + 1);
                self.cells[i] = Cell { price, ..Cell::default() };
                self.n_cells = live + 1;
                i
            }
        };
        if let Some(c) = self.cells.get_mut(idx) {
            let slot = match side { b'B' => &mut c.ask, b'A' => &mut c.bid, _ => &mut c.none };
            *slot = slot.saturating_add(sz);
        }
    }

    /// A Cont–Kukanov–Stoikov increment for the open bar (or the next, see the module doc).
    pub fn add_ofi(&mut self, e: i64) {
        let acc = if self.open { &mut self.b.ofi } else { &mut self.pending_ofi };
        *acc = acc.saturating_add(e);
    }

    pub fn on_clock(&mut self, cfg: &FlowConfig, now: u64, out: &mut Outputs) {
        if self.open && now >= self.b.time_end {
            self.close_bar(cfg, out, true);
        }
    }

    pub fn flush(&mut self, cfg: &FlowConfig, out: &mut Outputs) {
        if self.open {
            // bars.rs does not advance `closed_until` on flush either.
            self.close_bar(cfg, out, false);
        }
    }

    fn close_bar(&mut self, cfg: &FlowConfig, out: &mut Outputs, advance: bool) {
        self.open = false;
        if advance {
            self.closed_until = self.b.time_end;
        }
        let n = self.n_cells.min(self.cells.len());
        let tick = self.tick();
        let mut flags = if self.b.session_start { FLOW_SESSION_START } else { 0 };

        let (mut buy_imb, mut sell_imb) = (0u16, 0u16);
        let (mut run_b, mut run_s, mut best_b, mut best_s) = (0u16, 0u16, 0u16, 0u16);
        let mut poc = self.b.close;
        let mut poc_vol = 0u64;
        let fp_start = out.footprint.written();
        for i in 0..n {
            let Some(c) = self.cell_at(i, n) else { break };
            let below = i.checked_sub(1).and_then(|j| self.cell_at(j, n)).unwrap_or(NO_CELL);
            let above = self.cell_at(i + 1, n).unwrap_or(NO_CELL);
            let mut imb = 0u8;
            if tick > 0 {
                let below_bid = if below.price != UNDEF_PRICE && c.price.checked_sub(below.price) == Some(tick) { below.bid } else { 0 };
                let above_ask = if above.price != UNDEF_PRICE && above.price.checked_sub(c.price) == Some(tick) { above.ask } else { 0 };
                let r = cfg.imbalance_ratio;
                if c.ask > 0 && c.ask >= cfg.imbalance_min_volume && c.ask as f64 >= r * below_bid as f64 {
                    imb |= CELL_BUY_IMBALANCE;
                    buy_imb = buy_imb.saturating_add(1);
                }
                if c.bid > 0 && c.bid >= cfg.imbalance_min_volume && c.bid as f64 >= r * above_ask as f64 {
                    imb |= CELL_SELL_IMBALANCE;
                    sell_imb = sell_imb.saturating_add(1);
                }
                // A run continues only across adjacent prices (a gap in the table breaks it).
                let adjacent = i > 0 && c.price.checked_sub(below.price) == Some(tick);
                run_b = if imb & CELL_BUY_IMBALANCE == 0 { 0 } else if adjacent && run_b > 0 { run_b.saturating_add(1) } else { 1 };
                run_s = if imb & CELL_SELL_IMBALANCE == 0 { 0 } else if adjacent && run_s > 0 { run_s.saturating_add(1) } else { 1 };
                best_b = best_b.max(run_b);
                best_s = best_s.max(run_s);
            }
            let vol = c.ask.saturating_add(c.bid).saturating_add(c.none);
            if vol > poc_vol {
                poc_vol = vol;
                poc = c.price;
            }
            let (ask_volume, bid_volume, none_volume) = (sat_u32(c.ask), sat_u32(c.bid), sat_u32(c.none));
            out.footprint.push(FootprintCell { bar_ts: self.b.ts_open, price: c.price, ask_volume, bid_volume, none_volume, instrument_id: self.instrument_id, imbalance: imb, _pad: [0; 7] });
        }
        let stacked_min = cfg.stacked_min.max(1);
        if best_b >= stacked_min {
            flags |= FLOW_STACKED_BUY;
        }
        if best_s >= stacked_min {
            flags |= FLOW_STACKED_SELL;
        }
        flags |= self.divergence(cfg);

        let b = &self.b;
        out.flow.push(FlowRec {
            ts_open: b.ts_open,
            ts_close: b.time_end,
            delta: sat_i64(b.buy).saturating_sub(sat_i64(b.sell)),
            cvd: self.cvd,
            buy_volume: b.buy,
            sell_volume: b.sell,
            none_volume: b.none,
            ofi: b.ofi,
            high: b.high,
            low: b.low,
            close: b.close,
            poc,
            fp_start,
            fp_len: n as u32,
            fp_overflow: b.overflow,
            instrument_id: self.instrument_id,
            flags,
            buy_imbalances: buy_imb,
            sell_imbalances: sell_imb,
            stacked_buy: best_b,
            stacked_sell: best_s,
        });
        self.b.ofi = 0;
        self.n_cells = 0;
    }

    fn cell_at(&self, i: usize, n: usize) -> Option<Cell> {
        if i < n { self.cells.get(i).copied() } else { None }
    }

    /// Tests this bar against the previous N bars of the session, then records it.
    fn divergence(&mut self, cfg: &FlowConfig) -> u32 {
        let n = cfg.divergence_bars.min(MAX_DIVERGENCE_BARS);
        if n == 0 {
            return 0;
        }
        let mut flags = 0;
        if self.hist_len >= n {
            let (mut max_h, mut min_l, mut max_c, mut min_c) = (i64::MIN, i64::MAX, i64::MIN, i64::MAX);
            for k in 1..=n {
                // Newest first: slot hist_pos - k (mod capacity).
                let slot = (self.hist_pos + MAX_DIVERGENCE_BARS - k) % MAX_DIVERGENCE_BARS;
                if let Some(h) = self.hist.get(slot) {
                    max_h = max_h.max(h.high);
                    min_l = min_l.min(h.low);
                    max_c = max_c.max(h.cvd);
                    min_c = min_c.min(h.cvd);
                }
            }
            if self.b.high > max_h && self.cvd <= max_c {
                flags |= FLOW_DIVERGENCE_BEAR;
            }
            if self.b.low < min_l && self.cvd >= min_c {
                flags |= FLOW_DIVERGENCE_BULL;
            }
        }
        if let Some(h) = self.hist.get_mut(self.hist_pos % MAX_DIVERGENCE_BARS) {
            *h = Hist { high: self.b.high, low: self.b.low, cvd: self.cvd };
        }
        self.hist_pos = (self.hist_pos + 1) % MAX_DIVERGENCE_BARS;
        self.hist_len = (self.hist_len + 1).min(MAX_DIVERGENCE_BARS);
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::super::EngineConfig;
    use super::*;

    const S: u64 = 1_000_000_000;
    const T: i64 = 100_000_000; // GC tick
    const PX: i64 = 2_400_000_000_000;

    fn setup(cfg: FlowConfig) -> (OrderFlow, Outputs, FlowConfig) {
        let ecfg = EngineConfig { flow_capacity: 64, footprint_capacity: 1024, ..EngineConfig::default() };
        (OrderFlow::new(7, &cfg), Outputs::new(&ecfg), cfg)
    }

    fn bars(out: &Outputs) -> Vec<FlowRec> {
        (0..out.flow.written()).filter_map(|i| out.flow.get(i)).collect()
    }

    fn cells(out: &Outputs, r: &FlowRec) -> Vec<FootprintCell> {
        (r.fp_start..r.fp_start + r.fp_len as u64).filter_map(|i| out.footprint.get(i)).collect()
    }

    #[test]
    fn bar_boundaries_match_bars_rs_and_close_on_clock() {
        let (mut f, mut out, cfg) = setup(FlowConfig::default());
        f.on_trade(&cfg, 60 * S + 1, PX, 2, b'B', &mut out);
        f.on_trade(&cfg, 80 * S, PX + T, 1, b'A', &mut out);
        f.on_clock(&cfg, 120 * S - 1, &mut out);
        assert_eq!(out.flow.written(), 0);
        assert_eq!(f.time_end(), 120 * S);
        f.on_clock(&cfg, 120 * S, &mut out);
        f.on_clock(&cfg, 500 * S, &mut out);
        let b = bars(&out);
        assert_eq!(b.len(), 1);
        assert_eq!((b[0].ts_open, b[0].ts_close, b[0].high, b[0].low, b[0].close), (60 * S, 120 * S, PX + T, PX, PX + T));
        // A late print joins the next bar; an interval with no print gives no bar.
        f.on_trade(&cfg, 120 * S - 5, PX, 1, b'B', &mut out);
        f.on_trade(&cfg, 250 * S, PX, 1, b'B', &mut out);
        f.flush(&cfg, &mut out);
        let b = bars(&out);
        assert_eq!(b.iter().map(|r| (r.ts_open, r.ts_close)).collect::<Vec<_>>(), vec![(60 * S, 120 * S), (120 * S, 180 * S), (240 * S, 300 * S)]);
    }

    #[test]
    fn delta_cvd_volumes_ofi_and_session_reset_by_gap() {
        let (mut f, mut out, cfg) = setup(FlowConfig::default());
        f.add_ofi(4); // before the first print: dropped, as pre-session book building
        f.on_trade(&cfg, 0, PX, 5, b'B', &mut out);
        f.add_ofi(3);
        f.on_trade(&cfg, S, PX, 2, b'A', &mut out);
        f.on_trade(&cfg, 2 * S, PX, 9, b'N', &mut out);
        f.on_trade(&cfg, 61 * S, PX, 4, b'A', &mut out); // closes bar 1
        f.add_ofi(-2);
        assert_eq!(f.cvd(), -1);
        // 40 min silence: a new session.
        f.on_trade(&cfg, 61 * S + 40 * 60 * S, PX, 6, b'B', &mut out);
        f.flush(&cfg, &mut out);
        let b = bars(&out);
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].delta, b[0].cvd, b[0].buy_volume, b[0].sell_volume, b[0].none_volume, b[0].ofi), (3, 3, 5, 2, 9, 3));
        assert_eq!(b[0].flags & FLOW_SESSION_START, FLOW_SESSION_START);
        assert_eq!((b[1].delta, b[1].cvd, b[1].ofi, b[1].flags & FLOW_SESSION_START), (-4, -1, -2, 0));
        assert_eq!((b[2].delta, b[2].cvd, b[2].flags & FLOW_SESSION_START), (6, 6, FLOW_SESSION_START));
        f.reset_session();
        assert_eq!(f.cvd(), 0);
        f.on_trade(&cfg, 10_000 * S, PX, 1, b'A', &mut out);
        f.flush(&cfg, &mut out);
        let last = bars(&out)[3];
        assert_eq!((last.cvd, last.flags & FLOW_SESSION_START), (-1, FLOW_SESSION_START));
    }

    #[test]
    fn footprint_sorted_poc_and_overflow() {
        let (mut f, mut out, cfg) = setup(FlowConfig { max_cells: 3, ..FlowConfig::default() });
        for (px, sz, side) in [(PX + 2 * T, 1, b'B'), (PX, 4, b'A'), (PX + T, 2, b'N'), (PX + 5 * T, 7, b'B'), (PX, 1, b'B'), (PX + 2 * T, 3, b'A')] {
            f.on_trade(&cfg, S, px, sz, side, &mut out);
        }
        f.flush(&cfg, &mut out);
        let r = bars(&out)[0];
        let c = cells(&out, &r);
        assert_eq!(c.iter().map(|c| c.price).collect::<Vec<_>>(), vec![PX, PX + T, PX + 2 * T]);
        assert_eq!((c[0].ask_volume, c[0].bid_volume, c[1].none_volume, c[2].bid_volume), (1, 4, 2, 3));
        assert_eq!((r.fp_start, r.fp_len, r.fp_overflow), (0, 3, 1));
        // The overflowed print still counts in the totals and the high.
        assert_eq!((r.buy_volume, r.sell_volume, r.none_volume, r.high), (9, 7, 2, PX + 5 * T));
        assert_eq!(r.poc, PX); // 5 lots at PX vs 4 at PX+2T
        f.on_trade(&cfg, 100 * S, PX, 1, b'B', &mut out);
        f.flush(&cfg, &mut out);
        assert_eq!(bars(&out)[1].fp_start, 3);
    }

    #[test]
    fn diagonal_and_stacked_imbalances() {
        let cfg = FlowConfig { tick: T, ..FlowConfig::default() };
        let (mut f, mut out, cfg) = setup(cfg);
        // price offset: (ask/buy vol, bid/sell vol)
        let bar = [(0, 0, 10), (1, 30, 2), (2, 12, 3), (3, 9, 4), (4, 4, 1), (6, 6, 0), (7, 1, 40)];
        for (k, ask, bid) in bar {
            let p = PX + k * T;
            if ask > 0 {
                f.on_trade(&cfg, S, p, ask, b'B', &mut out);
            }
            f.on_trade(&cfg, S, p, bid, b'A', &mut out);
        }
        f.flush(&cfg, &mut out);
        let r = bars(&out)[0];
        let c = cells(&out, &r);
        let imb: Vec<u8> = c.iter().map(|c| c.imbalance).collect();
        // Buy at p: ask[p] >= 3*bid[p-T] and >= 5.
        //  +0: ask 0 -> no. +1: 30 >= 30 yes. +2: 12 >= 6 yes. +3: 9 >= 9 yes. +4: 4 < 5 no.
        //  +6: neighbour +5 missing -> 6 >= 5 yes. +7: 1 < 5 no.
        // Sell at p: bid[p] >= 3*ask[p+T] and >= 5.
        //  +0: 10 < 90 no. +7: neighbour +8 missing -> 40 >= 5 yes. Others < 5.
        let b = CELL_BUY_IMBALANCE;
        let s = CELL_SELL_IMBALANCE;
        assert_eq!(imb, vec![0, b, b, b, 0, b, s]);
        assert_eq!((r.buy_imbalances, r.sell_imbalances, r.stacked_buy, r.stacked_sell), (4, 1, 3, 1));
        assert_eq!(r.flags & (FLOW_STACKED_BUY | FLOW_STACKED_SELL), FLOW_STACKED_BUY);
        // Ratio just below R breaks the run: +2's ask 5 < 3*2.
        let (mut f, mut out, cfg) = setup(cfg);
        for (k, ask, bid) in [(1, 30, 2), (2, 5, 3), (3, 9, 4)] {
            f.on_trade(&cfg, S, PX + k * T, ask, b'B', &mut out);
            f.on_trade(&cfg, S, PX + k * T, bid, b'A', &mut out);
        }
        f.flush(&cfg, &mut out);
        let r = bars(&out)[0];
        assert_eq!((r.buy_imbalances, r.stacked_buy, r.flags & FLOW_STACKED_BUY), (2, 1, 0));
    }

    fn bar_at(f: &mut OrderFlow, cfg: &FlowConfig, out: &mut Outputs, k: u64, hi: i64, lo: i64, delta: i32) {
        let ts = k * 60 * S;
        f.on_trade(cfg, ts, lo, 1, b'N', out);
        f.on_trade(cfg, ts, hi, 1, b'N', out);
        let (side, sz) = if delta >= 0 { (b'B', delta as u32) } else { (b'A', (-delta) as u32) };
        f.on_trade(cfg, ts, hi, sz, side, out);
        f.on_clock(cfg, ts + 60 * S, out);
    }

    #[test]
    fn divergence_bear_and_bull() {
        let cfg = FlowConfig { divergence_bars: 3, ..FlowConfig::default() };
        let (mut f, mut out, cfg) = setup(cfg);
        // CVD after each: 10, 20, 30.
        for k in 0..3 {
            bar_at(&mut f, &cfg, &mut out, k, PX + 10 * T, PX, 10);
        }
        // New high with CVD 25 <= max 30: bearish.
        bar_at(&mut f, &cfg, &mut out, 3, PX + 11 * T, PX + T, -5);
        // New high with CVD 35 > max: no divergence.
        bar_at(&mut f, &cfg, &mut out, 4, PX + 12 * T, PX + T, 10);
        // New low (below PX) with CVD 40 >= min of last 3 (25): bullish.
        bar_at(&mut f, &cfg, &mut out, 5, PX + 5 * T, PX - T, 5);
        // New low with CVD 10 < min (35): none.
        bar_at(&mut f, &cfg, &mut out, 6, PX + 5 * T, PX - 2 * T, -30);
        let fl: Vec<u32> = bars(&out).iter().map(|r| r.flags & (FLOW_DIVERGENCE_BEAR | FLOW_DIVERGENCE_BULL)).collect();
        assert_eq!(fl, vec![0, 0, 0, FLOW_DIVERGENCE_BEAR, 0, FLOW_DIVERGENCE_BULL, 0]);
        // A new session needs N bars again.
        f.reset_session();
        bar_at(&mut f, &cfg, &mut out, 100, PX + 50 * T, PX, -1);
        assert_eq!(bars(&out)[7].flags & (FLOW_DIVERGENCE_BEAR | FLOW_DIVERGENCE_BULL), 0);
    }

    #[test]
    fn tick_inference() {
        let (mut f, mut out, cfg) = setup(FlowConfig::default());
        assert_eq!(f.tick(), 0);
        f.on_trade(&cfg, S, PX, 1, b'B', &mut out);
        f.on_trade(&cfg, S, PX, 1, b'B', &mut out);
        assert_eq!(f.tick(), 0);
        f.on_trade(&cfg, S, PX + 3 * T, 1, b'B', &mut out);
        assert_eq!(f.tick(), 3 * T);
        f.on_trade(&cfg, S, PX - 5 * T, 1, b'B', &mut out);
        assert_eq!(f.tick(), T);
        f.on_trade(&cfg, S, PX + 40 * T, 1, b'B', &mut out);
        assert_eq!(f.tick(), T);
        let (f, _, _) = setup(FlowConfig { tick: 250_000_000, ..FlowConfig::default() });
        assert_eq!(f.tick(), 250_000_000);
    }

    #[test]
    fn disabled_and_degenerate_inputs_do_not_panic() {
        let (mut f, mut out, cfg) = setup(FlowConfig { enabled: false, ..FlowConfig::default() });
        f.on_trade(&cfg, S, PX, 1, b'B', &mut out);
        f.flush(&cfg, &mut out);
        assert_eq!(out.flow.written(), 0);
        let cfg = FlowConfig { max_cells: 0, divergence_bars: 1000, imbalance_min_volume: 0, ..FlowConfig::default() };
        let (mut f, mut out, cfg) = setup(cfg);
        f.on_trade(&cfg, u64::MAX, PX, 1, b'B', &mut out);
        f.on_trade(&cfg, u64::MAX - 1, i64::MIN, u32::MAX, b'A', &mut out);
        f.on_trade(&cfg, u64::MAX - 1, i64::MAX - 1, u32::MAX, b'B', &mut out);
        f.on_clock(&cfg, u64::MAX, &mut out);
        f.flush(&cfg, &mut out);
        assert_eq!(bars(&out)[0].fp_overflow, 1);
    }
}
