//! `IcebergDetector`'s synthetic-iceberg chains (EXPERIMENTAL; see `iceberg.rs`): a clip
//! filled away starts or extends a chain, a same-size re-add at the same (side, price) under
//! a fresh id continues it, and a chain whose replacement window passes ends. A child module
//! of `iceberg`, so it shares the detector's private state.

use super::{
    touch_zone, Chain, IcebergConfig, IcebergDetector, Outputs, Track, ZoneHit, CHAIN_AWAITING, CHAIN_FREE, CHAIN_LIVE,
    ICEBERG_ACTIVE, ICEBERG_CANCELLED, ICEBERG_FILLED, ICEBERG_SYNTHETIC, NO_ROW,
};
use super::{filter_bit, mask_bits, IcebergRec};

impl IcebergDetector {
    /// An order with fills that revealed nothing: it may start, extend or end a chain.
    pub(super) fn synthetic_fill(&mut self, cfg: &IcebergConfig, out: &mut Outputs, t: &Track, removed: bool, ts: u64) {
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
    #[inline(never)]
    pub(super) fn expire(&mut self, cfg: &IcebergConfig, out: &mut Outputs, now: u64, all: bool) {
        let mut next = u64::MAX;
        // Only chain i changes in an iteration, so the mask taken now is the set to visit.
        for i in mask_bits(self.awaiting_mask) {
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

    pub(super) fn live_chain(&self, order_id: u64) -> Option<usize> {
        self.chains.iter().position(|c| c.state == CHAIN_LIVE && c.latest_id == order_id)
    }

    /// A free slot, else the oldest chain that has no row, else the oldest (its row then
    /// stays as last written: the table is small by design).
    pub(super) fn alloc_chain(&mut self) -> usize {
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

    pub(super) fn set_state(&mut self, i: usize, state: u8) {
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
        if old == CHAIN_AWAITING || state == CHAIN_AWAITING {
            self.awaiting_mask ^= 1 << i;
        }
        if old == CHAIN_LIVE || state == CHAIN_LIVE {
            self.live_filter = self.chains.iter().filter(|c| c.state == CHAIN_LIVE).fold(0, |f, c| f | filter_bit(c.latest_id));
        }
    }

    /// Writes chain `i` to its SYNTHETIC row (created once it has enough clips) and passes
    /// the change on to its zone.
    pub(super) fn sync_synthetic(&mut self, cfg: &IcebergConfig, out: &mut Outputs, i: usize, ts: u64, state: u8) {
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
