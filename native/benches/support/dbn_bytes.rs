//! DBN byte helpers shared by `benches/pipeline.rs` and `examples/pipeline_digest.rs`
//! (included by `#[path]`): both replay one file pass after pass as a continuing session.

/// Offset of the first record: after the 8-byte prelude and the metadata it announces.
pub fn records_start(bytes: &[u8]) -> usize {
    8 + u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize
}

/// Calls `f` with the byte offset and rtype of every record.
pub fn for_each_record(bytes: &[u8], mut f: impl FnMut(usize, u8)) {
    let mut pos = records_start(bytes);
    while pos + 16 <= bytes.len() && bytes[pos] >= 4 {
        f(pos, bytes[pos + 1]);
        pos += bytes[pos] as usize * 4;
    }
}

pub fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Last minus first `ts_event`, plus a second: the shift that makes a replay follow on.
pub fn time_span(bytes: &[u8]) -> u64 {
    let (mut lo, mut hi) = (u64::MAX, 0);
    for_each_record(bytes, |pos, _| {
        let ts = read_u64(bytes, pos + 8);
        if ts != u64::MAX {
            (lo, hi) = (lo.min(ts), hi.max(ts));
        }
    });
    hi.saturating_sub(lo) + 1_000_000_000
}

/// Moves `ts_event` of every record, and `ts_recv` of MBO, MBP and trade records, forward
/// by `delta` (UNDEF timestamps stay UNDEF).
pub fn shift_times(bytes: &mut [u8], delta: u64) {
    let mut at = Vec::new();
    for_each_record(bytes, |pos, rtype| {
        at.push(pos + 8);
        match rtype {
            dbn::rtype::MBO => at.push(pos + 40),
            dbn::rtype::MBP_0 | dbn::rtype::MBP_1 | dbn::rtype::MBP_10 => at.push(pos + 32),
            _ => {}
        }
    });
    for i in at {
        let ts = read_u64(bytes, i);
        if ts != u64::MAX {
            bytes[i..i + 8].copy_from_slice(&(ts + delta).to_le_bytes());
        }
    }
}

/// Re-encodes a DBN stream as v3 with the dbn crate (decoder upgrade + encoder).
pub fn to_v3(bytes: &[u8]) -> Vec<u8> {
    use dbn::encode::{DbnEncoder, EncodeRecordRef};
    let mut decoder = dbn::decode::DbnDecoder::with_upgrade_policy(bytes, dbn::VersionUpgradePolicy::UpgradeToV3).expect("decoder");
    let meta = dbn::decode::DbnMetadata::metadata(&decoder).clone();
    let mut out = Vec::new();
    let mut enc = DbnEncoder::new(&mut out, &meta).expect("encoder");
    use dbn::decode::DecodeRecordRef;
    while let Some(rec) = decoder.decode_record_ref().expect("decode") {
        enc.encode_record_ref(rec).expect("encode");
    }
    out
}
