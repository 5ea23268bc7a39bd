//! Holding the record stream at a bar close (`PipelineConfig::hold_at_bar_close`).
//!
//! The decision layer reads the engines (pressure, zones, icebergs, risk) when bars close.
//! Without a hold it can only do so after `feed` returns, that is, after the whole chunk:
//! the engines then include records that came after the bar's end, as many as the chunk
//! happened to hold. Signals would depend on how the bytes were cut (TCP reads live, read
//! sizes in a replay), and a journal replayed later would not give the live session's
//! signals. With the hold on, the pipeline stops where the bar closed:
//!
//! - a time bar closes when a record's `ts_event` reaches its end: the hold starts *before*
//!   that record, which belongs to the next bar (so the engines are exactly as of the bar's
//!   last record; the record's event has not started);
//! - a tick or volume bar closes on the trade that completes it: the hold starts right
//!   after that record.
//!
//! Records that arrive while held (the rest of the chunk, or later chunks fed before
//! `resume`) are copied, in order, into a buffer and processed by `Pipeline::resume`,
//! which may stop again at the next close. The copy happens once per bar close and the two
//! buffers keep their capacity, so steady state allocates nothing. A running pipeline pays
//! one predictable branch per record.

use dbn::RecordRef;

use super::{read_ts_out, Pipeline, State};
use crate::decoder;
use crate::latency;

const DEFERRED_WORDS: usize = (256 << 10) / 8;

#[derive(Default)]
pub(super) struct Hold {
    pub(super) enabled: bool,
    pub(super) held: bool,
    /// Whole records (v3 layout, with `ts_out` if the stream has it) in arrival order.
    /// `u64` words keep them 8-byte aligned, as `RecordRef` requires.
    deferred: Vec<u64>,
    spare: Vec<u64>,
    /// `recv_ns` of the chunk whose processing the hold interrupted (0: untimed).
    recv_ns: u64,
}

impl Hold {
    pub(super) fn new(enabled: bool) -> Self {
        // Room for the rest of a large read (the live client reads up to 256 KiB; a file
        // replay 1 MiB at a time stops at the hold), so a hold does not allocate; larger
        // chunks grow the buffers once.
        let words = if enabled { DEFERRED_WORDS } else { 0 };
        Self { enabled, deferred: Vec::with_capacity(words), spare: Vec::with_capacity(words), ..Self::default() }
    }

    /// A bar closed: hold (if enabled) before the next record. Returns whether it held.
    #[inline]
    pub(super) fn at_close(&mut self) -> bool {
        self.held |= self.enabled;
        self.enabled
    }

    /// Records waiting for `resume`, in bytes.
    pub(super) fn deferred_bytes(&self) -> usize {
        self.deferred.len() * 8
    }

    fn defer(&mut self, rec: &RecordRef<'_>) {
        // Record lengths are multiples of 8 (the decoder rejects others before framing).
        self.deferred.extend(rec.as_ref().chunks_exact(8).map(|w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])));
    }
}

impl State {
    /// Whether the pipeline is held at a bar close (records are being deferred).
    pub fn held(&self) -> bool {
        self.hold.held
    }

    /// Bytes of records deferred by the hold.
    pub fn deferred_bytes(&self) -> usize {
        self.hold.deferred_bytes()
    }

    /// Called for every record while held: keeps it for `resume`.
    #[cold]
    #[inline(never)]
    pub(super) fn defer(&mut self, rec: &RecordRef<'_>) {
        self.hold.defer(rec);
    }

    /// The first interrupted chunk's read time is the one whose span `resume` records.
    pub(super) fn set_hold_recv_ns(&mut self, recv_ns: u64) {
        if self.hold.recv_ns == 0 {
            self.hold.recv_ns = recv_ns;
        }
    }
}

impl Pipeline {
    /// Lifts a hold: processes the deferred records in order, until they are done or the
    /// next bar close holds the pipeline again (the rest stays deferred). Returns records
    /// processed. When all are done, the span from the interrupted chunk's `recv_ns` goes
    /// into `socket_to_processed`, as `feed_timed` would have recorded it.
    pub fn resume(&mut self) -> u64 {
        let state = &mut self.state;
        if !state.hold.held {
            return 0;
        }
        state.hold.held = false;
        // Records deferred again by a new hold go into the (empty) spare buffer.
        let spare = std::mem::take(&mut state.hold.spare);
        let mut words = std::mem::replace(&mut state.hold.deferred, spare);
        let ts_out = self.decoder.metadata().is_some_and(|m| m.ts_out);
        // SAFETY: a `u64` slice is a valid `u8` slice of 8 times its length (u8 has no
        // alignment requirement and every byte of a u64 is initialised); the view borrows
        // `words`, which lives, unchanged, until the view is dropped at the end of this block.
        let bytes: &[u8] = unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) };
        let mut unknown = 0;
        // The records were framed and checked by the decoder before they were deferred, and
        // start 8-byte aligned: `decode_direct` frames them again without copying.
        let done = decoder::decode_direct(bytes, false, false, &mut unknown, &mut |rec: RecordRef<'_>| {
            if ts_out {
                state.cur_ts_out = read_ts_out(rec.as_ref());
            }
            state.on_record(rec);
        });
        debug_assert_eq!(done.bytes, bytes.len());
        words.clear();
        state.hold.spare = words;
        if !state.hold.held && state.hold.recv_ns != 0 {
            state.latency.socket_to_processed.record_span(std::mem::take(&mut state.hold.recv_ns), latency::now_ns());
        }
        done.records
    }
}
