//! STUB: order flow. To be implemented.

use super::Outputs;

#[derive(Clone, Copy, Debug)]
pub struct FlowConfig {
    pub interval_ns: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self { interval_ns: 60_000_000_000 }
    }
}

pub struct OrderFlow {
    instrument_id: u32,
}

impl OrderFlow {
    pub fn new(instrument_id: u32, _cfg: &FlowConfig) -> Self {
        Self { instrument_id }
    }
    pub fn on_trade(&mut self, _cfg: &FlowConfig, _ts_event: u64, _price: i64, _size: u32, _side: u8, _out: &mut Outputs) {
        let _ = self.instrument_id;
    }
    pub fn add_ofi(&mut self, _e: i64) {}
    pub fn on_clock(&mut self, _cfg: &FlowConfig, _now: u64, _out: &mut Outputs) {}
    pub fn flush(&mut self, _cfg: &FlowConfig, _out: &mut Outputs) {}
}
