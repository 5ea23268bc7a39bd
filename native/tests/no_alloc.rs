//! The record path allocates nothing in steady state: after one warm-up stream, a whole
//! second stream's records (everything after its metadata header) go through decoder,
//! books, every engine, rings and bars with zero heap allocations, counted by a global
//! allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use aurum_native::file::DbnFileSource;
use aurum_native::pipeline::{Pipeline, PipelineConfig};

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

#[path = "support/synthetic.rs"]
mod synthetic;
use synthetic::synthetic;
#[allow(dead_code)]
#[path = "../benches/support/dbn_bytes.rs"]
mod dbn_bytes;

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

#[test]
fn holds_at_bar_closes_do_not_allocate_in_steady_state() {
    let _serial = serial();
    let first = synthetic();
    // The second stream continues the session, so its records close bars (and hold).
    let mut second = first.clone();
    dbn_bytes::shift_times(&mut second, dbn_bytes::time_span(&first));
    let mut cfg = PipelineConfig { hold_at_bar_close: true, ..PipelineConfig::default() };
    cfg.bars.interval_ns = 10_000_000_000;
    let mut p = Pipeline::new(cfg);
    let feed = |p: &mut Pipeline, bytes: &[u8]| {
        let mut holds = 0;
        for c in bytes.chunks(1 << 16) {
            p.feed(c).unwrap();
            while p.state.held() {
                holds += 1;
                p.resume();
            }
        }
        holds
    };
    assert!(feed(&mut p, &first) >= 25);
    p.decoder.reset();
    let meta = metadata_len(&second);
    p.feed(&second[..meta]).unwrap();
    let before = ALLOCS.load(Ordering::SeqCst);
    let holds = feed(&mut p, &second[meta..]);
    let allocs = ALLOCS.load(Ordering::SeqCst) - before;
    assert!(holds >= 25, "{holds} holds");
    assert_eq!(allocs, 0, "{allocs} allocations over {holds} holds");
}
