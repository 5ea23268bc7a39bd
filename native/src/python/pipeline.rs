//! `aurum._native.Pipeline`: the record path (`crate::pipeline`) for Python: feeding chunks
//! and files, holds at bar closes, ring and table views, stats and latency histograms.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::*;
#[pyclass(name = "Pipeline", module = "aurum._native")]
pub(super) struct PyPipeline {
    inner: CorePipeline,
    /// A held pipeline refuses more input past this many deferred bytes: a caller that
    /// never resumes gets an error, not a process growing without bound.
    max_deferred_bytes: usize,
}

impl PyPipeline {
    fn check_deferred(&self) -> PyResult<()> {
        let n = self.inner.state.deferred_bytes();
        if self.inner.state.held() && n > self.max_deferred_bytes {
            return Err(PyRuntimeError::new_err(format!(
                "pipeline held at a bar close with {n} bytes deferred (max_deferred_bytes {}); this input was not read: call resume() after deciding, as aurum.feeds.holds.run_holds does",
                self.max_deferred_bytes
            )));
        }
        Ok(())
    }
}

fn levels_tuple(v: &[LevelView]) -> Vec<(i64, u64, u32)> {
    v.iter().map(|l| (l.price, l.size, l.count)).collect()
}

type Levels = (Vec<(i64, u64, u32)>, Vec<(i64, u64, u32)>);

#[pymethods]
impl PyPipeline {
    #[new]
    #[pyo3(signature = (*, trade_capacity = 65536, top_capacity = 65536, bar_capacity = 16384,
                        bar_interval_ns = 60_000_000_000, tick_bar_trades = 0,
                        volume_bar_contracts = 0, strict = false, engines = true, engine_config = None,
                        max_instruments = 4096, hold_at_bar_close = false,
                        max_deferred_bytes = 256 << 20))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        trade_capacity: usize,
        top_capacity: usize,
        bar_capacity: usize,
        bar_interval_ns: u64,
        tick_bar_trades: u32,
        volume_bar_contracts: u64,
        strict: bool,
        engines: bool,
        engine_config: Option<&Bound<'_, PyDict>>,
        max_instruments: usize,
        hold_at_bar_close: bool,
        max_deferred_bytes: usize,
    ) -> PyResult<Self> {
        if !(1..=1 << 20).contains(&max_instruments) {
            return Err(PyValueError::new_err(format!("max_instruments was {max_instruments}, expected 1..={}", 1 << 20)));
        }
        let mut engine_cfg = EngineConfig { enabled: engines, ..Default::default() };
        if let Some(d) = engine_config {
            engine_conf::apply(&mut engine_cfg, d)?;
        }
        engine_cfg.validate().map_err(|e| PyValueError::new_err(format!("engine config {e}")))?;
        // Rings are allocated and touched up front: bound each to 1 GiB, as allocated, that is
        // after rounding up to a power of two (checking before let 1.3x the bound through).
        const MAX_BYTES: usize = 1 << 30;
        for (name, v, size) in [
            ("trade_capacity", trade_capacity, std::mem::size_of::<TradeRec>()),
            ("top_capacity", top_capacity, std::mem::size_of::<TopRec>()),
            ("bar_capacity", bar_capacity, std::mem::size_of::<BarRec>()),
        ] {
            let fit = MAX_BYTES / size;
            let max = 1usize << (usize::BITS - 1 - fit.leading_zeros()); // the largest power of two <= fit
            if v == 0 || v > max {
                return Err(PyValueError::new_err(format!("{name} was {v}, expected 1..={max}")));
            }
        }
        let cfg = PipelineConfig {
            trade_capacity,
            top_capacity,
            bar_capacity,
            bars: BarConfig { interval_ns: bar_interval_ns, tick_trades: tick_bar_trades, volume_contracts: volume_bar_contracts },
            strict,
            engines: engine_cfg,
            max_instruments,
            hold_at_bar_close,
        };
        Ok(Self { inner: CorePipeline::new(cfg), max_deferred_bytes })
    }

    /// `recv_ns`: wall-clock ns of the socket read that delivered `chunk`; when given, the
    /// time to the end of processing goes into the `socket_to_processed` histogram.
    #[pyo3(signature = (chunk, recv_ns = 0))]
    fn feed(&mut self, py: Python<'_>, chunk: &Bound<'_, PyAny>, recv_ns: u64) -> PyResult<u64> {
        self.check_deferred()?;
        let inner = &mut self.inner;
        with_bytes(chunk, |b| if recv_ns == 0 { inner.feed(b) } else { inner.feed_timed(b, recv_ns) })?
            .map_err(|e| decode_err(py, e))
    }

    /// True while a bar close holds the pipeline (`hold_at_bar_close`): run the decision on
    /// the closed bars, then `resume()`. Records fed meanwhile are deferred, in order.
    #[getter]
    fn held(&self) -> bool {
        self.inner.state.held()
    }

    /// Bytes of records deferred by a hold.
    #[getter]
    fn deferred_bytes(&self) -> usize {
        self.inner.state.deferred_bytes()
    }

    /// Processes the records deferred by a hold, up to the next bar close (which holds
    /// again). Returns records processed; 0 if not held.
    fn resume(&mut self) -> u64 {
        self.inner.resume()
    }

    /// Gateway send time (`ts_out`, UNIX ns) of the record that closed the bars drained
    /// since the last call; 0 if unknown. Resets it.
    /// Gateway send time (`ts_out`, UNIX ns) of the newest record processed; 0 if unknown.
    #[getter]
    fn last_ts_out(&self) -> u64 {
        self.inner.state.last_ts_out()
    }

    fn take_close_ts_out(&mut self) -> u64 {
        self.inner.state.take_close_ts_out()
    }

    /// Record one gateway-to-signal span (a signal published at `published_ns` for a bar
    /// closed by a record sent at `ts_out_ns`); `published_ns` 0 = now. A 0 `ts_out_ns` is
    /// ignored (unknown).
    #[pyo3(signature = (ts_out_ns, published_ns = 0))]
    fn observe_signal_latency(&mut self, ts_out_ns: u64, published_ns: u64) {
        let end = if published_ns == 0 { crate::latency::now_ns() } else { published_ns };
        self.inner.state.latency.gateway_to_signal.record_span(ts_out_ns, end);
    }

    /// `{name: (bounds_s, cumulative_counts, sum_s)}` for each latency histogram: the
    /// shape `aurum.metrics` exports (counts has one more entry than bounds: +Inf).
    fn latency<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        // Divided, not multiplied by 1e-9: `b / 1e9` is the double nearest the decimal bound, so
        // Prometheus shows le="1e-06", not le="1.0000000000000002e-06".
        let bounds: Vec<f64> = crate::latency::BOUNDS_NS.iter().map(|&b| b as f64 / 1e9).collect();
        let l = &self.inner.state.latency;
        for (name, h) in [("socket_to_processed", &l.socket_to_processed), ("gateway_to_signal", &l.gateway_to_signal)] {
            d.set_item(name, (bounds.clone(), h.cumulative().to_vec(), h.sum_ns() as f64 / 1e9))?;
        }
        Ok(d)
    }

    #[pyo3(signature = (file, max_bytes = 1 << 20))]
    fn feed_file(&mut self, py: Python<'_>, mut file: PyRefMut<'_, PyDbnFile>, max_bytes: usize) -> PyResult<usize> {
        self.check_deferred()?;
        let src = &mut file.src;
        let mut total = 0usize;
        while total < max_bytes {
            let want = max_bytes - total;
            let (n, _) = self
                .inner
                .feed_with(|space| {
                    let k = space.len().min(want);
                    std::io::Read::read(src, &mut space[..k])
                })
                .map_err(|e| decode_err(py, e))?;
            total += n;
            // Held at a bar close: the caller decides before reading more.
            if n == 0 || self.inner.state.held() {
                break;
            }
        }
        Ok(total)
    }

    fn finish(&mut self, py: Python<'_>) -> PyResult<()> {
        self.inner.finish().map_err(|e| decode_err(py, e))
    }

    fn reset_stream(&mut self) {
        self.inner.decoder.reset();
        self.inner.state.reset_events();
    }

    /// The next file of the same stream (a journal's next part, split at a record boundary):
    /// its metadata header is read anew, while events open in the books carry on, as they
    /// did live. `reset_stream` would drop them (and the fills an iceberg refill follows).
    fn continue_stream(&mut self) {
        self.inner.decoder.reset();
    }

    fn advance_clock(&mut self, ts_ns: u64) -> u64 {
        self.inner.state.advance_clock(ts_ns)
    }

    fn flush_bars(&mut self) -> u64 {
        self.inner.state.flush_bars()
    }

    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.inner.decoder.metadata().map(|m| metadata_dict(py, m)).transpose()
    }

    /// The pipeline clock: the largest `ts_event` seen, or the last `advance_clock` time.
    #[getter]
    fn clock(&self) -> u64 {
        self.inner.state.clock()
    }

    /// The last published top of book for the instrument, from its best schema.
    fn last_top(&self, instrument_id: u32) -> Option<(i64, u64, u32, i64, u64, u32)> {
        let t = self.inner.state.instrument(instrument_id)?.last_top()?;
        Some((t.bid.price, t.bid.size, t.bid.count, t.ask.price, t.ask.size, t.ask.count))
    }

    #[getter]
    fn failed(&self) -> Option<String> {
        self.inner.decoder.failed().map(|e| e.to_string())
    }

    /// Bytes buffered after the last feed that do not yet form a whole record.
    #[getter]
    fn pending_bytes(&self) -> usize {
        self.inner.decoder.pending()
    }

    /// ErrorMsg records seen so far: what the live client checks after every chunk, without
    /// building the whole `stats()` dict (~10 us) each time.
    #[getter]
    fn error_count(&self) -> u64 {
        self.inner.state.counters.error_count
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = &self.inner.state;
        let c = &s.counters;
        let d = PyDict::new(py);
        d.set_item("records_total", c.records_total)?;
        let by = PyDict::new(py);
        for (rt, n) in c.by_rtype.iter().enumerate().filter(|(_, n)| **n > 0) {
            by.set_item(rt, *n)?;
        }
        d.set_item("records_by_rtype", by)?;
        d.set_item("unknown_rtypes", self.inner.decoder.unknown_rtypes())?;
        d.set_item("bytes_fed", self.inner.decoder.bytes_fed())?;
        d.set_item("trades", c.trades)?;
        d.set_item("top_changes", c.top_changes)?;
        d.set_item("bars_closed", c.bars_closed)?;
        d.set_item("heartbeats", c.heartbeats)?;
        d.set_item("error_count", c.error_count)?;
        d.set_item("instruments_refused", c.instruments_refused)?;
        d.set_item("trades_refused", c.trades_refused)?;
        // Iceberg Memory's fixed tables: rows used, capacity, and rows refused once full.
        let o = &s.engine_out;
        let mem = PyDict::new(py);
        mem.set_item("icebergs", (o.icebergs.rows.len(), o.icebergs.rows.capacity(), o.icebergs.dropped))?;
        mem.set_item("zones", (o.zones.rows.len(), o.zones.rows.capacity(), o.zones.dropped))?;
        d.set_item("memory", mem)?;
        let errs = PyList::empty(py);
        for (code, text) in &c.errors {
            errs.append((code, text))?;
        }
        d.set_item("errors", errs)?;
        let a = s.anomalies();
        let an = PyDict::new(py);
        an.set_item("cancel_unknown", a.cancel_unknown)?;
        an.set_item("modify_unknown", a.modify_unknown)?;
        an.set_item("duplicate_add", a.duplicate_add)?;
        an.set_item("over_cancel", a.over_cancel)?;
        an.set_item("bad_side", a.bad_side)?;
        an.set_item("bad_price", a.bad_price)?;
        d.set_item("mbo_anomalies", an)?;
        Ok(d)
    }

    fn instruments(&self) -> std::collections::HashMap<u32, String> {
        self.inner.state.symbols.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    fn book_ids(&self) -> Vec<u32> {
        self.inner.state.instruments().filter(|i| i.book().is_some()).map(|i| i.id).collect()
    }

    fn book_top(&self, instrument_id: u32) -> Option<(i64, u64, u32, i64, u64, u32)> {
        let book = self.inner.state.instrument(instrument_id)?.book()?;
        let t = book.top();
        Some((t.bid.price, t.bid.size, t.bid.count, t.ask.price, t.ask.size, t.ask.count))
    }

    #[pyo3(signature = (instrument_id, depth = 10))]
    fn book_levels(&self, instrument_id: u32, depth: usize) -> Option<Levels> {
        let book = self.inner.state.instrument(instrument_id)?.book()?;
        let (b, a) = book.levels(depth);
        Some((levels_tuple(&b), levels_tuple(&a)))
    }

    /// Resting orders as (order_id, side, price, size), bids then asks, best first, queue order.
    fn book_orders(&self, instrument_id: u32) -> Option<Vec<(u64, u8, i64, u32)>> {
        Some(self.inner.state.instrument(instrument_id)?.book()?.orders_in_queue_order())
    }

    fn in_event(&self, instrument_id: u32) -> bool {
        self.inner.state.instrument(instrument_id).is_some_and(|i| i.in_event())
    }

    fn queue_position(&self, instrument_id: u32, order_id: u64) -> Option<(u8, i64, u32, u32, u64)> {
        let q = self.inner.state.instrument(instrument_id)?.book()?.queue_position(order_id)?;
        Some((q.side, q.price, q.size, q.orders_ahead, q.size_ahead))
    }

    fn mbp10_levels(&self, instrument_id: u32) -> Option<Levels> {
        let inst = self.inner.state.instrument(instrument_id)?;
        if !inst.mbp10.valid {
            return None;
        }
        let mut bids = Vec::with_capacity(10);
        let mut asks = Vec::with_capacity(10);
        for l in inst.mbp10.levels.iter() {
            if l.bid_px != UNDEF_PRICE {
                bids.push((l.bid_px, l.bid_sz as u64, l.bid_ct));
            }
            if l.ask_px != UNDEF_PRICE {
                asks.push((l.ask_px, l.ask_sz as u64, l.ask_ct));
            }
        }
        Some((bids, asks))
    }

    fn ring(slf: Bound<'_, Self>, name: &str) -> PyResult<RingView> {
        let me = slf.borrow();
        let s = &me.inner.state;
        let o = &s.engine_out;
        let ((ptr, len), record_size) = match name {
            "trades" => (s.trades.raw_parts(), std::mem::size_of::<TradeRec>()),
            "tops" => (s.tops.raw_parts(), std::mem::size_of::<TopRec>()),
            "bars" => (s.bars.raw_parts(), std::mem::size_of::<BarRec>()),
            "sweeps" => (o.sweeps.raw_parts(), std::mem::size_of::<SweepRec>()),
            "flow" => (o.flow.raw_parts(), std::mem::size_of::<FlowRec>()),
            "footprint" => (o.footprint.raw_parts(), std::mem::size_of::<FootprintCell>()),
            _ => return Err(PyKeyError::new_err(format!("no ring named {name:?}; expected one of {RING_NAMES}"))),
        };
        drop(me);
        Ok(RingView { _owner: slf.unbind(), ptr: ptr as usize, len, record_size })
    }

    fn ring_written(&self, name: &str) -> PyResult<u64> {
        let s = &self.inner.state;
        let o = &s.engine_out;
        match name {
            "trades" => Ok(s.trades.written()),
            "tops" => Ok(s.tops.written()),
            "bars" => Ok(s.bars.written()),
            "sweeps" => Ok(o.sweeps.written()),
            "flow" => Ok(o.flow.written()),
            "footprint" => Ok(o.footprint.written()),
            _ => Err(PyKeyError::new_err(format!("no ring named {name:?}; expected one of {RING_NAMES}"))),
        }
    }

    /// The rows in use of an engine table (`icebergs` or `zones`), as a read-only buffer.
    /// Rows are updated in place; take a new view after feeding more data.
    fn table(slf: Bound<'_, Self>, name: &str) -> PyResult<RingView> {
        let me = slf.borrow();
        let o = &me.inner.state.engine_out;
        let ((ptr, len), record_size) = match name {
            "icebergs" => (o.icebergs.rows.raw_parts(), std::mem::size_of::<IcebergRec>()),
            "zones" => (o.zones.rows.raw_parts(), std::mem::size_of::<ZoneRec>()),
            _ => return Err(PyKeyError::new_err(format!("no table named {name:?}; expected 'icebergs' or 'zones'"))),
        };
        drop(me);
        Ok(RingView { _owner: slf.unbind(), ptr: ptr as usize, len, record_size })
    }

    /// Per instrument: each engine's name, whether it runs, and why not.
    fn engine_status(&self) -> std::collections::HashMap<u32, Vec<(String, bool, String)>> {
        let s = &self.inner.state;
        let on = s.engine_config().enabled;
        s.instruments()
            .map(|i| (i.id, status(i.seen(), on).iter().map(|(n, a, w)| (n.to_string(), *a, w.to_string())).collect()))
            .collect()
    }

    /// Book pressure of an instrument: queue and depth imbalance, OFI, microprice.
    fn pressure<'py>(&self, py: Python<'py>, instrument_id: u32) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(inst) = self.inner.state.instrument(instrument_id) else { return Ok(None) };
        engine_conf::pressure_dict(py, &inst.engines.pressure.state()).map(Some)
    }

    /// Capital-protection inputs of an instrument at wall time `now_ns` (0: skip staleness).
    #[pyo3(signature = (instrument_id, now_ns = 0))]
    fn risk<'py>(&self, py: Python<'py>, instrument_id: u32, now_ns: u64) -> PyResult<Option<Bound<'py, PyDict>>> {
        let s = &self.inner.state;
        let Some(inst) = s.instrument(instrument_id) else { return Ok(None) };
        engine_conf::risk_dict(py, &inst.engines.protect.state(&s.engine_config().protect, now_ns)).map(Some)
    }

    /// Session cumulative delta of an instrument (order flow), or None if unseen.
    fn cvd(&self, instrument_id: u32) -> Option<i64> {
        Some(self.inner.state.instrument(instrument_id)?.engines.flow.cvd())
    }

    /// Starts a new order-flow session for every instrument (CVD back to 0).
    fn reset_session(&mut self) {
        self.inner.state.reset_sessions();
    }

    /// Replaces the Iceberg Memory (iceberg and zone tables) with a snapshot: raw rows as
    /// written by `table()` (`numpy.ndarray.tobytes()`). Returns (icebergs, zones) kept.
    fn memory_restore(&mut self, icebergs: &Bound<'_, PyAny>, zones: &Bound<'_, PyAny>) -> PyResult<(usize, usize)> {
        let ice: Vec<IcebergRec> = with_bytes(icebergs, rows_from_bytes::<IcebergRec>)??;
        let zon: Vec<ZoneRec> = with_bytes(zones, rows_from_bytes::<ZoneRec>)??;
        let o = &mut self.inner.state.engine_out;
        Ok((o.icebergs.restore(&ice), o.zones.restore(&zon)))
    }
}
