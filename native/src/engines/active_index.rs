//! The index of ACTIVE native icebergs by (instrument, order id), behind a counting filter.
//!
//! Every C and M record asks whether its order is an active iceberg; nearly always it is
//! not. The map is reserved for the whole iceberg table (so it never reallocates), which
//! makes it too large to stay in cache: a probe per C/M cost a cache miss. The filter, a
//! 4 KiB array of per-bucket counts of the ids in the map, answers most of those questions
//! without touching the map. A count that reaches 255 sticks there (never decremented), so
//! the filter can only err towards asking the map.

use rustc_hash::FxHashMap;

const BUCKETS: usize = 4096;

#[inline]
fn bucket(instrument_id: u32, order_id: u64) -> usize {
    let k = order_id ^ (instrument_id as u64).rotate_left(32);
    // The top 12 bits of a Fibonacci multiply: always < BUCKETS.
    (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize
}

pub struct ActiveIndex {
    map: FxHashMap<(u32, u64), u32>,
    counts: Box<[u8]>,
}

impl ActiveIndex {
    pub fn with_capacity(capacity: usize) -> Self {
        let mut map = FxHashMap::default();
        map.reserve(capacity);
        Self { map, counts: vec![0; BUCKETS].into_boxed_slice() }
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.counts.fill(0);
    }

    /// False only if the key is absent (no false negatives).
    #[inline]
    pub fn may_contain(&self, instrument_id: u32, order_id: u64) -> bool {
        self.counts.get(bucket(instrument_id, order_id)).is_some_and(|&c| c > 0)
    }

    #[inline]
    pub fn get(&self, instrument_id: u32, order_id: u64) -> Option<u32> {
        if !self.may_contain(instrument_id, order_id) {
            return None;
        }
        self.map.get(&(instrument_id, order_id)).copied()
    }

    /// Returns the row the key pointed at before, if any.
    pub fn insert(&mut self, instrument_id: u32, order_id: u64, row: u32) -> Option<u32> {
        let prev = self.map.insert((instrument_id, order_id), row);
        if prev.is_none() {
            if let Some(c) = self.counts.get_mut(bucket(instrument_id, order_id)) {
                *c = c.saturating_add(1);
            }
        }
        prev
    }

    pub fn remove(&mut self, instrument_id: u32, order_id: u64) {
        if self.map.remove(&(instrument_id, order_id)).is_some() {
            if let Some(c) = self.counts.get_mut(bucket(instrument_id, order_id)) {
                if *c != u8::MAX {
                    *c -= 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_map_including_saturated_buckets() {
        let mut ix = ActiveIndex::with_capacity(8);
        // 300 ids in one bucket: its count saturates and must keep answering from the map.
        let same: Vec<u64> = (0u64..).filter(|&o| bucket(1, o) == bucket(1, 0)).take(300).collect();
        for (row, &o) in same.iter().enumerate() {
            assert_eq!(ix.insert(1, o, row as u32), None);
        }
        assert_eq!(ix.insert(1, same[0], 99), Some(0));
        for &o in &same[1..] {
            ix.remove(1, o);
        }
        assert_eq!(ix.get(1, same[0]), Some(99));
        assert_eq!(ix.get(1, same[1]), None);
        ix.remove(1, same[0]);
        assert_eq!(ix.get(1, same[0]), None);
        // An unsaturated bucket empties again.
        ix.insert(2, 7, 1);
        assert_eq!(ix.get(2, 7), Some(1));
        assert_eq!(ix.get(3, 7), None);
        ix.remove(2, 7);
        ix.remove(2, 7);
        assert_eq!(ix.counts[bucket(2, 7)], 0);
        ix.clear();
        assert!(ix.counts.iter().all(|&c| c == 0));
    }
}
