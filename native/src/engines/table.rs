//! A fixed-capacity table of `repr(C)` rows that are updated in place (icebergs, zones).
//!
//! Rows are appended until the table is full; then `push` refuses and the caller counts the
//! loss. Memory is one raw allocation made at construction, for the same reason as `Ring`:
//! Python keeps raw pointers into it between calls (numpy views), so the table must never
//! move and never hand out a `&mut [T]` over the whole allocation.

use std::ptr::NonNull;

pub struct Table<T: Copy + Default> {
    ptr: NonNull<T>,
    cap: usize,
    len: usize,
}

// SAFETY: the table exclusively owns its allocation (like a `Box<[T]>` of `Copy` data);
// Python only reads it through the buffer protocol under the GIL, never during a call that
// mutates it (those hold the GIL too).
unsafe impl<T: Copy + Default + Send> Send for Table<T> {}
// SAFETY: `&self` methods only read; writes need `&mut self`.
unsafe impl<T: Copy + Default + Sync> Sync for Table<T> {}

impl<T: Copy + Default> Table<T> {
    pub fn new(capacity: usize) -> Self {
        let cap = capacity.max(1);
        let boxed: Box<[T]> = vec![T::default(); cap].into_boxed_slice();
        // SAFETY: `Box::into_raw` never returns null.
        let ptr = unsafe { NonNull::new_unchecked(Box::into_raw(boxed) as *mut T) };
        Self { ptr, cap, len: 0 }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Appends a row; `None` when the table is full.
    #[inline]
    pub fn push(&mut self, row: T) -> Option<u32> {
        if self.len == self.cap {
            return None;
        }
        // SAFETY: `len < cap`, inside the allocation.
        unsafe { self.ptr.as_ptr().add(self.len).write(row) };
        self.len += 1;
        Some((self.len - 1) as u32)
    }

    #[inline]
    pub fn get(&self, i: u32) -> Option<&T> {
        if (i as usize) < self.len {
            // SAFETY: `i < len <= cap`, an initialised row inside the allocation.
            Some(unsafe { &*self.ptr.as_ptr().add(i as usize) })
        } else {
            None
        }
    }

    #[inline]
    pub fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        if (i as usize) < self.len {
            // SAFETY: as in `get`; `&mut self` makes this the only live reference.
            Some(unsafe { &mut *self.ptr.as_ptr().add(i as usize) })
        } else {
            None
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        // SAFETY: rows `0..len` are initialised and inside the allocation.
        (0..self.len).map(move |i| unsafe { &*self.ptr.as_ptr().add(i) })
    }

    /// Forgets every row (a new session). Capacity and memory are kept.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Base pointer and the byte length of the rows in use, for the Python buffer protocol.
    pub fn raw_parts(&self) -> (*const u8, usize) {
        (self.ptr.as_ptr() as *const u8, self.len * std::mem::size_of::<T>())
    }
}

impl<T: Copy + Default> Drop for Table<T> {
    fn drop(&mut self) {
        // SAFETY: reconstructs exactly the boxed slice leaked in `new` (same pointer, length).
        unsafe { drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.cap))) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_then_refuses_and_updates_in_place() {
        let mut t = Table::<u64>::new(3);
        assert_eq!(t.push(1), Some(0));
        assert_eq!(t.push(2), Some(1));
        assert_eq!(t.push(3), Some(2));
        assert_eq!(t.push(4), None);
        *t.get_mut(1).unwrap() = 20;
        assert_eq!(t.iter().copied().collect::<Vec<_>>(), vec![1, 20, 3]);
        assert_eq!(t.get(3), None);
        t.clear();
        assert!(t.is_empty());
        assert_eq!(t.raw_parts().1, 0);
    }
}
