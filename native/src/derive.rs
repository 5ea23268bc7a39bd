//! MBP-10 and trades derived from MBO, so a simulated session offers all three schemas
//! and they describe one market. See `derive_mbp10_trades` in `aurum/_native.pyi` for the
//! record rules.

use dbn::encode::{dbn::RecordEncoder, EncodeRecord};
use dbn::{flags, rtype, BidAskPair, FlagSet, MboMsg, Mbp10Msg, RecordHeader, RecordRef, TradeMsg};
use rustc_hash::FxHashMap;

use crate::book::{LevelView, MboBook, EMPTY_LEVEL, UNDEF_PRICE};
use crate::decoder::{DecodeError, StreamDecoder};

type Levels = ([LevelView; 10], [LevelView; 10]);
const MAX_CHANGES: usize = 16;

struct Derived {
    mbo: MboBook,
    last: Option<Levels>,
    /// The open event's most recent book changes, (side, price), newest last; fixed size so
    /// deriving never allocates per record. Older changes of a long event are dropped.
    changes: [(u8, i64); MAX_CHANGES],
    n_changes: usize,
    /// Byte offsets of this event's last MBP-10 and trade records, to set F_LAST on them.
    event_mbp10: Option<usize>,
    event_trade: Option<usize>,
}

impl Default for Derived {
    fn default() -> Self {
        Self {
            mbo: MboBook::default(),
            last: None,
            changes: [(b'N', UNDEF_PRICE); MAX_CHANGES],
            n_changes: 0,
            event_mbp10: None,
            event_trade: None,
        }
    }
}

impl Derived {
    fn push_change(&mut self, side: u8, price: i64) {
        if self.n_changes == MAX_CHANGES {
            self.changes.copy_within(1.., 0);
            self.n_changes -= 1;
        }
        self.changes[self.n_changes] = (side, price);
        self.n_changes += 1;
    }

    /// The newest change whose level is in the top 10 before or after the event.
    fn top10_change(&self, before: Option<&Levels>, after: &Levels) -> (u8, i64) {
        let in_top = |l: &Levels, side: u8, price: i64| {
            let ls = if side == b'B' { &l.0 } else { &l.1 };
            ls.iter().any(|v| v.count > 0 && v.price == price)
        };
        self.changes[..self.n_changes]
            .iter()
            .rev()
            .find(|(side, price)| in_top(after, *side, *price) || before.is_some_and(|b| in_top(b, *side, *price)))
            .copied()
            .unwrap_or((b'N', UNDEF_PRICE))
    }
}

pub struct Derivation {
    pub mbp10: Vec<u8>,
    pub trades: Vec<u8>,
}

pub fn derive_mbp10_trades(stream: &[u8]) -> Result<Derivation, DecodeError> {
    let mut books: FxHashMap<u32, Derived> = FxHashMap::default();
    let mut out = Derivation { mbp10: Vec::with_capacity(stream.len() / 2), trades: Vec::new() };
    let mut decoder = StreamDecoder::new(false);
    decoder.feed(stream, |rec: RecordRef<'_>| {
        if let Ok(m) = rec.try_get::<MboMsg>() {
            let d = books.entry(m.hd.instrument_id).or_default();
            on_mbo(d, m, &mut out);
        }
    })?;
    decoder.finish()?;
    Ok(out)
}

fn levels_of(d: &Derived) -> Levels {
    let mut bids = [EMPTY_LEVEL; 10];
    let mut asks = [EMPTY_LEVEL; 10];
    d.mbo.book.fill_levels(&mut bids, &mut asks);
    (bids, asks)
}

fn pairs(l: &Levels) -> [BidAskPair; 10] {
    let sat = |v: u64| v.min(u32::MAX as u64) as u32;
    std::array::from_fn(|i| BidAskPair {
        bid_px: l.0[i].price,
        ask_px: l.1[i].price,
        bid_sz: sat(l.0[i].size),
        ask_sz: sat(l.1[i].size),
        bid_ct: l.0[i].count,
        ask_ct: l.1[i].count,
    })
}

fn encode<R: dbn::encode::DbnEncodable>(out: &mut Vec<u8>, rec: &R) -> usize {
    let at = out.len();
    // Writing into a Vec cannot fail.
    let _ = RecordEncoder::new(&mut *out).encode_record(rec);
    at
}

// Each argument is one field of the derived record; a struct for them would only rename them.
#[allow(clippy::too_many_arguments)]
fn mbp10(m: &MboMsg, action: u8, side: u8, price: i64, size: u32, depth: u8, flags: u8, levels: &Levels) -> Mbp10Msg {
    Mbp10Msg {
        hd: RecordHeader::new::<Mbp10Msg>(rtype::MBP_10, m.hd.publisher_id, m.hd.instrument_id, m.hd.ts_event),
        price,
        size,
        action: action as std::ffi::c_char,
        side: side as std::ffi::c_char,
        flags: FlagSet::from(flags),
        depth,
        ts_recv: m.ts_recv,
        ts_in_delta: m.ts_in_delta,
        sequence: m.sequence,
        levels: pairs(levels),
    }
}

fn on_mbo(d: &mut Derived, m: &MboMsg, out: &mut Derivation) {
    let action = m.action as u8;
    let carry = m.flags.raw() & !flags::LAST;
    if action == b'T' {
        let t = TradeMsg {
            hd: RecordHeader::new::<TradeMsg>(rtype::MBP_0, m.hd.publisher_id, m.hd.instrument_id, m.hd.ts_event),
            price: m.price,
            size: m.size,
            action: b'T' as std::ffi::c_char,
            side: m.side,
            flags: FlagSet::from(carry),
            depth: 0,
            ts_recv: m.ts_recv,
            ts_in_delta: m.ts_in_delta,
            sequence: m.sequence,
        };
        d.event_trade = Some(encode(&mut out.trades, &t));
        let levels = levels_of(d);
        let rec = mbp10(m, b'T', m.side as u8, m.price, m.size, 0, carry, &levels);
        d.event_mbp10 = Some(encode(&mut out.mbp10, &rec));
    }
    if matches!(action, b'A' | b'C' | b'M') {
        d.push_change(m.side as u8, m.price);
    }
    if !d.mbo.apply(m) {
        return;
    }
    // F_LAST: publish the top 10 if it changed.
    let now = levels_of(d);
    if d.last != Some(now) {
        let (side, price) = d.top10_change(d.last.as_ref(), &now);
        let (act, depth, size) = describe(d.last.as_ref(), &now, side, price);
        let rec = mbp10(m, act, side, price, size, depth, carry | flags::LAST, &now);
        encode(&mut out.mbp10, &rec);
        d.last = Some(now);
    } else if let Some(at) = d.event_mbp10 {
        set_last(&mut out.mbp10, at);
    }
    if let Some(at) = d.event_trade {
        set_last(&mut out.trades, at);
    }
    d.n_changes = 0;
    d.event_mbp10 = None;
    d.event_trade = None;
}

/// Action, depth and level size for the last change at (side, price): `A` if the level
/// appeared in the top 10, `C` if it left it, `M` if its size or count changed.
fn describe(before: Option<&Levels>, after: &Levels, side: u8, price: i64) -> (u8, u8, u32) {
    let pick = |l: &Levels| if side == b'B' { l.0 } else { l.1 };
    let find = |ls: [LevelView; 10]| ls.iter().position(|l| l.price == price && l.count > 0);
    let now = find(pick(after));
    let was = before.and_then(|b| find(pick(b)));
    match (was, now) {
        (None, Some(i)) => (b'A', i as u8, pick(after)[i].size.min(u32::MAX as u64) as u32),
        (Some(i), None) => (b'C', i as u8, 0),
        (_, Some(i)) => (b'M', i as u8, pick(after)[i].size.min(u32::MAX as u64) as u32),
        (None, None) => (b'M', 0, 0),
    }
}

/// Sets F_LAST on the record at byte offset `at` (flags sit at offset 30 in both
/// TradeMsg and Mbp10Msg).
fn set_last(buf: &mut [u8], at: usize) {
    if let Some(f) = buf.get_mut(at + 30) {
        *f |= flags::LAST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbo(action: u8, side: u8, oid: u64, px: i64, sz: u32, last: bool) -> MboMsg {
        MboMsg {
            hd: RecordHeader::new::<MboMsg>(rtype::MBO, 1, 42, 1),
            order_id: oid,
            price: px,
            size: sz,
            flags: FlagSet::from(if last { flags::LAST } else { 0 }),
            channel_id: 0,
            action: action as std::ffi::c_char,
            side: side as std::ffi::c_char,
            ts_recv: 1,
            ts_in_delta: 0,
            sequence: 0,
        }
    }

    #[test]
    fn trade_event_gives_one_trade_and_mbp10_records_with_f_last_at_the_end() {
        let mut s = crate::decoder::tests::metadata_bytes();
        let px = 2_400_000_000_000;
        let mut enc = RecordEncoder::new(&mut s);
        enc.encode_record(&mbo(b'A', b'A', 1, px, 5, true)).unwrap();
        enc.encode_record(&mbo(b'T', b'B', 0, px, 2, false)).unwrap();
        enc.encode_record(&mbo(b'F', b'A', 1, px, 2, false)).unwrap();
        enc.encode_record(&mbo(b'C', b'A', 1, px, 2, true)).unwrap();
        let d = derive_mbp10_trades(&s).unwrap();
        assert_eq!(d.trades.len(), std::mem::size_of::<TradeMsg>());
        assert_eq!(d.trades[30] & flags::LAST, flags::LAST);
        let n = std::mem::size_of::<Mbp10Msg>();
        assert_eq!(d.mbp10.len(), 3 * n); // add, trade, post-trade book
        let rec = |i: usize| -> Mbp10Msg {
            // SAFETY: `i * n` indexes a whole Mbp10Msg written by RecordEncoder; read_unaligned
            // copes with the Vec's alignment.
            unsafe { std::ptr::read_unaligned(d.mbp10[i * n..].as_ptr() as *const Mbp10Msg) }
        };
        assert_eq!(rec(0).action as u8, b'A');
        assert_eq!(rec(0).levels[0].ask_sz, 5);
        assert_eq!(rec(1).action as u8, b'T');
        assert_eq!(rec(1).flags.raw() & flags::LAST, 0);
        assert_eq!(rec(2).action as u8, b'M');
        assert_eq!(rec(2).levels[0].ask_sz, 3);
        assert_eq!(rec(2).flags.raw() & flags::LAST, flags::LAST);
    }

    #[test]
    fn describes_the_last_change_inside_the_top_10_not_a_deeper_one() {
        let mut d = Derived::default();
        let px = 2_400_000_000_000;
        let tick = 100_000_000;
        let mut out = Derivation { mbp10: Vec::new(), trades: Vec::new() };
        for i in 0..12 {
            on_mbo(&mut d, &mbo(b'A', b'B', i + 1, px - i as i64 * tick, 1, true), &mut out);
        }
        let before = out.mbp10.len();
        // One event: cancel the best bid, then add at level 15 (outside the top 10).
        on_mbo(&mut d, &mbo(b'C', b'B', 1, px, 1, false), &mut out);
        on_mbo(&mut d, &mbo(b'A', b'B', 99, px - 15 * tick, 1, true), &mut out);
        // SAFETY: a whole Mbp10Msg was appended at `before`; read_unaligned copes with alignment.
        let rec: Mbp10Msg = unsafe { std::ptr::read_unaligned(out.mbp10[before..].as_ptr() as *const Mbp10Msg) };
        assert_eq!((rec.action as u8, rec.price, rec.depth), (b'C', px, 0));
    }
}
