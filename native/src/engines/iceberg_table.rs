//! The session's iceberg rows and the index of the ACTIVE native ones (the detector in
//! `iceberg.rs` writes them).

use super::active_index::ActiveIndex;
use super::records::{IcebergRec, ICEBERG_ACTIVE, ICEBERG_CANCELLED, ICEBERG_NATIVE};
use super::table::Table;

/// Every iceberg row of the session (all instruments), plus an index of the ACTIVE native
/// ones by (instrument, order id) so a later fill of the same order updates its row.
pub struct IcebergTable {
    pub rows: Table<IcebergRec>,
    /// Rows that could not be stored because the table was full.
    pub dropped: u64,
    pub(super) active: ActiveIndex,
}

impl IcebergTable {
    pub fn new(capacity: usize) -> Self {
        // Never more active natives than rows, so the index never reallocates.
        Self { rows: Table::new(capacity), dropped: 0, active: ActiveIndex::with_capacity(capacity.max(1)) }
    }

    /// Forgets every row (a new session); capacity is kept.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.active.clear();
    }

    /// Replaces the table with `rows` (a restored snapshot) and rebuilds the index, so an
    /// ACTIVE native iceberg keeps updating its row when its order id trades again. Rows
    /// beyond capacity are dropped and counted. Returns the rows kept.
    pub fn restore(&mut self, rows: &[IcebergRec]) -> usize {
        self.clear();
        let mut kept = 0;
        for r in rows {
            match self.rows.push(*r) {
                Some(i) => {
                    kept += 1;
                    if r.kind == ICEBERG_NATIVE && r.state == ICEBERG_ACTIVE {
                        // A snapshot with two live rows for one order: the later row wins and
                        // the earlier is closed, or it would stay ACTIVE with nothing to end it.
                        if let Some(prev) = self.active.insert(r.instrument_id, r.order_id, i) {
                            if let Some(p) = self.rows.get_mut(prev) {
                                p.state = ICEBERG_CANCELLED;
                            }
                        }
                    }
                }
                None => self.dropped += 1,
            }
        }
        kept
    }

    /// False only if no ACTIVE native iceberg has this order id.
    #[inline]
    pub(super) fn may_be_active(&self, instrument_id: u32, order_id: u64) -> bool {
        self.active.may_contain(instrument_id, order_id)
    }

    /// Row of the ACTIVE native iceberg with this order id, if any.
    #[inline]
    pub(super) fn find_active(&self, instrument_id: u32, order_id: u64) -> Option<u32> {
        self.active.get(instrument_id, order_id)
    }

    pub(super) fn end_native(&mut self, instrument_id: u32, order_id: u64, idx: u32, state: u8, ts: u64) {
        self.active.remove(instrument_id, order_id);
        if let Some(r) = self.rows.get_mut(idx) {
            r.state = state;
            r.last_ts = ts;
        }
    }
}
