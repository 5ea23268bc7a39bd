//! The record path allocates nothing in steady state: after one warm-up stream, a whole
//! second stream's records (everything after its metadata header) go through decoder,
//! books, every engine, rings and bars with zero heap allocations, counted by a global
//! allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use aurum_native::file::DbnFileSource;
use aurum_native::pipeline::{Pipeline, PipelineConfig};
use dbn::encode::{DbnMetadataEncoder, EncodeRecord};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A synthetic GC session: adds near the touch, partial and full cancels, modifies, and
/// trade events (T, F, C) with F_LAST on each event's last record.
fn synthetic() -> Vec<u8> {
    let meta = dbn::MetadataBuilder::new()
        .dataset("GLBX.MDP3".to_owned())
        .schema(Some(dbn::Schema::Mbo))
        .start(0)
        .stype_in(Some(dbn::SType::RawSymbol))
        .stype_out(dbn::SType::InstrumentId)
        .build();
    let mut out = Vec::new();
    DbnMetadataEncoder::new(&mut out).encode(&meta).unwrap();
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

fn real_file() -> Option<Vec<u8>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/es-real/esh4-20231225.mbo.dbn.zst");
    let mut src = DbnFileSource::open(&path).ok()?;
    let mut v = Vec::new();
    src.read_to_end(&mut v).ok()?;
    Some(v)
}

fn metadata_len(stream: &[u8]) -> usize {
    8 + u32::from_le_bytes(stream[4..8].try_into().unwrap()) as usize
}

/// The counter is global, so measured sections must not overlap with another test's work.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn allocations_in_second_pass(stream: &[u8]) -> (u64, u64) {
    let mut p = Pipeline::new(PipelineConfig::default());
    for c in stream.chunks(1 << 16) {
        p.feed(c).unwrap();
    }
    p.decoder.reset();
    let meta = metadata_len(stream);
    p.feed(&stream[..meta]).unwrap();
    let records_before = p.state.counters.records_total;
    let before = ALLOCS.load(Ordering::SeqCst);
    for c in stream[meta..].chunks(1 << 16) {
        p.feed(c).unwrap();
    }
    let allocs = ALLOCS.load(Ordering::SeqCst) - before;
    // The engines ran in the measured pass (the default config enables them).
    assert!(p.state.engine_config().enabled);
    (allocs, p.state.counters.records_total - records_before)
}

#[test]
fn steady_state_record_path_does_not_allocate() {
    let _serial = serial();
    let stream = synthetic();
    let (allocs, records) = allocations_in_second_pass(&stream);
    assert!(records > 90_000, "{records}");
    assert_eq!(allocs, 0, "{allocs} allocations for {records} records");
}

#[test]
fn engines_produce_output_on_the_synthetic_stream() {
    let _serial = serial();
    let stream = synthetic();
    let mut p = Pipeline::new(PipelineConfig::default());
    p.feed(&stream).unwrap();
    p.state.flush_bars();
    let out = &p.state.engine_out;
    assert!(out.icebergs.rows.len() > 100, "{} icebergs", out.icebergs.rows.len());
    assert!(!out.zones.is_empty());
    assert!(out.flow.written() >= 4, "{} flow bars", out.flow.written());
    assert!(out.footprint.written() > 0);
}

#[test]
fn real_day_does_not_allocate_in_steady_state() {
    let _serial = serial();
    let Some(stream) = real_file() else {
        eprintln!("skipping: ../shared/data not found (real DBN samples live outside the repo)");
        return;
    };
    let (allocs, records) = allocations_in_second_pass(&stream);
    assert_eq!(records, 68_792);
    assert_eq!(allocs, 0, "{allocs} allocations for {records} records");
}
