//! L3 (market-by-order) book for one instrument, following Databento's GLBX rules:
//! A/C/M/R change the book, T/F/N never do, and readers look only at `F_LAST` boundaries
//! (the pipeline tracks those). Also the MBP-10 book as sent in MBP-10 records.
//!
//! Layout, chosen for a hot path with no steady-state allocation:
//! - orders live in a slab (`Vec<Order>` + free list) indexed by an order-id hash table
//!   (`order_index.rs`);
//! - each price level keeps a doubly linked FIFO of slab indices, so queue position is
//!   exact and a cancel is O(1);
//! - levels per side live in a `LevelStore` (a tick ladder; see `levels.rs`), and each
//!   order caches its level slot, so most updates need no search at all.

use crate::levels::{Level, LevelStore, NIL};
use crate::order_index::{OrderIndex, Probe};

pub const UNDEF_PRICE: i64 = i64::MAX;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LevelView {
    pub price: i64,
    pub size: u64,
    pub count: u32,
}

/// Best bid and ask; an empty side is `(UNDEF_PRICE, 0, 0)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Top {
    pub bid: LevelView,
    pub ask: LevelView,
}

pub const EMPTY_LEVEL: LevelView = LevelView { price: UNDEF_PRICE, size: 0, count: 0 };

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueuePosition {
    pub side: u8,
    pub price: i64,
    pub size: u32,
    pub orders_ahead: u32,
    pub size_ahead: u64,
}

/// Book rule violations seen in the feed. None stops the book; all are counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    pub cancel_unknown: u64,
    pub modify_unknown: u64,
    pub duplicate_add: u64,
    pub over_cancel: u64,
    pub bad_side: u64,
    /// Adds at UNDEF_PRICE: a resting order there would read as an empty side.
    pub bad_price: u64,
}

/// One resting order as engines see it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrderView {
    pub price: i64,
    pub size: u32,
    /// The size it (re-)entered the queue with: at its add, or at the last modify that
    /// cost it priority.
    pub add_size: u32,
    /// `B` or `A`.
    pub side: u8,
}

#[derive(Clone, Copy, Debug)]
struct Order {
    id: u64,
    price: i64,
    size: u32,
    add_size: u32,
    /// Level slot in the side's store, valid while the store's generation is `generation`.
    slot: u32,
    generation: u32,
    prev: u32,
    next: u32,
    is_bid: bool,
}

pub struct L3Book {
    orders: Vec<Order>,
    free: Vec<u32>,
    index: OrderIndex,
    bids: LevelStore,
    asks: LevelStore,
    /// A best level changed (or may have) since `take_top_dirty` last ran: most events
    /// touch only deeper levels, and then the top need not be read and compared.
    top_dirty: bool,
    pub anomalies: Anomalies,
}

impl Default for L3Book {
    fn default() -> Self {
        Self::new()
    }
}

impl L3Book {
    pub fn new() -> Self {
        Self::with_capacity(1024)
    }

    pub fn with_capacity(orders: usize) -> Self {
        Self {
            orders: Vec::with_capacity(orders),
            free: Vec::with_capacity(orders),
            index: OrderIndex::with_capacity(orders),
            bids: LevelStore::new(true),
            asks: LevelStore::new(false),
            top_dirty: true,
            anomalies: Anomalies::default(),
        }
    }

    pub fn order_count(&self) -> usize {
        self.index.len()
    }

    /// Drops every order (action R, or the start of a snapshot). Capacity is kept.
    pub fn clear(&mut self) {
        self.orders.clear();
        self.free.clear();
        self.index.clear();
        self.bids.clear();
        self.asks.clear();
        self.top_dirty = true;
    }

    /// True if `top()` may differ from what it was at the previous call (true at first).
    /// Resets the flag.
    #[inline]
    pub fn take_top_dirty(&mut self) -> bool {
        std::mem::replace(&mut self.top_dirty, false)
    }

    #[inline]
    pub fn add(&mut self, order_id: u64, side: u8, price: i64, size: u32) {
        // One range test, then the side as a value: a match on the side branched on it, and
        // the side of the next add is a coin toss (~0.1 mispredicts per ES record).
        if !matches!(side, b'A' | b'B') {
            self.anomalies.bad_side += 1;
            return;
        }
        let is_bid = side == b'B';
        if price == UNDEF_PRICE {
            self.anomalies.bad_price += 1;
            return;
        }
        self.index.reserve_one();
        match self.index.probe(order_id, |i| self.orders.get(i as usize).is_some_and(|o| o.id == order_id)) {
            Probe::Found(_, idx) => {
                // The old order leaves its queue; its slab entry carries the new one.
                self.anomalies.duplicate_add += 1;
                self.unlink(idx);
                self.link(idx, order_id, is_bid, price, size);
            }
            Probe::Vacant(pos) => {
                let idx = self.alloc();
                self.link(idx, order_id, is_bid, price, size);
                self.index.fill(pos, order_id, idx);
            }
        }
    }

    /// `size` is the quantity removed (Databento C semantics).
    #[inline]
    pub fn cancel(&mut self, order_id: u64, size: u32) {
        let Probe::Found(pos, idx) = self.index.probe(order_id, |i| self.orders.get(i as usize).is_some_and(|o| o.id == order_id)) else {
            self.anomalies.cancel_unknown += 1;
            return;
        };
        let o = self.orders[idx as usize];
        if size >= o.size {
            if size > o.size {
                self.anomalies.over_cancel += 1;
            }
            self.remove_order(pos, idx);
        } else {
            self.orders[idx as usize].size = o.size - size;
            self.reduce_level(idx, o.is_bid, size);
        }
    }

    /// CME priority: a price change or a size increase sends the order to the back of the
    /// queue; a size decrease keeps its place. An unknown order id is treated as an add.
    pub fn modify(&mut self, order_id: u64, side: u8, price: i64, size: u32) {
        let Probe::Found(pos, idx) = self.index.probe(order_id, |i| self.orders.get(i as usize).is_some_and(|o| o.id == order_id)) else {
            self.anomalies.modify_unknown += 1;
            if size > 0 {
                self.add(order_id, side, price, size);
            }
            return;
        };
        let o = self.orders[idx as usize];
        if size == 0 {
            self.remove_order(pos, idx);
        } else if price != o.price || size > o.size {
            if price == UNDEF_PRICE {
                self.anomalies.bad_price += 1;
                self.remove_order(pos, idx);
            } else {
                // Same id, same slab entry: only its place in the queues changes.
                self.unlink(idx);
                self.link(idx, order_id, o.is_bid, price, size);
            }
        } else {
            self.orders[idx as usize].size = size;
            self.reduce_level(idx, o.is_bid, o.size - size);
        }
    }

    #[inline]
    pub fn top(&self) -> Top {
        Top {
            bid: self.bids.best().map_or(EMPTY_LEVEL, view),
            ask: self.asks.best().map_or(EMPTY_LEVEL, view),
        }
    }

    /// Best-first (price, size, count) for up to `depth` levels per side.
    pub fn levels(&self, depth: usize) -> (Vec<LevelView>, Vec<LevelView>) {
        // Grows with the levels that exist, never with the requested depth.
        let (mut bids, mut asks) = (Vec::new(), Vec::new());
        self.bids.for_each_best_first(depth, |l| bids.push(view(l)));
        self.asks.for_each_best_first(depth, |l| asks.push(view(l)));
        (bids, asks)
    }

    /// Writes the top `out.len()` levels per side into the given slices (no allocation);
    /// unused slots become empty levels. Returns how many levels each side had. The
    /// engines' depth sample calls this every few milliseconds of market time, so it walks
    /// the level slice directly rather than through a callback per level.
    pub fn fill_levels(&self, bids_out: &mut [LevelView], asks_out: &mut [LevelView]) -> (usize, usize) {
        (fill_best(&self.bids, bids_out, EMPTY_LEVEL, view), fill_best(&self.asks, asks_out, EMPTY_LEVEL, view))
    }

    /// The sizes of the best `out.len()` levels per side, best first, 0 past the last level:
    /// `fill_levels` reduced to what the depth measures read.
    pub fn fill_sizes(&self, bids_out: &mut [u64], asks_out: &mut [u64]) {
        fill_best(&self.bids, bids_out, 0, |l| l.size);
        fill_best(&self.asks, asks_out, 0, |l| l.size);
    }

    #[inline]
    pub fn order(&self, order_id: u64) -> Option<OrderView> {
        let idx = self.index.get(order_id, |i| self.orders.get(i as usize).is_some_and(|o| o.id == order_id))?;
        let o = &self.orders[idx as usize];
        Some(OrderView { price: o.price, size: o.size, add_size: o.add_size, side: if o.is_bid { b'B' } else { b'A' } })
    }

    /// Walks the best `depth` levels of one side, best first.
    pub fn for_each_level(&self, is_bid: bool, depth: usize, mut f: impl FnMut(LevelView)) {
        let store = if is_bid { &self.bids } else { &self.asks };
        store.for_each_best_first(depth, |l| f(view(l)));
    }

    pub fn queue_position(&self, order_id: u64) -> Option<QueuePosition> {
        let idx = self.index.get(order_id, |i| self.orders.get(i as usize).is_some_and(|o| o.id == order_id))?;
        let o = self.orders[idx as usize];
        // Walk back from the order to the head: no level lookup needed.
        let (mut ahead, mut size_ahead) = (0u32, 0u64);
        let mut cur = o.prev;
        while cur != NIL {
            ahead += 1;
            size_ahead += self.orders[cur as usize].size as u64;
            cur = self.orders[cur as usize].prev;
        }
        let side = if o.is_bid { b'B' } else { b'A' };
        Some(QueuePosition { side, price: o.price, size: o.size, orders_ahead: ahead, size_ahead })
    }

    /// Every resting order as (order_id, side, price, size): bids then asks, best level
    /// first, each level in queue order. This is the order of an MBO snapshot.
    pub fn orders_in_queue_order(&self) -> Vec<(u64, u8, i64, u32)> {
        let mut out = Vec::with_capacity(self.index.len());
        for (store, side) in [(&self.bids, b'B'), (&self.asks, b'A')] {
            store.for_each_best_first(usize::MAX, |level| {
                let mut cur = level.head;
                while cur != NIL {
                    let o = &self.orders[cur as usize];
                    out.push((o.id, side, o.price, o.size));
                    cur = o.next;
                }
            });
        }
        out
    }

    /// Order count per store kind, for diagnostics: true while both sides use the ladder.
    pub fn uses_ladder(&self) -> bool {
        self.bids.is_ladder() && self.asks.is_ladder()
    }

    /// An order at slab entry `idx` shrank by `by` lots in place.
    #[inline(always)]
    fn reduce_level(&mut self, idx: u32, is_bid: bool, by: u32) {
        if let Some(slot) = self.slot_of(idx) {
            let store = if is_bid { &mut self.bids } else { &mut self.asks };
            store.level_mut(slot).size -= by as u64;
            self.top_dirty |= store.is_best(slot);
        }
    }

    /// The order's level slot: cached, or recomputed after the store moved its slots. The
    /// cached slot is also checked against the order's price, so a wrapped generation
    /// counter can never point an update at the wrong level. None only in a corrupt book.
    #[inline(always)]
    fn slot_of(&mut self, idx: u32) -> Option<usize> {
        let o = self.orders[idx as usize];
        let store = if o.is_bid { &self.bids } else { &self.asks };
        let generation = store.generation();
        if o.generation == generation && store.level_at(o.slot as usize, o.price).is_some() {
            return Some(o.slot as usize);
        }
        let slot = store.find(o.price)?;
        let o = &mut self.orders[idx as usize];
        o.slot = slot as u32;
        o.generation = generation;
        Some(slot)
    }

    /// A free slab entry for a new order.
    #[inline]
    fn alloc(&mut self) -> u32 {
        match self.free.pop() {
            Some(i) => i,
            None => {
                self.orders.push(Order { id: 0, price: 0, size: 0, add_size: 0, slot: 0, generation: 0, prev: NIL, next: NIL, is_bid: false });
                (self.orders.len() - 1) as u32
            }
        }
    }

    /// Writes the order into slab entry `idx` and appends it to the queue at `price`.
    #[inline(always)]
    fn link(&mut self, idx: u32, order_id: u64, is_bid: bool, price: i64, size: u32) {
        let store = if is_bid { &mut self.bids } else { &mut self.asks };
        let slot = store.slot_for(price);
        let generation = store.generation();
        let level = store.level_mut(slot);
        let old_tail = level.tail;
        level.size += size as u64;
        level.count += 1;
        level.tail = idx;
        let first = old_tail == NIL;
        if first {
            level.head = idx;
            store.occupied(slot);
        } else {
            self.orders[old_tail as usize].next = idx;
        }
        self.top_dirty |= store.is_best(slot);
        self.orders[idx as usize] = Order { id: order_id, price, size, add_size: size, slot: slot as u32, generation, prev: old_tail, next: NIL, is_bid };
    }

    /// Takes the order at slab entry `idx` out of its queue and level (the entry and its
    /// index slot stay).
    #[inline(always)]
    fn unlink(&mut self, idx: u32) {
        let slot = self.slot_of(idx);
        let o = self.orders[idx as usize];
        // Whether the order ends its queue depends on the data: as branches, these tests
        // mispredicted ~0.24 times per ES record. Selects instead: at a queue end the store
        // goes to the order itself and writes back the link it already holds.
        let before = if o.prev != NIL { o.prev } else { idx };
        self.orders[before as usize].next = o.next;
        let after = if o.next != NIL { o.next } else { idx };
        self.orders[after as usize].prev = o.prev;
        let Some(slot) = slot else { return };
        let store = if o.is_bid { &mut self.bids } else { &mut self.asks };
        let level = store.level_mut(slot);
        level.head = if level.head == idx { o.next } else { level.head };
        level.tail = if level.tail == idx { o.prev } else { level.tail };
        level.size -= o.size as u64;
        level.count -= 1;
        let emptied = level.count == 0;
        self.top_dirty |= store.is_best(slot);
        if emptied {
            store.vacated(slot);
        }
    }

    /// Removes the order whose index slot is `pos` and slab entry `idx`.
    #[inline(always)]
    fn remove_order(&mut self, pos: usize, idx: u32) {
        self.unlink(idx);
        self.index.remove_at(pos);
        self.free.push(idx);
    }
}

/// An instrument's L3 book plus the event state that MBO application needs.
#[derive(Default)]
pub struct MboBook {
    pub book: L3Book,
    /// An event is open (no F_LAST yet): the book is mid-update.
    pub in_event: bool,
    in_snapshot: bool,
    /// A snapshot rebuilt the book since `take_rebuilt` last looked: the next published top
    /// is not order flow (activity counts exclude F_SNAPSHOT records).
    rebuilt: bool,
}

impl MboBook {
    /// Forgets an open event or snapshot (the stream that carried it is gone).
    pub fn reset_event(&mut self) {
        self.in_event = false;
        self.in_snapshot = false;
    }
    /// Applies one MBO record (A/C/M/R change the book; T/F/N never do). Returns true at
    /// F_LAST, when the book may be read.
    #[inline(always)]
    pub fn apply(&mut self, m: &dbn::MboMsg) -> bool {
        self.begin(m);
        match m.action as u8 {
            b'A' => self.book.add(m.order_id, m.side as u8, m.price, m.size),
            b'C' => self.book.cancel(m.order_id, m.size),
            b'M' => self.book.modify(m.order_id, m.side as u8, m.price, m.size),
            b'R' => self.book.clear(),
            _ => {}
        }
        self.end(m)
    }

    /// `apply` before the action: a snapshot's first record resets the book.
    #[inline(always)]
    pub fn begin(&mut self, m: &dbn::MboMsg) {
        if m.flags.raw() & dbn::flags::SNAPSHOT != 0 && !self.in_snapshot {
            // A snapshot replaces the book; files before 2024-02-10 start it without an R.
            self.in_snapshot = true;
            self.rebuilt = true;
            self.book.clear();
        }
    }

    /// Whether a snapshot rebuilt the book since the last call (see `rebuilt`).
    #[inline(always)]
    pub fn take_rebuilt(&mut self) -> bool {
        std::mem::take(&mut self.rebuilt)
    }

    /// `apply` after the action (which the caller may have dispatched itself): the event
    /// state. True at F_LAST.
    #[inline(always)]
    pub fn end(&mut self, m: &dbn::MboMsg) -> bool {
        let f = m.flags.raw();
        let last = f & dbn::flags::LAST != 0;
        self.in_event = !last;
        if last {
            self.in_snapshot = false;
        }
        last
    }
}

fn view(l: &Level) -> LevelView {
    LevelView { price: l.price, size: l.size, count: l.count }
}

/// The book as last sent in MBP-10 records: each record carries all ten levels.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mbp10Book {
    pub levels: [dbn::BidAskPair; 10],
    pub valid: bool,
}

impl Mbp10Book {
    pub fn apply(&mut self, levels: &[dbn::BidAskPair; 10]) {
        self.levels = *levels;
        self.valid = true;
    }

    pub fn top(&self) -> Top {
        let l = &self.levels[0];
        let side = |px: i64, sz: u32, ct: u32| {
            if px == UNDEF_PRICE {
                EMPTY_LEVEL
            } else {
                LevelView { price: px, size: sz as u64, count: ct }
            }
        };
        Top { bid: side(l.bid_px, l.bid_sz, l.bid_ct), ask: side(l.ask_px, l.ask_sz, l.ask_ct) }
    }
}

#[cfg(test)]
#[path = "book_tests.rs"]
mod tests;

/// One side's best non-empty levels into `out`, best first, `blank` past the last; returns how
/// many levels it wrote. The walk behind `fill_levels` and `fill_sizes` (monomorphised per use,
/// so each keeps its own tight loop).
#[inline]
fn fill_best<T: Copy>(store: &LevelStore, out: &mut [T], blank: T, map: impl Fn(&Level) -> T) -> usize {
    let (levels, rev, nonempty) = store.best_first();
    let want = out.len().min(nonempty);
    let mut n = 0;
    let mut take = |l: &Level| {
        if l.count > 0 {
            if let Some(o) = out.get_mut(n) {
                *o = map(l);
            }
            n += 1;
        }
        n < want
    };
    if want > 0 {
        if rev {
            levels.iter().rev().take_while(|l| take(l)).for_each(drop);
        } else {
            levels.iter().take_while(|l| take(l)).for_each(drop);
        }
    }
    for slot in out.iter_mut().skip(n) {
        *slot = blank;
    }
    n
}
