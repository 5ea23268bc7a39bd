//! Microstructure engines on the record path: iceberg detection and Iceberg Memory (L3),
//! absorption (L2), sweeps and stop runs, order flow (delta, CVD, footprint, imbalances,
//! divergence), book pressure (queue imbalance, OFI, microprice) and capital-protection
//! inputs. The pipeline calls them per record, inside the same chunk loop as the books; no
//! engine calls Python or allocates per record once warm. Results land in preallocated
//! rings and tables (`Outputs`) that Python reads as numpy views.
//!
//! What runs depends on the schemas seen per instrument (`status`): MBO gives every engine;
//! MBP-10 + trades all but iceberg detection; trades alone order flow and bars.

pub mod absorption;
mod active_index;
pub mod flow;
pub mod iceberg;
mod iceberg_table;
pub mod pressure;
pub mod protect;
pub mod records;
pub mod sweep;
pub mod table;
pub mod zones;

use dbn::MboMsg;

use crate::book::Top;
use crate::ring::Ring;

pub use absorption::{AbsorptionConfig, AbsorptionEngine};
pub use flow::{FlowConfig, OrderFlow};
pub use iceberg::{IcebergConfig, IcebergDetector, IcebergTable};
pub use pressure::{BookPressure, PressureConfig, PressureState};
pub use protect::{ProtectConfig, Protection, RiskState};
pub use records::*;
pub use sweep::{SweepConfig, SweepDetector};
pub use zones::ZoneTable;

/// Levels per side sampled for depth measures (pressure, liquidity vacuum).
pub const DEPTH: usize = 10;

#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    /// False: the pipeline runs decode + books + bars only (for benchmarks and replays
    /// that need no engines).
    pub enabled: bool,
    pub iceberg: IcebergConfig,
    pub absorption: AbsorptionConfig,
    pub sweep: SweepConfig,
    pub flow: FlowConfig,
    pub pressure: PressureConfig,
    pub protect: ProtectConfig,
    /// Depth (10 levels per side) is sampled at a top-of-book change and at a time-bar close,
    /// at most this often.
    pub depth_sample_ns: u64,
    pub iceberg_capacity: usize,
    pub zone_capacity: usize,
    pub sweep_capacity: usize,
    pub flow_capacity: usize,
    pub footprint_capacity: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            iceberg: IcebergConfig::default(),
            absorption: AbsorptionConfig::default(),
            sweep: SweepConfig::default(),
            flow: FlowConfig::default(),
            pressure: PressureConfig::default(),
            protect: ProtectConfig::default(),
            depth_sample_ns: 10_000_000,
            iceberg_capacity: 1 << 16,
            zone_capacity: 1 << 14,
            sweep_capacity: 1 << 13,
            flow_capacity: 1 << 12,
            footprint_capacity: 1 << 16,
        }
    }
}

impl EngineConfig {
    /// Rejects values that would allocate without bound or make a rule meaningless. The
    /// error names the setting, as the config file spells it.
    pub fn validate(&self) -> Result<(), String> {
        const MAX_ROWS: usize = 1 << 22;
        for (name, v) in [
            ("iceberg_capacity", self.iceberg_capacity),
            ("zone_capacity", self.zone_capacity),
            ("sweep_capacity", self.sweep_capacity),
            ("flow_capacity", self.flow_capacity),
            ("footprint_capacity", self.footprint_capacity),
        ] {
            if v == 0 || v > MAX_ROWS {
                return Err(format!("{name} was {v}, expected 1..={MAX_ROWS}"));
            }
        }
        // Per-instrument buffers: bounded tighter, since every instrument gets its own.
        for (name, v, max) in [
            ("absorption.window_capacity", self.absorption.window_capacity, 1 << 16),
            ("flow.max_cells", self.flow.max_cells, 4096),
        ] {
            if v == 0 || v > max {
                return Err(format!("{name} was {v}, expected 1..={max}"));
            }
        }
        if self.depth_sample_ns < 100_000 {
            return Err(format!("depth_sample_ns was {}, expected >= 100000 (0.1 ms): depth is sampled, not recomputed per update", self.depth_sample_ns));
        }
        let unit = |name: &str, v: f64, lo_open: bool| -> Result<(), String> {
            let ok = v.is_finite() && v <= 1.0 && if lo_open { v > 0.0 } else { v >= 0.0 };
            if ok { Ok(()) } else { Err(format!("{name} was {v}, expected a number in {}0, 1]", if lo_open { "(" } else { "[" })) }
        };
        unit("protect.spread_alpha", self.protect.spread_alpha, true)?;
        unit("protect.depth_alpha", self.protect.depth_alpha, true)?;
        unit("protect.vacuum_frac", self.protect.vacuum_frac, false)?;
        unit("pressure.depth_decay", self.pressure.depth_decay, true)?;
        for (name, v) in [
            ("flow.imbalance_ratio", self.flow.imbalance_ratio),
            ("iceberg.strength_lots", self.iceberg.strength_lots),
            ("protect.spread_mult", self.protect.spread_mult),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name} was {v}, expected a positive number"));
            }
        }
        if self.absorption.window_ns == 0 {
            return Err("absorption.window_ns was 0, expected a positive duration".into());
        }
        if self.sweep.min_levels < 2 {
            return Err(format!("sweep.min_levels was {}, expected >= 2 (one price is not a sweep)", self.sweep.min_levels));
        }
        if self.iceberg.zone_width < 0 {
            return Err(format!("iceberg.zone_width was {}, expected >= 0", self.iceberg.zone_width));
        }
        if self.flow.tick < 0 {
            return Err(format!("flow.tick was {}, expected >= 0 (0: inferred from the prints; GC: 100000000)", self.flow.tick));
        }
        Ok(())
    }
}

/// Every engine's output, shared by all instruments.
pub struct Outputs {
    pub icebergs: IcebergTable,
    pub zones: ZoneTable,
    pub sweeps: Ring<SweepRec>,
    pub flow: Ring<FlowRec>,
    pub footprint: Ring<FootprintCell>,
}

impl Outputs {
    pub fn new(cfg: &EngineConfig) -> Self {
        Self {
            icebergs: IcebergTable::new(cfg.iceberg_capacity),
            zones: ZoneTable::new(cfg.zone_capacity),
            sweeps: Ring::new(cfg.sweep_capacity),
            flow: Ring::new(cfg.flow_capacity),
            footprint: Ring::new(cfg.footprint_capacity),
        }
    }
}

/// Schemas seen for an instrument (the pipeline's source bits).
pub const SEEN_MBO: u8 = 1;
pub const SEEN_TRADES: u8 = 2;
pub const SEEN_MBP10: u8 = 4;
pub const SEEN_MBP1: u8 = 8;

/// Whether each engine runs for an instrument, and if not, why.
pub fn status(seen: u8, enabled: bool) -> [(&'static str, bool, &'static str); 8] {
    let mbo = seen & SEEN_MBO != 0;
    let trades = seen & (SEEN_MBO | SEEN_TRADES | SEEN_MBP10 | SEEN_MBP1) != 0;
    let depth = seen & (SEEN_MBO | SEEN_MBP10) != 0;
    let top = seen & (SEEN_MBO | SEEN_MBP10 | SEEN_MBP1) != 0;
    let off = "engines disabled";
    let pick = |ok: bool, why: &'static str| if !enabled { (false, off) } else if ok { (true, "") } else { (false, why) };
    let e = |name, (ok, why)| (name, ok, why);
    [
        e("iceberg", pick(mbo, "needs MBO (order ids)")),
        e("synthetic_iceberg", pick(mbo, "needs MBO (order ids)")),
        e("iceberg_memory", pick(mbo, "needs MBO (built from icebergs)")),
        e("absorption", pick(depth && trades, "needs MBP-10 + trades, or MBO")),
        e("sweeps", pick(top && trades, "needs trades with a book (MBO, or MBP-10/MBP-1 + trades)")),
        e("orderflow", pick(trades, "needs trades")),
        e("pressure", pick(top, "needs a book (MBO, MBP-10 or MBP-1)")),
        e("protection", pick(top, "needs a book (MBO, MBP-10 or MBP-1)")),
    ]
}

/// One instrument's engine state.
pub struct InstrumentEngines {
    pub iceberg: IcebergDetector,
    pub absorption: AbsorptionEngine,
    pub sweep: SweepDetector,
    pub flow: OrderFlow,
    pub pressure: BookPressure,
    pub protect: Protection,
    last_depth_ts: u64,
}

impl InstrumentEngines {
    pub fn new(instrument_id: u32, cfg: &EngineConfig) -> Self {
        Self {
            iceberg: IcebergDetector::new(instrument_id, &cfg.iceberg),
            absorption: AbsorptionEngine::new(instrument_id, &cfg.absorption),
            sweep: SweepDetector::new(instrument_id, &cfg.sweep),
            flow: OrderFlow::new(instrument_id, &cfg.flow),
            pressure: BookPressure::new(instrument_id, &cfg.pressure),
            protect: Protection::new(instrument_id, &cfg.protect),
            last_depth_ts: 0,
        }
    }

    /// Every MBO record, before the book applies it (`book` is the state before).
    #[inline]
    pub fn on_mbo(&mut self, cfg: &EngineConfig, m: &MboMsg, book: &crate::book::L3Book, out: &mut Outputs) {
        self.iceberg.on_mbo(&cfg.iceberg, m, book, out);
        if m.action as u8 == b'T' {
            self.sweep.on_mbo_trade(&cfg.sweep, m);
        }
    }

    /// After the book applied an MBO record carrying F_LAST.
    #[inline]
    pub fn on_mbo_event_end(&mut self, cfg: &EngineConfig, ts_event: u64, ts_recv: u64, out: &mut Outputs) {
        self.iceberg.on_event_end(&cfg.iceberg, ts_event, ts_recv, out);
        self.sweep.on_event_end(&cfg.sweep, ts_event, ts_recv, out);
    }

    /// A print from the instrument's primary trade source. `top` is the last published top
    /// of book (before this print's event changed it).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn on_trade(&mut self, cfg: &EngineConfig, ts_event: u64, ts_recv: u64, price: i64, size: u32, side: u8, rtype: u8, top: &Top, out: &mut Outputs) {
        self.flow.on_trade(&cfg.flow, ts_event, price, size, side, out);
        self.absorption.on_trade(&cfg.absorption, ts_event, ts_recv, price, size, side, top, out);
        if rtype != dbn::rtype::MBO {
            self.sweep.on_print(&cfg.sweep, ts_event, ts_recv, price, size, side, rtype, top, out);
        }
    }

    /// A record with F_LAST (any book schema): flags for the protection engine.
    #[inline]
    pub fn on_last(&mut self, flags: u8, ts_recv: u64) {
        self.protect.on_last(flags, ts_recv);
    }

    /// The top of book changed (published at F_LAST, after `on_last` for the same record).
    /// `depth` writes the sizes of the best 10 levels per side (0 for a missing level) into
    /// the given arrays when called; it is called at most every `depth_sample_ns`.
    #[inline]
    pub fn on_top(&mut self, cfg: &EngineConfig, ts_event: u64, ts_recv: u64, top: &Top, out: &mut Outputs, depth: impl FnOnce(&mut [u64; DEPTH], &mut [u64; DEPTH])) {
        let e = self.pressure.on_top(&cfg.pressure, ts_event, top);
        self.flow.add_ofi(e);
        self.protect.on_top_after_last(&cfg.protect, ts_event, top);
        self.absorption.on_top(&cfg.absorption, ts_event, ts_recv, top, out);
        self.sample_depth(cfg, ts_event, depth);
    }

    /// A time bar closed: depth is sampled (when a sample is due) so the decision at this
    /// close sees the book as it is, even if only levels behind an unchanged best bid and
    /// offer moved. Sampling at top changes alone missed a book emptied behind the touch,
    /// and the liquidity-vacuum veto never fired. Once per bar close: no per-record cost.
    #[inline]
    pub fn on_bar_close(&mut self, cfg: &EngineConfig, now: u64, depth: impl FnOnce(&mut [u64; DEPTH], &mut [u64; DEPTH])) {
        self.sample_depth(cfg, now, depth);
    }

    /// The 10-level sizes into pressure and protection, at most every `depth_sample_ns`.
    #[inline]
    fn sample_depth(&mut self, cfg: &EngineConfig, ts_event: u64, depth: impl FnOnce(&mut [u64; DEPTH], &mut [u64; DEPTH])) {
        if ts_event >= self.last_depth_ts.saturating_add(cfg.depth_sample_ns) {
            self.last_depth_ts = ts_event;
            let (bids, asks) = self.pressure.depth_sizes_mut();
            depth(bids, asks);
            self.pressure.on_depth_sizes(&cfg.pressure);
            let (bd, ad) = self.pressure.depth();
            self.protect.on_depth_sums(&cfg.protect, bd, ad);
        }
    }

    /// The clock moved to `now` (time bars may close).
    #[inline]
    pub fn on_clock(&mut self, cfg: &EngineConfig, now: u64, out: &mut Outputs) {
        self.flow.on_clock(&cfg.flow, now, out);
        self.sweep.on_clock(&cfg.sweep, now, out);
    }

    /// End of stream: close open bars and pending groups.
    pub fn flush(&mut self, cfg: &EngineConfig, now: u64, out: &mut Outputs) {
        self.flow.flush(&cfg.flow, out);
        self.sweep.on_clock(&cfg.sweep, u64::MAX, out);
        self.iceberg.flush(&cfg.iceberg, now, out);
    }

    /// A new stream (reconnect): open events are void; books will be rebuilt.
    pub fn reset_events(&mut self) {
        self.iceberg.reset_event();
        self.sweep.reset_event();
    }
}
