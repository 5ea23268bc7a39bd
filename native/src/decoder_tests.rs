use super::*;
use dbn::encode::{DbnMetadataEncoder, EncodeRecord};

pub(crate) fn metadata_bytes() -> Vec<u8> {
    metadata_bytes_of(dbn::DBN_VERSION)
}

/// The MBO session metadata of the tests, as DBN `version` encodes it.
fn metadata_bytes_of(version: u8) -> Vec<u8> {
    let meta = dbn::MetadataBuilder::new()
        .dataset("GLBX.MDP3".to_owned())
        .schema(Some(dbn::Schema::Mbo))
        .start(0)
        .stype_in(Some(dbn::SType::RawSymbol))
        .stype_out(dbn::SType::InstrumentId)
        .version(version)
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
                    // the direct path (misaligned input through its aligned copy) does not.
                    assert_eq!((direct.1, direct.2), (every.1, every.2), "{at}");
                    assert_eq!((copied.1, copied.2), (every.1, every.2), "{at}");
                    assert!(direct.0.starts_with(&copied.0), "{at}");
                    assert_eq!(direct.0, every.0, "{at}");
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

/// A DBN v1 session: metadata, then MBO records with a symbol mapping and a heartbeat
/// (both rewritten by the upgrade to v3) among them.
fn v1_session() -> Vec<u8> {
    let mut out = metadata_bytes_of(1);
    let mbo = mbo_bytes(30);
    out.extend_from_slice(&mbo[..10 * 56]);
    let mut enc = dbn::encode::dbn::RecordEncoder::new(&mut out);
    enc.encode_record(&dbn::v1::SymbolMappingMsg::new(7, 5, "ESH4", "ESH4", 0, 1).unwrap()).unwrap();
    out.extend_from_slice(&mbo[10 * 56..20 * 56]);
    let mut enc = dbn::encode::dbn::RecordEncoder::new(&mut out);
    enc.encode_record(&dbn::v1::SystemMsg::heartbeat(6)).unwrap();
    out.extend_from_slice(&mbo[20 * 56..]);
    out
}

/// v1 records whose layout v3 shares are decoded from the caller's chunk, the others
/// upgraded by the state machine: every chunking gives the same records, byte for byte,
/// as the state machine alone.
#[test]
fn v1_direct_records_match_the_upgraded_ones() {
    let bytes = v1_session();
    let decode = |chunk: usize, copied: bool| {
        let mut d = StreamDecoder::new(true);
        let mut recs: Vec<Vec<u8>> = Vec::new();
        let split = bytes.len() - (30 * 56 + 80 + 80);
        for c in std::iter::once(&bytes[..split]).chain(bytes[split..].chunks(chunk)) {
            let mut on = |r: RecordRef<'_>| recs.push(r.as_ref().to_vec());
            if copied {
                d.feed_with(|buf| Ok(c.len()).inspect(|&n| buf[..n].copy_from_slice(c)), &mut on).unwrap();
            } else {
                d.feed(c, &mut on).unwrap();
            }
        }
        d.finish().unwrap();
        recs
    };
    let reference = decode(1, true);
    assert_eq!(reference.len(), 32);
    assert!(reference.iter().any(|r| r[1] == dbn::rtype::SYMBOL_MAPPING && r.len() == std::mem::size_of::<dbn::SymbolMappingMsg>()));
    for chunk in (1..=200).chain([4096]) {
        assert_eq!(decode(chunk, false), reference, "chunk {chunk}");
    }
}

/// A reset decoder (which keeps its state machine's buffers) decodes the next stream as a
/// new decoder would, across versions: v1 after v3 after v1.
#[test]
fn reset_between_streams_matches_a_fresh_decoder() {
    let v1 = v1_session();
    let v3 = [metadata_bytes(), mbo_bytes(25)].concat();
    let run = |d: &mut StreamDecoder, bytes: &[u8]| {
        let mut recs: Vec<Vec<u8>> = Vec::new();
        for c in bytes.chunks(97) {
            d.feed(c, |r| recs.push(r.as_ref().to_vec())).unwrap();
        }
        d.finish().unwrap();
        recs
    };
    let mut reused = StreamDecoder::new(false);
    for bytes in [&v1, &v3, &v1] {
        let want = run(&mut StreamDecoder::new(false), bytes);
        assert_eq!(run(&mut reused, bytes), want);
        reused.reset();
    }
}
