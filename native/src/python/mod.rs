//! PyO3 bindings: `aurum._native`. Thin wrappers only; the kernels live in the parent
//! crate. Every entry point takes a whole chunk or file, never a single record.

use std::ffi::{c_int, c_void};
use std::path::PathBuf;

use dbn::encode::json::Encoder as JsonEncoder;
use dbn::encode::EncodeRecordRef;
use dbn::Metadata;
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyBufferError, PyKeyError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use pyo3::{create_exception, ffi};

use crate::bars::{BarConfig, BAR_KIND_TICK, BAR_KIND_TIME, BAR_KIND_VOLUME};
use crate::book::{LevelView, UNDEF_PRICE};
use crate::decoder::{self, StreamDecoder as CoreDecoder};
use crate::file::DbnFileSource;
use crate::pipeline::{Pipeline as CorePipeline, PipelineConfig};
use crate::engines::{status, EngineConfig, FlowRec, FootprintCell, IcebergRec, SweepRec, ZoneRec};
use crate::ring::{BarRec, TopRec, TradeRec};

const RING_NAMES: &str = "'trades', 'tops', 'bars', 'sweeps', 'flow', 'footprint'";

/// Rows of a `repr(C)` record type from raw bytes (a snapshot written from `table()`).
fn rows_from_bytes<T: Copy + Default>(b: &[u8]) -> PyResult<Vec<T>> {
    let size = std::mem::size_of::<T>();
    if b.len() % size != 0 {
        return Err(PyValueError::new_err(format!("snapshot rows are {} bytes, not a multiple of the {size}-byte record", b.len())));
    }
    let mut out = vec![T::default(); b.len() / size];
    // SAFETY: `out` owns `b.len()` bytes of `T` storage; every engine record is a `repr(C)`
    // struct of integers and floats with explicit padding fields, so any byte pattern is a
    // valid value (no bools, enums or references), and the regions cannot overlap.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), out.as_mut_ptr() as *mut u8, b.len()) };
    Ok(out)
}

mod engine_conf;
mod shm;

create_exception!(_native, DecodeError, PyValueError, "Malformed DBN input; `offset` is the byte offset.");

fn decode_err(py: Python<'_>, e: decoder::DecodeError) -> PyErr {
    let err = DecodeError::new_err(e.to_string());
    // Setting an attribute on a fresh exception instance cannot fail in practice; if it
    // did, the message still names the offset.
    let _ = err.value(py).setattr("offset", e.offset);
    err
}

/// Runs `f` over the bytes of a `bytes`, `bytearray` or contiguous `memoryview`, without copying.
fn with_bytes<T>(obj: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> T) -> PyResult<T> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(f(b.as_bytes()));
    }
    let buf = PyBuffer::<u8>::get(obj)?;
    if !buf.is_c_contiguous() {
        return Err(PyBufferError::new_err("chunk must be a contiguous buffer of bytes"));
    }
    if buf.len_bytes() == 0 {
        // An empty exporter may hand out a null pointer, which from_raw_parts forbids.
        return Ok(f(&[]));
    }
    // SAFETY: the buffer is C-contiguous with `len_bytes` bytes at `buf_ptr`, and stays
    // valid while `buf` is held. We hold the GIL for the whole call and never release it,
    // so no Python code can resize or write the exporter while `f` reads it.
    let slice = unsafe { std::slice::from_raw_parts(buf.buf_ptr() as *const u8, buf.len_bytes()) };
    Ok(f(slice))
}

fn metadata_dict<'py>(py: Python<'py>, m: &Metadata) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("version", m.version)?;
    d.set_item("dataset", &m.dataset)?;
    d.set_item("schema", m.schema.map(|s| s.as_str().to_owned()))?;
    d.set_item("start", m.start)?;
    d.set_item("end", m.end.map(|e| e.get()))?;
    d.set_item("limit", m.limit.map(|l| l.get()))?;
    d.set_item("stype_in", m.stype_in.map(|s| s.as_str().to_owned()))?;
    d.set_item("stype_out", m.stype_out.as_str())?;
    d.set_item("ts_out", m.ts_out)?;
    d.set_item("symbols", &m.symbols)?;
    d.set_item("partial", &m.partial)?;
    d.set_item("not_found", &m.not_found)?;
    let mappings = PyList::empty(py);
    for mp in &m.mappings {
        let intervals: Vec<(u32, u32, String)> = mp
            .intervals
            .iter()
            .map(|iv| (date_int(iv.start_date), date_int(iv.end_date), iv.symbol.clone()))
            .collect();
        mappings.append((mp.raw_symbol.clone(), intervals))?;
    }
    d.set_item("mappings", mappings)?;
    Ok(d)
}

/// YYYYMMDD as an integer.
fn date_int(d: time::Date) -> u32 {
    d.year() as u32 * 10_000 + d.month() as u32 * 100 + d.day() as u32
}

/// Inspection decoder: records out as JSON from the dbn crate's own encoder.
#[pyclass(name = "StreamDecoder", module = "aurum._native")]
struct PyStreamDecoder {
    inner: CoreDecoder,
    prefix: Vec<u8>,
    ts_out: Option<bool>,
}

/// Header bytes needed to read ts_out (offset 60 in v1, 52 in v2/v3).
const TS_OUT_PREFIX: usize = 61;

#[pymethods]
impl PyStreamDecoder {
    #[new]
    #[pyo3(signature = (*, strict = false))]
    fn new(strict: bool) -> Self {
        Self { inner: CoreDecoder::new(strict), prefix: Vec::with_capacity(TS_OUT_PREFIX), ts_out: None }
    }

    fn feed(&mut self, py: Python<'_>, chunk: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        let mut out = Vec::new();
        let mut enc_err = None;
        let res = with_bytes(chunk, |bytes| {
            // The record callback cannot read the decoder's metadata while it decodes, so
            // ts_out is read from the header prefix, kept across chunks until complete.
            if self.ts_out.is_none() && self.prefix.len() < TS_OUT_PREFIX {
                let take = (TS_OUT_PREFIX - self.prefix.len()).min(bytes.len());
                self.prefix.extend_from_slice(&bytes[..take]);
                self.ts_out = sniff_ts_out(&self.prefix);
            }
            let ts_out = self.ts_out.unwrap_or(false);
            self.inner.feed(bytes, |rec| {
                // The encoder's dispatch asserts each record is at least its struct's size;
                // input is untrusted, so check first instead of letting it panic.
                let need = min_record_size(rec.header().rtype) + if ts_out { 8 } else { 0 };
                if rec.header().record_size() < need {
                    enc_err = Some(format!(
                        "record of rtype 0x{:02X} is {} bytes, expected at least {need}",
                        rec.header().rtype,
                        rec.header().record_size()
                    ));
                    return;
                }
                let mut buf = Vec::with_capacity(256);
                let mut enc = JsonEncoder::new(&mut buf, false, false, false);
                // SAFETY: `ts_out` comes from this stream's metadata header, and the size
                // check above guarantees the 8 appended bytes exist when it is set.
                let r = unsafe { enc.encode_record_ref_ts_out(rec, ts_out) };
                match r {
                    Ok(()) => out.push(String::from_utf8_lossy(&buf).trim_end().to_owned()),
                    Err(e) => enc_err = Some(e.to_string()),
                }
            })
        })?;
        res.map_err(|e| decode_err(py, e))?;
        if let Some(e) = enc_err {
            return Err(PyValueError::new_err(format!("JSON encoding failed: {e}")));
        }
        Ok(out)
    }

    fn finish(&mut self, py: Python<'_>) -> PyResult<()> {
        self.inner.finish().map_err(|e| decode_err(py, e))
    }

    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.inner.metadata().map(|m| metadata_dict(py, m)).transpose()
    }

    #[getter]
    fn unknown_rtypes(&self) -> u64 {
        self.inner.unknown_rtypes()
    }

    #[getter]
    fn bytes_fed(&self) -> u64 {
        self.inner.bytes_fed()
    }
}

/// The v3 struct size of each rtype the decoder passes on (unknown rtypes never reach here).
fn min_record_size(rtype: u8) -> usize {
    use dbn::rtype as r;
    use std::mem::size_of;
    match rtype {
        r::MBO => size_of::<dbn::MboMsg>(),
        r::MBP_0 => size_of::<dbn::TradeMsg>(),
        r::MBP_1 => size_of::<dbn::Mbp1Msg>(),
        r::MBP_10 => size_of::<dbn::Mbp10Msg>(),
        r::OHLCV_DEPRECATED | r::OHLCV_1S | r::OHLCV_1M | r::OHLCV_1H | r::OHLCV_1D | r::OHLCV_EOD => size_of::<dbn::OhlcvMsg>(),
        r::STATUS => size_of::<dbn::StatusMsg>(),
        r::INSTRUMENT_DEF => size_of::<dbn::InstrumentDefMsg>(),
        r::IMBALANCE => size_of::<dbn::ImbalanceMsg>(),
        r::ERROR => size_of::<dbn::ErrorMsg>(),
        r::SYMBOL_MAPPING => size_of::<dbn::SymbolMappingMsg>(),
        r::SYSTEM => size_of::<dbn::SystemMsg>(),
        r::STATISTICS => size_of::<dbn::StatMsg>(),
        r::CMBP_1 | r::TCBBO => size_of::<dbn::Cmbp1Msg>(),
        r::CBBO_1S | r::CBBO_1M => size_of::<dbn::CbboMsg>(),
        r::BBO_1S | r::BBO_1M => size_of::<dbn::BboMsg>(),
        _ => size_of::<dbn::RecordHeader>(),
    }
}

/// The `ts_out` byte of a v2/v3 metadata header at the start of `bytes`, if present.
fn sniff_ts_out(bytes: &[u8]) -> Option<bool> {
    if bytes.len() < TS_OUT_PREFIX || &bytes[..3] != b"DBN" {
        return None;
    }
    // v1 keeps ts_out at offset 60 (after record_count); v2/v3 at 52.
    Some(if bytes[3] == 1 { bytes[60] != 0 } else { bytes[52] != 0 })
}

#[pyclass(name = "DbnFile", module = "aurum._native")]
struct PyDbnFile {
    src: DbnFileSource,
    path: PathBuf,
}

#[pymethods]
impl PyDbnFile {
    #[new]
    fn new(path: PathBuf) -> PyResult<Self> {
        let src = DbnFileSource::open(&path)
            .map_err(|e| PyOSError::new_err(format!("cannot open DBN file {}: {e}", path.display())))?;
        Ok(Self { src, path })
    }

    #[getter]
    fn path(&self) -> String {
        self.path.display().to_string()
    }

    #[getter]
    fn compressed(&self) -> bool {
        self.src.compressed
    }

    #[getter]
    fn size(&self) -> u64 {
        self.src.size
    }

    #[getter]
    fn position(&self) -> u64 {
        self.src.position()
    }
}

/// A read-only window on one ring of a `Pipeline`, for `numpy.frombuffer`.
#[pyclass(name = "RingView", module = "aurum._native", frozen)]
struct RingView {
    // Keeps the pipeline, and so the ring allocation, alive while the view exists.
    _owner: Py<PyPipeline>,
    ptr: usize,
    len: usize,
    record_size: usize,
}

#[pymethods]
impl RingView {
    #[getter]
    fn capacity(&self) -> usize {
        self.len / self.record_size
    }

    #[getter]
    fn record_size(&self) -> usize {
        self.record_size
    }

    /// # Safety
    /// Called by CPython with a valid `view` to fill.
    unsafe fn __getbuffer__(slf: Bound<'_, Self>, view: *mut ffi::Py_buffer, flags: c_int) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("null Py_buffer"));
        }
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err("ring views are read-only"));
        }
        let me = slf.get();
        // SAFETY: `view` is non-null and CPython hands us exclusive use of it. The memory
        // (`ptr`, `len`) is the ring's allocation, which never moves or shrinks and lives as
        // long as the owning pipeline; `view.obj` holds a strong reference to this
        // RingView, which holds the pipeline. `shape`/`strides` point into `view` itself,
        // as CPython's own PyBuffer_FillInfo does.
        unsafe {
            (*view).obj = slf.clone().into_any().into_ptr();
            (*view).buf = me.ptr as *mut c_void;
            (*view).len = me.len as isize;
            (*view).readonly = 1;
            (*view).itemsize = 1;
            (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT { c"B".as_ptr() as *mut _ } else { std::ptr::null_mut() };
            (*view).ndim = 1;
            (*view).shape = if flags & ffi::PyBUF_ND == ffi::PyBUF_ND { &mut (*view).len } else { std::ptr::null_mut() };
            (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES { &mut (*view).itemsize } else { std::ptr::null_mut() };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
        }
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}
}

mod pipeline;
use pipeline::PyPipeline;

/// MBP-10 and trades records derived from an MBO stream (see the stub for the rules).
#[pyfunction]
fn derive_mbp10_trades<'py>(py: Python<'py>, mbo: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let d = with_bytes(mbo, crate::derive::derive_mbp10_trades)?.map_err(|e| decode_err(py, e))?;
    Ok((PyBytes::new(py, &d.mbp10), PyBytes::new(py, &d.trades)))
}

/// Raises ValueError naming the key if `engine_config` (the dict `Pipeline` takes) is not
/// valid; builds nothing. Config loading calls it, so a bad `[engines]` table is reported
/// with the file it came from, before anything starts.
#[pyfunction]
fn check_engine_config(engine_config: &Bound<'_, PyDict>) -> PyResult<()> {
    let mut cfg = EngineConfig::default();
    engine_conf::apply(&mut cfg, engine_config)?;
    cfg.validate().map_err(|e| PyValueError::new_err(format!("engine config {e}")))
}

// The safety arguments here (buffers read while held, rings written only inside calls)
// rely on the GIL, so the module declares that it needs one, also on free-threaded builds.
#[pymodule(name = "_native", gil_used = true)]
fn native_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add_class::<PyStreamDecoder>()?;
    m.add_class::<PyPipeline>()?;
    m.add_class::<PyDbnFile>()?;
    m.add_class::<RingView>()?;
    m.add_class::<shm::PyShmSignalWriter>()?;
    m.add_function(wrap_pyfunction!(derive_mbp10_trades, m)?)?;
    m.add_function(wrap_pyfunction!(check_engine_config, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("DBN_CRATE_VERSION", "0.73.0")?;
    m.add("UNDEF_PRICE", UNDEF_PRICE)?;
    m.add("UNDEF_TIMESTAMP", u64::MAX)?;
    m.add("FIXED_PRICE_SCALE", 1_000_000_000i64)?;
    m.add("F_LAST", dbn::flags::LAST)?;
    m.add("F_TOB", dbn::flags::TOB)?;
    m.add("F_SNAPSHOT", dbn::flags::SNAPSHOT)?;
    m.add("F_MBP", dbn::flags::MBP)?;
    m.add("F_BAD_TS_RECV", dbn::flags::BAD_TS_RECV)?;
    m.add("F_MAYBE_BAD_BOOK", dbn::flags::MAYBE_BAD_BOOK)?;
    m.add("TRADE_RECORD_SIZE", std::mem::size_of::<TradeRec>())?;
    m.add("TOP_RECORD_SIZE", std::mem::size_of::<TopRec>())?;
    m.add("BAR_RECORD_SIZE", std::mem::size_of::<BarRec>())?;
    m.add("ICEBERG_RECORD_SIZE", std::mem::size_of::<IcebergRec>())?;
    m.add("ZONE_RECORD_SIZE", std::mem::size_of::<ZoneRec>())?;
    m.add("SWEEP_RECORD_SIZE", std::mem::size_of::<SweepRec>())?;
    m.add("FLOW_RECORD_SIZE", std::mem::size_of::<FlowRec>())?;
    m.add("FOOTPRINT_RECORD_SIZE", std::mem::size_of::<FootprintCell>())?;
    m.add("BAR_KIND_TIME", BAR_KIND_TIME)?;
    m.add("BAR_KIND_TICK", BAR_KIND_TICK)?;
    m.add("BAR_KIND_VOLUME", BAR_KIND_VOLUME)?;
    Ok(())
}
