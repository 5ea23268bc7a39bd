//! Price-level storage for one side of an L3 book.
//!
//! The normal store is a dense tick ladder: slot `i` holds price `base + i * tick`, so
//! finding a level is arithmetic, and adding or removing one shifts nothing. The tick is
//! not configured: it is the GCD of the price differences seen, refined as prices arrive
//! (ES 0.25, GC 0.10, anything else). If prices would need more than `MAX_SLOTS` slots
//! (garbage prices, or a tick so fine the book spans millions of them), the side falls back
//! to a sorted vector, which is correct for any prices, only slower.
//!
//! Slots are stable until `generation` changes (a ladder re-grid or growth, or any level
//! insert/remove in the sorted fallback), so orders can cache their slot and recompute it
//! only when the generation they saw is stale.

pub const NIL: u32 = u32::MAX;
const NONE: usize = usize::MAX;
/// Ladder slots per side before falling back to the sorted store: 2 MiB of levels, e.g.
/// $6,553 of GC prices at 0.10. Also bounds the worst-case scan when the best level empties.
pub const MAX_SLOTS: usize = 1 << 16;
const MIN_MARGIN: usize = 64;

#[derive(Clone, Copy, Debug)]
pub struct Level {
    pub price: i64,
    pub size: u64,
    pub count: u32,
    /// First and last order of the FIFO queue (slab indices).
    pub head: u32,
    pub tail: u32,
}

const EMPTY: Level = Level { price: 0, size: 0, count: 0, head: NIL, tail: NIL };

pub enum LevelStore {
    Ladder(Ladder),
    Sorted(Sorted),
}

impl LevelStore {
    pub fn new(is_bid: bool) -> Self {
        LevelStore::Ladder(Ladder::new(is_bid))
    }

    #[inline(always)]
    pub fn generation(&self) -> u32 {
        match self {
            LevelStore::Ladder(l) => l.generation,
            LevelStore::Sorted(s) => s.generation,
        }
    }

    pub fn clear(&mut self) {
        match self {
            LevelStore::Ladder(l) => l.clear(),
            LevelStore::Sorted(s) => {
                // A fresh book (snapshot, R) gets another chance at the fast store.
                let is_bid = s.is_bid;
                let generation = s.generation.wrapping_add(1);
                let mut l = Ladder::new(is_bid);
                l.generation = generation;
                *self = LevelStore::Ladder(l);
            }
        }
    }

    /// Slot of the non-empty level at `price`.
    #[inline(always)]
    pub fn find(&self, price: i64) -> Option<usize> {
        match self {
            LevelStore::Ladder(l) => l.find(price),
            LevelStore::Sorted(s) => s.find(price),
        }
    }

    /// Slot of the level at `price`, created empty (count 0) if missing. The caller links
    /// an order into it and then calls `occupied` if the count went from 0 to 1.
    #[inline(always)]
    pub fn slot_for(&mut self, price: i64) -> usize {
        if let LevelStore::Ladder(l) = self {
            match l.slot_for(price) {
                Some(slot) => return slot,
                None => {
                    let sorted = l.to_sorted();
                    *self = LevelStore::Sorted(sorted);
                }
            }
        }
        match self {
            LevelStore::Sorted(s) => s.slot_for(price),
            LevelStore::Ladder(_) => unreachable!("converted above"),
        }
    }

    #[inline(always)]
    pub fn level(&self, slot: usize) -> &Level {
        match self {
            LevelStore::Ladder(l) => &l.levels[slot],
            LevelStore::Sorted(s) => &s.levels[slot],
        }
    }

    #[inline(always)]
    pub fn level_mut(&mut self, slot: usize) -> &mut Level {
        match self {
            LevelStore::Ladder(l) => &mut l.levels[slot],
            LevelStore::Sorted(s) => &mut s.levels[slot],
        }
    }

    /// The occupied level at `slot` if it holds `price`: validates a cached slot.
    #[inline(always)]
    pub fn level_at(&self, slot: usize, price: i64) -> Option<&Level> {
        let l = match self {
            LevelStore::Ladder(l) => l.levels.get(slot),
            LevelStore::Sorted(s) => s.levels.get(slot),
        }?;
        (l.count > 0 && l.price == price).then_some(l)
    }

    /// The level at `slot` just got its first order.
    #[inline(always)]
    pub fn occupied(&mut self, slot: usize) {
        if let LevelStore::Ladder(l) = self {
            l.occupied(slot);
        }
    }

    /// The level at `slot` just lost its last order.
    #[inline(always)]
    pub fn vacated(&mut self, slot: usize) {
        match self {
            LevelStore::Ladder(l) => l.vacated(slot),
            LevelStore::Sorted(s) => s.remove(slot),
        }
    }

    #[inline(always)]
    pub fn best(&self) -> Option<&Level> {
        match self {
            LevelStore::Ladder(l) => (l.best != NONE).then(|| &l.levels[l.best]),
            LevelStore::Sorted(s) => s.levels.last(),
        }
    }

    /// `slot` holds the best level (only meaningful for an occupied slot).
    #[inline(always)]
    pub fn is_best(&self, slot: usize) -> bool {
        match self {
            LevelStore::Ladder(l) => l.best == slot,
            LevelStore::Sorted(s) => slot + 1 == s.levels.len(),
        }
    }

    /// The levels from the best outwards as one slice (`rev`: walk it from the end) and the
    /// count of non-empty levels, after which a walk can stop. Empty levels (count 0) are
    /// interleaved in a ladder and must be skipped.
    #[inline]
    pub fn best_first(&self) -> (&[Level], bool, usize) {
        match self {
            LevelStore::Ladder(l) if l.best == NONE => (&[], false, 0),
            LevelStore::Ladder(l) if l.is_bid => (l.levels.get(..=l.best).unwrap_or(&[]), true, l.nonempty),
            LevelStore::Ladder(l) => (l.levels.get(l.best..).unwrap_or(&[]), false, l.nonempty),
            LevelStore::Sorted(s) => (&s.levels, true, s.levels.len()),
        }
    }

    /// Calls `f` on up to `depth` non-empty levels, best first.
    pub fn for_each_best_first(&self, depth: usize, f: impl FnMut(&Level)) {
        match self {
            LevelStore::Ladder(l) => l.for_each_best_first(depth, f),
            LevelStore::Sorted(s) => s.levels.iter().rev().take(depth).for_each(f),
        }
    }

    pub fn is_ladder(&self) -> bool {
        matches!(self, LevelStore::Ladder(_))
    }
}

pub struct Ladder {
    levels: Vec<Level>,
    base: i64,
    /// 0 while only one price has been seen.
    tick: i64,
    /// ceil(2^64 / tick): `index` divides by the tick on every add, and a hardware 64-bit
    /// divide costs more than the rest of the lookup.
    recip: u128,
    best: usize,
    nonempty: usize,
    is_bid: bool,
    generation: u32,
}

impl Ladder {
    fn new(is_bid: bool) -> Self {
        Self { levels: Vec::with_capacity(256), base: 0, tick: 0, recip: 0, best: NONE, nonempty: 0, is_bid, generation: 0 }
    }

    fn clear(&mut self) {
        // Keeps the grid and the allocation: the next book is almost always the same
        // instrument at nearby prices.
        for l in self.levels.iter_mut() {
            *l = EMPTY;
        }
        self.best = NONE;
        self.nonempty = 0;
    }

    #[inline]
    fn index(&self, price: i64) -> Option<usize> {
        if self.levels.is_empty() {
            return None;
        }
        let d = price.checked_sub(self.base)?;
        if self.tick == 0 {
            return (d == 0).then_some(0);
        }
        if d < 0 {
            return None;
        }
        // d / tick for any multiple d of the tick (< 2^63): with recip = 2^64/tick + e,
        // 0 <= e < 1, d * recip = q * 2^64 + q * tick * e and q * tick * e < d < 2^64. For
        // other d the product check fails, and q * tick < d + tick < 2^64 cannot wrap.
        let i = ((d as u128 * self.recip) >> 64) as u64;
        (i < self.levels.len() as u64 && i.wrapping_mul(self.tick as u64) == d as u64).then_some(i as usize)
    }

    #[inline]
    fn find(&self, price: i64) -> Option<usize> {
        self.index(price).filter(|&i| self.levels[i].count > 0)
    }

    /// None: the price does not fit in `MAX_SLOTS` slots; convert to the sorted store.
    /// Nearly every add lands inside the ladder: that case is inline, growth is not.
    #[inline(always)]
    fn slot_for(&mut self, price: i64) -> Option<usize> {
        if let Some(i) = self.index(price) {
            return Some(self.prepare(i, price));
        }
        self.slot_for_outside(price)
    }

    #[inline(never)]
    fn slot_for_outside(&mut self, price: i64) -> Option<usize> {
        if self.levels.is_empty() {
            self.base = price;
            self.levels.push(EMPTY);
            self.generation = self.generation.wrapping_add(1);
            return Some(self.prepare(0, price));
        }
        let d = price.checked_sub(self.base)?;
        let g = gcd(self.tick.unsigned_abs(), d.unsigned_abs());
        if self.tick == 0 || g != self.tick.unsigned_abs() {
            self.regrid(i64::try_from(g).ok()?)?;
        }
        let idx = d / self.tick;
        self.grow_to(idx)?;
        let i = self.index(price)?;
        Some(self.prepare(i, price))
    }

    #[inline]
    fn prepare(&mut self, i: usize, price: i64) -> usize {
        if self.levels[i].count == 0 {
            self.levels[i] = Level { price, ..EMPTY };
        }
        i
    }

    /// Switches to a finer tick that divides the old one.
    fn regrid(&mut self, new_tick: i64) -> Option<()> {
        let factor = if self.tick == 0 { 1 } else { (self.tick / new_tick) as usize };
        let new_len = (self.levels.len() - 1).checked_mul(factor)?.checked_add(1)?;
        if new_len > MAX_SLOTS {
            return None;
        }
        let mut levels = vec![EMPTY; new_len];
        for (i, l) in self.levels.iter().enumerate().filter(|(_, l)| l.count > 0) {
            levels[i * factor] = *l;
        }
        self.levels = levels;
        if self.best != NONE {
            self.best *= factor;
        }
        self.tick = new_tick;
        self.recip = (1u128 << 64).div_ceil(new_tick as u128);
        self.generation = self.generation.wrapping_add(1);
        Some(())
    }

    /// Extends the ladder so slot `idx` (relative to the current base) exists.
    fn grow_to(&mut self, idx: i64) -> Option<()> {
        let len = self.levels.len() as i64;
        if (0..len).contains(&idx) {
            return Some(());
        }
        let margin = (len as usize / 2).max(MIN_MARGIN) as i64;
        let (lo, hi) = if idx < 0 { (idx.checked_sub(margin)?, len - 1) } else { (0, idx.checked_add(margin)?) };
        let new_len = usize::try_from(hi.checked_sub(lo)?.checked_add(1)?).ok()?;
        if new_len > MAX_SLOTS {
            return None;
        }
        let shift = (-lo) as usize;
        let mut levels = vec![EMPTY; new_len];
        levels[shift..shift + len as usize].copy_from_slice(&self.levels);
        self.levels = levels;
        self.base = self.base.checked_add(lo.checked_mul(self.tick)?)?;
        if self.best != NONE {
            self.best += shift;
        }
        self.generation = self.generation.wrapping_add(1);
        Some(())
    }

    #[inline]
    fn occupied(&mut self, slot: usize) {
        self.nonempty += 1;
        let better = self.best == NONE || if self.is_bid { slot > self.best } else { slot < self.best };
        if better {
            self.best = slot;
        }
    }

    #[inline]
    fn vacated(&mut self, slot: usize) {
        self.nonempty -= 1;
        if self.nonempty == 0 {
            self.best = NONE;
        } else if slot == self.best {
            // The next level is nearly always a tick or two away. The best is the extreme
            // occupied slot, so the others all lie in the scan direction; the fallback
            // full scan only guards against a broken invariant.
            let next = if self.is_bid {
                self.levels[..slot].iter().rposition(|l| l.count > 0)
            } else {
                self.levels[slot + 1..].iter().position(|l| l.count > 0).map(|i| i + slot + 1)
            };
            self.best = next.or_else(|| self.levels.iter().position(|l| l.count > 0)).unwrap_or(NONE);
        }
    }

    fn for_each_best_first(&self, depth: usize, mut f: impl FnMut(&Level)) {
        if self.best == NONE {
            return;
        }
        let want = depth.min(self.nonempty);
        let mut seen = 0;
        let mut s = self.best as isize;
        while seen < want && s >= 0 && (s as usize) < self.levels.len() {
            let l = &self.levels[s as usize];
            if l.count > 0 {
                f(l);
                seen += 1;
            }
            s += if self.is_bid { -1 } else { 1 };
        }
    }

    fn to_sorted(&self) -> Sorted {
        // Sorted keeps the best level last: bids ascending, asks descending.
        let mut levels: Vec<Level> = self.levels.iter().filter(|l| l.count > 0).copied().collect();
        if !self.is_bid {
            levels.reverse();
        }
        Sorted { levels, is_bid: self.is_bid, generation: self.generation.wrapping_add(1) }
    }
}

/// Fallback store: levels sorted so the best is last.
pub struct Sorted {
    levels: Vec<Level>,
    is_bid: bool,
    generation: u32,
}

impl Sorted {
    fn insertion_point(&self, price: i64) -> usize {
        let is_bid = self.is_bid;
        self.levels.partition_point(|l| if is_bid { l.price < price } else { l.price > price })
    }

    fn find(&self, price: i64) -> Option<usize> {
        let i = self.insertion_point(price);
        (i < self.levels.len() && self.levels[i].price == price).then_some(i)
    }

    fn slot_for(&mut self, price: i64) -> usize {
        let i = self.insertion_point(price);
        if i == self.levels.len() || self.levels[i].price != price {
            self.levels.insert(i, Level { price, ..EMPTY });
            self.generation = self.generation.wrapping_add(1);
        }
        i
    }

    fn remove(&mut self, slot: usize) {
        self.levels.remove(slot);
        self.generation = self.generation.wrapping_add(1);
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
// Prices in the tests are written in tenths with the decimal as `_` (4000_5 = 4000.5 ticks).
#[allow(clippy::inconsistent_digit_grouping)]
mod tests {
    use super::*;

    fn occupy(s: &mut LevelStore, price: i64) -> usize {
        let slot = s.slot_for(price);
        let l = s.level_mut(slot);
        l.count += 1;
        l.size += 1;
        if l.count == 1 {
            s.occupied(slot);
        }
        slot
    }

    fn prices(s: &LevelStore) -> Vec<i64> {
        let mut v = Vec::new();
        s.for_each_best_first(100, |l| v.push(l.price));
        v
    }

    #[test]
    fn infers_tick_and_grows_both_ways() {
        let mut s = LevelStore::new(true);
        for p in [4000_0, 4010_0, 3990_0, 4005_0, 4000_5, 3000_0, 5000_0] {
            occupy(&mut s, p);
        }
        assert!(s.is_ladder());
        assert_eq!(prices(&s), vec![5000_0, 4010_0, 4005_0, 4000_5, 4000_0, 3990_0, 3000_0]);
        assert_eq!(s.best().unwrap().price, 5000_0);
    }

    #[test]
    fn asks_best_is_lowest_and_vacating_moves_best() {
        let mut s = LevelStore::new(false);
        let a = occupy(&mut s, 105);
        occupy(&mut s, 107);
        occupy(&mut s, 110);
        assert_eq!(s.best().unwrap().price, 105);
        let l = s.level_mut(a);
        l.count = 0;
        s.vacated(a);
        assert_eq!(s.best().unwrap().price, 107);
        assert_eq!(prices(&s), vec![107, 110]);
    }

    #[test]
    fn absurd_price_spread_falls_back_to_sorted_and_stays_correct() {
        let mut s = LevelStore::new(true);
        occupy(&mut s, 2_400_000_000_000);
        occupy(&mut s, 2_400_100_000_000);
        occupy(&mut s, 1); // would need ~10^13 slots on a 1-unit grid
        assert!(!s.is_ladder());
        occupy(&mut s, 2_400_200_000_000);
        assert_eq!(prices(&s), vec![2_400_200_000_000, 2_400_100_000_000, 2_400_000_000_000, 1]);
        s.clear();
        assert!(s.is_ladder());
    }

    #[test]
    fn extreme_prices_on_a_fine_grid_fall_back_instead_of_overflowing() {
        for extreme in [i64::MAX, i64::MIN, i64::MIN + 100] {
            let mut s = LevelStore::new(true);
            occupy(&mut s, 0);
            occupy(&mut s, 1);
            occupy(&mut s, extreme);
            assert_eq!(prices(&s).len(), 3);
        }
    }

    #[test]
    fn extreme_prices_do_not_overflow() {
        let mut s = LevelStore::new(false);
        occupy(&mut s, i64::MAX);
        occupy(&mut s, i64::MIN + 1);
        occupy(&mut s, 0);
        assert_eq!(prices(&s), vec![i64::MIN + 1, 0, i64::MAX]);
    }

    /// The reciprocal division finds exactly the multiples of the tick, for ticks from 1 to
    /// the largest, near the ends of the i64 range too.
    #[test]
    fn ladder_index_is_exact_for_any_tick() {
        for tick in [1i64, 3, 7, 25_000_000, 100_000_000, (1 << 40) + 1, i64::MAX / 3, i64::MAX] {
            for base in [0i64, -5, i64::MIN + 1, i64::MAX - tick.saturating_mul(4).min(i64::MAX - 1)] {
                let mut l = Ladder::new(true);
                l.base = base;
                l.levels = vec![EMPTY; 5];
                l.tick = 1;
                l.regrid(tick).unwrap();
                l.levels = vec![EMPTY; 5];
                for k in 0..5i64 {
                    let Some(p) = k.checked_mul(tick).and_then(|o| base.checked_add(o)) else { continue };
                    assert_eq!(l.index(p), Some(k as usize), "tick {tick} base {base} k {k}");
                    for off in [1i64, -1, tick / 2] {
                        if off != 0 && off % tick != 0 {
                            if let Some(q) = p.checked_add(off) {
                                let d = q as i128 - base as i128;
                                let want = (d >= 0 && d % tick as i128 == 0 && d / (tick as i128) < 5).then(|| (d / tick as i128) as usize);
                                assert_eq!(l.index(q), want, "tick {tick} base {base} price {q}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn generation_changes_when_slots_move() {
        let mut s = LevelStore::new(true);
        occupy(&mut s, 1000);
        occupy(&mut s, 1010);
        let g = s.generation();
        let slot = s.find(1010).unwrap();
        occupy(&mut s, 1020); // within margin: no move
        assert_eq!(s.find(1010), Some(slot));
        occupy(&mut s, 1005); // finer tick: re-grid
        assert_ne!(s.generation(), g);
        assert_eq!(s.level(s.find(1010).unwrap()).price, 1010);
    }
}
