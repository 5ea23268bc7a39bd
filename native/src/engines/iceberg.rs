//! STUB: native and synthetic iceberg detection, Iceberg Memory zones. To be implemented.

use dbn::MboMsg;

use super::records::IcebergRec;
use super::table::Table;
use super::Outputs;
use crate::book::L3Book;

#[derive(Clone, Copy, Debug)]
pub struct IcebergConfig {
    pub enabled: bool,
}

impl Default for IcebergConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

pub struct IcebergTable {
    pub rows: Table<IcebergRec>,
    pub dropped: u64,
}

impl IcebergTable {
    pub fn new(capacity: usize) -> Self {
        Self { rows: Table::new(capacity), dropped: 0 }
    }
    pub fn restore(&mut self, rows: &[IcebergRec]) -> usize {
        self.rows.clear();
        rows.iter().filter(|r| self.rows.push(**r).is_some()).count()
    }
}

pub struct IcebergDetector {
    instrument_id: u32,
}

impl IcebergDetector {
    pub fn new(instrument_id: u32, _cfg: &IcebergConfig) -> Self {
        Self { instrument_id }
    }
    pub fn on_mbo(&mut self, _cfg: &IcebergConfig, _m: &MboMsg, _book: &L3Book, _out: &mut Outputs) {}
    pub fn on_event_end(&mut self, _cfg: &IcebergConfig, _ts_event: u64, _ts_recv: u64, _out: &mut Outputs) {}
    pub fn flush(&mut self, _cfg: &IcebergConfig, _now: u64, _out: &mut Outputs) {}
    pub fn reset_event(&mut self) {
        let _ = self.instrument_id;
    }
}
