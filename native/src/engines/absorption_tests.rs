use super::*;

/// The reference's 30 s / 150-lot setting: the tests' volumes and times are built on it.
fn cfg30() -> AbsorptionConfig {
    AbsorptionConfig { window_ns: 30_000_000_000, min_volume: 150, ..AbsorptionConfig::default() }
}
use crate::engines::records::ZoneRec;
use crate::engines::EngineConfig;

const TICK: i64 = 100_000_000;
const L: i64 = 2_000 * 1_000_000_000;
const S: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;

fn outputs() -> Outputs {
    let cfg = EngineConfig { zone_capacity: 64, sweep_capacity: 64, iceberg_capacity: 64, flow_capacity: 64, footprint_capacity: 64, ..Default::default() };
    Outputs::new(&cfg)
}
fn top(bid: i64, bid_sz: u64, ask: i64, ask_sz: u64) -> Top {
    Top { bid: LevelView { price: bid, size: bid_sz, count: 1 }, ask: LevelView { price: ask, size: ask_sz, count: 1 } }
}
fn zone(out: &Outputs, side: u8, px: i64) -> Option<ZoneRec> {
    out.zones.get(7, ZONE_ABSORPTION, side, px).copied()
}

/// `n` sells of 10 lots at L every 100 ms from `t0`, publishing a top with the bid at L
/// and `depth(k)` lots after print k (k from 1). Returns the time after the last print.
fn sells(e: &mut AbsorptionEngine, out: &mut Outputs, cfg: &AbsorptionConfig, t0: u64, n: u64, depth: impl Fn(u64) -> u64) -> u64 {
    let mut t = t0;
    for k in 1..=n {
        e.on_trade(cfg, t, t + 5, L, 10, b'A', &top(L, depth(k - 1), L + TICK, 30), out);
        e.on_top(cfg, t, t + 5, &top(L, depth(k), L + TICK, 30), out);
        t += 100 * MS;
    }
    t
}

#[test]
fn refilled_bid_signals_once_with_full_replenishment() {
    let cfg = cfg30();
    let (mut e, mut out) = (AbsorptionEngine::new(7, &cfg), outputs());
    sells(&mut e, &mut out, &cfg, S, 14, |_| 50);
    assert!(zone(&out, b'B', L).is_none(), "140 lots < V_min");
    sells(&mut e, &mut out, &cfg, S + 1400 * MS, 6, |_| 50);
    let z = zone(&out, b'B', L).unwrap();
    assert_eq!((z.count, z.state, z.volume), (1, ZONE_ACTIVE, 200));
    // The bid kept showing 50 lots while 200 traded: all of it was replenished.
    assert_eq!(z.hidden_qty, 200);
    assert!((z.strength - 200.0 / 300.0).abs() < 1e-9);
    assert!(zone(&out, b'A', L).is_none());
}

#[test]
fn queue_eaten_out_has_no_replenishment() {
    let cfg = cfg30();
    let (mut e, mut out) = (AbsorptionEngine::new(7, &cfg), outputs());
    sells(&mut e, &mut out, &cfg, S, 15, |k| 200 - 10 * k);
    let z = zone(&out, b'B', L).unwrap();
    assert_eq!((z.count, z.volume, z.hidden_qty), (1, 150, 0));
    assert!((z.strength - 0.25).abs() < 1e-9);
}

#[test]
fn depth_estimate_within_one_event() {
    // Two prints of one event see the same stale top; the second must not count the
    // first one's fill as replenishment.
    let cfg = AbsorptionConfig { min_volume: 20, ..cfg30() };
    let (mut e, mut out) = (AbsorptionEngine::new(7, &cfg), outputs());
    let tp = top(L, 40, L + TICK, 5);
    e.on_trade(&cfg, S, S, L, 10, b'A', &tp, &mut out);
    e.on_trade(&cfg, S, S, L, 10, b'A', &tp, &mut out);
    // Judged when the event ends, not at each print (see the next test).
    assert!(zone(&out, b'B', L).is_none());
    // The published top shows the level refilled to 40: 20 replenished.
    e.on_top(&cfg, S, S, &tp, &mut out);
    assert_eq!(zone(&out, b'B', L).unwrap().hidden_qty, 20);
}

#[test]
fn a_print_through_the_level_later_in_the_same_match_blocks_the_signal() {
    // Rule (2), nothing traded below L over (t - W, t], covers the whole match: the sweep's
    // second print, at L - 1 with the same ts_event, is inside the window.
    let cfg = AbsorptionConfig { min_volume: 100, ..cfg30() };
    let (mut e, mut out) = (AbsorptionEngine::new(7, &cfg), outputs());
    let tp = top(L, 300, L + TICK, 5);
    e.on_trade(&cfg, S, S, L, 300, b'A', &tp, &mut out);
    e.on_trade(&cfg, S, S, L - TICK, 50, b'A', &tp, &mut out);
    e.on_top(&cfg, S, S, &top(L - TICK, 50, L, 5), &mut out);
    assert!(zone(&out, b'B', L).is_none() && out.zones.rows.is_empty());
    // The same match without the second print is absorption.
    let (mut e, mut out) = (AbsorptionEngine::new(7, &cfg), outputs());
    e.on_trade(&cfg, S, S, L, 300, b'A', &tp, &mut out);
    e.on_top(&cfg, S, S, &top(L, 300, L + TICK, 5), &mut out);
    assert_eq!(zone(&out, b'B', L).unwrap().count, 1);
}

#[test]
fn a_print_below_the_level_in_the_window_blocks_the_signal() {
    let cfg = cfg30();
    let (mut e, mut out) = (AbsorptionEngine::new(7, &cfg), outputs());
    e.on_trade(&cfg, S, S, L - TICK, 1, b'B', &top(L - TICK, 5, L, 5), &mut out);
    let t = sells(&mut e, &mut out, &cfg, 2 * S, 20, |_| 50);
    assert!(zone(&out, b'B', L).is_none());
    // Once the low print leaves the window (t > S + W) the condition can hold again.
    sells(&mut e, &mut out, &cfg, t.max(S + cfg.window_ns + 1), 1, |_| 50);
    assert_eq!(zone(&out, b'B', L).unwrap().count, 1);
}

#[test]
fn held_after_the_window_then_rearmed_after_the_period() {
    let cfg = cfg30();
    let (mut e, mut out) = (AbsorptionEngine::new(7, &cfg), outputs());
    let t = sells(&mut e, &mut out, &cfg, S, 20, |_| 50);
    let quiet = t + cfg.window_ns;
    e.on_top(&cfg, quiet, quiet, &top(L, 50, L + TICK, 30), &mut out);
    assert_eq!(zone(&out, b'B', L).unwrap().state, ZONE_HELD);
    // Absorbing again before the re-arm period: no new signal, the row stays HELD.
    sells(&mut e, &mut out, &cfg, quiet + S, 20, |_| 50);
    let z = zone(&out, b'B', L).unwrap();
    assert_eq!((z.count, z.state), (1, ZONE_HELD));
    // After the re-arm period (from the first signal) it signals again.
    sells(&mut e, &mut out, &cfg, S + cfg.rearm_ns + S, 15, |_| 50);
    let z = zone(&out, b'B', L).unwrap();
    assert_eq!((z.count, z.state), (2, ZONE_ACTIVE));
}

#[test]
fn held_when_the_bid_moves_up() {
    let cfg = cfg30();
    let (mut e, mut out) = (AbsorptionEngine::new(7, &cfg), outputs());
    let t = sells(&mut e, &mut out, &cfg, S, 15, |_| 50);
    e.on_top(&cfg, t, t, &top(L + TICK, 3, L + 2 * TICK, 30), &mut out);
    assert_eq!(zone(&out, b'B', L).unwrap().state, ZONE_HELD);
}

#[test]
fn broken_by_a_trade_through_which_rearms_the_level() {
    let cfg = cfg30();
    let (mut e, mut out) = (AbsorptionEngine::new(7, &cfg), outputs());
    let t = sells(&mut e, &mut out, &cfg, S, 15, |_| 50);
    e.on_trade(&cfg, t, t, L - TICK, 50, b'A', &top(L, 50, L + TICK, 30), &mut out);
    assert_eq!(zone(&out, b'B', L).unwrap().state, ZONE_BROKEN);
    // Well inside the re-arm period, but the break re-armed L (once the low print aged out).
    sells(&mut e, &mut out, &cfg, t + cfg.window_ns + S, 15, |_| 50);
    let z = zone(&out, b'B', L).unwrap();
    assert_eq!((z.count, z.state), (2, ZONE_ACTIVE));
}

#[test]
fn buy_absorption_at_the_ask_is_symmetric() {
    let cfg = AbsorptionConfig { min_volume: 30, ..cfg30() };
    let (mut e, mut out) = (AbsorptionEngine::new(7, &cfg), outputs());
    let a = L + TICK;
    for k in 0..3 {
        e.on_trade(&cfg, S + k, S + k, a, 10, b'B', &top(L, 5, a, 20), &mut out);
        e.on_top(&cfg, S + k, S + k, &top(L, 5, a, 20), &mut out);
    }
    let z = zone(&out, b'A', a).unwrap();
    assert_eq!((z.count, z.volume, z.hidden_qty, z.state), (1, 30, 30, ZONE_ACTIVE));
    // A print above the ask zone breaks it.
    e.on_trade(&cfg, S + 10, S + 10, a + TICK, 1, b'B', &top(L, 5, a, 20), &mut out);
    assert_eq!(zone(&out, b'A', a).unwrap().state, ZONE_BROKEN);
    assert!(zone(&out, b'B', L).is_none());
}

#[test]
fn small_window_capacity_evicts_early_without_panicking() {
    let cfg = AbsorptionConfig { window_capacity: 8, min_volume: 50, ..cfg30() };
    let (mut e, mut out) = (AbsorptionEngine::new(7, &cfg), outputs());
    sells(&mut e, &mut out, &cfg, S, 20, |_| 50);
    assert_eq!(e.counters.early_evictions, 12);
    // Only the last 8 prints (80 lots) are in the window.
    assert_eq!(zone(&out, b'B', L).unwrap().volume, 80);
}

#[test]
fn disabled_does_nothing() {
    let cfg = AbsorptionConfig { enabled: false, ..cfg30() };
    let (mut e, mut out) = (AbsorptionEngine::new(7, &cfg), outputs());
    sells(&mut e, &mut out, &cfg, S, 30, |_| 50);
    assert!(out.zones.is_empty());
}
