//! Preallocated single-writer rings of fixed-size `repr(C)` records.
//!
//! Capacity is a power of two fixed at construction; `push` never allocates. When the ring
//! is full the oldest slot is overwritten. `written` counts every record ever pushed, so a
//! reader holding a cursor knows it was lapped when `written - cursor > capacity`, and by
//! how much. Python reads the memory in place through the buffer protocol (see
//! `python::RingView`); the record structs here mirror the numpy dtypes in `aurum/rings.py`.

use std::ptr::NonNull;

/// A trade print, from MBO `T`, the trades schema, or MBP records with action `T`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TradeRec {
    pub ts_event: u64,
    pub ts_recv: u64,
    pub price: i64,
    /// The aggressor's order id for MBO `T` records, 0 otherwise.
    pub order_id: u64,
    pub size: u32,
    pub instrument_id: u32,
    /// Aggressor side as ASCII: `B` buy, `A` sell, `N` none.
    pub side: u8,
    pub flags: u8,
    /// The rtype the trade came from.
    pub rtype: u8,
    pub _pad: [u8; 5],
}

/// A top-of-book change, published only at `F_LAST` boundaries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopRec {
    pub ts_event: u64,
    pub ts_recv: u64,
    pub bid_px: i64,
    pub ask_px: i64,
    pub bid_sz: u32,
    pub ask_sz: u32,
    pub bid_ct: u32,
    pub ask_ct: u32,
    pub instrument_id: u32,
    pub flags: u8,
    pub rtype: u8,
    pub _pad: [u8; 2],
    /// The DBN `sequence` of the record that closed the event.
    pub sequence: u64,
}

/// A closed bar (time, tick or volume).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BarRec {
    pub ts_open: u64,
    /// Time bars: the boundary that closed the bar. Tick and volume bars: the last trade.
    pub ts_close: u64,
    pub open: i64,
    pub high: i64,
    pub low: i64,
    pub close: i64,
    pub volume: u64,
    pub buy_volume: u64,
    pub sell_volume: u64,
    /// Volume-weighted average price in price units (not fixed-point).
    pub vwap: f64,
    pub trade_count: u32,
    pub instrument_id: u32,
    pub kind: u8,
    pub _pad: [u8; 7],
}

const _: () = assert!(std::mem::size_of::<TradeRec>() == 48);
const _: () = assert!(std::mem::size_of::<TopRec>() == 64);
const _: () = assert!(std::mem::size_of::<BarRec>() == 96);

/// Fixed-capacity overwrite-oldest ring.
///
/// Memory is held as a raw allocation rather than a `Box<[T]>` because Python keeps raw
/// pointers into it between calls: writing through `NonNull::add(..).write` never creates
/// a `&mut [T]` that would invalidate those pointers under Rust's aliasing rules.
pub struct Ring<T: Copy + Default> {
    ptr: NonNull<T>,
    mask: u64,
    written: u64,
}

// SAFETY: the ring exclusively owns its allocation (like a `Box<[T]>` of `Copy` data); the
// only other access is Python reading through the buffer protocol, which happens under the
// GIL and never while `push` runs (pushes happen inside `Pipeline` methods holding the GIL).
unsafe impl<T: Copy + Default + Send> Send for Ring<T> {}
// SAFETY: every method taking `&self` only reads (`get`, `written`, `raw_parts`); writes
// need `&mut self`, so shared references never race with a write.
unsafe impl<T: Copy + Default + Sync> Sync for Ring<T> {}

impl<T: Copy + Default> Ring<T> {
    /// Capacity is rounded up to a power of two, at least 2.
    pub fn new(capacity: usize) -> Self {
        let cap = capacity.max(2).next_power_of_two();
        let boxed: Box<[T]> = vec![T::default(); cap].into_boxed_slice();
        // SAFETY: `Box::into_raw` never returns null.
        let ptr = unsafe { NonNull::new_unchecked(Box::into_raw(boxed) as *mut T) };
        let ring = Self { ptr, mask: (cap - 1) as u64, written: 0 };
        ring.prefault();
        ring
    }

    /// Touches every page now: zeroed allocations are mapped lazily, and a first-touch page
    /// fault costs microseconds that would otherwise land on the record path.
    fn prefault(&self) {
        let (base, len) = self.raw_parts();
        let base = base as *mut u8;
        let mut off = 0;
        while off < len {
            // SAFETY: `off < len`, inside the allocation; a volatile write of the byte's
            // current value (zero) keeps the compiler from eliding the touch.
            unsafe { std::ptr::write_volatile(base.add(off), std::ptr::read_volatile(base.add(off))) };
            off += 4096;
        }
    }

    #[inline]
    pub fn capacity(&self) -> usize {
        (self.mask + 1) as usize
    }

    /// Records ever written (the write sequence).
    #[inline]
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Times the writer has wrapped around the whole ring.
    #[inline]
    pub fn laps(&self) -> u64 {
        self.written / (self.mask + 1)
    }

    #[inline]
    pub fn push(&mut self, rec: T) {
        let slot = (self.written & self.mask) as usize;
        // SAFETY: `slot <= mask < capacity`, inside the allocation made in `new`.
        unsafe { self.ptr.as_ptr().add(slot).write(rec) };
        self.written += 1;
    }

    /// The record with write sequence `seq`, if it has not been overwritten yet.
    pub fn get(&self, seq: u64) -> Option<T> {
        if seq >= self.written || self.written - seq > self.mask + 1 {
            return None;
        }
        // SAFETY: the index is masked into the allocation; `T: Copy`.
        Some(unsafe { self.ptr.as_ptr().add((seq & self.mask) as usize).read() })
    }

    /// Base pointer and length in bytes, for the Python buffer protocol.
    pub fn raw_parts(&self) -> (*const u8, usize) {
        (self.ptr.as_ptr() as *const u8, self.capacity() * std::mem::size_of::<T>())
    }
}

impl<T: Copy + Default> Drop for Ring<T> {
    fn drop(&mut self) {
        let cap = self.capacity();
        // SAFETY: reconstructs exactly the boxed slice leaked in `new` (same pointer, length).
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), cap)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_rounds_up_to_power_of_two() {
        assert_eq!(Ring::<TradeRec>::new(1000).capacity(), 1024);
        assert_eq!(Ring::<TradeRec>::new(0).capacity(), 2);
    }

    #[test]
    fn overwrites_oldest_and_counts_laps() {
        let mut r = Ring::<TradeRec>::new(4);
        for i in 0..10u64 {
            r.push(TradeRec { ts_event: i, ..Default::default() });
        }
        assert_eq!(r.written(), 10);
        assert_eq!(r.laps(), 2);
        // 0..6 are gone, 6..10 remain.
        assert_eq!(r.get(5), None);
        assert_eq!(r.get(6).unwrap().ts_event, 6);
        assert_eq!(r.get(9).unwrap().ts_event, 9);
        assert_eq!(r.get(10), None);
    }
}
