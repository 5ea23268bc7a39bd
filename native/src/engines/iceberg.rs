//! Iceberg detection from MBO, and Iceberg Memory zones (reference: microstructure.md 1.2–1.5).
//!
//! **Native** icebergs (held by CME; one order id for the whole life) are detected
//! deterministically with a per-event fill balance. For every order filled in an event:
//! `revealed = D_end + Σfills − D0`, where `D0` is its displayed size at its first fill of
//! the event (fills never change the book) and `D_end` its displayed size after the event's
//! C/M records. A plain fill is explained by an equal reduction (revealed 0); anything more
//! is hidden quantity that the exchange re-instated: Σ fills beyond the display, or a refill
//! `M` at the same price — including one back to the same size, which a size-increase test
//! would miss. An `F` whose price differs from the resting price is aggressor volume (an
//! order modified into the market) and is ignored, as are snapshot records.
//!
//! **Synthetic** icebergs (EXPERIMENTAL, a heuristic, never exchange-confirmed): a platform
//! re-adds a clip under a fresh order id after the previous one traded away. An order filled
//! away at (side, price) followed within `synthetic_max_delay_ns` by an `A` with the same
//! side, price and size (= the removed order's add size) extends a chain; a chain of
//! `synthetic_min_clips` clips is reported. Most such pairs are ordinary flow (the
//! reference measures chance-level precision for 1-lot clips), so treat these rows as hints.
//!
//! Every detection or update also feeds an Iceberg Memory zone (`ZONE_ICEBERG`) per
//! (instrument, side, price bucket); its strength is `1 − exp(−hidden_qty / strength_lots)`.
//!
//! Nothing here allocates after construction: per-event tracking is a Vec whose capacity is
//! never exceeded, synthetic chains live in a fixed array, and the active-iceberg index is
//! a hash map reserved for the table's capacity.

use dbn::MboMsg;
use rustc_hash::FxHashMap;

use super::records::{
    IcebergRec, ICEBERG_ACTIVE, ICEBERG_CANCELLED, ICEBERG_FILLED, ICEBERG_NATIVE, ICEBERG_SYNTHETIC, ZONE_ACTIVE, ZONE_ICEBERG,
};
use super::table::Table;
use super::zones::ZoneTable;
use super::Outputs;
use crate::book::L3Book;

#[derive(Clone, Copy, Debug)]
pub struct IcebergConfig {
    /// Run detection at all (default true).
    pub enabled: bool,
    /// Run the experimental synthetic-iceberg heuristic (default true).
    pub synthetic_enabled: bool,
    /// Longest gap, in `ts_recv` nanoseconds, between a clip being filled away and its
    /// replacement `A` (default 2 ms). The reference recommends ≈1 ms on ES; 2 ms leaves
    /// room for the replay simulator, which re-adds after 0.7–1.5 ms, and for gateway jitter.
    pub synthetic_max_delay_ns: u64,
    /// Smallest synthetic clip in lots (default 2): 1-lot re-adds are chance-level noise.
    pub synthetic_min_clip: u32,
    /// Clips (the first order counts as clip 1) before a chain is reported (default 3;
    /// values below 2 act as 2, since a chain needs at least one replacement).
    pub synthetic_min_clips: u32,
    /// Iceberg Memory bucket width in price units (1e-9); prices are rounded down to a
    /// multiple of it. 0 (default) keys zones by exact price.
    pub zone_width: i64,
    /// Hidden lots at which a zone's strength reaches 1 − 1/e (default 50.0).
    pub strength_lots: f64,
}

impl Default for IcebergConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            synthetic_enabled: true,
            synthetic_max_delay_ns: 2_000_000,
            synthetic_min_clip: 2,
            synthetic_min_clips: 3,
            zone_width: 0,
            strength_lots: 50.0,
        }
    }
}

/// Every iceberg row of the session (all instruments), plus an index of the ACTIVE native
/// ones by (instrument, order id) so a later fill of the same order updates its row.
pub struct IcebergTable {
    pub rows: Table<IcebergRec>,
    /// Rows that could not be stored because the table was full.
    pub dropped: u64,
    active: FxHashMap<(u32, u64), u32>,
}

impl IcebergTable {
    pub fn new(capacity: usize) -> Self {
        let mut active = FxHashMap::default();
        // Never more active natives than rows, so the index never reallocates.
        active.reserve(capacity.max(1));
        Self { rows: Table::new(capacity), dropped: 0, active }
    }

    /// Forgets every row (a new session); capacity is kept.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.active.clear();
    }

    /// Replaces the table with `rows` (a restored snapshot) and rebuilds the index, so an
    /// ACTIVE native iceberg keeps updating its row when its order id trades again. Rows
    /// beyond capacity are dropped and counted. Returns the rows kept.
    pub fn restore(&mut self, rows: &[IcebergRec]) -> usize {
        self.clear();
        let mut kept = 0;
        for r in rows {
            match self.rows.push(*r) {
                Some(i) => {
                    kept += 1;
                    if r.kind == ICEBERG_NATIVE && r.state == ICEBERG_ACTIVE {
                        self.active.insert((r.instrument_id, r.order_id), i);
                    }
                }
                None => self.dropped += 1,
            }
        }
        kept
    }

    /// Row of the ACTIVE native iceberg with this order id, if any.
    #[inline]
    fn find_active(&self, instrument_id: u32, order_id: u64) -> Option<u32> {
        if self.active.is_empty() {
            return None;
        }
        self.active.get(&(instrument_id, order_id)).copied()
    }

    fn end_native(&mut self, instrument_id: u32, order_id: u64, idx: u32, state: u8, ts: u64) {
        self.active.remove(&(instrument_id, order_id));
        if let Some(r) = self.rows.get_mut(idx) {
            r.state = state;
            r.last_ts = ts;
        }
    }
}

/// One order filled in the current event (or the previous one, while its C/M is awaited).
#[derive(Clone, Copy, Debug, Default)]
struct Track {
    order_id: u64,
    price: i64,
    fills: u64,
    /// Displayed size at its first fill in the event, and after the C/M records seen since.
    d0: u32,
    d: u32,
    add_size: u32,
    side: u8,
    /// A C or M for it arrived: without one, the fills are not yet explained.
    touched: bool,
    /// An M moved it to another price: it left the level, so nothing is revealed.
    moved: bool,
    /// Already waited one event for its C/M.
    carried: bool,
}

const TRACK_CAPACITY: usize = 256;
const CHAINS: usize = 64;
const NO_ROW: u32 = u32::MAX;

const CHAIN_FREE: u8 = 0;
/// The latest clip rests in the book.
const CHAIN_LIVE: u8 = 1;
/// The latest clip was filled away; waiting for its replacement.
const CHAIN_AWAITING: u8 = 2;

/// A run of same-size clips re-added at one (side, price) under fresh order ids.
#[derive(Clone, Copy, Debug, Default)]
struct Chain {
    first_id: u64,
    latest_id: u64,
    price: i64,
    filled: u64,
    first_fills: u64,
    /// `ts_recv` of the last transition (the removal, while awaiting).
    ts: u64,
    clip: u32,
    clips: u32,
    row: u32,
    side: u8,
    state: u8,
    /// A row was attempted (kept even when the table refused it, so the loss counts once).
    emitted: bool,
}

/// Bit of an order id in the live-clip filter: a cheap reject before scanning chains.
#[inline]
fn filter_bit(order_id: u64) -> u64 {
    1u64 << (order_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
}

/// What one iceberg update adds to its Iceberg Memory zone.
struct ZoneHit {
    side: u8,
    price: i64,
    ts: u64,
    new: bool,
    fills: u64,
    hidden: u64,
}

fn touch_zone(cfg: &IcebergConfig, zones: &mut ZoneTable, instrument_id: u32, h: ZoneHit) {
    let price = if cfg.zone_width > 0 {
        h.price.div_euclid(cfg.zone_width).checked_mul(cfg.zone_width).unwrap_or(h.price)
    } else {
        h.price
    };
    // A full zone table counts its own loss; the iceberg row is still valid.
    let Some(z) = zones.upsert(instrument_id, ZONE_ICEBERG, h.side, price, h.ts) else { return };
    if h.new {
        z.count = z.count.saturating_add(1);
    }
    z.volume = z.volume.saturating_add(h.fills);
    z.hidden_qty = z.hidden_qty.saturating_add(h.hidden);
    z.last_ts = z.last_ts.max(h.ts);
    z.state = ZONE_ACTIVE;
    z.strength = if cfg.strength_lots > 0.0 {
        1.0 - (-(z.hidden_qty as f64) / cfg.strength_lots).exp()
    } else if z.hidden_qty > 0 {
        1.0
    } else {
        0.0
    };
}

/// Per-instrument detector state; rows go to the shared `Outputs::icebergs`.
pub struct IcebergDetector {
    instrument_id: u32,
    tracks: Vec<Track>,
    chains: [Chain; CHAINS],
    live: u32,
    awaiting: u32,
    live_filter: u64,
    /// Earliest deadline among awaiting chains (a lower bound), to skip expiry scans.
    next_deadline: u64,
    /// Fills not tracked because one event filled more than `TRACK_CAPACITY` orders.
    pub overflow: u64,
}

impl IcebergDetector {
    pub fn new(instrument_id: u32, _cfg: &IcebergConfig) -> Self {
        Self {
            instrument_id,
            tracks: Vec::with_capacity(TRACK_CAPACITY),
            chains: [Chain::default(); CHAINS],
            live: 0,
            awaiting: 0,
            live_filter: 0,
            next_deadline: u64::MAX,
            overflow: 0,
        }
    }

    /// Every MBO record of the instrument, before the book applies it.
    #[inline]
    pub fn on_mbo(&mut self, cfg: &IcebergConfig, m: &MboMsg, book: &L3Book, out: &mut Outputs) {
        if !cfg.enabled {
            return;
        }
        if m.flags.raw() & dbn::flags::SNAPSHOT != 0 {
            // The book is being rebuilt: fills seen so far can no longer be reconciled.
            self.tracks.clear();
            return;
        }
        match m.action as u8 {
            b'F' => self.on_fill(m, book),
            b'C' | b'M' => self.on_change(cfg, m, book, out),
            b'A' if self.awaiting > 0 && cfg.synthetic_enabled => self.on_add(cfg, m, out),
            // Book cleared: pending C/M reductions will never come. Icebergs stay active,
            // since the rebuilt book may bring their order ids back.
            b'R' => self.tracks.clear(),
            _ => {}
        }
    }

    /// After the book applied a record carrying F_LAST.
    pub fn on_event_end(&mut self, cfg: &IcebergConfig, _ts_event: u64, ts_recv: u64, out: &mut Outputs) {
        if !cfg.enabled {
            return;
        }
        if self.awaiting > 0 && ts_recv > self.next_deadline {
            self.expire(cfg, out, ts_recv, false);
        }
        if !self.tracks.is_empty() {
            self.resolve(cfg, out, ts_recv, false);
        }
    }

    /// End of stream: orders still waiting for their C/M are settled with what arrived, and
    /// synthetic chains waiting for a replacement are closed (no record can extend them).
    pub fn flush(&mut self, cfg: &IcebergConfig, now: u64, out: &mut Outputs) {
        if !cfg.enabled {
            return;
        }
        if !self.tracks.is_empty() {
            self.resolve(cfg, out, now, true);
        }
        if self.awaiting > 0 {
            self.expire(cfg, out, now, true);
        }
    }

    /// A reconnect voids the open event (and any fills still awaiting their C/M).
    pub fn reset_event(&mut self) {
        self.tracks.clear();
    }

    fn on_fill(&mut self, m: &MboMsg, book: &L3Book) {
        // Unknown orders cannot be balanced; a fill away from the resting price is an order
        // modified into the market (aggressor volume, not hidden liquidity).
        let Some(o) = book.order(m.order_id) else { return };
        if o.price != m.price {
            return;
        }
        if let Some(t) = self.tracks.iter_mut().find(|t| t.order_id == m.order_id) {
            t.fills = t.fills.saturating_add(m.size as u64);
            return;
        }
        if self.tracks.len() >= TRACK_CAPACITY {
            self.overflow += 1;
            return;
        }
        self.tracks.push(Track {
            order_id: m.order_id,
            price: o.price,
            fills: m.size as u64,
            d0: o.size,
            d: o.size,
            add_size: o.add_size,
            side: o.side,
            ..Default::default()
        });
    }

    fn on_change(&mut self, cfg: &IcebergConfig, m: &MboMsg, book: &L3Book, out: &mut Outputs) {
        let is_cancel = m.action as u8 == b'C';
        if let Some(t) = self.tracks.iter_mut().find(|t| t.order_id == m.order_id) {
            t.touched = true;
            if is_cancel {
                t.d = t.d.saturating_sub(m.size);
            } else if m.size == 0 {
                t.d = 0;
            } else {
                t.moved |= m.price != t.price;
                t.d = m.size;
            }
            return;
        }
        // Not filled in this event: only a removal matters (an iceberg or a clip was pulled).
        let removed = || if is_cancel { book.order(m.order_id).is_none_or(|o| m.size >= o.size) } else { m.size == 0 };
        let ts = m.ts_recv;
        if let Some(idx) = out.icebergs.find_active(self.instrument_id, m.order_id) {
            if removed() {
                out.icebergs.end_native(self.instrument_id, m.order_id, idx, ICEBERG_CANCELLED, ts);
            }
            return;
        }
        if self.live > 0 && self.live_filter & filter_bit(m.order_id) != 0 {
            if let Some(i) = self.live_chain(m.order_id) {
                let moved = !is_cancel && self.chains.get(i).is_some_and(|c| c.price != m.price);
                if moved || removed() {
                    self.sync_synthetic(cfg, out, i, ts, ICEBERG_CANCELLED);
                    self.set_state(i, CHAIN_FREE);
                }
            }
        }
    }

    /// A fresh order at the price a clip was just filled away from may continue a chain.
    fn on_add(&mut self, cfg: &IcebergConfig, m: &MboMsg, out: &mut Outputs) {
        let ts = m.ts_recv;
        let side = m.side as u8;
        if m.size < cfg.synthetic_min_clip.max(1) {
            return;
        }
        let mut best: Option<(usize, u32, u64)> = None;
        for (i, c) in self.chains.iter().enumerate() {
            if c.state != CHAIN_AWAITING || c.side != side || c.price != m.price || c.clip != m.size || c.latest_id == m.order_id {
                continue;
            }
            if ts < c.ts || ts - c.ts > cfg.synthetic_max_delay_ns {
                continue;
            }
            // Two chains can wait at one level; the longer (then the more recent) wins.
            if best.is_none_or(|(_, clips, bts)| c.clips > clips || (c.clips == clips && c.ts > bts)) {
                best = Some((i, c.clips, c.ts));
            }
        }
        let Some((i, _, _)) = best else { return };
        if let Some(c) = self.chains.get_mut(i) {
            c.latest_id = m.order_id;
            c.clips = c.clips.saturating_add(1);
            c.ts = ts;
        }
        self.set_state(i, CHAIN_LIVE);
        self.sync_synthetic(cfg, out, i, ts, ICEBERG_ACTIVE);
    }

    /// Settles tracked orders at an event end; ones whose C/M has not arrived wait one more
    /// event (it arrives "in the event of its fills, or immediately after").
    fn resolve(&mut self, cfg: &IcebergConfig, out: &mut Outputs, ts: u64, last_chance: bool) {
        let mut keep = 0;
        for r in 0..self.tracks.len() {
            let Some(mut t) = self.tracks.get(r).copied() else { break };
            if !last_chance && !t.carried && !t.touched && t.d > 0 && t.fills > 0 {
                t.carried = true;
                if let Some(slot) = self.tracks.get_mut(keep) {
                    *slot = t;
                }
                keep += 1;
                continue;
            }
            self.settle(cfg, out, &t, ts);
        }
        self.tracks.truncate(keep);
    }

    fn settle(&mut self, cfg: &IcebergConfig, out: &mut Outputs, t: &Track, ts: u64) {
        let removed = t.d == 0;
        let revealed = if t.moved {
            0
        } else if t.touched {
            (t.d as u64 + t.fills).saturating_sub(t.d0 as u64)
        } else {
            // No reduction ever arrived: only fills beyond the display are proven hidden.
            t.fills.saturating_sub(t.d0 as u64)
        };
        let known = out.icebergs.find_active(self.instrument_id, t.order_id);
        if revealed > 0 || known.is_some() {
            self.native(cfg, out, known, t, revealed, removed, ts);
        } else if cfg.synthetic_enabled {
            self.synthetic_fill(cfg, out, t, removed, ts);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn native(&mut self, cfg: &IcebergConfig, out: &mut Outputs, known: Option<u32>, t: &Track, revealed: u64, removed: bool, ts: u64) {
        let inst = self.instrument_id;
        let tbl = &mut out.icebergs;
        let (idx, new) = match known {
            Some(i) => (i, false),
            None => {
                let clip = if t.add_size > 0 { t.add_size } else { t.d0 };
                let row = IcebergRec {
                    order_id: t.order_id,
                    first_order_id: t.order_id,
                    price: t.price,
                    first_ts: ts,
                    last_ts: ts,
                    instrument_id: inst,
                    clip,
                    side: t.side,
                    kind: ICEBERG_NATIVE,
                    state: ICEBERG_ACTIVE,
                    ..Default::default()
                };
                let Some(i) = tbl.rows.push(row) else {
                    tbl.dropped += 1;
                    return;
                };
                tbl.active.insert((inst, t.order_id), i);
                (i, true)
            }
        };
        let Some(r) = tbl.rows.get_mut(idx) else { return };
        r.filled_qty = r.filled_qty.saturating_add(t.fills);
        if revealed > 0 {
            r.hidden_qty = r.hidden_qty.saturating_add(revealed);
            r.events = r.events.saturating_add(1);
            let clip = r.clip.max(1) as u64;
            // Resting: a refill M re-instated it, at least once. Removed: every hidden
            // tranche consumed, the last one possibly partial.
            let n = if removed { revealed.div_ceil(clip) } else { ((revealed + clip / 2) / clip).max(1) };
            r.refills = r.refills.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        }
        r.last_ts = ts;
        r.price = t.price;
        let side = r.side;
        if removed {
            tbl.end_native(inst, t.order_id, idx, ICEBERG_FILLED, ts);
        }
        let hit = ZoneHit { side, price: t.price, ts, new, fills: t.fills, hidden: revealed };
        touch_zone(cfg, &mut out.zones, inst, hit);
    }

    /// An order with fills that revealed nothing: it may start, extend or end a chain.
    fn synthetic_fill(&mut self, cfg: &IcebergConfig, out: &mut Outputs, t: &Track, removed: bool, ts: u64) {
        let filled_away = removed && !t.moved && t.fills >= t.d0 as u64;
        let chain = if self.live > 0 && self.live_filter & filter_bit(t.order_id) != 0 { self.live_chain(t.order_id) } else { None };
        if let Some(i) = chain {
            if let Some(c) = self.chains.get_mut(i) {
                c.filled = c.filled.saturating_add(t.fills);
                if filled_away {
                    c.ts = ts;
                }
            }
            if filled_away {
                self.set_state(i, CHAIN_AWAITING);
                self.next_deadline = self.next_deadline.min(ts.saturating_add(cfg.synthetic_max_delay_ns));
                self.sync_synthetic(cfg, out, i, ts, ICEBERG_ACTIVE);
            } else if removed || t.moved {
                // Partly traded, then pulled or moved: the chain ends before trading out.
                self.sync_synthetic(cfg, out, i, ts, ICEBERG_CANCELLED);
                self.set_state(i, CHAIN_FREE);
            } else {
                self.sync_synthetic(cfg, out, i, ts, ICEBERG_ACTIVE);
            }
            return;
        }
        let clip = if t.add_size > 0 { t.add_size } else { t.d0 };
        if !filled_away || clip < cfg.synthetic_min_clip {
            return;
        }
        let i = self.alloc_chain();
        if let Some(c) = self.chains.get_mut(i) {
            *c = Chain {
                first_id: t.order_id,
                latest_id: t.order_id,
                price: t.price,
                filled: t.fills,
                first_fills: t.fills,
                ts,
                clip,
                clips: 1,
                row: NO_ROW,
                side: t.side,
                state: CHAIN_FREE,
                emitted: false,
            };
        }
        self.set_state(i, CHAIN_AWAITING);
        self.next_deadline = self.next_deadline.min(ts.saturating_add(cfg.synthetic_max_delay_ns));
    }

    /// Closes awaiting chains whose replacement window passed (all of them at end of stream):
    /// the last clip traded out and nothing replaced it.
    fn expire(&mut self, cfg: &IcebergConfig, out: &mut Outputs, now: u64, all: bool) {
        let mut next = u64::MAX;
        for i in 0..CHAINS {
            let Some(c) = self.chains.get(i).copied() else { break };
            if c.state != CHAIN_AWAITING {
                continue;
            }
            let deadline = c.ts.saturating_add(cfg.synthetic_max_delay_ns);
            if all || now > deadline {
                self.sync_synthetic(cfg, out, i, now.max(c.ts), ICEBERG_FILLED);
                self.set_state(i, CHAIN_FREE);
            } else {
                next = next.min(deadline);
            }
        }
        self.next_deadline = next;
    }

    fn live_chain(&self, order_id: u64) -> Option<usize> {
        self.chains.iter().position(|c| c.state == CHAIN_LIVE && c.latest_id == order_id)
    }

    /// A free slot, else the oldest chain that has no row, else the oldest (its row then
    /// stays as last written: the table is small by design).
    fn alloc_chain(&mut self) -> usize {
        let mut victim = (0usize, false, u64::MAX);
        for (i, c) in self.chains.iter().enumerate() {
            if c.state == CHAIN_FREE {
                return i;
            }
            let better = match (victim.1, c.emitted) {
                (true, false) => true,
                (false, true) => false,
                _ => c.ts < victim.2,
            };
            if better || victim.2 == u64::MAX {
                victim = (i, c.emitted, c.ts);
            }
        }
        self.set_state(victim.0, CHAIN_FREE);
        victim.0
    }

    fn set_state(&mut self, i: usize, state: u8) {
        let Some(c) = self.chains.get_mut(i) else { return };
        let old = std::mem::replace(&mut c.state, state);
        if old == state {
            return;
        }
        match old {
            CHAIN_LIVE => self.live = self.live.saturating_sub(1),
            CHAIN_AWAITING => self.awaiting = self.awaiting.saturating_sub(1),
            _ => {}
        }
        match state {
            CHAIN_LIVE => self.live += 1,
            CHAIN_AWAITING => self.awaiting += 1,
            _ => {}
        }
        if old == CHAIN_LIVE || state == CHAIN_LIVE {
            self.live_filter = self.chains.iter().filter(|c| c.state == CHAIN_LIVE).fold(0, |f, c| f | filter_bit(c.latest_id));
        }
    }

    /// Writes chain `i` to its SYNTHETIC row (created once it has enough clips) and passes
    /// the change on to its zone.
    fn sync_synthetic(&mut self, cfg: &IcebergConfig, out: &mut Outputs, i: usize, ts: u64, state: u8) {
        let inst = self.instrument_id;
        let Some(c) = self.chains.get_mut(i) else { return };
        if c.clips < cfg.synthetic_min_clips.max(2) {
            return;
        }
        let hidden = c.filled.saturating_sub(c.first_fills);
        let tbl = &mut out.icebergs;
        // The row index is checked against the chain, since a restore may have replaced it.
        let (first_id, price) = (c.first_id, c.price);
        let same = |r: &IcebergRec| r.kind == ICEBERG_SYNTHETIC && r.instrument_id == inst && r.first_order_id == first_id && r.price == price;
        let existing = if c.emitted && tbl.rows.get(c.row).is_some_and(same) { Some(c.row) } else { None };
        let (idx, new) = match existing {
            Some(idx) => (idx, false),
            None if !c.emitted => {
                c.emitted = true;
                let row = IcebergRec {
                    first_order_id: c.first_id,
                    price: c.price,
                    first_ts: ts,
                    instrument_id: inst,
                    clip: c.clip,
                    side: c.side,
                    kind: ICEBERG_SYNTHETIC,
                    ..Default::default()
                };
                let Some(idx) = tbl.rows.push(row) else {
                    tbl.dropped += 1;
                    return;
                };
                c.row = idx;
                (idx, true)
            }
            None => return,
        };
        let Some(r) = tbl.rows.get_mut(idx) else { return };
        let fills = c.filled.saturating_sub(r.filled_qty);
        let more_hidden = hidden.saturating_sub(r.hidden_qty);
        r.order_id = c.latest_id;
        r.filled_qty = c.filled;
        r.hidden_qty = hidden;
        r.refills = c.clips.saturating_sub(1);
        r.events = c.clips;
        r.last_ts = ts;
        r.state = state;
        let hit = ZoneHit { side: c.side, price: c.price, ts, new, fills, hidden: more_hidden };
        touch_zone(cfg, &mut out.zones, inst, hit);
    }
}

#[cfg(test)]
mod tests {
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
}
