//! Fixed-size `repr(C)` output records of the engines. Python reads them in place as numpy
//! structured arrays (`aurum/engines.py` mirrors every layout; a test checks the sizes and
//! offsets), so fields are only ever appended, never reordered.

pub const ICEBERG_NATIVE: u8 = 1;
/// Experimental: a heuristic (see `iceberg.rs`), not exchange-confirmed.
pub const ICEBERG_SYNTHETIC: u8 = 2;

pub const ICEBERG_ACTIVE: u8 = 1;
/// The reserve ran out: the order traded away completely.
pub const ICEBERG_FILLED: u8 = 2;
/// Pulled (or, for a synthetic chain, no new clip within its window) before it traded out.
pub const ICEBERG_CANCELLED: u8 = 3;

/// One detected iceberg, native or synthetic; updated in place while it lives.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IcebergRec {
    /// Native: the order id. Synthetic: the latest clip's order id.
    pub order_id: u64,
    /// Native: the order id. Synthetic: the first clip's order id.
    pub first_order_id: u64,
    pub price: i64,
    /// Hidden quantity revealed so far: a lower bound on the order's reserve.
    pub hidden_qty: u64,
    /// Lots filled since the order was first seen (native) or over all clips (synthetic).
    pub filled_qty: u64,
    /// `ts_recv` of the first and the latest record that updated it.
    pub first_ts: u64,
    pub last_ts: u64,
    pub instrument_id: u32,
    /// Display quantity (the clip): native, the size the order was added with.
    pub clip: u32,
    /// Native: clip re-instatements (estimated as revealed / clip, at least 1 per refill M).
    /// Synthetic: clips after the first.
    pub refills: u32,
    /// Native: events with a refill. Synthetic: clips seen.
    pub events: u32,
    /// `B` or `A`: the resting side.
    pub side: u8,
    pub kind: u8,
    pub state: u8,
    pub _pad: [u8; 5],
}

pub const ZONE_ICEBERG: u8 = 1;
pub const ZONE_ABSORPTION: u8 = 2;

pub const ZONE_ACTIVE: u8 = 1;
/// Absorption zones: the level held (price turned away, or the window ended with no break).
pub const ZONE_HELD: u8 = 2;
/// Price traded through the level.
pub const ZONE_BROKEN: u8 = 3;

/// A price zone: Iceberg Memory (built from icebergs) or an absorption zone.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ZoneRec {
    pub price: i64,
    pub first_ts: u64,
    pub last_ts: u64,
    /// Iceberg zones: lots filled against icebergs here. Absorption: aggressor volume absorbed.
    pub volume: u64,
    /// Iceberg zones: hidden quantity revealed. Absorption: replenishment (lots traded at the
    /// level beyond the depth that disappeared), a sign of hidden or refreshing liquidity.
    pub hidden_qty: u64,
    /// 0..1, see the engine that owns the zone kind.
    pub strength: f64,
    pub instrument_id: u32,
    /// Iceberg zones: icebergs seen here. Absorption: signals at this level.
    pub count: u32,
    pub side: u8,
    pub kind: u8,
    pub state: u8,
    pub _pad: [u8; 5],
}

pub const SWEEP: u8 = 1;
pub const STOP_RUN: u8 = 2;

/// A liquidity sweep (one aggressor through 2+ prices) or a stop run (elected stops).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepRec {
    pub ts_event: u64,
    pub ts_recv: u64,
    /// First and last (furthest) price traded.
    pub first_px: i64,
    pub last_px: i64,
    pub volume: u64,
    /// MBO: the first aggressor's order id; 0 without MBO.
    pub order_id: u64,
    pub instrument_id: u32,
    /// Distinct prices traded.
    pub levels: u16,
    /// Elected stops: same-side aggressors after the first in one event (MBO), or sweeps
    /// after the first in a run (L2).
    pub stops: u16,
    /// Aggressor side, `B` or `A`.
    pub side: u8,
    pub kind: u8,
    /// rtype the detection came from (MBO or trades).
    pub source: u8,
    pub _pad: [u8; 5],
}

pub const FLOW_DIVERGENCE_BEAR: u32 = 1;
pub const FLOW_DIVERGENCE_BULL: u32 = 2;
pub const FLOW_STACKED_BUY: u32 = 4;
pub const FLOW_STACKED_SELL: u32 = 8;
/// The CVD was reset at this bar's open (a new session).
pub const FLOW_SESSION_START: u32 = 16;

/// Order flow of one closed time bar.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowRec {
    pub ts_open: u64,
    pub ts_close: u64,
    pub delta: i64,
    /// Cumulative delta at the bar close, since the session start.
    pub cvd: i64,
    pub buy_volume: u64,
    pub sell_volume: u64,
    /// Prints with no aggressor side (`N`), never assigned to either side.
    pub none_volume: u64,
    /// Cont-Kukanov-Stoikov order-flow imbalance summed over the bar, in lots.
    pub ofi: i64,
    pub high: i64,
    pub low: i64,
    pub close: i64,
    /// Price with the most volume.
    pub poc: i64,
    /// Write sequence (in the footprint ring) of this bar's first cell.
    pub fp_start: u64,
    pub fp_len: u32,
    /// Prices that did not fit the bar's footprint table (their volume is still in the totals).
    pub fp_overflow: u32,
    pub instrument_id: u32,
    pub flags: u32,
    pub buy_imbalances: u16,
    pub sell_imbalances: u16,
    /// Longest run of consecutive prices with a diagonal imbalance, per direction.
    pub stacked_buy: u16,
    pub stacked_sell: u16,
}

pub const CELL_BUY_IMBALANCE: u8 = 1;
pub const CELL_SELL_IMBALANCE: u8 = 2;

/// One footprint cell: volume at one price in one bar.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FootprintCell {
    pub bar_ts: u64,
    pub price: i64,
    /// Buy-aggressor volume (lifted the ask).
    pub ask_volume: u32,
    /// Sell-aggressor volume (hit the bid).
    pub bid_volume: u32,
    pub none_volume: u32,
    pub instrument_id: u32,
    pub imbalance: u8,
    pub _pad: [u8; 7],
}

// Every record is exactly the sum of its fields (explicit `_pad`, no implicit padding), so
// the bytes Python reads and the bytes a snapshot restores are all defined.
const _: () = assert!(std::mem::size_of::<IcebergRec>() == 80);
const _: () = assert!(std::mem::size_of::<ZoneRec>() == 64);
const _: () = assert!(std::mem::size_of::<SweepRec>() == 64);
const _: () = assert!(std::mem::size_of::<FlowRec>() == 128);
const _: () = assert!(std::mem::size_of::<FootprintCell>() == 40);
