//! Order id -> slab index for the L3 book: open addressing with linear probing and
//! backward-shift deletion.
//!
//! Why not a general hash map: the book inserts and removes an order id on nearly every
//! record, and a map with tombstones (hashbrown) pays for them with periodic in-place
//! rehashes plus a control-byte group scan per probe. Here a slot holds the key itself, the
//! table stays at most half full, and a delete moves the following run back instead of
//! leaving a tombstone, so a lookup is one multiply and, nearly always, one compare. A probe
//! also returns its slot, so the book's lookup-then-remove or lookup-then-insert costs one
//! probe, not two.
//!
//! Keys are exchange order ids, hashed by a fixed Fibonacci multiply (the high bits of
//! `id * 2^64/phi`), which spreads the near-sequential ids exchanges assign.

use crate::levels::NIL;

#[derive(Clone, Copy)]
struct Slot {
    id: u64,
    /// Slab index; `NIL` marks an empty slot (order id 0 is a valid key).
    idx: u32,
}

const EMPTY: Slot = Slot { id: 0, idx: NIL };
const MIN_SLOTS: usize = 16;

/// Where a probe for an id ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The id is present at this slot, mapping to this slab index.
    Found(usize, u32),
    /// Absent; this is the slot an insert must use (valid until the next mutation).
    Vacant(usize),
}

pub struct OrderIndex {
    slots: Vec<Slot>,
    /// `slots.len() - 1` (a power of two minus one).
    mask: usize,
    /// 64 - log2(slots.len()): the hash keeps the product's top bits.
    shift: u32,
    len: usize,
}

impl OrderIndex {
    /// Room for `orders` ids before the first growth.
    pub fn with_capacity(orders: usize) -> Self {
        let n = orders.saturating_mul(2).max(MIN_SLOTS).next_power_of_two();
        Self { slots: vec![EMPTY; n], mask: n - 1, shift: 64 - n.trailing_zeros(), len: 0 }
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
    fn home(&self, id: u64) -> usize {
        (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline]
    pub fn probe(&self, id: u64) -> Probe {
        let mut i = self.home(id);
        loop {
            // The table is never full (load <= 1/2), so the loop meets an empty slot.
            let s = self.slots[i];
            if s.idx == NIL {
                return Probe::Vacant(i);
            }
            if s.id == id {
                return Probe::Found(i, s.idx);
            }
            i = (i + 1) & self.mask;
        }
    }

    #[inline]
    pub fn get(&self, id: u64) -> Option<u32> {
        match self.probe(id) {
            Probe::Found(_, idx) => Some(idx),
            Probe::Vacant(_) => None,
        }
    }

    /// Makes room for one more id, so a following `probe` + `fill` never grows the table.
    /// Growth is the only allocation, and only when the book holds more orders than ever.
    #[inline]
    pub fn reserve_one(&mut self) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
    }

    /// Stores `id -> idx` at a slot returned by `probe` as `Vacant` (after `reserve_one`,
    /// with no mutation in between).
    #[inline]
    pub fn fill(&mut self, slot: usize, id: u64, idx: u32) {
        debug_assert!(self.slots[slot].idx == NIL && idx != NIL);
        self.slots[slot] = Slot { id, idx };
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
            let home = self.home(s.id);
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
        let n = self.slots.len() * 2;
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; n]);
        self.mask = n - 1;
        self.shift = 64 - n.trailing_zeros();
        for s in old.into_iter().filter(|s| s.idx != NIL) {
            let mut i = self.home(s.id);
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
    /// share their low bits) and deletes in the middle of probe runs.
    #[test]
    fn matches_a_hash_map_under_churn() {
        let mut ix = OrderIndex::with_capacity(4);
        let mut model = std::collections::HashMap::new();
        let mut rng = 0x2545F4914F6CDD1Du64;
        for step in 0..200_000u32 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let id = match rng % 3 {
                0 => rng >> 50,
                1 => (rng >> 56) << 40,
                _ => u64::MAX - (rng >> 54),
            };
            let remove = model.len() > 300 || (rng >> 8) % 2 == 0;
            match ix.probe(id) {
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
                    let Probe::Vacant(slot) = ix.probe(id) else { panic!("appeared") };
                    ix.fill(slot, id, step);
                    model.insert(id, step);
                }
            }
            assert_eq!(ix.len(), model.len());
        }
        for (&id, &idx) in &model {
            assert_eq!(ix.get(id), Some(idx));
        }
        ix.clear();
        assert!(ix.is_empty());
        assert_eq!(ix.get(*model.keys().next().unwrap()), None);
    }
}
