//! Hostile input for the whole native record path (shared by `native/tests/hostile_input.rs`
//! and the coverage-guided `fuzz/fuzz_targets/pipeline_feed.rs`): decoder, books, every engine, bars and
//! the hold at bar close, driven the way the Python bindings drive it (chunks cut anywhere,
//! `resume`, `advance_clock`, stream resets, `flush_bars`).
//!
//! The input is read as a script. Records are mostly well-formed DBN (so the fuzzer gets
//! past the decoder into the books and engines) with field values drawn from small pools
//! that collide (a few order ids, prices near one touch) or from the edges (`i64::MAX`,
//! `UNDEF_PRICE`, `u32::MAX` sizes, time going backwards); raw bytes are spliced in too.
//! Any panic is a bug: in the daemon it would cross the FFI boundary.
//!
//! Needs `support/synthetic.rs` as the crate's `synthetic` module (its metadata header).
//!
//! Checked invariants besides "no panic": a decode error is sticky until the stream is
//! reset, and nothing is deferred once `resume` has returned with the pipeline not held.

use arbitrary::{Result, Unstructured};
use aurum_native::bars::BarConfig;
use aurum_native::pipeline::{Pipeline, PipelineConfig};
use dbn::{rtype, FlagSet, MboMsg, Mbp10Msg, Mbp1Msg, RecordHeader, TradeMsg};

const BASE_TS: u64 = 1_700_000_000_000_000_000;
const MID: i64 = 2_400_000_000_000;
const TICK: i64 = 100_000_000;

struct Gen {
    ts: u64,
}

impl Gen {
    fn ts(&mut self, u: &mut Unstructured<'_>) -> Result<u64> {
        Ok(match u.int_in_range(0..=15u8)? {
            0 => u.arbitrary()?,                                   // anything, backwards too
            1 => self.ts.saturating_sub(u.int_in_range(0..=10_000_000_000u64)?),
            2 => self.ts.saturating_add(u.int_in_range(0..=600_000_000_000u64)?), // bar gaps
            3 => u64::MAX,                                         // UNDEF_TIMESTAMP
            _ => self.ts.saturating_add(u.int_in_range(0..=5_000_000u64)?),
        })
    }

    fn price(u: &mut Unstructured<'_>) -> Result<i64> {
        Ok(match u.int_in_range(0..=15u8)? {
            0 => u.arbitrary()?,
            1 => i64::MAX, // UNDEF_PRICE
            2 => i64::MIN,
            3 => 0,
            4 => -MID,
            _ => MID + u.int_in_range(-12..=12i64)? * TICK,
        })
    }

    fn size(u: &mut Unstructured<'_>) -> Result<u32> {
        Ok(match u.int_in_range(0..=9u8)? {
            0 => u.arbitrary()?,
            1 => u32::MAX,
            2 => 0,
            _ => u.int_in_range(1..=20u32)?,
        })
    }

    fn side(u: &mut Unstructured<'_>) -> Result<i8> {
        Ok(match u.int_in_range(0..=7u8)? {
            0 => u.arbitrary()?,
            1 => b'N' as i8,
            2..=4 => b'A' as i8,
            _ => b'B' as i8,
        })
    }

    fn flags(u: &mut Unstructured<'_>) -> Result<FlagSet> {
        Ok(FlagSet::from(match u.int_in_range(0..=5u8)? {
            0 => u.arbitrary()?,
            1 => 0,
            2 => dbn::flags::SNAPSHOT,
            3 => dbn::flags::LAST | dbn::flags::SNAPSHOT,
            4 => dbn::flags::LAST | dbn::flags::BAD_TS_RECV,
            _ => dbn::flags::LAST,
        }))
    }

    fn instrument(u: &mut Unstructured<'_>) -> Result<u32> {
        Ok(match u.int_in_range(0..=31u8)? {
            0 => u.arbitrary()?,
            1 => 2,
            2 => 3,
            _ => 1,
        })
    }

    fn hd<T: dbn::HasRType>(&mut self, u: &mut Unstructured<'_>, rt: u8) -> Result<RecordHeader> {
        let ts = self.ts(u)?;
        if ts != u64::MAX {
            self.ts = self.ts.max(ts);
        }
        Ok(RecordHeader::new::<T>(rt, 1, Self::instrument(u)?, ts))
    }

    fn mbo(&mut self, u: &mut Unstructured<'_>) -> Result<MboMsg> {
        let hd = self.hd::<MboMsg>(u, rtype::MBO)?;
        let action = *u.choose(b"AAAACCCMMTFRN\0")?;
        Ok(MboMsg {
            hd,
            order_id: match u.int_in_range(0..=7u8)? {
                0 => u.arbitrary()?,
                1 => 0,
                _ => u.int_in_range(1..=24u64)?,
            },
            price: Self::price(u)?,
            size: Self::size(u)?,
            flags: Self::flags(u)?,
            channel_id: 0,
            action: action as i8,
            side: Self::side(u)?,
            ts_recv: if u.ratio(1, 8)? { u.arbitrary()? } else { hd.ts_event },
            ts_in_delta: 0,
            sequence: u.arbitrary()?,
        })
    }

    fn trade(&mut self, u: &mut Unstructured<'_>) -> Result<TradeMsg> {
        let hd = self.hd::<TradeMsg>(u, rtype::MBP_0)?;
        Ok(TradeMsg {
            hd,
            price: Self::price(u)?,
            size: Self::size(u)?,
            action: b'T' as i8,
            side: Self::side(u)?,
            flags: Self::flags(u)?,
            ts_recv: hd.ts_event,
            ..Default::default()
        })
    }

    fn level(u: &mut Unstructured<'_>, k: i64) -> Result<dbn::BidAskPair> {
        let shift = if u.ratio(1, 6)? { Self::price(u)? } else { 0 };
        Ok(dbn::BidAskPair {
            bid_px: MID.wrapping_sub((k + 1) * TICK).wrapping_add(shift),
            ask_px: MID.wrapping_add(k * TICK).wrapping_add(shift),
            bid_sz: Self::size(u)?,
            ask_sz: Self::size(u)?,
            bid_ct: u.int_in_range(0..=5u32)?,
            ask_ct: u.int_in_range(0..=5u32)?,
        })
    }

    fn mbp10(&mut self, u: &mut Unstructured<'_>) -> Result<Mbp10Msg> {
        let hd = self.hd::<Mbp10Msg>(u, rtype::MBP_10)?;
        let mut levels = [dbn::BidAskPair::default(); 10];
        let n = u.int_in_range(0..=10usize)?;
        for (k, l) in levels.iter_mut().enumerate().take(n) {
            *l = Self::level(u, k as i64)?;
        }
        Ok(Mbp10Msg {
            hd,
            price: Self::price(u)?,
            size: Self::size(u)?,
            action: *u.choose(b"ACMTR")? as i8,
            side: Self::side(u)?,
            flags: Self::flags(u)?,
            depth: u.int_in_range(0..=10u8)?,
            ts_recv: hd.ts_event,
            levels,
            ..Default::default()
        })
    }

    fn mbp1(&mut self, u: &mut Unstructured<'_>) -> Result<Mbp1Msg> {
        let hd = self.hd::<Mbp1Msg>(u, rtype::MBP_1)?;
        Ok(Mbp1Msg {
            hd,
            price: Self::price(u)?,
            size: Self::size(u)?,
            action: *u.choose(b"ACMT")? as i8,
            side: Self::side(u)?,
            flags: Self::flags(u)?,
            ts_recv: hd.ts_event,
            levels: [Self::level(u, 0)?],
            ..Default::default()
        })
    }
}

/// A record's bytes, stretched by `ts_out` (length byte + 8 bytes) when the stream has it.
fn encode<R: AsRef<[u8]>>(out: &mut Vec<u8>, rec: R, ts_out: Option<u64>) {
    let start = out.len();
    out.extend_from_slice(rec.as_ref());
    if let Some(t) = ts_out {
        out[start] += 2; // the length byte counts 4-byte words
        out.extend_from_slice(&t.to_le_bytes());
    }
}

// Field by field on purpose: the fuzzer's bytes are consumed in this order, so a saved corpus
// keeps meaning the same configurations.
#[allow(clippy::field_reassign_with_default)]
fn config(u: &mut Unstructured<'_>) -> Result<PipelineConfig> {
    let mut cfg = PipelineConfig::default();
    cfg.hold_at_bar_close = u.ratio(3, 4)?;
    cfg.strict = u.ratio(1, 4)?;
    cfg.max_instruments = u.int_in_range(1..=6usize)?;
    // Small rings, so they wrap.
    cfg.trade_capacity = 1 << u.int_in_range(1..=6u32)?;
    cfg.top_capacity = 1 << u.int_in_range(1..=6u32)?;
    cfg.bar_capacity = 1 << u.int_in_range(1..=6u32)?;
    cfg.bars = BarConfig {
        interval_ns: *u.choose(&[1_000_000_000u64, 60_000_000_000, 1, u64::MAX])?,
        tick_trades: *u.choose(&[0u32, 0, 1, 3])?,
        volume_contracts: *u.choose(&[0u64, 0, 1, 25])?,
    };
    cfg.engines.enabled = u.ratio(7, 8)?;
    // Small tables and windows: they fill and wrap within one input, and a pipeline is cheap
    // to build (the default capacities cost milliseconds per run in allocation alone).
    let e = &mut cfg.engines;
    e.iceberg_capacity = u.int_in_range(1..=64usize)?;
    e.zone_capacity = u.int_in_range(1..=64usize)?;
    e.sweep_capacity = u.int_in_range(1..=64usize)?;
    e.flow_capacity = u.int_in_range(1..=64usize)?;
    e.footprint_capacity = u.int_in_range(1..=256usize)?;
    e.absorption.window_capacity = u.int_in_range(1..=64usize)?;
    e.flow.max_cells = u.int_in_range(1..=64usize)?;
    e.depth_sample_ns = *u.choose(&[100_000u64, 10_000_000, 1_000_000_000])?;
    e.validate().expect("the fuzz config is a valid one");
    Ok(cfg)
}

/// One script. `Err` only when the input ran out mid-step (not a failure).
pub fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let mut p = Pipeline::new(config(&mut u)?);
    let mut ts_out = u.arbitrary::<bool>()?;
    let mut gen = Gen { ts: BASE_TS };
    let mut pending = crate::synthetic::mbo_header(ts_out);
    let mut failed = false;
    while !u.is_empty() {
        let stamp = ts_out.then_some(gen.ts);
        match u.int_in_range(0..=31u8)? {
            0..=15 => encode(&mut pending, gen.mbo(&mut u)?, stamp),
            16..=17 => encode(&mut pending, gen.trade(&mut u)?, stamp),
            18..=19 => encode(&mut pending, gen.mbp10(&mut u)?, stamp),
            20 => encode(&mut pending, gen.mbp1(&mut u)?, stamp),
            21 => {
                let n = u.int_in_range(0..=64usize)?;
                let raw: &[u8] = u.bytes(n)?;
                pending.extend_from_slice(raw);
            }
            22..=26 => {
                // Feed a prefix: chunks end anywhere, mid-record included.
                let cut = u.int_in_range(0..=pending.len())?;
                let r = p.feed(&pending[..cut]);
                if failed {
                    assert!(r.is_err(), "a failed stream accepted more input");
                }
                failed |= r.is_err();
                pending.drain(..cut);
            }
            27 | 28 => {
                p.resume();
                assert!(p.state.held() || p.state.deferred_bytes() == 0, "not held, yet records are deferred");
            }
            29 => {
                p.state.advance_clock(gen.ts.saturating_add(u.int_in_range(0..=120_000_000_000u64)?));
            }
            30 => {
                // A reconnect: a new stream, as the live client does it.
                p.decoder.reset();
                p.state.reset_events();
                failed = false;
                ts_out = u.arbitrary()?;
                pending = crate::synthetic::mbo_header(ts_out);
            }
            _ => {
                p.state.flush_bars();
            }
        }
    }
    let r = p.feed(&pending);
    if failed {
        assert!(r.is_err(), "a failed stream accepted more input");
    }
    while p.state.held() {
        p.resume();
    }
    assert_eq!(p.state.deferred_bytes(), 0);
    let _ = p.finish();
    let _ = p.state.anomalies();
    Ok(())
}
