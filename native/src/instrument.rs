//! One instrument's state on the record path: its books (L3 from MBO, L2 from MBP-10), bars,
//! engines, last published top, and which schemas it has been seen in. The schemas seen set
//! the source priority (see `pipeline`): MBO, then trades (top: MBP-10), then MBP-10, then
//! MBP-1/TBBO.

use crate::bars::InstrumentBars;
use crate::book::{L3Book, MboBook, Mbp10Book, Top};
use crate::engines::{EngineConfig, InstrumentEngines};

// The same bits as `engines::SEEN_*`, which reports engine status from them.
pub(crate) const SRC_MBO: u8 = crate::engines::SEEN_MBO;
pub(crate) const SRC_TRADES: u8 = crate::engines::SEEN_TRADES;
pub(crate) const SRC_MBP10: u8 = crate::engines::SEEN_MBP10;
pub(crate) const SRC_MBP1: u8 = crate::engines::SEEN_MBP1;

pub struct Instrument {
    pub id: u32,
    pub mbo: Option<MboBook>,
    pub mbp10: Mbp10Book,
    pub(crate) seen: u8,
    pub(crate) last_top: Option<Top>,
    pub(crate) bars: InstrumentBars,
    pub engines: InstrumentEngines,
}

impl Instrument {
    pub(crate) fn new(id: u32, cfg: &EngineConfig) -> Self {
        Self { id, mbo: None, mbp10: Mbp10Book::default(), seen: 0, last_top: None, bars: InstrumentBars::default(), engines: InstrumentEngines::new(id, cfg) }
    }

    /// Schemas seen for this instrument (`engines::SEEN_*` bits).
    pub fn seen(&self) -> u8 {
        self.seen
    }

    pub fn book(&self) -> Option<&L3Book> {
        self.mbo.as_ref().map(|m| &m.book)
    }

    /// An MBO event is open (no F_LAST yet): the book is mid-update.
    pub fn in_event(&self) -> bool {
        self.mbo.as_ref().is_some_and(|m| m.in_event)
    }

    /// The top of book as last published (at an F_LAST), from the best schema seen.
    pub fn last_top(&self) -> Option<Top> {
        self.last_top
    }

    /// True if `src` is the best trade source seen for this instrument.
    #[inline]
    pub(crate) fn primary(&self, src: u8) -> bool {
        self.seen & (src - 1) == 0
    }

    /// The schema its top of book comes from (an rtype), None before any book record.
    pub(crate) fn top_source(&self) -> Option<u8> {
        let book = self.seen & !SRC_TRADES;
        if book & SRC_MBO != 0 && self.mbo.is_some() {
            Some(dbn::rtype::MBO)
        } else if book & SRC_MBP10 != 0 {
            Some(dbn::rtype::MBP_10)
        } else if book & SRC_MBP1 != 0 {
            Some(dbn::rtype::MBP_1)
        } else {
            None
        }
    }

    /// Top of book: MBO, then MBP-10, then MBP-1 (the trades schema carries no book).
    #[inline]
    pub(crate) fn top_primary(&self, src: u8) -> bool {
        self.seen & (src - 1) & !SRC_TRADES == 0
    }
}
