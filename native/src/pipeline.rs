//! The record path: chunk -> `StreamDecoder` -> per-instrument books -> trade, top-of-book
//! and bar rings. One call per chunk; nothing here calls Python or allocates per record in
//! steady state (instrument tables grow only when a new instrument appears).
//!
//! Source priority. A session may carry several schemas for one instrument (MBO plus
//! trades plus MBP-10). Trades and top-of-book changes are taken from the best schema seen
//! for that instrument, so nothing is counted twice: MBO, then trades (top: MBP-10), then
//! MBP-10, then MBP-1/TBBO.

use dbn::{flags, rtype, ErrorMsg, MboMsg, Mbp10Msg, Mbp1Msg, RecordRef, SymbolMappingMsg, SystemMsg, TradeMsg};
use rustc_hash::FxHashMap;

use crate::bars::BarConfig;
use crate::book::{Anomalies, L3Book, LevelView, MboBook, Mbp10Book, Top, EMPTY_LEVEL, UNDEF_PRICE};
use crate::decoder::{DecodeError, StreamDecoder};
use crate::engines::{EngineConfig, Outputs, DEPTH};
pub use crate::instrument::Instrument;
use crate::instrument::{SRC_MBO, SRC_MBP1, SRC_MBP10, SRC_TRADES};
use crate::latency::{self, Latencies};
use crate::ring::{BarRec, Ring, TopRec, TradeRec};

/// Kept ErrorMsg texts (oldest dropped): enough to explain a failure, bounded memory.
const MAX_ERRORS_KEPT: usize = 64;

#[derive(Clone, Copy, Debug)]
pub struct PipelineConfig {
    pub trade_capacity: usize,
    pub top_capacity: usize,
    pub bar_capacity: usize,
    pub bars: BarConfig,
    pub strict: bool,
    pub engines: EngineConfig,
    /// Instruments tracked at most; records of further ids are counted and skipped, so a
    /// corrupt or hostile stream of fresh ids cannot grow memory without bound (each
    /// instrument carries books and engine buffers of a few hundred KB).
    pub max_instruments: usize,
    /// Stop the record stream where a bar closes, until `Pipeline::resume` (see `hold.rs`):
    /// for callers that decide on closed bars (the daemon, a replay with signals).
    pub hold_at_bar_close: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self { trade_capacity: 1 << 13, top_capacity: 1 << 13, bar_capacity: 1 << 12, bars: BarConfig::default(), strict: false, engines: EngineConfig::default(), max_instruments: 4096, hold_at_bar_close: false }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub by_rtype: Vec<u64>,
    pub records_total: u64,
    pub trades: u64,
    pub top_changes: u64,
    pub bars_closed: u64,
    pub heartbeats: u64,
    pub errors: Vec<(u8, String)>,
    pub error_count: u64,
    /// Records skipped because their instrument would exceed `max_instruments`.
    pub instruments_refused: u64,
    /// Trades with the null price (`UNDEF_PRICE`) or a time at or past 2^63 ns (year 2262):
    /// corrupt, not prints. They reach no ring, bar or engine: one such print made a bar
    /// close at 9.2e9 USD, a tradable signal, and an ATR that stayed absurd for 150 bars.
    pub trades_refused: u64,
}

/// Times at or past this are not real (DBN's null time is `u64::MAX`; signed consumers of
/// the clock, the decision layer's among them, hold times below 2^63).
const TS_LIMIT: u64 = 1 << 63;

/// Everything downstream of the decoder.
pub struct State {
    cfg: PipelineConfig,
    instruments: Vec<Instrument>,
    index: FxHashMap<u32, usize>,
    last: Option<(u32, usize)>,
    pub symbols: FxHashMap<u32, String>,
    pub trades: Ring<TradeRec>,
    pub tops: Ring<TopRec>,
    pub bars: Ring<BarRec>,
    pub engine_out: Outputs,
    pub counters: Counters,
    clock: u64,
    next_bar_end: u64,
    /// `ts_out` of the record being processed (0 when the stream has none).
    cur_ts_out: u64,
    /// `ts_out` of the first record that closed a bar since the last `take_close_ts_out`.
    close_ts_out: u64,
    pub latency: Latencies,
    hold: hold::Hold,
}

#[path = "hold.rs"]
mod hold;

/// The gateway send time appended to a record when the session asked for `ts_out`: the
/// record's last 8 bytes (databento reference §3). 0 if the record is too short to hold it.
#[inline]
fn read_ts_out(bytes: &[u8]) -> u64 {
    match bytes.len().checked_sub(8).and_then(|at| bytes.get(at..)) {
        Some(tail) => u64::from_le_bytes(tail.try_into().unwrap_or([0; 8])),
        None => 0,
    }
}

pub struct Pipeline {
    pub decoder: StreamDecoder,
    pub state: State,
}

impl Pipeline {
    pub fn new(cfg: PipelineConfig) -> Self {
        Self { decoder: StreamDecoder::new(cfg.strict), state: State::new(cfg) }
    }

    /// Decodes and processes one chunk. Returns records decoded: all processed, unless a bar
    /// close holds the pipeline (`hold_at_bar_close`), which defers the rest to `resume`.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<u64, DecodeError> {
        let state = &mut self.state;
        if self.decoder.metadata().is_some_and(|m| m.ts_out) {
            self.decoder.feed(chunk, |rec| {
                state.cur_ts_out = read_ts_out(rec.as_ref());
                state.on_record(rec)
            })
        } else {
            self.decoder.feed(chunk, |rec| state.on_record(rec))
        }
    }

    /// `feed`, then records the span from `recv_ns` (wall-clock ns of the socket read that
    /// delivered `chunk`) to the end of processing in `latency.socket_to_processed`. The
    /// histogram is updated even when decoding fails: the time was spent.
    /// If a bar close holds the pipeline, the span is recorded when `resume` finishes.
    pub fn feed_timed(&mut self, chunk: &[u8], recv_ns: u64) -> Result<u64, DecodeError> {
        let r = self.feed(chunk);
        if self.state.held() {
            self.state.set_hold_recv_ns(recv_ns);
        } else {
            self.state.latency.socket_to_processed.record_span(recv_ns, latency::now_ns());
        }
        r
    }

    /// Lets `fill` write straight into the decoder buffer. Returns (bytes, records).
    pub fn feed_with<R: FnOnce(&mut [u8]) -> std::io::Result<usize>>(&mut self, fill: R) -> Result<(usize, u64), DecodeError> {
        let state = &mut self.state;
        self.decoder.feed_with(fill, |rec| state.on_record(rec))
    }

    pub fn finish(&mut self) -> Result<(), DecodeError> {
        self.decoder.finish()
    }
}

impl State {
    pub fn new(mut cfg: PipelineConfig) -> Self {
        // Order-flow bars are the time bars: one boundary rule, so FlowRec and BarRec line up.
        cfg.engines.flow.interval_ns = cfg.bars.interval_ns;
        if !cfg.engines.enabled {
            // Nothing will be written: keep the (never used) engine buffers tiny, so a
            // books-only pipeline costs no more memory or start-up time than before.
            let e = &mut cfg.engines;
            e.iceberg_capacity = 2;
            e.zone_capacity = 2;
            e.sweep_capacity = 2;
            e.flow_capacity = 2;
            e.footprint_capacity = 2;
            e.absorption.window_capacity = 2;
            e.flow.max_cells = 2;
        }
        let counters = Counters { by_rtype: vec![0; 256], ..Counters::default() };
        Self {
            cfg,
            instruments: Vec::with_capacity(16),
            index: FxHashMap::default(),
            last: None,
            symbols: FxHashMap::default(),
            trades: Ring::new(cfg.trade_capacity),
            tops: Ring::new(cfg.top_capacity),
            bars: Ring::new(cfg.bar_capacity),
            engine_out: Outputs::new(&cfg.engines),
            counters,
            clock: 0,
            next_bar_end: u64::MAX,
            cur_ts_out: 0,
            close_ts_out: 0,
            latency: Latencies::default(),
            hold: hold::Hold::new(cfg.hold_at_bar_close),
        }
    }

    pub fn engine_config(&self) -> &EngineConfig {
        &self.cfg.engines
    }

    pub fn clock(&self) -> u64 {
        self.clock
    }

    pub fn instrument(&self, id: u32) -> Option<&Instrument> {
        self.index.get(&id).map(|&i| &self.instruments[i])
    }

    pub fn instruments(&self) -> impl Iterator<Item = &Instrument> {
        self.instruments.iter()
    }

    pub fn anomalies(&self) -> Anomalies {
        let mut a = Anomalies::default();
        for b in self.instruments.iter().filter_map(|i| i.book()) {
            a.cancel_unknown += b.anomalies.cancel_unknown;
            a.modify_unknown += b.anomalies.modify_unknown;
            a.duplicate_add += b.anomalies.duplicate_add;
            a.over_cancel += b.anomalies.over_cancel;
            a.bad_side += b.anomalies.bad_side;
            a.bad_price += b.anomalies.bad_price;
        }
        a
    }

    /// Every record asks; nearly always for the same instrument as the last one.
    #[inline(always)]
    fn slot(&mut self, id: u32) -> Option<usize> {
        if let Some((lid, li)) = self.last {
            if lid == id {
                return Some(li);
            }
        }
        self.slot_lookup(id)
    }

    #[inline(never)]
    fn slot_lookup(&mut self, id: u32) -> Option<usize> {
        let i = match self.index.get(&id) {
            Some(&i) => i,
            None => {
                if self.instruments.len() >= self.cfg.max_instruments {
                    self.counters.instruments_refused += 1;
                    return None;
                }
                self.instruments.push(Instrument::new(id, &self.cfg.engines));
                let i = self.instruments.len() - 1;
                self.index.insert(id, i);
                i
            }
        };
        self.last = Some((id, i));
        Some(i)
    }

    #[inline]
    pub fn on_record(&mut self, rec: RecordRef<'_>) {
        if self.hold.held {
            self.defer(&rec);
            return;
        }
        let hd = rec.header();
        let rt = hd.rtype;
        // Nearly every record of an MBO session is MBO: read once, tested first.
        let mbo = if rt == rtype::MBO { rec.try_get::<MboMsg>().ok() } else { None };
        let ts = hd.ts_event;
        if ts < TS_LIMIT && ts > self.clock {
            self.clock = ts;
            if ts >= self.next_bar_end {
                let before = self.counters.bars_closed;
                self.close_due_bars(ts, self.cur_ts_out);
                // Held before this record: it opens the next bar. When resumed, the clock
                // already stands at its time, so it closes nothing a second time.
                if self.counters.bars_closed != before && self.hold.at_close() {
                    self.defer(&rec);
                    return;
                }
            }
        }
        self.counters.by_rtype[rt as usize] += 1;
        self.counters.records_total += 1;
        if let Some(m) = mbo {
            self.on_mbo(m);
            return;
        }
        match rt {
            rtype::MBP_0 => {
                if let Ok(t) = rec.try_get::<TradeMsg>() {
                    let Some(i) = self.slot(t.hd.instrument_id) else { return };
                    self.instruments[i].seen |= SRC_TRADES;
                    if self.instruments[i].primary(SRC_TRADES) {
                        self.on_trade(i, t.hd.ts_event, t.ts_recv, t.price, t.size, t.side as u8, t.flags.raw(), 0, rtype::MBP_0);
                    }
                }
            }
            rtype::MBP_1 => {
                if let Ok(m) = rec.try_get::<Mbp1Msg>() {
                    let Some(i) = self.slot(m.hd.instrument_id) else { return };
                    self.instruments[i].seen |= SRC_MBP1;
                    if self.instruments[i].primary(SRC_MBP1) && m.action as u8 == b'T' {
                        self.on_trade(i, m.hd.ts_event, m.ts_recv, m.price, m.size, m.side as u8, m.flags.raw(), 0, rtype::MBP_1);
                    }
                    if self.instruments[i].top_primary(SRC_MBP1) && m.flags.raw() & flags::LAST != 0 {
                        if self.cfg.engines.enabled {
                            self.instruments[i].engines.on_last(m.flags.raw(), m.ts_recv);
                        }
                        let l = &m.levels[0];
                        let top = Mbp10Book { levels: [*l; 10], valid: true }.top();
                        self.publish_top(i, top, m.hd.ts_event, m.ts_recv, m.flags.raw(), m.sequence, rtype::MBP_1);
                    }
                }
            }
            rtype::MBP_10 => {
                if let Ok(m) = rec.try_get::<Mbp10Msg>() {
                    let Some(i) = self.slot(m.hd.instrument_id) else { return };
                    let inst = &mut self.instruments[i];
                    inst.seen |= SRC_MBP10;
                    inst.mbp10.apply(&m.levels);
                    if inst.primary(SRC_MBP10) && m.action as u8 == b'T' {
                        self.on_trade(i, m.hd.ts_event, m.ts_recv, m.price, m.size, m.side as u8, m.flags.raw(), 0, rtype::MBP_10);
                    }
                    let inst = &mut self.instruments[i];
                    if inst.top_primary(SRC_MBP10) && m.flags.raw() & flags::LAST != 0 {
                        let top = inst.mbp10.top();
                        if self.cfg.engines.enabled {
                            self.instruments[i].engines.on_last(m.flags.raw(), m.ts_recv);
                        }
                        self.publish_top(i, top, m.hd.ts_event, m.ts_recv, m.flags.raw(), m.sequence, rtype::MBP_10);
                    }
                }
            }
            rtype::SYMBOL_MAPPING => {
                if let Ok(s) = rec.try_get::<SymbolMappingMsg>() {
                    if let Ok(sym) = s.stype_out_symbol() {
                        self.symbols.insert(s.hd.instrument_id, sym.to_owned());
                    }
                }
            }
            rtype::SYSTEM => {
                if let Ok(s) = rec.try_get::<SystemMsg>() {
                    if s.is_heartbeat() {
                        self.counters.heartbeats += 1;
                    }
                }
            }
            rtype::ERROR => {
                if let Ok(e) = rec.try_get::<ErrorMsg>() {
                    self.counters.error_count += 1;
                    if self.counters.errors.len() == MAX_ERRORS_KEPT {
                        self.counters.errors.remove(0);
                    }
                    self.counters.errors.push((e.code, e.err().unwrap_or("<non-UTF-8 error text>").to_owned()));
                }
            }
            _ => {}
        }
    }

    /// One dispatch on the action for the engines and the book together: the iceberg
    /// detector's and the book's own dispatches each mispredicted as often as the action
    /// changed (~0.4 per ES record each in callgrind's model). Per action, the same calls
    /// in the same order as `InstrumentEngines::on_mbo`, then `on_trade`, then
    /// `MboBook::apply`; the book's snapshot reset comes first here, which nothing between
    /// can see (the detector skips snapshot records; sweeps and trades do not read the book).
    #[inline]
    fn on_mbo(&mut self, m: &MboMsg) {
        let Some(i) = self.slot(m.hd.instrument_id) else { return };
        let cfg = &self.cfg.engines;
        let out = &mut self.engine_out;
        let inst = &mut self.instruments[i];
        inst.seen |= SRC_MBO;
        let mbo = inst.mbo.get_or_insert_with(MboBook::default);
        // Engines see the book as it was before this record (fills are judged against the
        // displayed size they hit).
        let ice = &mut inst.engines.iceberg;
        let ice_on = cfg.enabled && ice.begin_record(&cfg.iceberg, m);
        mbo.begin(m);
        match m.action as u8 {
            b'A' => {
                if ice_on {
                    ice.on_add_record(&cfg.iceberg, m, out);
                }
                mbo.book.add(m.order_id, m.side as u8, m.price, m.size);
            }
            b'C' => {
                if ice_on {
                    ice.on_change_record(&cfg.iceberg, m, &mbo.book, out);
                }
                mbo.book.cancel(m.order_id, m.size);
            }
            b'M' => {
                if ice_on {
                    ice.on_change_record(&cfg.iceberg, m, &mbo.book, out);
                }
                mbo.book.modify(m.order_id, m.side as u8, m.price, m.size);
            }
            b'F' if ice_on => ice.on_fill(m, &mbo.book),
            b'R' => {
                if ice_on {
                    ice.on_clear();
                }
                mbo.book.clear();
            }
            b'T' => {
                if cfg.enabled {
                    inst.engines.sweep.on_mbo_trade(&cfg.sweep, m);
                }
                // Before the event's F_LAST, `last_top` is still the top the aggressor hit.
                self.on_trade(i, m.hd.ts_event, m.ts_recv, m.price, m.size, m.side as u8, m.flags.raw(), m.order_id, rtype::MBO);
            }
            _ => {}
        }
        let engines_on = self.cfg.engines.enabled;
        let inst = &mut self.instruments[i];
        let Some(mbo) = inst.mbo.as_mut() else { return };
        if mbo.end(m) {
            if engines_on {
                inst.engines.on_mbo_event_end(&self.cfg.engines, m.hd.ts_event, m.ts_recv, &mut self.engine_out);
                inst.engines.on_last(m.flags.raw(), m.ts_recv);
            }
            // The first top after a snapshot (complete at the first F_LAST, which may be a
            // real-time record's) is the rebuilt book, not order flow: no e_n across it.
            if mbo.take_rebuilt() && engines_on {
                inst.engines.pressure.forget_prev();
            }
            // An untouched top equals `last_top` (published from this book, the best source).
            if mbo.book.take_top_dirty() {
                let top = mbo.book.top();
                self.publish_top(i, top, m.hd.ts_event, m.ts_recv, m.flags.raw(), m.sequence, rtype::MBO);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn on_trade(&mut self, i: usize, ts_event: u64, ts_recv: u64, price: i64, size: u32, side: u8, flags: u8, order_id: u64, rt: u8) {
        if price == UNDEF_PRICE || ts_event >= TS_LIMIT {
            self.counters.trades_refused += 1;
            return;
        }
        let inst = &mut self.instruments[i];
        self.trades.push(TradeRec { ts_event, ts_recv, price, order_id, size, instrument_id: inst.id, side, flags, rtype: rt, _pad: [0; 5] });
        self.counters.trades += 1;
        let closed = inst.bars.on_trade(&self.cfg.bars, inst.id, ts_event, price, size, side, &mut self.bars);
        self.counters.bars_closed += closed as u64;
        if closed != 0 {
            // A tick or volume bar ends with this trade: held after the record.
            self.hold.at_close();
        }
        self.next_bar_end = self.next_bar_end.min(inst.bars.time_end());
        if self.cfg.engines.enabled {
            let top = inst.last_top.unwrap_or(EMPTY_TOP);
            inst.engines.on_trade(&self.cfg.engines, ts_event, ts_recv, price, size, side, rt, &top, &mut self.engine_out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn publish_top(&mut self, i: usize, top: Top, ts_event: u64, ts_recv: u64, flags: u8, sequence: u32, rt: u8) {
        let inst = &mut self.instruments[i];
        if inst.last_top.is_some_and(|last| same_top(&last, &top)) {
            if self.cfg.engines.enabled {
                inst.engines.absorption.on_same_top(&self.cfg.engines.absorption, &top, &mut self.engine_out);
            }
            return;
        }
        inst.last_top = Some(top);
        if self.cfg.engines.enabled {
            let (mbo, mbp10) = (&inst.mbo, &inst.mbp10);
            inst.engines.on_top(&self.cfg.engines, ts_event, ts_recv, &top, &mut self.engine_out, |bids, asks| {
                fill_depth(rt, &top, mbo.as_ref().map(|m| &m.book), mbp10, bids, asks)
            });
        }
        let sat = |v: u64| v.min(u32::MAX as u64) as u32;
        self.tops.push(TopRec {
            ts_event,
            ts_recv,
            bid_px: top.bid.price,
            ask_px: top.ask.price,
            bid_sz: sat(top.bid.size),
            ask_sz: sat(top.ask.size),
            bid_ct: top.bid.count,
            ask_ct: top.ask.count,
            instrument_id: inst.id,
            flags,
            rtype: rt,
            _pad: [0; 2],
            sequence: sequence as u64,
        });
        self.counters.top_changes += 1;
    }

    /// `trigger_ts_out`: the `ts_out` of the record that moved the clock (0: the wall clock did).
    fn close_due_bars(&mut self, now: u64, trigger_ts_out: u64) {
        if self.close_ts_out == 0 {
            self.close_ts_out = trigger_ts_out;
        }
        let mut next = u64::MAX;
        for inst in self.instruments.iter_mut() {
            let closed = inst.bars.on_clock(inst.id, now, &mut self.bars);
            self.counters.bars_closed += closed as u64;
            next = next.min(inst.bars.time_end());
            if self.cfg.engines.enabled {
                inst.engines.on_clock(&self.cfg.engines, now, &mut self.engine_out);
                // Not inside an MBO event (a wall-clock close between two chunks of one update):
                // the book is half-applied there; the event's end samples it if the top moves.
                if closed != 0 && !inst.in_event() {
                    if let (Some(top), Some(rt)) = (inst.last_top, inst.top_source()) {
                        let (mbo, mbp10) = (&inst.mbo, &inst.mbp10);
                        inst.engines.on_bar_close(&self.cfg.engines, now, |bids, asks| {
                            fill_depth(rt, &top, mbo.as_ref().map(|m| &m.book), mbp10, bids, asks)
                        });
                    }
                }
            }
        }
        self.next_bar_end = next;
    }

    /// The gateway send time of the record that closed the bars drained since the last call
    /// (the first one, if several closed), and forget it; 0 if unknown (no `ts_out` on the
    /// stream, or bars closed by the wall clock).
    pub fn last_ts_out(&self) -> u64 {
        self.cur_ts_out
    }

    pub fn take_close_ts_out(&mut self) -> u64 {
        std::mem::take(&mut self.close_ts_out)
    }

    /// A new stream (reconnect): any event or snapshot left open by the old one is void.
    pub fn reset_events(&mut self) {
        self.cur_ts_out = 0;
        for inst in self.instruments.iter_mut() {
            if let Some(m) = inst.mbo.as_mut() {
                m.reset_event();
            }
            inst.engines.reset_events();
        }
    }

    /// Starts a new order-flow session (CVD reset) for every instrument.
    pub fn reset_sessions(&mut self) {
        for inst in self.instruments.iter_mut() {
            inst.engines.flow.reset_session();
        }
    }

    /// Advances the bar clock (live: the wall clock). Returns bars closed.
    pub fn advance_clock(&mut self, now: u64) -> u64 {
        let before = self.counters.bars_closed;
        if now > self.clock {
            self.clock = now;
        }
        if self.clock >= self.next_bar_end {
            self.close_due_bars(self.clock, 0);
        }
        self.counters.bars_closed - before
    }

    /// Closes every open bar. Returns bars closed.
    pub fn flush_bars(&mut self) -> u64 {
        let mut n = 0;
        for inst in self.instruments.iter_mut() {
            n += inst.bars.flush(inst.id, &mut self.bars) as u64;
            if self.cfg.engines.enabled {
                inst.engines.flush(&self.cfg.engines, self.clock, &mut self.engine_out);
            }
        }
        self.counters.bars_closed += n;
        self.next_bar_end = u64::MAX;
        n
    }
}

const EMPTY_TOP: Top = Top { bid: EMPTY_LEVEL, ask: EMPTY_LEVEL };

/// `a == b` with one branch instead of one per field: which field changed varies from event
/// to event, so the derived short-circuit comparison mispredicted (~0.16 per ES record).
#[inline]
fn same_top(a: &Top, b: &Top) -> bool {
    let diff = |x: &LevelView, y: &LevelView| (x.price ^ y.price) as u64 | (x.size ^ y.size) | (x.count ^ y.count) as u64;
    diff(&a.bid, &b.bid) | diff(&a.ask, &b.ask) == 0
}

/// Sizes of ten levels per side for the engines' depth measures (0 for a missing level),
/// from the book that published the top.
fn fill_depth(rt: u8, top: &Top, book: Option<&L3Book>, mbp10: &Mbp10Book, bids: &mut [u64; DEPTH], asks: &mut [u64; DEPTH]) {
    let size = |price: i64, size: u64| if price == UNDEF_PRICE { 0 } else { size };
    match (rt, book) {
        (rtype::MBO, Some(b)) => {
            b.fill_sizes(bids, asks);
        }
        (rtype::MBP_1, _) => {
            // MBP-1 carries one level: depth measures see only the touch.
            *bids = [0; DEPTH];
            *asks = [0; DEPTH];
            bids[0] = size(top.bid.price, top.bid.size);
            asks[0] = size(top.ask.price, top.ask.size);
        }
        _ => {
            for (k, l) in mbp10.levels.iter().enumerate().take(DEPTH) {
                bids[k] = size(l.bid_px, l.bid_sz as u64);
                asks[k] = size(l.ask_px, l.ask_sz as u64);
            }
        }
    }
}
