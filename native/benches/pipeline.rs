//! `cargo bench --bench pipeline [-- FILE]`: decode only, decode + books + rings, and the
//! full pipeline (decode + books + every engine) on one DBN file held in memory
//! (decompressed first), measured side by side in every pass; medians of the passes.
//! Default file: ../shared/data/es-real/esh4-20231225.mbo.dbn.zst.
//!
//! Between passes (untimed) every timestamp moves forward by the file's time span, so each
//! pass continues the session as a live feed would. Replaying the same timestamps instead
//! stops the clock after the first pass: no bar closes, no depth sample, no window expiry,
//! and the engines' time-driven work silently drops out of the median.

use std::io::Read;
use std::time::Instant;

use aurum_native::decoder::StreamDecoder;
use aurum_native::file::DbnFileSource;
use aurum_native::pipeline::{Pipeline, PipelineConfig};

#[path = "support/dbn_bytes.rs"]
mod dbn_bytes;
use dbn_bytes::{shift_times, time_span, to_v3};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let path = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "../shared/data/es-real/esh4-20231225.mbo.dbn.zst".into());
    let mut src = match DbnFileSource::open(std::path::Path::new(&path)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipping: cannot open {path}: {e}");
            return;
        }
    };
    let mut file_bytes = Vec::new();
    src.read_to_end(&mut file_bytes).expect("read");
    let only_v3 = std::env::var("AURUM_BENCH_ONLY").is_ok_and(|v| v == "v3");
    if !only_v3 {
        run("file as stored", &path, &file_bytes);
    }
    // The live gateway sends DBN v3; older files take the crate's per-record upgrade path.
    run("upgraded to DBN v3 (live wire format)", &path, &to_v3(&file_bytes));
}

fn run(label: &str, path: &str, bytes: &[u8]) {
    let bytes = bytes.to_vec();
    let passes: usize = std::env::var("AURUM_BENCH_PASSES").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let mut records = 0;
    let mut decode = Vec::new();
    let mut full = Vec::new();
    let mut engines = Vec::new();
    // Steady state, as in the daemon: long-lived pipelines; each pass is a new stream
    // (reset, as after a reconnect) whose snapshot rebuilds the book from empty.
    let mut cfg = PipelineConfig::default();
    cfg.engines.enabled = false;
    let mut p = Pipeline::new(cfg);
    let mut pe = Pipeline::new(PipelineConfig::default());
    let mut d = StreamDecoder::new(false);
    let mut bytes = bytes;
    let span = time_span(&bytes);
    for pass in 0..passes {
        if pass > 0 {
            shift_times(&mut bytes, span);
        }
        d.reset();
        let t = Instant::now();
        let mut n = 0u64;
        for c in bytes.chunks(1 << 16) {
            n += d.feed(c, |r| {
                std::hint::black_box(r.header().ts_event);
            })
            .unwrap();
        }
        decode.push(t.elapsed().as_secs_f64());
        records = n;
        p.decoder.reset();
        let t = Instant::now();
        for c in bytes.chunks(1 << 16) {
            p.feed(c).unwrap();
        }
        full.push(t.elapsed().as_secs_f64());
        pe.decoder.reset();
        pe.state.reset_events();
        let t = Instant::now();
        for c in bytes.chunks(1 << 16) {
            pe.feed(c).unwrap();
        }
        engines.push(t.elapsed().as_secs_f64());
    }
    let ice = pe.state.engine_out.icebergs.rows.len();
    // The L3 book alone, on records decoded beforehand.
    let mut mbos: Vec<dbn::MboMsg> = Vec::new();
    let mut d = StreamDecoder::new(false);
    d.feed(&bytes, |r| {
        if let Ok(m) = r.try_get::<dbn::MboMsg>() {
            mbos.push(*m);
        }
    })
    .unwrap();
    let mut book_t = Vec::new();
    let mut book = aurum_native::book::L3Book::new();
    for _ in 0..passes {
        book.clear();
        let t = Instant::now();
        for m in &mbos {
            match m.action as u8 {
                b'A' => book.add(m.order_id, m.side as u8, m.price, m.size),
                b'C' => book.cancel(m.order_id, m.size),
                b'M' => book.modify(m.order_id, m.side as u8, m.price, m.size),
                b'R' => book.clear(),
                _ => {}
            }
            if m.flags.raw() & dbn::flags::LAST != 0 {
                std::hint::black_box(book.top());
            }
        }
        book_t.push(t.elapsed().as_secs_f64());
    }
    let b = median(book_t);
    let (d, f, e) = (median(decode), median(full), median(engines));
    println!("{label}: {path}: {records} records, {passes} passes, median per pass");
    println!("decode only            {:>8.3} ms  {:>7.1} M rec/s", d * 1e3, records as f64 / d / 1e6);
    println!("decode + books + rings {:>8.3} ms  {:>7.1} M rec/s", f * 1e3, records as f64 / f / 1e6);
    println!("full: + every engine   {:>8.3} ms  {:>7.1} M rec/s  (engines cost {:.0}% of decode + books; {ice} icebergs)", e * 1e3, records as f64 / e / 1e6, (e / f - 1.0) * 100.0);
    println!("L3 book alone          {:>8.3} ms  {:>7.1} M rec/s  ({} MBO records pre-decoded)", b * 1e3, mbos.len() as f64 / b / 1e6, mbos.len());
}
