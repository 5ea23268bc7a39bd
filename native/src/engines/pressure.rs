//! STUB: book pressure. To be implemented.

use crate::book::{LevelView, Top};

#[derive(Clone, Copy, Debug, Default)]
pub struct PressureConfig {}

#[derive(Clone, Copy, Debug, Default)]
pub struct PressureState {}

pub struct BookPressure {
    instrument_id: u32,
}

impl BookPressure {
    pub fn new(instrument_id: u32, _cfg: &PressureConfig) -> Self {
        Self { instrument_id }
    }
    pub fn on_top(&mut self, _cfg: &PressureConfig, _ts_event: u64, _top: &Top) -> i64 {
        let _ = self.instrument_id;
        0
    }
    pub fn on_depth(&mut self, _cfg: &PressureConfig, _bids: &[LevelView; 10], _asks: &[LevelView; 10]) {}
    pub fn state(&self) -> PressureState {
        PressureState {}
    }
}
