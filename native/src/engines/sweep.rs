//! STUB: sweeps and stop runs. To be implemented.

use dbn::MboMsg;

use super::Outputs;
use crate::book::Top;

#[derive(Clone, Copy, Debug)]
pub struct SweepConfig {
    pub enabled: bool,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

pub struct SweepDetector {
    instrument_id: u32,
}

impl SweepDetector {
    pub fn new(instrument_id: u32, _cfg: &SweepConfig) -> Self {
        Self { instrument_id }
    }
    pub fn on_mbo_trade(&mut self, _cfg: &SweepConfig, _m: &MboMsg) {}
    pub fn on_event_end(&mut self, _cfg: &SweepConfig, _ts_event: u64, _ts_recv: u64, _out: &mut Outputs) {}
    #[allow(clippy::too_many_arguments)]
    pub fn on_print(&mut self, _cfg: &SweepConfig, _ts_event: u64, _ts_recv: u64, _price: i64, _size: u32, _side: u8, _rtype: u8, _top: &Top, _out: &mut Outputs) {}
    pub fn on_clock(&mut self, _cfg: &SweepConfig, _now: u64, _out: &mut Outputs) {}
    pub fn reset_event(&mut self) {
        let _ = self.instrument_id;
    }
}
