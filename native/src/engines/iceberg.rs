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

use super::records::{
    IcebergRec, ICEBERG_ACTIVE, ICEBERG_CANCELLED, ICEBERG_FILLED, ICEBERG_NATIVE, ICEBERG_SYNTHETIC, ZONE_ACTIVE, ZONE_ICEBERG,
};
pub use super::iceberg_table::IcebergTable;
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
// `IcebergDetector::awaiting_mask` holds one bit per chain.
const _: () = assert!(CHAINS <= 64);
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

/// Indices of the set bits of `mask`, lowest first.
#[inline]
fn mask_bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let i = mask.trailing_zeros() as usize;
        mask &= mask.wrapping_sub(1);
        (i < CHAINS).then_some(i)
    })
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
    /// Bit i set: chain i is awaiting. Adds (with any chain awaiting) and expiry scans
    /// visit only these chains, in index order as a full scan would.
    awaiting_mask: u64,
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
            awaiting_mask: 0,
            live_filter: 0,
            next_deadline: u64::MAX,
            overflow: 0,
        }
    }

    /// Every MBO record of the instrument, before the book applies it: `begin_record`, then
    /// the handler of its action. The pipeline calls these itself, in its own dispatch on
    /// the action (one jump per record instead of one here and one in the book).
    #[inline]
    pub fn on_mbo(&mut self, cfg: &IcebergConfig, m: &MboMsg, book: &L3Book, out: &mut Outputs) {
        if !self.begin_record(cfg, m) {
            return;
        }
        match m.action as u8 {
            b'F' => self.on_fill(m, book),
            b'C' | b'M' => self.on_change_record(cfg, m, book, out),
            b'A' => self.on_add_record(cfg, m, out),
            b'R' => self.on_clear(),
            _ => {}
        }
    }

    /// False if the detector is off or `m` is a snapshot record: the book is being rebuilt,
    /// so the fills seen so far can no longer be reconciled and are dropped.
    #[inline]
    pub fn begin_record(&mut self, cfg: &IcebergConfig, m: &MboMsg) -> bool {
        let snapshot = m.flags.raw() & dbn::flags::SNAPSHOT != 0;
        if cfg.enabled && snapshot {
            self.tracks.clear();
        }
        cfg.enabled && !snapshot
    }

    /// A C or M record. Most concern no tracked fill, active iceberg or live clip: the cheap
    /// filters say so without a call.
    #[inline]
    pub fn on_change_record(&mut self, cfg: &IcebergConfig, m: &MboMsg, book: &L3Book, out: &mut Outputs) {
        if !self.tracks.is_empty() || out.icebergs.may_be_active(self.instrument_id, m.order_id) || self.maybe_live(m.order_id) {
            self.on_change(cfg, m, book, out)
        }
    }

    /// An A record: it can only continue a synthetic chain that awaits its next clip.
    #[inline]
    pub fn on_add_record(&mut self, cfg: &IcebergConfig, m: &MboMsg, out: &mut Outputs) {
        if self.awaiting > 0 && cfg.synthetic_enabled {
            self.on_add(cfg, m, out)
        }
    }

    /// An R record (book cleared): pending C/M reductions will never come. Icebergs stay
    /// active, since the rebuilt book may bring their order ids back.
    #[inline]
    pub fn on_clear(&mut self) {
        self.tracks.clear();
    }

    /// After the book applied a record carrying F_LAST. Runs at nearly every record and
    /// nearly always has nothing to do, so it is inline and the work is not. Expiry is gated
    /// on `next_deadline` alone, not also on `awaiting` (a branch that mispredicted): with no
    /// chain awaiting, a stale bound costs one scan of no chains, which resets it.
    #[inline]
    pub fn on_event_end(&mut self, cfg: &IcebergConfig, _ts_event: u64, ts_recv: u64, out: &mut Outputs) {
        if !cfg.enabled {
            return;
        }
        if ts_recv > self.next_deadline {
            self.expire(cfg, out, ts_recv, false);
        }
        if !self.tracks.is_empty() {
            self.resolve(cfg, out, ts_recv, false);
        }
    }

    /// The order may be a live synthetic clip (the filter has no false negatives).
    #[inline]
    fn maybe_live(&self, order_id: u64) -> bool {
        self.live > 0 && self.live_filter & filter_bit(order_id) != 0
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

    /// An F record.
    pub fn on_fill(&mut self, m: &MboMsg, book: &L3Book) {
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

    #[inline(never)]
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
        if self.maybe_live(m.order_id) {
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
        for i in mask_bits(self.awaiting_mask) {
            let Some(c) = self.chains.get(i) else { break };
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
    #[inline(never)]
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
                tbl.active.insert(inst, t.order_id, i);
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
}

// The synthetic-iceberg chains' methods (start, extend, expire, write their rows).
#[path = "iceberg_synthetic.rs"]
mod synthetic;

#[cfg(test)]
#[path = "iceberg_tests.rs"]
mod tests;
