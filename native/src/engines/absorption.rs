//! Absorption zones: the causal rule of `microstructure.md` §2 plus its depth refinement.
//!
//! Sell absorption at bid L, checked at each print time t over (t − W, t]: (1) seller volume
//! at L ≥ V_min, (2) nothing traded below L (any side), (3) the best bid at t is L. Buy
//! absorption at the ask is the mirror image. One signal per (side, L) until price trades
//! through L or `rearm_ns` passes. Each signal upserts a `ZONE_ABSORPTION` row:
//! - `count` signals at L; `volume` = aggressor volume at L in the window of the latest
//!   absorbed print (a print at L for which (1)–(3) hold; refreshed while the zone is active);
//! - `hidden_qty` = replenishment = Σ aggressor volume at L − (depth at L when the window's
//!   first print at L arrived − depth at L now), clamped ≥ 0;
//! - `strength` = min(1, volume / 2·V_min) · (0.5 + 0.5 · min(1, replenishment / volume)):
//!   half from size, half from how much of it was refilled rather than eaten out of the queue;
//! - `state`: ACTIVE; BROKEN when a print goes through L while active; HELD when W passes
//!   after the last absorbed print with no break, or the best price moves away from L
//!   (bid zone: best bid above L; ask zone: best ask below L). HELD/BROKEN are final for that
//!   signal; a later signal at L makes the row ACTIVE again.
//!
//! Time is `ts_event` (the window is about the match engine's clock); rows are stamped with
//! `ts_recv`. Depth is the top level's size from the top the pipeline hands over; within one
//! event that top is stale, so prints at the best price since the last `on_top` are
//! subtracted to estimate it, and the first `on_top` after an absorbed print replaces the
//! estimate with the published depth.

use rustc_hash::FxHashMap;

use super::records::{ZONE_ABSORPTION, ZONE_ACTIVE, ZONE_BROKEN, ZONE_HELD};
use super::Outputs;
use crate::book::{LevelView, Top, UNDEF_PRICE};

#[derive(Clone, Copy, Debug)]
pub struct AbsorptionConfig {
    pub enabled: bool,
    /// W: the look-back window, 10 s. The reference's 30 s is an ES default; on GC a 30 s
    /// window also blocks the signal for up to 30 s after price arrives at L from beyond it
    /// (condition 2), and lets ordinary flow at a level that is merely quiet pile up. On the
    /// simulator's labelled sessions (`aurum eval`; bench/README.md has the sweep) 10 s /
    /// 300 lots scored F1 1.0 where 30 s / 150 scored 0.70.
    pub window_ns: u64,
    /// V_min in lots, 300: about 3x what background flow puts on a held GC level in a fast
    /// 10 s spell, while real defence of a level trades that in a few seconds.
    pub min_volume: u64,
    /// A (side, L) that signalled stays quiet this long unless price trades through L (5 min).
    pub rearm_ns: u64,
    /// Prints kept per side in the window; beyond it the oldest leaves early (counted).
    pub window_capacity: usize,
}

impl Default for AbsorptionConfig {
    fn default() -> Self {
        Self { enabled: true, window_ns: 10_000_000_000, min_volume: 300, rearm_ns: 300_000_000_000, window_capacity: 4096 }
    }
}

/// Losses of precision, never errors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AbsorptionCounters {
    /// Prints that left a full window before W elapsed.
    pub early_evictions: u64,
    /// Entries dropped from a full extreme (min/max) deque; condition (2) may then pass wrongly.
    pub extreme_evictions: u64,
    /// Prints at a new price while the per-price map was full: not summed.
    pub untracked_prints: u64,
    /// Active zones pushed out of a full slot array (marked HELD).
    pub slot_evictions: u64,
}

/// Distinct prices summed per side. The map reserves twice this, so hashbrown's in-place
/// rehash (used when tombstones fill it) never needs to allocate.
const MAX_PRICES: usize = 256;
/// Zones tracked per side (active, or disarmed until re-arm).
const SLOTS: usize = 8;
// `Side::used` is a u8 mask over the slots.
const _: () = assert!(SLOTS <= 8);

/// A fixed-capacity FIFO over a preallocated buffer.
struct Fifo<T: Copy + Default> {
    buf: Box<[T]>,
    head: usize,
    len: usize,
}

impl<T: Copy + Default> Fifo<T> {
    fn new(cap: usize) -> Self {
        Self { buf: vec![T::default(); cap.max(1)].into_boxed_slice(), head: 0, len: 0 }
    }
    fn is_full(&self) -> bool {
        self.len == self.buf.len()
    }
    /// `(head + i) % capacity` for `i <= len`, without a division (several per print).
    #[inline]
    fn wrap(&self, i: usize) -> usize {
        let j = self.head + i;
        if j >= self.buf.len() { j - self.buf.len() } else { j }
    }
    fn at(&self, i: usize) -> Option<T> {
        (i < self.len).then(|| self.buf[self.wrap(i)])
    }
    fn front(&self) -> Option<T> {
        self.at(0)
    }
    fn back(&self) -> Option<T> {
        self.len.checked_sub(1).and_then(|i| self.at(i))
    }
    fn push_back(&mut self, v: T) {
        if !self.is_full() {
            let i = self.wrap(self.len);
            self.buf[i] = v;
            self.len += 1;
        }
    }
    fn pop_front(&mut self) -> Option<T> {
        let v = self.front()?;
        self.head = self.wrap(1);
        self.len -= 1;
        Some(v)
    }
    fn pop_back(&mut self) -> Option<T> {
        let v = self.back()?;
        self.len -= 1;
        Some(v)
    }
}

#[derive(Clone, Copy, Default)]
struct Print {
    ts: u64,
    price: i64,
    size: u32,
    /// Whether `size` went into the per-price sums (not when the map was full).
    tracked: bool,
}

#[derive(Clone, Copy, Default)]
struct Mark {
    ts: u64,
    price: i64,
}

#[derive(Clone, Copy, Default)]
struct LevelSum {
    volume: u64,
    depth_start: u64,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    price: i64,
    signal_ts: u64,
    last_abs_ts: u64,
    /// Window figures at the last absorbed print, to redo replenishment at the next `on_top`.
    abs_volume: u64,
    depth_start: u64,
    pending_depth: bool,
    active: bool,
}

/// Indices of the set bits of a slot mask, lowest first (the order of a scan over `slots`).
#[inline]
fn used_slots(mut mask: u8) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let i = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(i)
    })
}

/// One resting side: bids absorbing sellers, or asks absorbing buyers.
struct Side {
    is_bid: bool,
    prints: Fifo<Print>,
    sums: FxHashMap<i64, LevelSum>,
    /// Monotonic deque of all print prices: its front is the window's lowest (bid side) or
    /// highest (ask side) price, which is all condition (2) needs.
    extreme: Fifo<Mark>,
    slots: [Slot; SLOTS],
    /// Bit i: `slots[i]` is in use. Most tops and prints find no slot in use, and the mask
    /// lets them skip the slot scans.
    used: u8,
    /// Aggressor volume printed at `since_px` since the last published top: the top handed to
    /// `on_trade` does not yet show it.
    since_px: i64,
    since_vol: u64,
    /// A print at the best (`price`, `t`, `ts_recv`) to judge when its event ends: rule (2),
    /// nothing traded beyond L, covers the whole match, and a later print of the same match
    /// may go through L (judged at the print, a zone was written and broken at once).
    candidate: Option<(i64, u64, u64)>,
}

fn replenishment(volume: u64, depth_start: u64, depth_now: u64) -> u64 {
    (volume as i128 - depth_start as i128 + depth_now as i128).clamp(0, u64::MAX as i128) as u64
}

fn strength(volume: u64, repl: u64, min_volume: u64) -> f64 {
    if volume == 0 {
        return 0.0;
    }
    let size = (volume as f64 / (2.0 * min_volume.max(1) as f64)).min(1.0);
    size * (0.5 + 0.5 * (repl as f64 / volume as f64).min(1.0))
}

impl Side {
    fn new(is_bid: bool, cap: usize) -> Self {
        let mut sums = FxHashMap::default();
        sums.reserve(2 * MAX_PRICES);
        Self { is_bid, prints: Fifo::new(cap), sums, extreme: Fifo::new(cap), slots: [Slot::default(); SLOTS], used: 0, since_px: UNDEF_PRICE, since_vol: 0, candidate: None }
    }
    fn resting(&self) -> u8 {
        if self.is_bid { b'B' } else { b'A' }
    }
    fn aggressor(&self) -> u8 {
        if self.is_bid { b'A' } else { b'B' }
    }
    fn best(&self, top: &Top) -> LevelView {
        if self.is_bid { top.bid } else { top.ask }
    }
    /// `p` is on the far side of `l` from the resting orders (a print through the level).
    fn beyond(&self, p: i64, l: i64) -> bool {
        if self.is_bid { p < l } else { p > l }
    }
    /// Estimated resting size at `l` right now (see the module note on stale tops).
    fn depth(&self, top: &Top, l: i64) -> u64 {
        let b = self.best(top);
        if b.price != l {
            return 0;
        }
        let seen = if self.since_px == l { self.since_vol } else { 0 };
        b.size.saturating_sub(seen)
    }

    fn unsum(&mut self, p: Print) {
        if !p.tracked {
            return;
        }
        if let Some(s) = self.sums.get_mut(&p.price) {
            s.volume = s.volume.saturating_sub(p.size as u64);
            if s.volume == 0 {
                self.sums.remove(&p.price);
            }
        }
    }

    fn expire(&mut self, now: u64, w: u64) {
        while let Some(p) = self.prints.front() {
            if p.ts.saturating_add(w) > now {
                break;
            }
            self.prints.pop_front();
            self.unsum(p);
        }
        while let Some(m) = self.extreme.front() {
            if m.ts.saturating_add(w) > now {
                break;
            }
            self.extreme.pop_front();
        }
    }

    fn push_extreme(&mut self, ts: u64, price: i64, c: &mut AbsorptionCounters) {
        while let Some(m) = self.extreme.back() {
            let dominated = if self.is_bid { m.price >= price } else { m.price <= price };
            if !dominated {
                break;
            }
            self.extreme.pop_back();
        }
        if self.extreme.is_full() {
            self.extreme.pop_front();
            c.extreme_evictions += 1;
        }
        self.extreme.push_back(Mark { ts, price });
    }

    fn add_print(&mut self, ts: u64, price: i64, size: u32, depth_start: u64, c: &mut AbsorptionCounters) {
        if self.prints.is_full() {
            if let Some(old) = self.prints.pop_front() {
                self.unsum(old);
            }
            c.early_evictions += 1;
        }
        let mut tracked = false;
        if size > 0 {
            if let Some(s) = self.sums.get_mut(&price) {
                s.volume = s.volume.saturating_add(size as u64);
                tracked = true;
            } else if self.sums.len() < MAX_PRICES {
                self.sums.insert(price, LevelSum { volume: size as u64, depth_start });
                tracked = true;
            } else {
                c.untracked_prints += 1;
            }
        }
        self.prints.push_back(Print { ts, price, size, tracked });
    }

    fn set_state(&self, iid: u32, l: i64, state: u8, ts_recv: u64, out: &mut Outputs) {
        if let Some(z) = out.zones.get_mut(iid, ZONE_ABSORPTION, self.resting(), l) {
            z.state = state;
            z.last_ts = ts_recv;
        }
    }

    /// Time and price-moved-away checks; frees disarmed slots whose re-arm period is over.
    #[inline]
    fn maintain(&mut self, cfg: &AbsorptionConfig, iid: u32, t: u64, best_px: i64, ts_recv: u64, out: &mut Outputs) {
        if self.used != 0 {
            self.maintain_slots(cfg, iid, t, best_px, ts_recv, out);
        }
    }

    #[inline(never)]
    fn maintain_slots(&mut self, cfg: &AbsorptionConfig, iid: u32, t: u64, best_px: i64, ts_recv: u64, out: &mut Outputs) {
        for i in used_slots(self.used) {
            let s = self.slots[i];
            if s.active {
                let away = best_px != UNDEF_PRICE && self.beyond(s.price, best_px);
                if away || t >= s.last_abs_ts.saturating_add(cfg.window_ns) {
                    self.slots[i].active = false;
                    self.set_state(iid, s.price, ZONE_HELD, ts_recv, out);
                }
            } else if t >= s.signal_ts.saturating_add(cfg.rearm_ns) {
                self.used &= !(1 << i);
            }
        }
    }

    fn trade_through(&mut self, iid: u32, price: i64, ts_recv: u64, out: &mut Outputs) {
        for i in used_slots(self.used) {
            let s = self.slots[i];
            if self.beyond(price, s.price) {
                if s.active {
                    self.set_state(iid, s.price, ZONE_BROKEN, ts_recv, out);
                }
                self.used &= !(1 << i);
            }
        }
    }

    fn take_slot(&mut self, iid: u32, ts_recv: u64, out: &mut Outputs, c: &mut AbsorptionCounters) -> usize {
        if self.used != u8::MAX {
            return (!self.used).trailing_zeros() as usize;
        }
        let oldest = |active: bool| (0..SLOTS).filter(|&i| self.slots[i].active == active).min_by_key(|&i| self.slots[i].signal_ts);
        if let Some(i) = oldest(false) {
            return i;
        }
        let i = oldest(true).unwrap_or(0);
        // Evicting an active zone: it had not broken while watched, so HELD is the fair label.
        self.set_state(iid, self.slots[i].price, ZONE_HELD, ts_recv, out);
        c.slot_evictions += 1;
        i
    }

    #[allow(clippy::too_many_arguments)]
    fn on_trade(&mut self, cfg: &AbsorptionConfig, iid: u32, t: u64, ts_recv: u64, price: i64, size: u32, side: u8, top: &Top, out: &mut Outputs, c: &mut AbsorptionCounters) {
        self.expire(t, cfg.window_ns);
        // Held checks first: a zone whose window already ran out held, whatever comes next.
        self.maintain(cfg, iid, t, self.best(top).price, ts_recv, out);
        self.trade_through(iid, price, ts_recv, out);
        self.push_extreme(t, price, c);
        if side != self.aggressor() || size == 0 {
            return;
        }
        let depth_before = self.depth(top, price);
        if self.best(top).price == price {
            if self.since_px != price {
                self.since_px = price;
                self.since_vol = 0;
            }
            self.since_vol = self.since_vol.saturating_add(size as u64);
        }
        self.add_print(t, price, size, depth_before, c);
        if self.best(top).price == price {
            self.candidate = Some((price, t, ts_recv));
        }
    }

    /// The event of a print at the best has ended: the causal rule over the window, then the
    /// zone (its depth comes from the published top by `resolve_depth` right after).
    fn judge(&mut self, cfg: &AbsorptionConfig, iid: u32, top: &Top, out: &mut Outputs, c: &mut AbsorptionCounters) {
        let Some((l, t, ts_recv)) = self.candidate.take() else { return };
        let Some(sum) = self.sums.get(&l).copied() else { return };
        let nothing_beyond = self.extreme.front().is_none_or(|m| !self.beyond(m.price, l));
        if !nothing_beyond || sum.volume < cfg.min_volume {
            return;
        }
        let found = used_slots(self.used).find(|&i| self.slots[i].price == l);
        let (i, signal) = match found {
            Some(i) if self.slots[i].active => (i, t >= self.slots[i].signal_ts.saturating_add(cfg.rearm_ns)),
            // Disarmed (held, re-arm not yet due: `maintain` frees it once due).
            Some(_) => return,
            None => (self.take_slot(iid, ts_recv, out, c), true),
        };
        let s = &mut self.slots[i];
        if signal {
            *s = Slot { price: l, signal_ts: t, active: true, ..Slot::default() };
            self.used |= 1 << i;
        }
        s.last_abs_ts = t;
        s.abs_volume = sum.volume;
        s.depth_start = sum.depth_start;
        s.pending_depth = true;
        let repl = replenishment(sum.volume, sum.depth_start, self.depth(top, l));
        let resting = self.resting();
        if let Some(z) = out.zones.upsert(iid, ZONE_ABSORPTION, resting, l, ts_recv) {
            if signal {
                z.count = z.count.saturating_add(1);
            }
            z.volume = sum.volume;
            z.hidden_qty = repl;
            z.strength = strength(sum.volume, repl, cfg.min_volume);
            z.state = ZONE_ACTIVE;
            z.last_ts = ts_recv;
        }
    }

    /// Every top change: nearly always no zone is in play, and only the print tally resets.
    #[inline]
    #[allow(clippy::too_many_arguments)] // one side of a top change, called per change: no struct built
    fn on_top(&mut self, cfg: &AbsorptionConfig, iid: u32, t: u64, ts_recv: u64, top: &Top, out: &mut Outputs, c: &mut AbsorptionCounters) {
        self.since_px = UNDEF_PRICE;
        self.since_vol = 0;
        if self.candidate.is_some() {
            self.judge(cfg, iid, top, out, c);
        }
        if self.used != 0 {
            self.on_top_slots(cfg, iid, t, ts_recv, top, out);
        }
    }

    #[inline(never)]
    fn on_top_slots(&mut self, cfg: &AbsorptionConfig, iid: u32, t: u64, ts_recv: u64, top: &Top, out: &mut Outputs) {
        self.resolve_depth(cfg, iid, top, out);
        self.maintain(cfg, iid, t, self.best(top).price, ts_recv, out);
    }

    /// An event ended with the top as published before (a level refilled to exactly its
    /// size): the print tally resets and pending zones take their depth from that top, as
    /// `on_top` does when the top changes. Without it, the prints stayed in the tally and
    /// the next events' depth and replenishment came out too low.
    #[inline]
    fn on_same_top(&mut self, cfg: &AbsorptionConfig, iid: u32, top: &Top, out: &mut Outputs, c: &mut AbsorptionCounters) {
        self.since_px = UNDEF_PRICE;
        self.since_vol = 0;
        if self.candidate.is_some() {
            self.judge(cfg, iid, top, out, c);
        }
        if self.used != 0 {
            self.resolve_depth(cfg, iid, top, out);
        }
    }

    /// Zones waiting for the depth after their last print's event: it is `top`'s now.
    fn resolve_depth(&mut self, cfg: &AbsorptionConfig, iid: u32, top: &Top, out: &mut Outputs) {
        for i in used_slots(self.used) {
            let s = self.slots[i];
            if !(s.active && s.pending_depth) {
                continue;
            }
            self.slots[i].pending_depth = false;
            let repl = replenishment(s.abs_volume, s.depth_start, self.depth(top, s.price));
            if let Some(z) = out.zones.get_mut(iid, ZONE_ABSORPTION, self.resting(), s.price) {
                z.hidden_qty = repl;
                z.strength = strength(s.abs_volume, repl, cfg.min_volume);
            }
        }
    }
}

pub struct AbsorptionEngine {
    instrument_id: u32,
    bid: Side,
    ask: Side,
    pub counters: AbsorptionCounters,
}

impl AbsorptionEngine {
    pub fn new(instrument_id: u32, cfg: &AbsorptionConfig) -> Self {
        let cap = if cfg.enabled { cfg.window_capacity } else { 1 };
        Self { instrument_id, bid: Side::new(true, cap), ask: Side::new(false, cap), counters: AbsorptionCounters::default() }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn on_trade(&mut self, cfg: &AbsorptionConfig, ts_event: u64, ts_recv: u64, price: i64, size: u32, side: u8, top: &Top, out: &mut Outputs) {
        if !cfg.enabled || price == UNDEF_PRICE {
            return;
        }
        let iid = self.instrument_id;
        self.bid.on_trade(cfg, iid, ts_event, ts_recv, price, size, side, top, out, &mut self.counters);
        self.ask.on_trade(cfg, iid, ts_event, ts_recv, price, size, side, top, out, &mut self.counters);
    }

    /// An event ended (F_LAST) leaving the published top as it was (see `Side::on_same_top`).
    #[inline]
    pub fn on_same_top(&mut self, cfg: &AbsorptionConfig, top: &Top, out: &mut Outputs) {
        if !cfg.enabled {
            return;
        }
        let iid = self.instrument_id;
        self.bid.on_same_top(cfg, iid, top, out, &mut self.counters);
        self.ask.on_same_top(cfg, iid, top, out, &mut self.counters);
    }

    #[inline]
    pub fn on_top(&mut self, cfg: &AbsorptionConfig, ts_event: u64, ts_recv: u64, top: &Top, out: &mut Outputs) {
        if !cfg.enabled {
            return;
        }
        let iid = self.instrument_id;
        self.bid.on_top(cfg, iid, ts_event, ts_recv, top, out, &mut self.counters);
        self.ask.on_top(cfg, iid, ts_event, ts_recv, top, out, &mut self.counters);
    }
}

#[cfg(test)]
#[path = "absorption_tests.rs"]
mod tests;
