//! Bar building from trades: time bars (default 1 minute), plus optional tick bars (every
//! N trades) and volume bars (every V contracts), per instrument.
//!
//! A time bar covers `[k * interval, (k + 1) * interval)` in `ts_event` and closes when the
//! clock passes its end, even if no trade arrives: the pipeline advances the clock with
//! every record's `ts_event` in replay, and the daemon with the wall clock when live.
//! Intervals with no trade produce no bar. A volume bar closes on the trade that reaches
//! V contracts; that trade counts in full (trades are not split across bars).

use crate::ring::{BarRec, Ring};

pub const BAR_KIND_TIME: u8 = 0;
pub const BAR_KIND_TICK: u8 = 1;
pub const BAR_KIND_VOLUME: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarConfig {
    pub interval_ns: u64,
    pub tick_trades: u32,
    pub volume_contracts: u64,
}

impl Default for BarConfig {
    fn default() -> Self {
        Self { interval_ns: 60_000_000_000, tick_trades: 0, volume_contracts: 0 }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct OpenBar {
    open: bool,
    ts_open: u64,
    ts_last: u64,
    o: i64,
    h: i64,
    l: i64,
    c: i64,
    volume: u64,
    buy: u64,
    sell: u64,
    /// Sum of price (fixed-point) x size, for VWAP without overflow.
    notional: i128,
    count: u32,
}

impl OpenBar {
    fn start(&mut self, ts_open: u64, price: i64) {
        *self = OpenBar { open: true, ts_open, ts_last: ts_open, o: price, h: price, l: price, c: price, ..Default::default() };
    }

    fn add(&mut self, ts: u64, price: i64, size: u32, side: u8) {
        self.h = self.h.max(price);
        self.l = self.l.min(price);
        self.c = price;
        self.ts_last = ts;
        self.volume += size as u64;
        match side {
            b'B' => self.buy += size as u64,
            b'A' => self.sell += size as u64,
            _ => {}
        }
        self.notional += price as i128 * size as i128;
        self.count += 1;
    }

    fn close(&mut self, instrument_id: u32, kind: u8, ts_close: u64) -> BarRec {
        self.open = false;
        let vwap = if self.volume > 0 { self.notional as f64 / self.volume as f64 / 1e9 } else { f64::NAN };
        BarRec {
            ts_open: self.ts_open,
            ts_close,
            open: self.o,
            high: self.h,
            low: self.l,
            close: self.c,
            volume: self.volume,
            buy_volume: self.buy,
            sell_volume: self.sell,
            vwap,
            trade_count: self.count,
            instrument_id,
            kind,
            _pad: [0; 7],
        }
    }
}

/// Bar state of one instrument.
#[derive(Clone, Copy, Debug, Default)]
pub struct InstrumentBars {
    time: OpenBar,
    time_end: u64,
    /// End of the last closed time bar: a trade stamped before it (GLBX orders records by
    /// ts_recv, so ts_event can run backwards) joins the next bar instead of reopening one.
    closed_until: u64,
    tick: OpenBar,
    volume: OpenBar,
}

impl InstrumentBars {
    /// End of the open time bar, or `u64::MAX` when none is open.
    pub fn time_end(&self) -> u64 {
        if self.time.open {
            self.time_end
        } else {
            u64::MAX
        }
    }

    /// Adds a trade; closes any bar it completes. Returns bars closed.
    #[allow(clippy::too_many_arguments)] // one trade's fields, passed from the record loop without a struct
    pub fn on_trade(&mut self, cfg: &BarConfig, iid: u32, ts: u64, price: i64, size: u32, side: u8, out: &mut Ring<BarRec>) -> u32 {
        if ts == u64::MAX {
            // UNDEF_TIMESTAMP: a print without exchange time cannot be binned (it stays in
            // the trade ring).
            return 0;
        }
        let mut closed = 0;
        if cfg.interval_ns > 0 {
            if self.time.open && ts >= self.time_end {
                out.push(self.time.close(iid, BAR_KIND_TIME, self.time_end));
                self.closed_until = self.time_end;
                closed += 1;
            }
            if !self.time.open {
                let bin = ts.max(self.closed_until);
                let start = bin - bin % cfg.interval_ns;
                self.time.start(start, price);
                self.time_end = start.saturating_add(cfg.interval_ns);
            }
            self.time.add(ts, price, size, side);
        }
        if cfg.tick_trades > 0 {
            if !self.tick.open {
                self.tick.start(ts, price);
            }
            self.tick.add(ts, price, size, side);
            if self.tick.count >= cfg.tick_trades {
                out.push(self.tick.close(iid, BAR_KIND_TICK, ts));
                closed += 1;
            }
        }
        if cfg.volume_contracts > 0 {
            if !self.volume.open {
                self.volume.start(ts, price);
            }
            self.volume.add(ts, price, size, side);
            if self.volume.volume >= cfg.volume_contracts {
                out.push(self.volume.close(iid, BAR_KIND_VOLUME, ts));
                closed += 1;
            }
        }
        closed
    }

    /// Closes the time bar if the clock reached its end. Returns bars closed.
    pub fn on_clock(&mut self, iid: u32, now: u64, out: &mut Ring<BarRec>) -> u32 {
        if self.time.open && now >= self.time_end {
            out.push(self.time.close(iid, BAR_KIND_TIME, self.time_end));
            self.closed_until = self.time_end;
            1
        } else {
            0
        }
    }

    /// Closes every open bar (end of replay); partial bars are marked by `ts_close`.
    pub fn flush(&mut self, iid: u32, out: &mut Ring<BarRec>) -> u32 {
        let mut closed = 0;
        if self.time.open {
            out.push(self.time.close(iid, BAR_KIND_TIME, self.time_end));
            closed += 1;
        }
        if self.tick.open {
            let ts = self.tick.ts_last;
            out.push(self.tick.close(iid, BAR_KIND_TICK, ts));
            closed += 1;
        }
        if self.volume.open {
            let ts = self.volume.ts_last;
            out.push(self.volume.close(iid, BAR_KIND_VOLUME, ts));
            closed += 1;
        }
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const PX: i64 = 2_400_000_000_000;

    #[test]
    fn time_bar_ohlcv_and_close_on_boundary_without_trade() {
        let cfg = BarConfig::default();
        let mut ring = Ring::new(16);
        let mut b = InstrumentBars::default();
        b.on_trade(&cfg, 1, 60 * S + 1, PX, 2, b'B', &mut ring);
        b.on_trade(&cfg, 1, 70 * S, PX + 500_000_000, 1, b'A', &mut ring);
        b.on_trade(&cfg, 1, 80 * S, PX - 500_000_000, 3, b'B', &mut ring);
        assert_eq!(ring.written(), 0);
        assert_eq!(b.on_clock(1, 119 * S, &mut ring), 0);
        assert_eq!(b.on_clock(1, 120 * S, &mut ring), 1);
        let bar = ring.get(0).unwrap();
        assert_eq!((bar.ts_open, bar.ts_close), (60 * S, 120 * S));
        assert_eq!((bar.open, bar.high, bar.low, bar.close), (PX, PX + 500_000_000, PX - 500_000_000, PX - 500_000_000));
        assert_eq!((bar.volume, bar.buy_volume, bar.sell_volume, bar.trade_count), (6, 5, 1, 3));
        let expect = (2400.0 * 2.0 + 2400.5 + 2399.5 * 3.0) / 6.0;
        assert!((bar.vwap - expect).abs() < 1e-9);
        // No second close for the same bar.
        assert_eq!(b.on_clock(1, 500 * S, &mut ring), 0);
    }

    #[test]
    fn late_trade_joins_the_next_bar_instead_of_reopening_a_closed_one() {
        let cfg = BarConfig::default();
        let mut ring = Ring::new(16);
        let mut b = InstrumentBars::default();
        b.on_trade(&cfg, 1, 600 * S, PX, 1, b'B', &mut ring);
        assert_eq!(b.on_clock(1, 660 * S, &mut ring), 1);
        b.on_trade(&cfg, 1, 660 * S - 1, PX, 2, b'B', &mut ring); // late by 1 ns
        b.flush(1, &mut ring);
        let bars: Vec<BarRec> = (0..ring.written()).map(|i| ring.get(i).unwrap()).collect();
        assert_eq!(bars.len(), 2);
        assert_eq!((bars[1].ts_open, bars[1].volume), (660 * S, 2));
    }

    #[test]
    fn tick_and_volume_bars() {
        let cfg = BarConfig { interval_ns: 0, tick_trades: 3, volume_contracts: 10 };
        let mut ring = Ring::new(16);
        let mut b = InstrumentBars::default();
        for i in 0..6 {
            b.on_trade(&cfg, 1, i * S, PX, 4, b'B', &mut ring);
        }
        let kinds: Vec<u8> = (0..ring.written()).map(|i| ring.get(i).unwrap().kind).collect();
        // trades of 4: volume bars close at 12 and 24 contracts; tick bars after 3 and 6.
        assert_eq!(kinds.iter().filter(|k| **k == BAR_KIND_TICK).count(), 2);
        assert_eq!(kinds.iter().filter(|k| **k == BAR_KIND_VOLUME).count(), 2);
        assert_eq!(b.flush(1, &mut ring), 0);
    }
}
