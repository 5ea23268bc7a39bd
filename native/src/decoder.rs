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
    /// DBN version from the prelude (0 until seen). Only v3 input, which needs no upgrade,
    /// may be decoded straight from the caller's chunk.
    input_version: u8,
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
        self.fsm = build_fsm();
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
        if self.metadata.is_none() || self.input_version != DIRECT_VERSION {
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
        let direct = decode_direct(rest, self.strict, &mut self.unknown_rtypes, &mut on_record);
        self.fed += direct.bytes as u64;
        count += direct.records;
        // A partial record at the end, or one the direct loop leaves to the state machine
        // (bad length, unknown rtype in strict mode, misaligned chunk) and its errors.
        Ok(count + self.feed_copied(&rest[direct.bytes..], on_record)?)
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
/// versions need the state machine's per-record upgrade).
const DIRECT_VERSION: u8 = 3;
const HEADER_LEN: usize = std::mem::size_of::<RecordHeader>();

struct Direct {
    bytes: usize,
    records: u64,
}

/// Frames whole records straight out of `chunk` (which starts at a record boundary),
/// without copying it into the state machine: the copy, and the state machine's own
/// framing pass, cost about as much as the rest of decoding. Stops at the first record it
/// leaves to the state machine: one the chunk does not complete, a length that is too short
/// or not a multiple of 8, or, in strict mode, an unknown rtype (the state machine's path
/// reports those with their offsets). Unknown rtypes are otherwise counted and skipped, as
/// there. Does nothing unless the chunk is 8-byte aligned.
#[inline]
fn decode_direct<F: FnMut(RecordRef<'_>)>(chunk: &[u8], strict: bool, unknown: &mut u64, on_record: &mut F) -> Direct {
    let mut d = Direct { bytes: 0, records: 0 };
    if chunk.as_ptr().align_offset(std::mem::align_of::<RecordHeader>()) != 0 {
        return d;
    }
    while let Some(rest) = chunk.get(d.bytes..).filter(|r| r.len() >= HEADER_LEN) {
        let len = rest[0] as usize * RecordHeader::LENGTH_MULTIPLIER;
        if len < HEADER_LEN || len % 8 != 0 || len > rest.len() {
            break;
        }
        if RType::try_from(rest[1]).is_err() {
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
            // machine makes before it builds the same references into its own buffer.
            let rec = unsafe { RecordRef::new(&rest[..len]) };
            on_record(rec);
            d.records += 1;
        }
        d.bytes += len;
    }
    d
}

fn build_fsm() -> DbnFsm {
    // The builder only fails on an invalid input-version setting, which we never pass;
    // fall back to the plain constructor rather than panic.
    DbnFsm::builder()
        .upgrade_policy(VersionUpgradePolicy::UpgradeToV3)
        .buffer_size(1 << 20)
        .build()
        .unwrap_or_else(|_| DbnFsm::new(1 << 20, 1 << 12))
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
pub(crate) mod tests {
    use super::*;
    use dbn::encode::{DbnMetadataEncoder, EncodeRecord};

    pub(crate) fn metadata_bytes() -> Vec<u8> {
        let meta = dbn::MetadataBuilder::new()
            .dataset("GLBX.MDP3".to_owned())
            .schema(Some(dbn::Schema::Mbo))
            .start(0)
            .stype_in(Some(dbn::SType::RawSymbol))
            .stype_out(dbn::SType::InstrumentId)
            .build();
        let mut out = Vec::new();
        DbnMetadataEncoder::new(&mut out).encode(&meta).unwrap();
        out
    }

    fn mbo_bytes(n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = dbn::encode::dbn::RecordEncoder::new(&mut out);
        for i in 0..n {
            let rec = dbn::MboMsg {
                hd: dbn::RecordHeader::new::<dbn::MboMsg>(dbn::rtype::MBO, 1, 7, i),
                order_id: i + 1,
                price: 2_400_000_000_000,
                size: 1,
                flags: dbn::FlagSet::from(dbn::flags::LAST),
                channel_id: 0,
                action: b'A' as std::ffi::c_char,
                side: b'B' as std::ffi::c_char,
                ts_recv: i,
                ts_in_delta: 0,
                sequence: i as u32,
            };
            enc.encode_record(&rec).unwrap();
        }
        out
    }

    fn decode_all(chunks: &[&[u8]]) -> Result<u64, DecodeError> {
        let mut d = StreamDecoder::new(false);
        let mut n = 0;
        for c in chunks {
            n += d.feed(c, |_| {})?;
        }
        d.finish()?;
        Ok(n)
    }

    #[test]
    fn decodes_across_every_split_point() {
        let mut bytes = metadata_bytes();
        bytes.extend(mbo_bytes(5));
        for split in 0..bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(decode_all(&[a, b]).unwrap(), 5, "split at {split}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(decode_all(&singles).unwrap(), 5);
    }

    /// What a decode produced: each record's (rtype, ts_event, length), then the unknown
    /// rtype count and the first error's kind and offset.
    type Trace = (Vec<(u8, u64, usize)>, u64, Option<(DecodeErrorKind, u64)>);

    /// Decodes `bytes` in chunks of `chunk` bytes (the metadata alone first, so every
    /// record chunk may take the direct path), through `feed` or, as the reference, through
    /// `feed_with`, which always frames in the state machine's buffer.
    fn trace(bytes: &[u8], chunk: usize, strict: bool, copied: bool) -> Trace {
        let mut d = StreamDecoder::new(strict);
        let mut recs = Vec::new();
        let mut err = None;
        let split = metadata_bytes().len().min(bytes.len());
        for c in std::iter::once(&bytes[..split]).chain(bytes[split..].chunks(chunk)) {
            let mut on = |r: RecordRef<'_>| recs.push((r.header().rtype, r.header().ts_event, r.header().record_size()));
            let r = if copied {
                d.feed_with(|buf| Ok(c.len()).inspect(|&n| buf[..n].copy_from_slice(c)), &mut on).map(|(_, n)| n)
            } else {
                d.feed(c, &mut on)
            };
            if let Err(e) = r {
                err = Some((e.kind, e.offset));
                break;
            }
        }
        if err.is_none() {
            err = d.finish().err().map(|e| (e.kind, e.offset));
        }
        (recs, d.unknown_rtypes(), err)
    }

    /// The direct path (records framed in the caller's chunk) and the state machine's path
    /// agree on records, counts, and the kind and offset of errors, for every chunk size
    /// and alignment; before a bad record the direct path hands over every good one.
    #[test]
    fn direct_and_copied_paths_agree() {
        let meta = metadata_bytes().len();
        let clean = [metadata_bytes(), mbo_bytes(40)].concat();
        let mut cases: Vec<(&str, Vec<u8>)> = vec![("clean", clean.clone())];
        let mut b = clean.clone();
        b[meta + 7 * 56 + 1] = 0x7E;
        cases.push(("unknown rtype", b));
        let mut b = clean.clone();
        b[meta + 9 * 56] = 0;
        cases.push(("zero length", b));
        let mut b = clean.clone();
        b[meta + 11 * 56] = 13;
        b.drain(meta + 11 * 56 + 52..meta + 12 * 56);
        cases.push(("length not a multiple of 8", b));
        let mut b = clean.clone();
        b.truncate(b.len() - 9);
        cases.push(("truncated", b));
        for (name, bytes) in &cases {
            for strict in [false, true] {
                for misalign in [0, 1, 4] {
                    let mut buf = vec![0u8; bytes.len() + 16];
                    let start = buf.as_ptr().align_offset(8) + misalign;
                    buf[start..start + bytes.len()].copy_from_slice(bytes);
                    let input = &buf[start..start + bytes.len()];
                    // Byte by byte, the state machine hands over every record before a bad one.
                    let every = trace(input, 1, strict, true);
                    for chunk in (1..=130).chain([4096]) {
                        let at = format!("{name}, strict {strict}, misalign {misalign}, chunk {chunk}");
                        let (direct, copied) = (trace(input, chunk, strict, false), trace(input, chunk, strict, true));
                        // The state machine checks all buffered lengths before framing, so it may
                        // withhold the last good records of a chunk that also starts a bad one;
                        // misaligned input never leaves it.
                        assert_eq!((direct.1, direct.2), (every.1, every.2), "{at}");
                        assert_eq!((copied.1, copied.2), (every.1, every.2), "{at}");
                        assert!(direct.0.starts_with(&copied.0) && every.0.starts_with(&direct.0), "{at}");
                        if misalign == 0 {
                            assert_eq!(direct.0, every.0, "{at}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bad_magic_names_offset_zero() {
        let mut bytes = metadata_bytes();
        bytes[0] = b'X';
        let e = decode_all(&[&bytes]).unwrap_err();
        assert_eq!((e.kind, e.offset), (DecodeErrorKind::BadMagic, 0));
    }

    #[test]
    fn zero_record_length_names_its_offset() {
        let meta = metadata_bytes();
        let mut bytes = meta.clone();
        let recs = mbo_bytes(3);
        bytes.extend(&recs);
        let second = meta.len() + 56;
        bytes[second] = 0;
        let e = decode_all(&[&bytes]).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::BadRecordLength);
        assert_eq!(e.offset, second as u64);
        assert!(e.to_string().contains(&format!("byte offset {second}")));
    }

    #[test]
    fn record_length_not_a_multiple_of_8_is_rejected_before_misaligning() {
        let meta = metadata_bytes();
        let mut bytes = meta.clone();
        let mut recs = mbo_bytes(3);
        // First record claims 13 words (52 bytes): drop 4 bytes so the stream still frames.
        recs[0] = 13;
        recs.drain(52..56);
        bytes.extend(&recs);
        let e = decode_all(&[&bytes]).unwrap_err();
        assert_eq!((e.kind, e.offset), (DecodeErrorKind::BadRecordLength, meta.len() as u64));
        assert!(e.message.contains("multiple of 8"));
    }

    #[test]
    fn truncated_record_is_reported_at_finish() {
        let meta = metadata_bytes();
        let mut bytes = meta.clone();
        bytes.extend(mbo_bytes(2));
        bytes.truncate(bytes.len() - 10);
        let e = decode_all(&[&bytes]).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::Truncated);
        assert_eq!(e.offset, (meta.len() + 56) as u64);
    }

    #[test]
    fn huge_metadata_length_is_rejected_without_allocating() {
        let mut bytes = metadata_bytes();
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = decode_all(&[&bytes]).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::BadMetadata);
    }

    #[test]
    fn unknown_rtype_is_counted_or_strict_error() {
        let meta = metadata_bytes();
        let mut bytes = meta.clone();
        bytes.extend(mbo_bytes(3));
        bytes[meta.len() + 56 + 1] = 0x7E;
        let mut d = StreamDecoder::new(false);
        assert_eq!(d.feed(&bytes, |_| {}).unwrap(), 2);
        assert_eq!(d.unknown_rtypes(), 1);
        let mut strict = StreamDecoder::new(true);
        let e = strict.feed(&bytes, |_| {}).unwrap_err();
        assert_eq!((e.kind, e.offset), (DecodeErrorKind::UnknownRType, (meta.len() + 56) as u64));
        // A failed decoder refuses further input instead of mis-framing it.
        assert!(strict.feed(&bytes, |_| {}).is_err());
    }
}
