//! The Rust reader of a signal segment (tests and Rust consumers); `aurum.consumer` is the
//! Python twin and `native/include/aurum_shm_reader.c` the C one. Protocol in `super`.

use std::fs::File;
use std::io;
use std::ptr;
use std::sync::atomic::{fence, Ordering};

use super::*;

/// Why a segment was refused.
fn refuse(path: &std::path::Path, why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("shared-memory segment {}: {why}", path.display()))
}

/// A read-only reader (tests and Rust consumers); `aurum.consumer` is the Python twin.
pub struct ShmSignalReader {
    map: Mapping,
    _file: File,
    mask: u64,
    next: u64,
    epoch: u64,
    /// Signals lost to laps since open.
    pub lost: u64,
}

impl ShmSignalReader {
    pub fn open(name: &str) -> io::Result<Self> {
        let path = segment_path(name)?;
        let file = File::open(&path).map_err(|e| io::Error::new(e.kind(), format!("shared-memory segment {}: {e}", path.display())))?;
        let len = file.metadata()?.len() as usize;
        if len < RING_OFFSET {
            return Err(refuse(&path, format!("{len} bytes, too small for the header")));
        }
        let map = Mapping::new(&file, len, false)?;
        if map.atomic(OFF_MAGIC).load(Ordering::Acquire) != u64::from_le_bytes(MAGIC) {
            return Err(refuse(&path, "bad magic (not an Aurum segment, or being initialised)".into()));
        }
        let (ver, hash) = (map.read_u32(OFF_VERSION), map.atomic(OFF_LAYOUT_HASH).load(Ordering::Relaxed));
        if ver != VERSION || hash != LAYOUT_HASH {
            return Err(refuse(&path, format!("layout v{ver} hash {hash:#018x}, this reader expects v{VERSION} hash {LAYOUT_HASH:#018x}")));
        }
        let cap = map.read_u32(OFF_CAPACITY);
        if !cap.is_power_of_two() || RING_OFFSET + cap as usize * RECORD_SIZE > len {
            return Err(refuse(&path, format!("capacity {cap} does not fit the {len}-byte file")));
        }
        let epoch = map.atomic(OFF_EPOCH).load(Ordering::Relaxed);
        let next = map.atomic(OFF_WRITE_SEQ).load(Ordering::Acquire);
        Ok(Self { map, _file: file, mask: cap as u64 - 1, next, epoch, lost: 0 })
    }

    /// Reads from the oldest record still in the ring instead of only new ones.
    pub fn rewind(&mut self) {
        let w = self.map.atomic(OFF_WRITE_SEQ).load(Ordering::Acquire);
        self.next = w.saturating_sub(self.mask + 1);
    }

    pub fn heartbeat_ns(&self) -> u64 {
        self.map.atomic(OFF_HEARTBEAT).load(Ordering::Acquire)
    }

    /// Appends up to `max` new signals to `out`; returns how many were lost to laps.
    pub fn poll(&mut self, out: &mut Vec<SignalRecord>, max: usize) -> u64 {
        let lost_before = self.lost;
        if self.map.atomic(OFF_MAGIC).load(Ordering::Acquire) != u64::from_le_bytes(MAGIC) {
            return 0;
        }
        let epoch = self.map.atomic(OFF_EPOCH).load(Ordering::Acquire);
        let cap = self.mask + 1;
        let mut w = self.map.atomic(OFF_WRITE_SEQ).load(Ordering::Acquire);
        if epoch != self.epoch || w < self.next {
            // A new writer: everything it wrote is new to us.
            self.epoch = epoch;
            self.next = 0;
        }
        let start = out.len();
        while self.next < w && out.len() - start < max {
            // The writer may already be overwriting slot `w - cap`: never expect older.
            if w - self.next > cap {
                self.lost += w - cap - self.next;
                self.next = w - cap;
            }
            let seq = self.next;
            let off = RING_OFFSET + (seq & self.mask) as usize * RECORD_SIZE;
            let lock = self.map.atomic(off);
            let l1 = lock.load(Ordering::Acquire);
            if l1 < 2 * seq + 2 {
                break; // not there yet (or a reinit zeroed it): next poll sorts it out
            }
            // SAFETY: the slot is inside the mapping; volatile because the writer process
            // may change it concurrently, which the lock re-check below detects.
            let rec = unsafe { ptr::read_volatile(self.map.base.as_ptr().add(off + 8) as *const SignalRecord) };
            fence(Ordering::Acquire);
            let l2 = lock.load(Ordering::Relaxed);
            self.next = seq + 1;
            if l1 == 2 * seq + 2 && l2 == l1 {
                out.push(rec);
            } else {
                // Overwritten by a later lap before or while we copied it.
                self.lost += 1;
                w = self.map.atomic(OFF_WRITE_SEQ).load(Ordering::Acquire);
            }
        }
        // A reinit during the loop would have changed the epoch: drop what we read.
        if self.map.atomic(OFF_EPOCH).load(Ordering::Acquire) != self.epoch {
            out.truncate(start);
            self.lost = lost_before;
            return 0;
        }
        self.lost - lost_before
    }

    /// A consistent copy of the state block and its update count, or None if the writer
    /// kept changing it for `tries` attempts (or has never written it).
    pub fn state(&self, tries: u32) -> Option<(StateBlock, u64)> {
        let lock = self.map.atomic(STATE_OFFSET);
        for _ in 0..tries {
            let l1 = lock.load(Ordering::Acquire);
            if l1 == 0 {
                return None;
            }
            if l1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            // SAFETY: the state block is inside the mapping; volatile for the same reason
            // as in `poll`.
            let s = unsafe { ptr::read_volatile(self.map.base.as_ptr().add(STATE_OFFSET + 8) as *const StateBlock) };
            fence(Ordering::Acquire);
            if lock.load(Ordering::Relaxed) == l1 {
                return Some((s, l1 / 2));
            }
        }
        None
    }
}
