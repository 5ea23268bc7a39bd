//! A synthetic GC MBO session shared by the integration tests (included by `#[path]`).

use dbn::encode::{DbnMetadataEncoder, EncodeRecord};

/// The DBN v3 metadata header of a GLBX.MDP3 MBO stream (with `ts_out` if asked).
pub fn mbo_header(ts_out: bool) -> Vec<u8> {
    let meta = dbn::MetadataBuilder::new()
        .dataset("GLBX.MDP3".to_owned())
        .schema(Some(dbn::Schema::Mbo))
        .start(0)
        .stype_in(Some(dbn::SType::RawSymbol))
        .stype_out(dbn::SType::InstrumentId)
        .ts_out(ts_out)
        .build();
    let mut out = Vec::new();
    DbnMetadataEncoder::new(&mut out).encode(&meta).expect("metadata");
    out
}

/// A synthetic GC session: adds near the touch, partial and full cancels, modifies, and
/// trade events (T, F, C) with F_LAST on each event's last record.
pub fn synthetic() -> Vec<u8> {
    let mut out = mbo_header(false);
    let mut enc = dbn::encode::dbn::RecordEncoder::new(&mut out);
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut live: Vec<(u64, u8, i64, u32)> = Vec::new();
    let mut ts = 1_700_000_000_000_000_000u64;
    let mid = 2_400_000_000_000i64;
    let tick = 100_000_000i64;
    let rec = |action: u8, side: u8, oid: u64, px: i64, sz: u32, last: bool, ts: u64| dbn::MboMsg {
        hd: dbn::RecordHeader::new::<dbn::MboMsg>(dbn::rtype::MBO, 1, 42, ts),
        order_id: oid,
        price: px,
        size: sz,
        flags: dbn::FlagSet::from(if last { dbn::flags::LAST } else { 0 }),
        channel_id: 0,
        action: action as std::ffi::c_char,
        side: side as std::ffi::c_char,
        ts_recv: ts,
        ts_in_delta: 0,
        sequence: 0,
    };
    for oid in 1..60_000u64 {
        ts += 5_000_000;
        let r = rnd();
        if live.len() < 400 || r % 3 == 0 {
            let side = if r & 1 == 0 { b'B' } else { b'A' };
            let off = 1 + (r >> 8) as i64 % 20;
            let px = if side == b'B' { mid - off * tick } else { mid + off * tick };
            let sz = 1 + (r >> 16) as u32 % 9;
            enc.encode_record(&rec(b'A', side, oid, px, sz, true, ts)).unwrap();
            live.push((oid, side, px, sz));
        } else {
            let i = (r >> 20) as usize % live.len();
            let (id, side, px, sz) = live[i];
            match r % 3 {
                1 if (r >> 40) % 4 == 0 => {
                    // A native iceberg refill: filled, then modified back to its clip.
                    let aggr = if side == b'B' { b'A' } else { b'B' };
                    enc.encode_record(&rec(b'T', aggr, 0, px, sz, false, ts)).unwrap();
                    enc.encode_record(&rec(b'F', side, id, px, sz, false, ts)).unwrap();
                    enc.encode_record(&rec(b'M', side, id, px, sz, true, ts)).unwrap();
                }
                1 => {
                    let aggr = if side == b'B' { b'A' } else { b'B' };
                    enc.encode_record(&rec(b'T', aggr, 0, px, sz, false, ts)).unwrap();
                    enc.encode_record(&rec(b'F', side, id, px, sz, false, ts)).unwrap();
                    enc.encode_record(&rec(b'C', side, id, px, sz, true, ts)).unwrap();
                    live.swap_remove(i);
                }
                _ if sz > 1 => {
                    enc.encode_record(&rec(b'M', side, id, px, sz - 1, true, ts)).unwrap();
                    live[i].3 = sz - 1;
                }
                _ => {
                    enc.encode_record(&rec(b'C', side, id, px, sz, true, ts)).unwrap();
                    live.swap_remove(i);
                }
            }
        }
    }
    // Leave the book empty, so every pass over this stream starts from the same state and
    // the second pass is a true repeat of the first (no leftover orders inflating the book).
    for (id, side, px, sz) in live {
        ts += 1_000;
        enc.encode_record(&rec(b'C', side, id, px, sz, true, ts)).unwrap();
    }
    out
}
