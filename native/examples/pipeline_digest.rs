//! `cargo run --release --example pipeline_digest -- FILE [v1|v3] [PASSES] [off]`
//!
//! Runs the bench's passes (every pass after the first shifts all timestamps forward by the
//! file's span, as `benches/pipeline.rs` does) and prints a digest chained over every output
//! after every pass: trade, top and bar rings; sweep, flow and footprint rings; iceberg and
//! zone tables; counters; pressure, risk and last top per instrument. A performance change
//! must leave it unchanged. `v1` feeds the file as stored, `v3` upgraded first.
//!
//! Passes after the first run in `steady_pass`, so callgrind can count the steady state
//! alone: `valgrind --tool=callgrind --toggle-collect='pipeline_digest::steady_pass' ...`.

use std::io::Read;

use aurum_native::file::DbnFileSource;
use aurum_native::pipeline::{Pipeline, PipelineConfig};

#[path = "../benches/support/dbn_bytes.rs"]
mod dbn_bytes;
use dbn_bytes::{shift_times, time_span, to_v3};

// Inlined into `main` for the first pass, so callgrind's toggle on `steady_pass` leaves out
// its allocations (two identical `inline(never)` wrappers would be merged into one symbol).
#[inline(always)]
fn feed(p: &mut Pipeline, bytes: &[u8]) {
    p.decoder.reset();
    p.state.reset_events();
    for c in bytes.chunks(1 << 16) {
        p.feed(c).expect("decode");
    }
}

#[inline(never)]
fn steady_pass(p: &mut Pipeline, bytes: &[u8]) {
    feed(p, bytes)
}

/// FNV-1a.
fn mix(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h = (*h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
}

fn mix_raw(h: &mut u64, (ptr, len): (*const u8, usize)) {
    // SAFETY: `raw_parts` of a ring or table is its live allocation, `len` initialised bytes
    // (rings are filled with defaults at construction, tables count initialised rows); every
    // record type has explicit `_pad` fields and no implicit padding (size asserts in
    // ring.rs and records.rs), so every byte is initialised; `p` is not mutated meanwhile.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    mix(h, bytes);
}

fn digest(p: &Pipeline, mut h: u64) -> u64 {
    let s = &p.state;
    let o = &s.engine_out;
    for parts in [s.trades.raw_parts(), s.tops.raw_parts(), s.bars.raw_parts(), o.sweeps.raw_parts(), o.flow.raw_parts(), o.footprint.raw_parts(), o.icebergs.rows.raw_parts(), o.zones.rows.raw_parts()] {
        mix_raw(&mut h, parts);
    }
    let c = &s.counters;
    let text = format!("{} {} {} {} {} {:?}", c.records_total, c.trades, c.top_changes, c.bars_closed, s.clock(), s.anomalies());
    mix(&mut h, text.as_bytes());
    for inst in s.instruments() {
        let e = &inst.engines;
        let text = format!("{} {:?} {:?} {:?}", inst.id, e.pressure.state(), e.protect.state(&s.engine_config().protect, s.clock()), inst.last_top());
        mix(&mut h, text.as_bytes());
    }
    h
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().cloned().unwrap_or_else(|| "../shared/data/es-real/esh4-20231225.mbo.dbn.zst".into());
    let v3 = args.get(1).is_none_or(|m| m == "v3");
    let passes: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(4);
    let mut cfg = PipelineConfig::default();
    cfg.engines.enabled = args.get(3).is_none_or(|v| v != "off");
    let mut bytes = Vec::new();
    DbnFileSource::open(std::path::Path::new(&path)).expect("open").read_to_end(&mut bytes).expect("read");
    if v3 {
        bytes = to_v3(&bytes);
    }
    let span = time_span(&bytes);
    let mut p = Pipeline::new(cfg);
    let mut h = 0xcbf2_9ce4_8422_2325;
    for pass in 0..passes {
        if pass == 0 {
            feed(&mut p, &bytes);
        } else {
            shift_times(&mut bytes, span);
            steady_pass(&mut p, &bytes);
        }
        h = digest(&p, h);
    }
    let records = p.state.counters.records_total / passes.max(1) as u64;
    println!("records/pass {records} passes {passes} icebergs {} digest {h:016x}", p.state.engine_out.icebergs.rows.len());
}
