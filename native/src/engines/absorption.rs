//! STUB: absorption zones. To be implemented.

use super::Outputs;
use crate::book::Top;

#[derive(Clone, Copy, Debug)]
pub struct AbsorptionConfig {
    pub enabled: bool,
}

impl Default for AbsorptionConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

pub struct AbsorptionEngine {
    instrument_id: u32,
}

impl AbsorptionEngine {
    pub fn new(instrument_id: u32, _cfg: &AbsorptionConfig) -> Self {
        Self { instrument_id }
    }
    #[allow(clippy::too_many_arguments)]
    pub fn on_trade(&mut self, _cfg: &AbsorptionConfig, _ts_event: u64, _ts_recv: u64, _price: i64, _size: u32, _side: u8, _top: &Top, _out: &mut Outputs) {
        let _ = self.instrument_id;
    }
    pub fn on_top(&mut self, _cfg: &AbsorptionConfig, _ts_event: u64, _ts_recv: u64, _top: &Top, _out: &mut Outputs) {}
}
