//! STUB: capital-protection inputs. To be implemented.

use crate::book::{LevelView, Top};

#[derive(Clone, Copy, Debug, Default)]
pub struct ProtectConfig {}

#[derive(Clone, Copy, Debug, Default)]
pub struct RiskState {}

pub struct Protection {
    instrument_id: u32,
}

impl Protection {
    pub fn new(instrument_id: u32, _cfg: &ProtectConfig) -> Self {
        Self { instrument_id }
    }
    pub fn on_last(&mut self, _flags: u8, _ts_recv: u64) {}
    pub fn on_top(&mut self, _cfg: &ProtectConfig, _ts_event: u64, _ts_recv: u64, _top: &Top) {
        let _ = self.instrument_id;
    }
    pub fn on_depth(&mut self, _cfg: &ProtectConfig, _ts_event: u64, _bids: &[LevelView; 10], _asks: &[LevelView; 10]) {}
    pub fn state(&self, _cfg: &ProtectConfig, _now: u64) -> RiskState {
        RiskState {}
    }
}
