//! `hold_at_bar_close`: the pipeline stops where a bar closes, so whatever reads the engines
//! at a bar close (the decision layer) sees the same state however the stream was chunked,
//! and that state is the engines' as of the bar's last record.

use aurum_native::pipeline::{Pipeline, PipelineConfig};

#[path = "support/synthetic.rs"]
mod synthetic;
#[allow(dead_code)]
#[path = "../benches/support/dbn_bytes.rs"]
mod dbn_bytes;

const IID: u32 = 42;

fn config(hold: bool) -> PipelineConfig {
    let mut cfg = PipelineConfig { hold_at_bar_close: hold, ..PipelineConfig::default() };
    cfg.bars.interval_ns = 10_000_000_000;
    cfg
}

/// What the decision layer can read, as text: counters, clock, rings written, tables,
/// and the instrument's top, book pressure, risk inputs and CVD.
fn snapshot(p: &Pipeline) -> String {
    let s = &p.state;
    let c = &s.counters;
    let inst = s.instrument(IID).expect("instrument seen");
    let e = &inst.engines;
    let cfg = s.engine_config();
    format!(
        "clock {} records {} trades {} tops {} bars {} ring {} icebergs {} zones {} sweeps {} flow {}\ntop {:?}\npressure {:?}\nrisk {:?}\ncvd {}",
        s.clock(),
        c.records_total,
        c.trades,
        c.top_changes,
        c.bars_closed,
        s.bars.written(),
        s.engine_out.icebergs.rows.len(),
        s.engine_out.zones.len(),
        s.engine_out.sweeps.written(),
        s.engine_out.flow.written(),
        inst.last_top(),
        e.pressure.state(),
        e.protect.state(&cfg.protect, s.clock()),
        e.flow.cvd(),
    )
}

/// Feeds `stream` in `chunk`-byte pieces, taking a snapshot at every hold; then the final one.
fn run(stream: &[u8], chunk: usize, cfg: PipelineConfig) -> (Vec<String>, String) {
    let mut p = Pipeline::new(cfg);
    let mut holds = Vec::new();
    for c in stream.chunks(chunk) {
        p.feed(c).unwrap();
        while p.state.held() {
            holds.push(snapshot(&p));
            assert!(p.resume() > 0 || !p.state.held(), "a resume makes progress");
        }
    }
    assert_eq!(p.resume(), 0, "not held: nothing to resume");
    assert_eq!(p.state.deferred_bytes(), 0);
    (holds, snapshot(&p))
}

#[test]
fn holds_are_the_same_for_every_chunking() {
    let stream = synthetic::synthetic();
    let (holds, last) = run(&stream, 1 << 16, config(true));
    // ~300 s of session in 10 s bars: a hold at each bar a record closed.
    assert!(holds.len() >= 25, "{} holds", holds.len());
    for chunk in [1usize, 7, 56, 1000, 4096, 1 << 20, stream.len()] {
        let (h, l) = run(&stream, chunk, config(true));
        assert_eq!(h, holds, "chunk {chunk}");
        assert_eq!(l, last, "chunk {chunk}");
    }
    // Without the hold the end is the same: deferring loses and reorders nothing.
    let (none, plain_last) = run(&stream, 1 << 16, config(false));
    assert!(none.is_empty());
    assert_eq!(plain_last, last);
}

#[test]
fn a_hold_shows_the_engines_as_of_the_bars_last_record() {
    let stream = synthetic::synthetic();
    let (holds, _) = run(&stream, 1 << 16, config(true));
    let mut offsets = Vec::new();
    dbn_bytes::for_each_record(&stream, |pos, _| offsets.push(pos));
    for (n, hold) in holds.iter().enumerate().step_by(7) {
        // Records processed at the hold: every record before the one that closed the bar.
        let k: usize = hold.split_whitespace().nth(3).unwrap().parse().unwrap();
        let closing_ts = dbn_bytes::read_u64(&stream, offsets[k] + 8);
        // A pipeline fed exactly those records, its clock then moved to the closing
        // record's time, closes the same bars and holds the same state.
        let mut p = Pipeline::new(config(false));
        p.feed(&stream[..offsets[k]]).unwrap();
        p.state.advance_clock(closing_ts);
        assert_eq!(&snapshot(&p), hold, "hold {n}");
    }
}

#[test]
fn records_fed_while_held_wait_in_order() {
    let stream = synthetic::synthetic();
    let (_, last) = run(&stream, 1 << 16, config(true));
    let mut p = Pipeline::new(config(true));
    // Everything fed without a single resume: all but the first bar's records wait.
    for c in stream.chunks(1 << 12) {
        p.feed(c).unwrap();
    }
    assert!(p.state.held());
    assert!(p.state.deferred_bytes() > stream.len() / 2);
    let mut holds = 0;
    while p.state.held() {
        p.resume();
        holds += 1;
    }
    assert!(holds >= 25);
    assert_eq!(snapshot(&p), last);
}

#[test]
fn tick_bars_hold_right_after_the_closing_trade() {
    let stream = synthetic::synthetic();
    let mut cfg = config(true);
    cfg.bars.interval_ns = 0;
    cfg.bars.tick_trades = 50;
    let mut p = Pipeline::new(cfg);
    let mut holds = 0;
    for c in stream.chunks(1 << 16) {
        p.feed(c).unwrap();
        while p.state.held() {
            holds += 1;
            let c = &p.state.counters;
            assert_eq!(c.trades % 50, 0, "held after trade {}", c.trades);
            assert_eq!(c.bars_closed, c.trades / 50);
            p.resume();
        }
    }
    assert!(holds >= 10, "{holds}");
    assert_eq!(holds as u64, p.state.counters.trades / 50);
}
