//! Chunked DBN decoding on top of the official `dbn` crate's sans-I/O state machine.
//!
//! Input arrives as arbitrary byte chunks (socket reads, file reads): the metadata header
//! first, then records split anywhere. `DbnFsm` frames the records and upgrades DBN v1/v2
//! to v3 layouts; this wrapper adds what a daemon needs around it: byte offsets in every
//! error, a bound on the metadata length, unknown-rtype accounting, and a clear error for a
//! stream that ends inside a header or record.

use std::fmt;

use dbn::decode::dbn::fsm::{DbnFsm, ProcessResult};
use dbn::{Metadata, RType, RecordHeader, RecordRef, VersionUpgradePolicy};

/// Larger metadata is treated as corruption rather than buffered (the crate would grow its
/// buffer to whatever the header claims, up to 4 GiB).
pub const MAX_METADATA_LEN: u32 = 64 << 20;
const PRELUDE_LEN: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeErrorKind {
    BadMagic,
    BadVersion,
    BadMetadata,
    BadRecordLength,
    UnknownRType,
    Truncated,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    /// Offset in the decompressed stream where the offending header or record starts.
    pub offset: u64,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte offset {}", self.message, self.offset)
    }
}

impl std::error::Error for DecodeError {}

pub struct StreamDecoder {
    fsm: DbnFsm,
    /// Bytes written into the state machine so far.
    fed: u64,
    metadata: Option<Metadata>,
    strict: bool,
    unknown_rtypes: u64,
    failed: Option<DecodeError>,
    /// Stream offset (a record boundary) up to which record lengths have been checked, so
    /// each byte is scanned once however large the chunk: rescanning the whole buffer per
    /// batch made one big chunk quadratic.
    checked_to: u64,
    /// DBN version from the prelude (0 until seen). v3 input needs no upgrade and is
    /// decoded straight from the caller's chunk; so are v1/v2 records whose layout the
    /// upgrade leaves as it is (`same_layout_v1_v3`).
    input_version: u8,
    /// `SCRATCH_LEN` bytes from its first 8-byte aligned byte: see `feed`.
    scratch: Vec<u8>,
}

impl StreamDecoder {
    pub fn new(strict: bool) -> Self {
        Self {
            fsm: build_fsm(),
            fed: 0,
            metadata: None,
            strict,
            unknown_rtypes: 0,
            failed: None,
            checked_to: 0,
            input_version: 0,
            scratch: vec![0; SCRATCH_LEN + 8],
        }
    }

    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    pub fn bytes_fed(&self) -> u64 {
        self.fed
    }

    pub fn unknown_rtypes(&self) -> u64 {
        self.unknown_rtypes
    }

    pub fn failed(&self) -> Option<&DecodeError> {
        self.failed.as_ref()
    }

    /// Forget the stream (not the counters) and expect a new metadata header, as after a
    /// reconnect.
    pub fn reset(&mut self) {
        // A fresh state machine zeroes a 1 MiB buffer (and evicts the books from cache);
        // its own reset keeps the buffer, unless a huge metadata header grew it.
        self.fsm.reset();
        if self.fsm.space().len() > FSM_BUFFER {
            self.fsm = build_fsm();
        }
        self.fed = 0;
        self.metadata = None;
        self.failed = None;
        self.checked_to = 0;
        self.input_version = 0;
    }

    /// Bytes buffered but not yet decoded: the start of a record (or of the metadata) that
    /// the next chunk completes. After `feed`, `chunk.len() - pending()` (when positive) is
    /// a record boundary inside the chunk, which lets a journal split files between records.
    pub fn pending(&self) -> usize {
        self.fsm.data().len()
    }

    /// Offset of the first byte the state machine has not consumed yet.
    fn unconsumed_offset(&self) -> u64 {
        self.fed - self.fsm.data().len() as u64
    }

    /// Hands every complete record in `chunk` to `on_record`; bytes of a record the chunk
    /// does not complete are kept for the next call. Returns the number of records handed
    /// over.
    pub fn feed<F: FnMut(RecordRef<'_>)>(&mut self, chunk: &[u8], mut on_record: F) -> Result<u64, DecodeError> {
        self.check_usable()?;
        if self.metadata.is_none() || !(1..=DIRECT_VERSION).contains(&self.input_version) {
            return self.feed_copied(chunk, on_record);
        }
        let mut rest = chunk;
        let mut count = 0;
        let pending = self.fsm.data().len();
        if pending > 0 {
            // First complete the record whose start the state machine holds.
            let len = self.fsm.data()[0] as usize * 4;
            let need = len.saturating_sub(pending).min(rest.len());
            count += self.feed_copied(&rest[..need], &mut on_record)?;
            rest = &rest[need..];
            if !self.fsm.data().is_empty() {
                return Ok(count + self.feed_copied(rest, on_record)?);
            }
        }
        let upgrades = self.input_version != DIRECT_VERSION;
        loop {
            let aligned = rest.as_ptr().align_offset(std::mem::align_of::<RecordHeader>()) == 0;
            let direct = if aligned {
                decode_direct(rest, self.strict, upgrades, &mut self.unknown_rtypes, &mut on_record)
            } else {
                // Records at offsets that are not multiples of 8 (a v1 file's metadata need
                // not end on one) are framed in an aligned copy, a piece at a time: cheaper
                // than the state machine's buffer and framing.
                let n = rest.len().min(SCRATCH_LEN);
                let at = self.scratch.as_ptr().align_offset(std::mem::align_of::<RecordHeader>());
                let piece = &mut self.scratch[at..at + n];
                piece.copy_from_slice(&rest[..n]);
                decode_direct(piece, self.strict, upgrades, &mut self.unknown_rtypes, &mut on_record)
            };
            self.fed += direct.bytes as u64;
            count += direct.records;
            rest = &rest[direct.bytes..];
            if aligned || direct.bytes == 0 || rest.is_empty() {
                break;
            }
        }
        // A partial record at the end, or one the direct loop leaves to the state machine
        // (bad length, unknown rtype in strict mode, a record v1/v2 must upgrade) and its
        // errors.
        Ok(count + self.feed_copied(rest, on_record)?)
    }

    /// The state machine's path: copies `chunk` into its buffer, then frames records there.
    fn feed_copied<F: FnMut(RecordRef<'_>)>(&mut self, chunk: &[u8], on_record: F) -> Result<u64, DecodeError> {
        if chunk.is_empty() {
            return Ok(0);
        }
        self.fsm.write_all(chunk);
        self.fed += chunk.len() as u64;
        self.drain(on_record)
    }

    /// Lets a reader fill the decoder's buffer directly (no intermediate copy), then
    /// decodes. `fill` returns how many bytes it wrote, 0 at end of input.
    pub fn feed_with<R, F>(&mut self, fill: R, on_record: F) -> Result<(usize, u64), DecodeError>
    where
        R: FnOnce(&mut [u8]) -> std::io::Result<usize>,
        F: FnMut(RecordRef<'_>),
    {
        self.check_usable()?;
        let n = fill(self.fsm.space()).map_err(|e| DecodeError {
            kind: DecodeErrorKind::Other,
            offset: self.fed,
            message: format!("read failed: {e}"),
        })?;
        self.fsm.fill(n);
        self.fed += n as u64;
        let records = self.drain(on_record)?;
        Ok((n, records))
    }

    /// Call at end of stream: errors if it ended inside the metadata or a record.
    pub fn finish(&mut self) -> Result<(), DecodeError> {
        self.check_usable()?;
        let pending = self.fsm.data().len();
        if self.metadata.is_none() {
            let err = DecodeError {
                kind: DecodeErrorKind::Truncated,
                offset: 0,
                message: format!("stream ended inside the DBN metadata header ({} bytes received)", self.fed),
            };
            return Err(self.fail(err));
        }
        if pending > 0 {
            let data = self.fsm.data();
            let claimed = data[0] as usize * 4;
            let err = DecodeError {
                kind: DecodeErrorKind::Truncated,
                offset: self.unconsumed_offset(),
                message: format!(
                    "stream ended inside a record: header claims {claimed} bytes, only {pending} present"
                ),
            };
            return Err(self.fail(err));
        }
        Ok(())
    }

    fn check_usable(&self) -> Result<(), DecodeError> {
        match &self.failed {
            Some(e) => Err(DecodeError {
                kind: e.kind,
                offset: e.offset,
                message: format!("decoder stopped after an earlier error ({}); reset the stream", e.message),
            }),
            None => Ok(()),
        }
    }

    fn fail(&mut self, err: DecodeError) -> DecodeError {
        self.failed = Some(err.clone());
        err
    }

    fn drain<F: FnMut(RecordRef<'_>)>(&mut self, mut on_record: F) -> Result<u64, DecodeError> {
        if self.metadata.is_none() && self.unconsumed_offset() == 0 {
            self.precheck_prelude()?;
        }
        let mut count = 0u64;
        loop {
            if self.metadata.is_some() {
                self.check_record_lengths()?;
            }
            let batch_start = self.unconsumed_offset();
            match self.fsm.process_batch() {
                ProcessResult::ReadMore(_) => return Ok(count),
                ProcessResult::Metadata(m) => self.metadata = Some(m),
                ProcessResult::Record(_) => {
                    let mut offset = batch_start;
                    let mut bad: Option<(u64, u8)> = None;
                    while let Some(rec) = self.fsm.next_buffered_record() {
                        let rtype = rec.header().rtype;
                        let size = rec.header().record_size() as u64;
                        if RType::try_from(rtype).is_err() {
                            if self.strict {
                                bad = Some((offset, rtype));
                                break;
                            }
                            self.unknown_rtypes += 1;
                        } else {
                            on_record(rec);
                            count += 1;
                        }
                        offset += size;
                    }
                    if let Some((offset, rtype)) = bad {
                        let err = DecodeError {
                            kind: DecodeErrorKind::UnknownRType,
                            offset,
                            message: format!("unknown rtype 0x{rtype:02X}"),
                        };
                        return Err(self.fail(err));
                    }
                }
                ProcessResult::Err(e) => {
                    let offset = self.unconsumed_offset();
                    let err = classify(e, offset, self.metadata.is_some());
                    return Err(self.fail(err));
                }
            }
        }
    }

    /// Every DBN record is a multiple of 8 bytes long (all record structs are 8-byte
    /// aligned). A length that is not would leave each following record misaligned, and the
    /// state machine builds references to them, so such input is rejected before it frames
    /// anything. Lengths shorter than the header are left to the state machine's own error.
    fn check_record_lengths(&mut self) -> Result<(), DecodeError> {
        let base = self.unconsumed_offset();
        let data = self.fsm.data();
        // Records are consumed whole, so `base` and `checked_to` are both record boundaries.
        let mut pos = self.checked_to.saturating_sub(base) as usize;
        let mut bad = None;
        while pos < data.len() {
            let len = data[pos] as usize * 4;
            if len < 16 {
                break;
            }
            if len % 8 != 0 {
                bad = Some((pos, len));
                break;
            }
            pos += len;
        }
        match bad {
            None => {
                self.checked_to = base + pos as u64;
                Ok(())
            }
            Some((at, len)) => {
                let offset = self.unconsumed_offset() + at as u64;
                let message = format!("bad record length {len}: not a multiple of 8 bytes");
                Err(self.fail(DecodeError { kind: DecodeErrorKind::BadRecordLength, offset, message }))
            }
        }
    }

    /// Rejects a corrupt prelude before the state machine acts on it.
    fn precheck_prelude(&mut self) -> Result<(), DecodeError> {
        let data = self.fsm.data();
        let n = data.len().min(PRELUDE_LEN);
        let mut err = None;
        if n >= 3 && &data[..3] != b"DBN" {
            err = Some((DecodeErrorKind::BadMagic, format!("bad magic {:?}, expected \"DBN\"", String::from_utf8_lossy(&data[..3]))));
        } else if n >= 4 && !(1..=3).contains(&data[3]) {
            err = Some((DecodeErrorKind::BadVersion, format!("unsupported DBN version {}", data[3])));
        } else if n >= 8 {
            let len = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
            if len > MAX_METADATA_LEN {
                err = Some((DecodeErrorKind::BadMetadata, format!("metadata length {len} exceeds the {MAX_METADATA_LEN}-byte limit")));
            }
        }
        if n >= 4 {
            self.input_version = data[3];
        }
        match err {
            Some((kind, message)) => {
                let offset = self.unconsumed_offset();
                Err(self.fail(DecodeError { kind, offset, message }))
            }
            None => Ok(()),
        }
    }
}

/// The input version decoded straight from the caller's chunks (the live format; older
/// versions need the state machine's per-record upgrade, for some record types).
const DIRECT_VERSION: u8 = 3;
/// Misaligned input is copied this much at a time (many records; the longest DBN record
/// is 1020 bytes).
const SCRATCH_LEN: usize = 64 << 10;

/// Record types that DBN v1 and v2 lay out as v3 does: the crate's upgrade to v3 hands
/// them over as they are (it rewrites only instrument definitions, statistics, symbol
/// mappings, errors and system messages), so they need not pass through its buffer.
/// Limited to the book schemas, which are nearly all of a stored session.
#[inline]
fn same_layout_v1_v3(rtype: u8) -> bool {
    matches!(rtype, dbn::rtype::MBO | dbn::rtype::MBP_0 | dbn::rtype::MBP_1 | dbn::rtype::MBP_10)
}
const HEADER_LEN: usize = std::mem::size_of::<RecordHeader>();

pub(crate) struct Direct {
    pub(crate) bytes: usize,
    pub(crate) records: u64,
}

/// Frames whole records straight out of `chunk` (which starts at a record boundary),
/// without copying it into the state machine: the copy, and the state machine's own
/// framing pass, cost about as much as the rest of decoding. Stops at the first record it
/// leaves to the state machine: one the chunk does not complete, a length that is too short
/// or not a multiple of 8, in strict mode an unknown rtype (the state machine's path
/// reports those with their offsets), and, when the input is older than v3 (`upgrades`),
/// any record the upgrade could rewrite. Unknown rtypes are otherwise counted and skipped,
/// as there. Does nothing unless the chunk is 8-byte aligned.
#[inline]
pub(crate) fn decode_direct<F: FnMut(RecordRef<'_>)>(chunk: &[u8], strict: bool, upgrades: bool, unknown: &mut u64, on_record: &mut F) -> Direct {
    let mut d = Direct { bytes: 0, records: 0 };
    if chunk.as_ptr().align_offset(std::mem::align_of::<RecordHeader>()) != 0 {
        return d;
    }
    while let Some(rest) = chunk.get(d.bytes..).filter(|r| r.len() >= HEADER_LEN) {
        let len = rest[0] as usize * RecordHeader::LENGTH_MULTIPLIER;
        if len < HEADER_LEN || len % 8 != 0 || len > rest.len() || (upgrades && !same_layout_v1_v3(rest[1])) {
            break;
        }
        if !known_rtype(rest[1]) {
            if strict {
                break;
            }
            *unknown += 1;
        } else {
            // SAFETY: `RecordRef::new` needs a buffer that starts with a valid record header
            // and holds the whole record. `rest` starts at a record boundary (the chunk
            // does, and `bytes` advances by whole records), is 8-byte aligned (the chunk is,
            // and every length is a multiple of 8), which is `RecordHeader`'s alignment, and
            // holds at least `len >= size_of::<RecordHeader>()` bytes, `len` being the
            // header's own record length. Every bit pattern is a valid `RecordHeader` (plain
            // integers). Readers cast the rest only through `try_get`, which checks the
            // rtype and that `len` covers the record type. These are the checks the state
            // machine makes before it builds the same references into its own buffer; for
            // v1/v2 input only records it would hand over unchanged come here.
            let rec = unsafe { RecordRef::new(&rest[..len]) };
            on_record(rec);
            d.records += 1;
        }
        d.bytes += len;
    }
    d
}

/// `RType::try_from(rtype).is_ok()`, with the book schemas answered inline (the
/// conversion is an out-of-line call, per record).
#[inline]
fn known_rtype(rtype: u8) -> bool {
    matches!(rtype, dbn::rtype::MBO | dbn::rtype::MBP_0 | dbn::rtype::MBP_1 | dbn::rtype::MBP_10) || RType::try_from(rtype).is_ok()
}

const FSM_BUFFER: usize = 1 << 20;

fn build_fsm() -> DbnFsm {
    // The builder only fails on an invalid input-version setting, which we never pass;
    // fall back to the plain constructor rather than panic.
    DbnFsm::builder()
        .upgrade_policy(VersionUpgradePolicy::UpgradeToV3)
        .buffer_size(FSM_BUFFER)
        .build()
        .unwrap_or_else(|_| DbnFsm::new(FSM_BUFFER, 1 << 12))
}

fn classify(e: dbn::Error, offset: u64, have_metadata: bool) -> DecodeError {
    let text = e.to_string();
    let kind = if text.contains("impossible length") {
        DecodeErrorKind::BadRecordLength
    } else if !have_metadata && text.contains("invalid DBN header") {
        DecodeErrorKind::BadMagic
    } else if !have_metadata {
        DecodeErrorKind::BadMetadata
    } else {
        DecodeErrorKind::Other
    };
    let message = match kind {
        DecodeErrorKind::BadRecordLength => format!("bad record length ({text})"),
        DecodeErrorKind::BadMetadata => format!("bad DBN metadata ({text})"),
        _ => text,
    };
    DecodeError { kind, offset, message }
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
pub(crate) mod tests;
