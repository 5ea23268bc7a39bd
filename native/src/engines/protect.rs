//! Capital-protection inputs per instrument: conditions under which the book should not be
//! trusted or traded against — crossed or locked book, spread blow-out, liquidity vacuum,
//! stale feed, and Databento's F_MAYBE_BAD_BOOK. This module only measures; acting on the
//! flags (halting signals, flattening) belongs to the caller.
//!
//! Counters count transitions into a condition (episodes), not records spent in it, so a
//! long crossed stretch is one event. Stale episodes are counted when data resumes after a
//! gap in ts_recv longer than `stale_ns` (an ongoing silence is seen only through
//! `state(now)`, which cannot count from `&self`).

use crate::book::{LevelView, Top, UNDEF_PRICE};

pub const RISK_SPREAD_BLOWOUT: u32 = 1;
pub const RISK_LIQUIDITY_VACUUM: u32 = 2;
pub const RISK_STALE: u32 = 4;
pub const RISK_CROSSED: u32 = 8;
pub const RISK_LOCKED: u32 = 16;
pub const RISK_MAYBE_BAD_BOOK: u32 = 32;

#[derive(Clone, Copy, Debug)]
pub struct ProtectConfig {
    /// Blow-out when spread > spread_mult × EMA(spread). 4: GC trades 1–2 ticks wide, so 4×
    /// the norm is a book that emptied at the touch, not a normal widening.
    pub spread_mult: f64,
    /// Absolute blow-out threshold, fixed point 1e-9; 0 = off.
    pub max_spread: i64,
    /// EMA weight per normal top update (~100-update memory).
    pub spread_alpha: f64,
    /// Vacuum when 10-level total depth < vacuum_frac × EMA(depth).
    pub vacuum_frac: f64,
    /// EMA weight per depth sample.
    pub depth_alpha: f64,
    /// Samples an EMA needs before it may trigger: the first minutes of a session are
    /// otherwise judged against a one-sample "norm".
    pub min_samples: u64,
    /// No record (ts_recv) for this long = stale. 5 s: GC's quiet overnight book still
    /// updates many times a second.
    pub stale_ns: u64,
}

impl Default for ProtectConfig {
    fn default() -> Self {
        Self { spread_mult: 4.0, max_spread: 0, spread_alpha: 0.01, vacuum_frac: 0.25, depth_alpha: 0.01, min_samples: 100, stale_ns: 5_000_000_000 }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RiskState {
    pub spread_blowout: bool,
    /// One-sided/empty top, or thin 10-level depth at the last sample.
    pub liquidity_vacuum: bool,
    pub crossed: bool,
    pub locked: bool,
    pub maybe_bad_book: bool,
    pub stale: bool,
    /// RISK_* bits of the booleans above.
    pub flags: u32,
    pub spread_blowouts: u64,
    pub liquidity_vacuums: u64,
    pub crossed_count: u64,
    pub locked_count: u64,
    /// Transitions into F_MAYBE_BAD_BOOK, and F_LAST records carrying it.
    pub maybe_bad_book_count: u64,
    pub maybe_bad_book_records: u64,
    pub stale_count: u64,
    /// Ask − bid at the last top, fixed point; UNDEF_PRICE when one-sided.
    pub spread: i64,
    /// EMA over normal tops, fixed-point units as f64; 0 before the first sample.
    pub spread_ema: f64,
    /// Bid + ask lots over 10 levels at the last depth sample.
    pub depth: u64,
    pub depth_ema: f64,
    pub last_ts_recv: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Ema {
    value: f64,
    samples: u64,
}

impl Ema {
    fn update(&mut self, x: f64, alpha: f64) {
        let a = if alpha.is_finite() { alpha.clamp(0.0, 1.0) } else { 0.0 };
        self.value = if self.samples == 0 { x } else { self.value + a * (x - self.value) };
        self.samples = self.samples.saturating_add(1);
    }

    fn ready(&self, min_samples: u64) -> bool {
        self.samples >= min_samples.max(1)
    }
}

pub struct Protection {
    instrument_id: u32,
    s: RiskState,
    seen_recv: bool,
    top_vacuum: bool,
    depth_vacuum: bool,
    spread_ema: Ema,
    depth_ema: Ema,
    last_ts_event: u64,
    /// From the latest config seen: `on_last` gets none but must judge stale gaps.
    stale_ns: u64,
}

impl Protection {
    pub fn new(instrument_id: u32, cfg: &ProtectConfig) -> Self {
        Self {
            instrument_id,
            s: RiskState { spread: UNDEF_PRICE, ..RiskState::default() },
            seen_recv: false,
            top_vacuum: false,
            depth_vacuum: false,
            spread_ema: Ema::default(),
            depth_ema: Ema::default(),
            last_ts_event: 0,
            stale_ns: cfg.stale_ns,
        }
    }

    pub fn instrument_id(&self) -> u32 {
        self.instrument_id
    }

    /// Back to the state of `new` (a new stream), counters and EMAs included.
    pub fn reset(&mut self) {
        let cfg = ProtectConfig { stale_ns: self.stale_ns, ..ProtectConfig::default() };
        *self = Self::new(self.instrument_id, &cfg);
    }

    /// ts_event of the last top update.
    pub fn last_ts_event(&self) -> u64 {
        self.last_ts_event
    }

    /// Every F_LAST record of the instrument's book.
    pub fn on_last(&mut self, flags: u8, ts_recv: u64) {
        let bad = flags & dbn::flags::MAYBE_BAD_BOOK != 0;
        if bad {
            self.s.maybe_bad_book_records = self.s.maybe_bad_book_records.saturating_add(1);
            if !self.s.maybe_bad_book {
                self.s.maybe_bad_book_count = self.s.maybe_bad_book_count.saturating_add(1);
            }
        }
        self.s.maybe_bad_book = bad;
        self.see_recv(ts_recv);
    }

    fn see_recv(&mut self, ts_recv: u64) {
        if ts_recv == u64::MAX {
            return; // UNDEF_TIMESTAMP
        }
        if self.seen_recv {
            if ts_recv.saturating_sub(self.s.last_ts_recv) > self.stale_ns {
                self.s.stale_count = self.s.stale_count.saturating_add(1);
            }
            // Max: a late record must not make the feed look older than it is.
            self.s.last_ts_recv = self.s.last_ts_recv.max(ts_recv);
        } else {
            self.s.last_ts_recv = ts_recv;
            self.seen_recv = true;
        }
    }

    /// The published top changed.
    pub fn on_top(&mut self, cfg: &ProtectConfig, ts_event: u64, ts_recv: u64, top: &Top) {
        self.see_recv(ts_recv);
        self.on_top_after_last(cfg, ts_event, top);
    }

    /// `on_top` for a top published by a record whose `on_last` already saw its `ts_recv`
    /// (the pipeline's case, at every top change): seeing it again changes nothing.
    #[inline]
    pub fn on_top_after_last(&mut self, cfg: &ProtectConfig, ts_event: u64, top: &Top) {
        self.last_ts_event = ts_event;
        self.stale_ns = cfg.stale_ns;
        let two_sided = top.bid.price != UNDEF_PRICE && top.ask.price != UNDEF_PRICE;
        let (crossed, locked, mut blowout) = if two_sided {
            (top.bid.price > top.ask.price, top.bid.price == top.ask.price, false)
        } else {
            (false, false, false)
        };
        if crossed && !self.s.crossed {
            self.s.crossed_count = self.s.crossed_count.saturating_add(1);
        }
        if locked && !self.s.locked {
            self.s.locked_count = self.s.locked_count.saturating_add(1);
        }
        self.s.crossed = crossed;
        self.s.locked = locked;
        if two_sided {
            let spread = top.ask.price.saturating_sub(top.bid.price);
            self.s.spread = spread;
            if !crossed && !locked {
                // Judged against the norm before this sample, so a blow-out cannot dilute
                // its own threshold.
                let sp = spread as f64;
                let rel = self.spread_ema.ready(cfg.min_samples) && sp > cfg.spread_mult * self.spread_ema.value;
                let abs = cfg.max_spread > 0 && spread > cfg.max_spread;
                blowout = rel || abs;
                self.spread_ema.update(sp, cfg.spread_alpha);
            }
        } else {
            self.s.spread = UNDEF_PRICE;
        }
        if blowout && !self.s.spread_blowout {
            self.s.spread_blowouts = self.s.spread_blowouts.saturating_add(1);
        }
        self.s.spread_blowout = blowout;
        self.top_vacuum = !two_sided;
        self.update_vacuum();
    }

    /// 10 levels per side, best first (empty levels: UNDEF_PRICE, size 0).
    pub fn on_depth(&mut self, cfg: &ProtectConfig, _ts_event: u64, bids: &[LevelView; 10], asks: &[LevelView; 10]) {
        let sum = |ls: &[LevelView; 10]| ls.iter().filter(|l| l.price != UNDEF_PRICE).fold(0u64, |a, l| a.saturating_add(l.size));
        self.on_depth_sums(cfg, sum(bids), sum(asks));
    }

    /// `on_depth` given the saturating sums of the bid and ask sizes (empty levels count
    /// 0), which the pressure engine has already taken from the same sample.
    #[inline]
    pub fn on_depth_sums(&mut self, cfg: &ProtectConfig, bd: u64, ad: u64) {
        let total = bd.saturating_add(ad);
        self.s.depth = total;
        self.depth_vacuum = self.depth_ema.ready(cfg.min_samples) && (total as f64) < cfg.vacuum_frac * self.depth_ema.value;
        // A one-sided book is already a vacuum through the top; keeping it out of the norm
        // stops an emptied book from dragging the EMA down and masking the next thin spell.
        if bd > 0 && ad > 0 {
            self.depth_ema.update(total as f64, cfg.depth_alpha);
        }
        self.update_vacuum();
    }

    fn update_vacuum(&mut self) {
        let v = self.top_vacuum || self.depth_vacuum;
        if v && !self.s.liquidity_vacuum {
            self.s.liquidity_vacuums = self.s.liquidity_vacuums.saturating_add(1);
        }
        self.s.liquidity_vacuum = v;
    }

    /// Current conditions. `now` = 0 skips the staleness judgement; otherwise no record at
    /// all yet counts as stale (no data is not a safe book).
    pub fn state(&self, cfg: &ProtectConfig, now: u64) -> RiskState {
        let mut s = self.s;
        s.stale = now != 0 && (!self.seen_recv || now.saturating_sub(s.last_ts_recv) > cfg.stale_ns);
        s.spread_ema = self.spread_ema.value;
        s.depth_ema = self.depth_ema.value;
        let bit = |on: bool, b: u32| if on { b } else { 0 };
        s.flags = bit(s.spread_blowout, RISK_SPREAD_BLOWOUT)
            | bit(s.liquidity_vacuum, RISK_LIQUIDITY_VACUUM)
            | bit(s.stale, RISK_STALE)
            | bit(s.crossed, RISK_CROSSED)
            | bit(s.locked, RISK_LOCKED)
            | bit(s.maybe_bad_book, RISK_MAYBE_BAD_BOOK);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::EMPTY_LEVEL;

    const T: i64 = 100_000_000;
    const PB: i64 = 2_400_000_000_000;
    const S: u64 = 1_000_000_000;

    fn top(bp: i64, ap: i64) -> Top {
        Top { bid: LevelView { price: bp, size: 5, count: 1 }, ask: LevelView { price: ap, size: 5, count: 1 } }
    }

    fn depth(per_level: u64) -> [LevelView; 10] {
        [LevelView { price: PB, size: per_level, count: 1 }; 10]
    }

    #[test]
    fn crossed_and_locked_transitions() {
        let cfg = ProtectConfig::default();
        let mut p = Protection::new(1, &cfg);
        p.on_top(&cfg, 1, 1, &top(PB, PB + T));
        assert_eq!(p.state(&cfg, 0).flags, 0);
        p.on_top(&cfg, 2, 2, &top(PB + T, PB + T));
        let s = p.state(&cfg, 0);
        assert!(s.locked && !s.crossed && s.flags == RISK_LOCKED && s.spread == 0);
        p.on_top(&cfg, 3, 3, &top(PB + 2 * T, PB + T));
        p.on_top(&cfg, 4, 4, &top(PB + 3 * T, PB + T)); // still crossed: one episode
        let s = p.state(&cfg, 0);
        assert!(s.crossed && !s.locked && s.flags == RISK_CROSSED && s.spread == -2 * T);
        p.on_top(&cfg, 5, 5, &top(PB, PB + T));
        p.on_top(&cfg, 6, 6, &top(PB + T, PB + T));
        let s = p.state(&cfg, 0);
        assert_eq!((s.crossed_count, s.locked_count), (1, 2));
        // Crossed/locked tops never feed the spread norm.
        assert_eq!(s.spread_ema, T as f64);
    }

    #[test]
    fn spread_blowout_relative_and_absolute() {
        let cfg = ProtectConfig { min_samples: 10, ..ProtectConfig::default() };
        let mut p = Protection::new(1, &cfg);
        for i in 0..9 {
            p.on_top(&cfg, i, i, &top(PB, PB + T));
        }
        // Not enough samples yet: a 10-tick spread does not trigger.
        p.on_top(&cfg, 9, 9, &top(PB, PB + 10 * T));
        assert!(!p.state(&cfg, 0).spread_blowout);
        for i in 10..20 {
            p.on_top(&cfg, i, i, &top(PB, PB + T));
        }
        let ema = p.state(&cfg, 0).spread_ema;
        assert!(ema > T as f64 && ema < 1.1 * T as f64);
        p.on_top(&cfg, 20, 20, &top(PB, PB + 4 * T)); // 4 ticks < 4 × ~1.08 ticks
        assert!(!p.state(&cfg, 0).spread_blowout);
        p.on_top(&cfg, 21, 21, &top(PB, PB + 6 * T));
        p.on_top(&cfg, 22, 22, &top(PB, PB + 7 * T));
        let s = p.state(&cfg, 0);
        assert!(s.spread_blowout && s.flags == RISK_SPREAD_BLOWOUT && s.spread_blowouts == 1);
        p.on_top(&cfg, 23, 23, &top(PB, PB + T));
        assert!(!p.state(&cfg, 0).spread_blowout);
        let cfg = ProtectConfig { max_spread: 2 * T, ..ProtectConfig::default() };
        let mut p = Protection::new(1, &cfg);
        p.on_top(&cfg, 1, 1, &top(PB, PB + 3 * T));
        assert_eq!(p.state(&cfg, 0).spread_blowouts, 1);
    }

    #[test]
    fn liquidity_vacuum_from_depth_and_one_sided_top() {
        let cfg = ProtectConfig { min_samples: 5, ..ProtectConfig::default() };
        let mut p = Protection::new(1, &cfg);
        p.on_top(&cfg, 1, 1, &top(PB, PB + T));
        for i in 0..5 {
            p.on_depth(&cfg, i, &depth(10), &depth(10));
        }
        assert!(!p.state(&cfg, 0).liquidity_vacuum);
        // 200 lots norm; 60 ≥ 50 is thin but not a vacuum, 40 is.
        p.on_depth(&cfg, 6, &depth(3), &depth(3));
        assert!(!p.state(&cfg, 0).liquidity_vacuum);
        p.on_depth(&cfg, 7, &depth(2), &depth(2));
        let s = p.state(&cfg, 0);
        assert!(s.liquidity_vacuum && s.flags == RISK_LIQUIDITY_VACUUM && s.depth == 40);
        p.on_depth(&cfg, 8, &depth(10), &depth(10));
        assert!(!p.state(&cfg, 0).liquidity_vacuum);
        // One-sided top: a vacuum without any depth history.
        let mut q = Protection::new(1, &cfg);
        q.on_top(&cfg, 1, 1, &Top { bid: top(PB, 0).bid, ask: EMPTY_LEVEL });
        let s = q.state(&cfg, 0);
        assert!(s.liquidity_vacuum && s.liquidity_vacuums == 1 && s.spread == UNDEF_PRICE && !s.spread_blowout);
        q.on_top(&cfg, 2, 2, &top(PB, PB + T));
        assert!(!q.state(&cfg, 0).liquidity_vacuum);
        assert_eq!(p.state(&cfg, 0).liquidity_vacuums, 1);
    }

    #[test]
    fn stale_and_maybe_bad_book() {
        let cfg = ProtectConfig::default();
        let mut p = Protection::new(1, &cfg);
        assert!(!p.state(&cfg, 0).stale);
        assert!(p.state(&cfg, 10 * S).stale); // nothing received yet
        p.on_last(dbn::flags::LAST, 100 * S);
        assert!(!p.state(&cfg, 105 * S).stale);
        let s = p.state(&cfg, 105 * S + 1);
        assert!(s.stale && s.flags == RISK_STALE && s.last_ts_recv == 100 * S);
        p.on_top(&cfg, 0, 200 * S, &top(PB, PB + T)); // data resumes after a 100 s gap
        assert_eq!(p.state(&cfg, 0).stale_count, 1);

        let bad = dbn::flags::LAST | dbn::flags::MAYBE_BAD_BOOK;
        p.on_last(bad, 201 * S);
        p.on_last(bad, 202 * S);
        let s = p.state(&cfg, 202 * S);
        assert!(s.maybe_bad_book && s.flags == RISK_MAYBE_BAD_BOOK);
        p.on_last(dbn::flags::LAST, 203 * S);
        assert!(!p.state(&cfg, 0).maybe_bad_book);
        p.on_last(bad, 204 * S);
        let s = p.state(&cfg, 0);
        assert_eq!((s.maybe_bad_book_count, s.maybe_bad_book_records), (2, 3));
        p.reset();
        let s = p.state(&cfg, 0);
        assert_eq!((s.maybe_bad_book_count, s.flags, s.last_ts_recv), (0, 0, 0));
    }
}
