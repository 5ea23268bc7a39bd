//! Shared-memory signal output: one writer (the daemon), any number of read-only readers
//! (Python `aurum.consumer`, the C header `native/include/aurum_shm.h`, `aurum tail`).
//!
//! The segment is a file in `/dev/shm` (`shm_open` is exactly that on Linux):
//!
//! ```text
//! [0, 256)        header: magic, version, layout hash, geometry, pid, epoch,
//!                 write_seq and notify (own cache line, @64/@72), heartbeat_ns (own line, @128)
//! [256, 1280)     latest-state block, guarded by a seqlock (lock word @256)
//! [1280, ...)     ring of `capacity` 256-byte signal slots, each with its own seqlock
//! ```
//!
//! The ring is lossy broadcast (performance.md §5.5): the writer never looks at readers, so
//! a slow reader can never slow the daemon. Each slot's lock word encodes the global
//! sequence it holds (`2*seq+1` while being written, `2*seq+2` once complete), which is what
//! lets a reader tell "torn" from "lapped": a per-slot seqlock alone would happily return a
//! consistent record from a later lap. Readers count what they lost; nothing is an error.
//!
//! Memory ordering follows the seqlock rules of performance.md §5.4 (Boehm, HPL-2012-68):
//! writer `lock = odd (relaxed); fence(release); payload; lock = even (release)`; reader
//! `lock (acquire); payload copy; fence(acquire); lock again`, retry if odd or changed.
//!
//! Every field's offset is fixed by `LAYOUT_DESC`; its FNV-1a hash sits in the header so a
//! reader built against another layout refuses the segment instead of misreading it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::ptr::{self, NonNull};
use std::sync::atomic::{fence, AtomicU64, Ordering};

pub const SHM_DIR: &str = "/dev/shm";
pub const DEFAULT_NAME: &str = "aurum-signals";
pub const DEFAULT_MODE: u32 = 0o600;
pub const DEFAULT_CAPACITY: u32 = 4096;
/// 2^22 slots of 256 bytes: a 1 GiB ring is already far beyond any sane signal backlog.
pub const MAX_CAPACITY: u32 = 1 << 22;

pub const MAGIC: [u8; 8] = *b"AURUMSHM";
pub const VERSION: u32 = 3;
pub const HEADER_SIZE: usize = 256;
pub const STATE_OFFSET: usize = 256;
pub const STATE_SIZE: usize = 1024;
pub const RING_OFFSET: usize = STATE_OFFSET + STATE_SIZE;
pub const RECORD_SIZE: usize = 256;
pub const MAX_ZONES: usize = 32;
pub const REASON_LEN: usize = 112;

/// Prices are i64 fixed point, 1e-9 units (the DBN convention); `UNDEF_PRICE` means "none".
pub const PRICE_SCALE: i64 = 1_000_000_000;
pub const UNDEF_PRICE: i64 = i64::MAX;

pub const ACTION_FLAT: u8 = 0; pub const ACTION_BUY: u8 = 1; pub const ACTION_SELL: u8 = 2;
pub const SOURCE_DATABENTO: u8 = 0; pub const SOURCE_YAHOO: u8 = 1; pub const SOURCE_REPLAY: u8 = 2;
pub const FEED_DOWN: u8 = 0; pub const FEED_LIVE: u8 = 1; pub const FEED_STALE: u8 = 2; pub const FEED_RECOVERING: u8 = 3;

// Header field offsets (see LAYOUT_DESC). write_seq and heartbeat sit on their own cache
// lines so readers spinning on write_seq never share a line with geometry they re-read.
const OFF_MAGIC: usize = 0; const OFF_VERSION: usize = 8; const OFF_HEADER_SIZE: usize = 12;
const OFF_LAYOUT_HASH: usize = 16; const OFF_CAPACITY: usize = 24; const OFF_RECORD_SIZE: usize = 28;
const OFF_STATE_OFFSET: usize = 32; const OFF_STATE_SIZE: usize = 36; const OFF_RING_OFFSET: usize = 40;
const OFF_WRITER_PID: usize = 44; const OFF_TOTAL_SIZE: usize = 48; const OFF_EPOCH: usize = 56;
const OFF_WRITE_SEQ: usize = 64; const OFF_NOTIFY: usize = 72; const OFF_HEARTBEAT: usize = 128;

/// The canonical layout description. Identical strings live in `aurum_shm.h` and
/// `aurum/consumer.py`; tests check all three agree. Change a field: bump VERSION and this.
pub const LAYOUT_DESC: &str = concat!(
    "aurum-shm/3;",
    "header=256{magic:u8[8]@0,version:u32@8,header_size:u32@12,layout_hash:u64@16,capacity:u32@24,",
    "record_size:u32@28,state_offset:u32@32,state_size:u32@36,ring_offset:u32@40,writer_pid:u32@44,",
    "total_size:u64@48,epoch:u64@56,write_seq:u64@64,notify:u64@72,heartbeat_ns:u64@128};",
    "state=1024@256{lock:u64@0,update_ts:u64@8,last:i64@16,bid:i64@24,ask:i64@32,volume:u64@40,",
    "market_ts:u64@48,instrument_id:u32@56,source:u8@60,feed_state:u8@61,zone_count:u16@62,",
    "pillar_dir:f32[5]@64,pillar_conf:f32[5]@84,ts_out:u64@104,zones:zone[32]@128,crc32:u32@1020};",
    "zone=24{price:i64@0,volume:u32@8,strength:f32@12,side:u8@16,kind:u8@17,state:u8@18};",
    "signal=256@1280{lock:u64@0,seq:u64@8,ts:u64@16,instrument_id:u32@24,action:u8@28,flags:u8@29,",
    "veto:u16@30,entry:i64@32,stop:i64@40,targets:i64[3]@48,direction:f64@72,confidence:f64@80,",
    "pillar_dir:f32[5]@88,pillar_conf:f32[5]@108,reason:char[112]@128,ts_out:u64@240,crc32:u32@252};",
    "price=i64e-9;lock=seqlock(2*seq+1 writing,2*seq+2 done);crc32=ieee(bytes[8,size-4))"
);

/// FNV-1a, 64-bit: trivially re-implemented in C and Python, which is all a layout hash needs.
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

pub const LAYOUT_HASH: u64 = fnv1a64(LAYOUT_DESC.as_bytes());

/// Slicing-by-8 tables: 8 bytes per step keeps the checksum of a 244-byte signal ~100 ns
/// instead of ~600 ns bytewise.
const CRC_TABLES: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            t[k][i] = (t[k - 1][i] >> 8) ^ t[0][(t[k - 1][i] & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

/// CRC-32 (IEEE, as zlib): Python checks it with `zlib.crc32`, so readers on weaker memory
/// models than x86 have a second line of defence against a torn copy.
pub fn crc32(bytes: &[u8]) -> u32 {
    let t = &CRC_TABLES;
    let mut c = !0u32;
    let mut chunks = bytes.chunks_exact(8);
    for b in &mut chunks {
        let lo = c ^ u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let hi = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        c = t[7][(lo & 0xff) as usize] ^ t[6][((lo >> 8) & 0xff) as usize] ^ t[5][((lo >> 16) & 0xff) as usize] ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize] ^ t[2][((hi >> 8) & 0xff) as usize] ^ t[1][((hi >> 16) & 0xff) as usize] ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        c = t[0][((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// One signal: the 248 bytes after a slot's lock word. `seq` and `crc32` are set by the writer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SignalRecord {
    pub seq: u64,
    pub ts_ns: u64,
    pub instrument_id: u32,
    pub action: u8,
    pub flags: u8,
    pub veto: u16,
    pub entry: i64,
    pub stop: i64,
    pub targets: [i64; 3],
    pub direction: f64,
    pub confidence: f64,
    pub pillar_dir: [f32; 5],
    pub pillar_conf: [f32; 5],
    /// UTF-8, NUL-padded; at most `REASON_LEN - 1` bytes so C can treat it as a C string.
    pub reason: [u8; REASON_LEN],
    /// Gateway send time (DBN `ts_out`, UNIX ns) of the record whose arrival closed the bar
    /// this signal was decided on; 0 when unknown (wall-clock bar close, no `ts_out`, replay).
    /// `reader clock - ts_out` is the end-to-end latency a consumer sees.
    pub ts_out: u64,
    pub _pad: u32,
    pub crc32: u32,
}

/// An active price zone in the state block.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Zone {
    pub price: i64,
    pub volume: u32,
    pub strength: f32,
    /// `B` or `A` (ASCII), as in the engines' ZoneRec.
    pub side: u8,
    pub kind: u8,
    pub state: u8,
    pub _pad: [u8; 5],
}

/// The latest-state block: the 1016 bytes after the state lock word.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StateBlock {
    pub update_ts: u64,
    pub last: i64,
    pub bid: i64,
    pub ask: i64,
    pub volume: u64,
    pub market_ts: u64,
    pub instrument_id: u32,
    pub source: u8,
    pub feed_state: u8,
    pub zone_count: u16,
    pub pillar_dir: [f32; 5],
    pub pillar_conf: [f32; 5],
    /// Gateway send time (UNIX ns) of the newest record processed when this state was
    /// written; 0 when unknown. `reader clock - ts_out` is the record path's end-to-end delay.
    pub ts_out: u64,
    pub _pad: [u8; 16],
    pub zones: [Zone; MAX_ZONES],
    pub _pad2: [u8; 124],
    pub crc32: u32,
}

// The layout is an ABI: pin every size and the offsets the description names (+8 for the
// lock word in front of each payload).
const _: () = {
    assert!(size_of::<SignalRecord>() + 8 == RECORD_SIZE);
    assert!(size_of::<StateBlock>() + 8 == STATE_SIZE);
    assert!(size_of::<Zone>() == 24);
    assert!(offset_of!(SignalRecord, instrument_id) + 8 == 24);
    assert!(offset_of!(SignalRecord, entry) + 8 == 32);
    assert!(offset_of!(SignalRecord, direction) + 8 == 72);
    assert!(offset_of!(SignalRecord, pillar_dir) + 8 == 88);
    assert!(offset_of!(SignalRecord, pillar_conf) + 8 == 108);
    assert!(offset_of!(SignalRecord, reason) + 8 == 128);
    assert!(offset_of!(SignalRecord, ts_out) + 8 == 240);
    assert!(offset_of!(SignalRecord, crc32) + 8 == 252);
    assert!(offset_of!(StateBlock, instrument_id) + 8 == 56);
    assert!(offset_of!(StateBlock, zone_count) + 8 == 62);
    assert!(offset_of!(StateBlock, pillar_dir) + 8 == 64);
    assert!(offset_of!(StateBlock, pillar_conf) + 8 == 84);
    assert!(offset_of!(StateBlock, ts_out) + 8 == 104);
    assert!(offset_of!(StateBlock, zones) + 8 == 128);
    assert!(offset_of!(StateBlock, crc32) + 8 == 1020);
    assert!(offset_of!(Zone, side) == 16);
};

impl Default for SignalRecord {
    fn default() -> Self {
        // SAFETY: a struct of integers, floats and byte arrays only: all-zero bytes are a
        // valid value (0, 0.0, NUL), as the C and Python readers assume too.
        let zero: Self = unsafe { std::mem::zeroed() };
        Self { entry: UNDEF_PRICE, stop: UNDEF_PRICE, targets: [UNDEF_PRICE; 3], ..zero }
    }
}

impl Default for StateBlock {
    fn default() -> Self {
        // SAFETY: as for SignalRecord: integers, floats, byte arrays and `Zone`s of the same.
        let zero: Self = unsafe { std::mem::zeroed() };
        Self { last: UNDEF_PRICE, bid: UNDEF_PRICE, ask: UNDEF_PRICE, ..zero }
    }
}

/// The bytes of a POD record, for the checksum.
fn pod_bytes<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: only called with SignalRecord/StateBlock, `repr(C)` structs of integers,
    // floats and byte arrays whose explicit `_pad` fields leave no implicit padding (the
    // size asserts above prove the fields tile the struct), so every byte is initialised.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }
}

impl SignalRecord {
    /// Sets the reason, truncated at a UTF-8 boundary to leave at least one NUL.
    pub fn set_reason(&mut self, s: &str) {
        let mut n = s.len().min(REASON_LEN - 1);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.reason = [0; REASON_LEN];
        self.reason[..n].copy_from_slice(&s.as_bytes()[..n]);
    }

    pub fn reason_str(&self) -> &str {
        let n = self.reason.iter().position(|&b| b == 0).unwrap_or(REASON_LEN);
        std::str::from_utf8(&self.reason[..n]).unwrap_or("")
    }

    /// The checksum over everything but itself (slot bytes [8, 252)).
    pub fn compute_crc(&self) -> u32 {
        crc32(&pod_bytes(self)[..offset_of!(SignalRecord, crc32)])
    }
}

impl StateBlock {
    pub fn compute_crc(&self) -> u32 {
        crc32(&pod_bytes(self)[..offset_of!(StateBlock, crc32)])
    }
}

/// `/dev/shm/<name>`; the name must be a plain file name.
pub fn segment_path(name: &str) -> io::Result<PathBuf> {
    if name.is_empty() || name.len() > 255 || name.contains('/') || name.contains('\0') || name.starts_with('.') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("shared-memory segment name {name:?} must be a plain file name (no '/', not starting with '.')")));
    }
    Ok(PathBuf::from(SHM_DIR).join(name))
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// A `MAP_SHARED` mapping of a whole segment file, unmapped on drop.
struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: a Mapping owns its region like a Box owns its allocation; moving it to another
// thread moves that ownership. Mutation goes through `ShmSignalWriter`'s `&mut self`, and
// concurrent access (other processes) only through atomics and seqlock-validated copies.
unsafe impl Send for Mapping {}
// SAFETY: `&Mapping` only hands out `&AtomicU64` and volatile u32 reads of header fields that
// change only under `&mut ShmSignalWriter` (init); payload writes need `&mut` too.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(file: &File, len: usize, writable: bool) -> io::Result<Self> {
        let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        // Pre-fault the pages now: a first-touch fault costs microseconds on the signal path.
        #[cfg(target_os = "linux")]
        let flags = libc::MAP_SHARED | libc::MAP_POPULATE;
        #[cfg(not(target_os = "linux"))]
        let flags = libc::MAP_SHARED;
        // SAFETY: a fresh mapping (null hint) of `len` bytes of an open file descriptor; the
        // kernel validates every argument and reports failure as MAP_FAILED, checked below.
        let p = unsafe { libc::mmap(ptr::null_mut(), len, prot, flags, file.as_raw_fd(), 0) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(p as *mut u8).map(|base| Self { base, len }).ok_or_else(|| io::Error::other("mmap returned null"))
    }

    /// An atomic u64 at byte offset `off` of the segment.
    fn atomic(&self, off: usize) -> &AtomicU64 {
        assert!(off % 8 == 0 && off + 8 <= self.len);
        // SAFETY: in bounds and 8-aligned (checked; the base is page-aligned). The mapping
        // outlives `&self`. Every process touches these words only through atomic
        // operations (Rust AtomicU64, C11 atomics, or aligned 8-byte loads in Python), and
        // AtomicU64 has the same size and alignment as u64.
        unsafe { &*(self.base.as_ptr().add(off) as *const AtomicU64) }
    }

    fn read_u32(&self, off: usize) -> u32 {
        assert!(off + 4 <= self.len);
        // SAFETY: in bounds (checked); the mapping is live while `&self` is. Header geometry
        // is written only during initialisation, before `magic` is published with release.
        unsafe { ptr::read_volatile(self.base.as_ptr().add(off) as *const u32) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly what mmap returned; nothing borrows the mapping
        // any more (every borrow is tied to the owner being dropped).
        unsafe { libc::munmap(self.base.as_ptr() as *mut libc::c_void, self.len) };
    }
}

/// Reserves the file's `len` bytes on its filesystem. A tmpfs file only sized with
/// `set_len` is sparse: once `/dev/shm` is full, the first store to a missing page raises
/// SIGBUS and kills the writer. Allocated up front, a full tmpfs is an ENOSPC error here.
fn allocate(file: &File, len: usize) -> io::Result<()> {
    let n = libc::off_t::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment size overflows off_t"))?;
    loop {
        // SAFETY: a plain syscall on a descriptor `file` keeps open for the whole call; it
        // takes no pointers, so no memory of ours can be touched. It returns the error number
        // instead of setting errno.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, n) };
        match rc {
            0 => return Ok(()),
            libc::EINTR => continue,
            _ => return Err(io::Error::from_raw_os_error(rc)),
        }
    }
}

/// The single writer of a segment. Holds an exclusive `flock` on the file for its lifetime,
/// so a second writer fails fast and a dead writer's lock vanishes with its process.
pub struct ShmSignalWriter {
    map: Mapping,
    // Keeps the fd (and so the flock) alive; dropped after the mapping.
    _file: File,
    path: PathBuf,
    mask: u64,
    next_seq: u64,
    state_version: u64,
    unlink_on_drop: bool,
    // Readers are woken at each publication unless the owner batches wake-ups (`wake`).
    wake_on_publish: bool,
    wake_pending: bool,
}

/// The file starts as a segment of ours does: our magic, or zeros (a writer that died while
/// initialising it: `init` clears the magic first and publishes it last).
fn ours(file: &File) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 8];
    match file.read_exact_at(&mut head, OFF_MAGIC as u64) {
        Ok(()) => Ok(head == MAGIC || head == [0; 8]),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false), // shorter than a header
        Err(e) => Err(e),
    }
}

impl ShmSignalWriter {
    /// Creates `/dev/shm/<name>` (or takes over one left by a dead writer) with permissions
    /// exactly `mode`, sized for `capacity` (a power of two) signal slots.
    pub fn create(name: &str, capacity: u32, mode: u32) -> io::Result<Self> {
        let path = segment_path(name)?;
        if !capacity.is_power_of_two() || !(2..=MAX_CAPACITY).contains(&capacity) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("capacity was {capacity}, expected a power of two in 2..={MAX_CAPACITY}")));
        }
        if mode & !0o777 != 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("mode was {mode:o}, expected permission bits only (e.g. 600)")));
        }
        let len = RING_OFFSET + capacity as usize * RECORD_SIZE;
        // Two rounds: the second one runs after replacing a dead writer's segment of another size.
        for _ in 0..2 {
            let file = OpenOptions::new().read(true).write(true).create(true).mode(mode).open(&path)?;
            // SAFETY: flock on a descriptor we own; no memory is involved.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("{} is held by a live writer; only one writer per segment", path.display())));
                }
                return Err(e);
            }
            let meta = file.metadata()?;
            // Another writer may have replaced the file between our open and our lock.
            if fs::metadata(&path).map(|m| m.ino()).ok() != Some(meta.ino()) {
                continue;
            }
            if meta.len() != 0 && !ours(&file)? {
                // Someone else's file under this name (a typo'd shm.name, another program):
                // taking it over would destroy it.
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!(
                    "{} exists and is not an Aurum segment (it does not start with {:?}); not overwriting it: \
                     remove it or choose another shm.name", path.display(), String::from_utf8_lossy(&MAGIC))));
            }
            if meta.len() != 0 && meta.len() != len as u64 {
                // A dead writer's segment of another size. Resizing in place would SIGBUS
                // readers still mapping the old size, so give them a new inode instead: their
                // old mapping stays valid, its heartbeat goes stale, `aurum.consumer` reopens.
                fs::remove_file(&path)?;
                continue;
            }
            // Exactly `mode`, whatever the umask or the previous file's permissions were.
            file.set_permissions(fs::Permissions::from_mode(mode))?;
            if let Err(e) = allocate(&file, len) {
                if meta.len() == 0 {
                    // Ours and never initialised: readers would only find an empty file.
                    let _ = fs::remove_file(&path);
                }
                return Err(io::Error::new(e.kind(), format!(
                    "{}: cannot reserve {len} bytes ({:.1} MiB, capacity {capacity}): {e}; free space in {SHM_DIR} \
                     (df {SHM_DIR}) or lower shm.capacity", path.display(), len as f64 / (1 << 20) as f64)));
            }
            let map = Mapping::new(&file, len, true)?;
            let mut w = Self { map, _file: file, path, mask: capacity as u64 - 1, next_seq: 0, state_version: 0, unlink_on_drop: false,
                                wake_on_publish: true, wake_pending: false };
            w.init(capacity);
            return Ok(w);
        }
        Err(io::Error::other(format!("{} keeps being replaced by another writer", path.display())))
    }

    /// (Re)initialises the segment. Readers attached to a previous writer's segment see
    /// `magic` vanish, then a new `epoch` and a `write_seq` that went backwards: they resync.
    fn init(&mut self, capacity: u32) {
        let magic = self.map.atomic(OFF_MAGIC);
        let old_epoch = self.map.atomic(OFF_EPOCH).load(Ordering::Relaxed);
        magic.store(0, Ordering::Relaxed);
        // The zeroed magic must be visible before any old slot is cleared (fence-fence
        // pairing with the readers' acquire fence, as for the seqlock's odd store).
        fence(Ordering::Release);
        let base = self.map.base.as_ptr();
        // SAFETY: [8, len) is inside the mapping; we are the only writer (flock held). The
        // zeroing resets every lock word and write_seq, so no slot can match a reader's
        // expected sequence until it is written again.
        unsafe { ptr::write_bytes(base.add(8), 0, self.map.len - 8) };
        let put32 = |off: usize, v: u32| {
            // SAFETY: every offset is a header field inside the 256-byte header, 4-aligned.
            unsafe { ptr::write_volatile(base.add(off) as *mut u32, v) }
        };
        put32(OFF_VERSION, VERSION);
        put32(OFF_HEADER_SIZE, HEADER_SIZE as u32);
        put32(OFF_CAPACITY, capacity);
        put32(OFF_RECORD_SIZE, RECORD_SIZE as u32);
        put32(OFF_STATE_OFFSET, STATE_OFFSET as u32);
        put32(OFF_STATE_SIZE, STATE_SIZE as u32);
        put32(OFF_RING_OFFSET, RING_OFFSET as u32);
        put32(OFF_WRITER_PID, std::process::id());
        let now = now_ns();
        self.map.atomic(OFF_LAYOUT_HASH).store(LAYOUT_HASH, Ordering::Relaxed);
        self.map.atomic(OFF_TOTAL_SIZE).store(self.map.len as u64, Ordering::Relaxed);
        self.map.atomic(OFF_EPOCH).store(now.max(old_epoch + 1), Ordering::Relaxed);
        self.map.atomic(OFF_HEARTBEAT).store(now, Ordering::Relaxed);
        // Publishing magic last (release): a reader that sees it sees the whole header.
        magic.store(u64::from_le_bytes(MAGIC), Ordering::Release);
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn capacity(&self) -> u32 {
        (self.mask + 1) as u32
    }

    /// Signals published so far (the next signal's sequence).
    pub fn written(&self) -> u64 {
        self.next_seq
    }

    pub fn set_unlink_on_drop(&mut self, on: bool) {
        self.unlink_on_drop = on;
    }

    /// Publishes one signal; returns its sequence. Never blocks, never allocates.
    pub fn publish(&mut self, rec: &SignalRecord) -> u64 {
        let seq = self.next_seq;
        let mut r = *rec;
        r.seq = seq;
        r._pad = 0;
        r.crc32 = r.compute_crc();
        let off = RING_OFFSET + (seq & self.mask) as usize * RECORD_SIZE;
        let lock = self.map.atomic(off);
        lock.store(2 * seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        // SAFETY: `off + RECORD_SIZE <= len` (slot index <= mask, len sized for capacity);
        // the source is a local, so the regions cannot overlap; we are the only writer.
        unsafe { ptr::copy_nonoverlapping(&r as *const SignalRecord as *const u8, self.map.base.as_ptr().add(off + 8), size_of::<SignalRecord>()) };
        lock.store(2 * seq + 2, Ordering::Release);
        self.next_seq = seq + 1;
        self.map.atomic(OFF_WRITE_SEQ).store(seq + 1, Ordering::Release);
        self.notify();
        seq
    }

    /// Counts a publication in `notify` and wakes readers blocked on it (FUTEX_WAKE on its
    /// low 32 bits), so a reader can sleep in the kernel instead of spinning or napping and
    /// still see a signal within a wake-up. Costs one syscall per publication (~2 us; up to
    /// ~200 us on a VM when it must wake an idle vCPU), which happen at bar closes and state
    /// refreshes, never per record.
    fn notify(&mut self) {
        self.map.atomic(OFF_NOTIFY).fetch_add(1, Ordering::Release);
        self.wake_pending = true;
        if self.wake_on_publish {
            self.wake();
        }
    }

    /// Whether each publication wakes blocked readers at once (the default). A writer that
    /// publishes several things in a row (a signal, then the state) can turn it off and call
    /// `wake` once after the last: a woken reader then never preempts it mid-way.
    pub fn set_wake_on_publish(&mut self, on: bool) {
        self.wake_on_publish = on;
    }

    /// Wakes readers blocked on `notify` if anything was published since the last wake.
    pub fn wake(&mut self) {
        if !std::mem::take(&mut self.wake_pending) {
            return;
        }
        let word = self.map.atomic(OFF_NOTIFY);
        #[cfg(not(target_os = "linux"))]
        let _ = word; // no futexes: readers nap instead
        #[cfg(target_os = "linux")]
        {
            // The futex word is the counter's low half: its first 4 bytes on little-endian.
            #[cfg(target_endian = "little")]
            let addr = word.as_ptr() as *const u32;
            #[cfg(target_endian = "big")]
            let addr = (word.as_ptr() as *const u32).wrapping_add(1);
            // SAFETY: FUTEX_WAKE only uses `addr` to find waiters (it must be a 4-aligned
            // address in a mapping of ours: it is 8-aligned and inside the segment, which
            // outlives this call); it reads or writes no memory of ours. A shared (not
            // FUTEX_PRIVATE) futex, since readers are other processes mapping the same file.
            // The result (waiters woken, or an error) needs no handling: waking is advisory,
            // readers also wake on their timeout.
            unsafe {
                libc::syscall(libc::SYS_futex, addr, libc::FUTEX_WAKE, i32::MAX, ptr::null::<libc::timespec>(),
                              ptr::null::<u32>(), 0u32);
            }
        }
    }

    /// Replaces the latest-state block (seqlock: readers retry while it changes).
    pub fn update_state(&mut self, st: &StateBlock) {
        let mut s = *st;
        s.zone_count = s.zone_count.min(MAX_ZONES as u16);
        s._pad = [0; 16];
        s._pad2 = [0; 124];
        s.crc32 = s.compute_crc();
        let v = self.state_version;
        let lock = self.map.atomic(STATE_OFFSET);
        lock.store(2 * v + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        // SAFETY: [STATE_OFFSET + 8, RING_OFFSET) is inside the mapping and holds exactly a
        // StateBlock; the source is a local; we are the only writer.
        unsafe { ptr::copy_nonoverlapping(&s as *const StateBlock as *const u8, self.map.base.as_ptr().add(STATE_OFFSET + 8), size_of::<StateBlock>()) };
        lock.store(2 * v + 2, Ordering::Release);
        self.state_version = v + 1;
        self.notify();
    }

    /// Proof of life: readers judge the writer alive by the age of this timestamp.
    pub fn heartbeat(&mut self, now_ns: u64) {
        self.map.atomic(OFF_HEARTBEAT).store(now_ns, Ordering::Release);
    }

    pub fn unlink(&self) -> io::Result<()> {
        fs::remove_file(&self.path)
    }
}

impl Drop for ShmSignalWriter {
    fn drop(&mut self) {
        if self.unlink_on_drop {
            // Best effort: a failure here leaves a stale file, which the next writer reuses.
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[path = "shm_reader.rs"]
mod reader;
pub use reader::ShmSignalReader;

#[cfg(test)]
#[path = "shm_tests.rs"]
mod tests;
