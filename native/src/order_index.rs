//! Order id -> slab index for the L3 book: open addressing with linear probing and
//! backward-shift deletion.
//!
//! Why not a general hash map: the book inserts and removes an order id on nearly every
//! record, and a map with tombstones (hashbrown) pays for them with periodic in-place
//! rehashes plus a control-byte group scan per probe. Here the table stays at most a
//! quarter full (`SLOTS_PER_ID`), and a delete moves the following run back instead of leaving a tombstone, so a
//! lookup is one multiply and, nearly always, one slot. A probe also returns its slot, so
//! the book's lookup-then-remove or lookup-then-insert costs one probe, not two.
//!
//! A slot is 8 bytes: the slab index and 32 bits of the id's hash. The id itself lives in
//! the slab, where a hit reads it anyway (the caller confirms a fingerprint match with
//! `is_id`); a real book holds ~10^4 orders, and halving the table keeps more of it in
//! cache. The fingerprint is the hash's top half, which also holds the home slot, so
//! deletion and growth never need the id.
//!
//! Ids are hashed by a fixed Fibonacci multiply (`id * 2^64/phi`), which spreads the
//! near-sequential ids exchanges assign.

use crate::levels::NIL;

#[derive(Clone, Copy)]
struct Slot {
    /// Top 32 bits of the id's hash.
    fp: u32,
    /// Slab index; `NIL` marks an empty slot.
    idx: u32,
}

const EMPTY: Slot = Slot { fp: 0, idx: NIL };
const MIN_SLOTS: usize = 16;
/// Slots per stored id at least. At half load a third of the ES day's probes met an occupied
/// home slot or a longer deletion run, and those branches mispredicted; a quarter load
/// halves that for 8 bytes more per order.
const SLOTS_PER_ID: usize = 4;
/// The home slot comes from the 32-bit fingerprint.
const MAX_SLOTS: usize = 1 << 32;

/// Where a probe for an id ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The id is present at this slot, mapping to this slab index.
    Found(usize, u32),
    /// Absent; this is the slot an insert must use (valid until the next mutation).
    Vacant(usize),
}

#[inline]
fn fingerprint(id: u64) -> u32 {
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}

pub struct OrderIndex {
    slots: Vec<Slot>,
    /// `slots.len() - 1` (a power of two minus one).
    mask: usize,
    /// 32 - log2(slots.len()): the home slot is the fingerprint's top bits.
    shift: u32,
    len: usize,
}

impl OrderIndex {
    /// Room for `orders` ids before the first growth.
    pub fn with_capacity(orders: usize) -> Self {
        let n = orders.saturating_mul(SLOTS_PER_ID).clamp(MIN_SLOTS, MAX_SLOTS).next_power_of_two();
        Self { slots: vec![EMPTY; n], mask: n - 1, shift: 32 - n.trailing_zeros(), len: 0 }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps the allocation.
    pub fn clear(&mut self) {
        if self.len > 0 {
            self.slots.fill(EMPTY);
            self.len = 0;
        }
    }

    #[inline]
    fn home(&self, fp: u32) -> usize {
        // A u64 shift: `shift` is 32 for a one-slot table, never used (MIN_SLOTS).
        ((fp as u64) >> self.shift) as usize
    }

    /// `is_id(idx)`: the order at slab index `idx` has this id.
    #[inline]
    pub fn probe(&self, id: u64, is_id: impl Fn(u32) -> bool) -> Probe {
        let fp = fingerprint(id);
        let mut i = self.home(fp);
        loop {
            // The table is never full (load <= 1/SLOTS_PER_ID), so the loop meets an empty slot.
            let s = self.slots[i];
            if s.idx == NIL {
                return Probe::Vacant(i);
            }
            if s.fp == fp && is_id(s.idx) {
                return Probe::Found(i, s.idx);
            }
            i = (i + 1) & self.mask;
        }
    }

    #[inline]
    pub fn get(&self, id: u64, is_id: impl Fn(u32) -> bool) -> Option<u32> {
        match self.probe(id, is_id) {
            Probe::Found(_, idx) => Some(idx),
            Probe::Vacant(_) => None,
        }
    }

    /// Makes room for one more id, so a following `probe` + `fill` never grows the table.
    /// Growth is the only allocation, and only when the book holds more orders than ever.
    #[inline]
    pub fn reserve_one(&mut self) {
        if (self.len + 1) * SLOTS_PER_ID > self.slots.len() {
            self.grow();
        }
    }

    /// Stores `id -> idx` at a slot returned by `probe` as `Vacant` (after `reserve_one`,
    /// with no mutation in between).
    #[inline]
    pub fn fill(&mut self, slot: usize, id: u64, idx: u32) {
        debug_assert!(self.slots[slot].idx == NIL && idx != NIL);
        self.slots[slot] = Slot { fp: fingerprint(id), idx };
        self.len += 1;
    }

    /// Removes the id at a slot returned by `probe` as `Found`.
    #[inline]
    pub fn remove_at(&mut self, slot: usize) {
        let mut hole = slot;
        let mut i = slot;
        loop {
            i = (i + 1) & self.mask;
            let s = self.slots[i];
            if s.idx == NIL {
                break;
            }
            // Move `s` back into the hole unless its home lies cyclically in (hole, i]:
            // then the hole is not on its probe path.
            let home = self.home(s.fp);
            let stays = if hole <= i { hole < home && home <= i } else { hole < home || home <= i };
            if !stays {
                self.slots[hole] = s;
                hole = i;
            }
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
    }

    fn grow(&mut self) {
        let n = (self.slots.len() * 2).min(MAX_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; n]);
        self.mask = n - 1;
        self.shift = 32 - n.trailing_zeros();
        for s in old.into_iter().filter(|s| s.idx != NIL) {
            let mut i = self.home(s.fp);
            while self.slots[i].idx != NIL {
                i = (i + 1) & self.mask;
            }
            self.slots[i] = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against std's HashMap, with colliding ids (multiples of a large power of two all
    /// share their low bits, ids with equal fingerprints) and deletes in the middle of probe
    /// runs. `ids[idx]` plays the slab.
    #[test]
    fn matches_a_hash_map_under_churn() {
        let mut ix = OrderIndex::with_capacity(4);
        let mut model = std::collections::HashMap::new();
        let mut ids: Vec<u64> = Vec::new();
        // The multiplier's inverse mod 2^64 (Newton's iteration; it is odd).
        let k = 0x9E37_79B9_7F4A_7C15u64;
        let mut k_inv = k;
        for _ in 0..6 {
            k_inv = k_inv.wrapping_mul(2u64.wrapping_sub(k.wrapping_mul(k_inv)));
        }
        assert_eq!(k.wrapping_mul(k_inv), 1);
        assert_eq!(fingerprint(12345u64.wrapping_add(k_inv)), fingerprint(12345));
        let mut rng = 0x2545F4914F6CDD1Du64;
        for _ in 0..200_000u32 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let id = match rng % 4 {
                0 => rng >> 50,
                1 => (rng >> 56) << 40,
                // Different ids whose hashes differ by < 16: mostly equal fingerprints.
                2 => 12345u64.wrapping_add(k_inv.wrapping_mul(rng >> 60)),
                _ => u64::MAX - (rng >> 54),
            };
            let remove = model.len() > 300 || (rng >> 8) % 2 == 0;
            let is_id = |ids: &Vec<u64>, idx: u32| ids[idx as usize] == id;
            match ix.probe(id, |idx| is_id(&ids, idx)) {
                Probe::Found(slot, idx) => {
                    assert_eq!(model.get(&id), Some(&idx));
                    if remove {
                        ix.remove_at(slot);
                        model.remove(&id);
                    }
                }
                Probe::Vacant(_) => {
                    assert!(!model.contains_key(&id));
                    ix.reserve_one();
                    let Probe::Vacant(slot) = ix.probe(id, |idx| is_id(&ids, idx)) else { panic!("appeared") };
                    ids.push(id);
                    let idx = (ids.len() - 1) as u32;
                    ix.fill(slot, id, idx);
                    model.insert(id, idx);
                }
            }
            assert_eq!(ix.len(), model.len());
        }
        for (&id, &idx) in &model {
            assert_eq!(ix.get(id, |i| ids[i as usize] == id), Some(idx));
        }
        ix.clear();
        assert!(ix.is_empty());
        let id = *model.keys().next().unwrap();
        assert_eq!(ix.get(id, |i| ids[i as usize] == id), None);
    }
}
