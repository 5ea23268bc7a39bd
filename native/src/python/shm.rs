//! `aurum._native.ShmSignalWriter`: the shared-memory signal writer with Python-level
//! values (prices in USD as floats, actions and sources by name). Signals are per bar, so
//! parsing a dict per publish is far off any hot path. Every field is checked, and an
//! unknown key is an error naming it: a typo must never publish a silently zero field.

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::shm::{self, ShmSignalWriter as CoreWriter, SignalRecord, StateBlock, Zone};

const SIGNAL_KEYS: &str = "ts_ns, ts_out, instrument_id, action, flags, veto, entry, stop, targets, direction, confidence, pillar_dir, pillar_conf, reason";
const STATE_KEYS: &str = "ts_ns, ts_out, last, bid, ask, volume, market_ts, instrument_id, source, feed_state, pillar_dir, pillar_conf, zones";
const ZONE_KEYS: &str = "price, side, kind, state, strength, volume";

fn bad(key: &str, e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{key}: {e}"))
}

/// A price in USD (float or int) or None to fixed point 1e-9; None is UNDEF_PRICE.
fn price(key: &str, v: &Bound<'_, PyAny>) -> PyResult<i64> {
    if v.is_none() {
        return Ok(shm::UNDEF_PRICE);
    }
    let x: f64 = v.extract().map_err(|e| bad(key, e))?;
    let fx = (x * shm::PRICE_SCALE as f64).round();
    // i64::MAX is the "none" marker, so stay strictly inside it.
    if !fx.is_finite() || fx.abs() >= 9.2e18 {
        return Err(bad(key, format!("price {x} is not representable in 1e-9 fixed point")));
    }
    Ok(fx as i64)
}

fn int<T: for<'a, 'py> FromPyObject<'a, 'py>>(key: &str, v: &Bound<'_, PyAny>) -> PyResult<T> {
    v.extract::<T>().map_err(|_| bad(key, format!("expected an integer in range, got {v}")))
}

fn floats<const N: usize>(key: &str, v: &Bound<'_, PyAny>) -> PyResult<[f32; N]> {
    let xs: Vec<f64> = v.extract().map_err(|e| bad(key, e))?;
    if xs.len() > N {
        return Err(bad(key, format!("{} values, at most {N}", xs.len())));
    }
    let mut out = [0f32; N];
    for (o, x) in out.iter_mut().zip(xs) {
        *o = x as f32;
    }
    Ok(out)
}

/// An int code, or one of `names` (case-insensitive) whose index is the code.
fn code(key: &str, v: &Bound<'_, PyAny>, names: &[&str]) -> PyResult<u8> {
    if let Ok(s) = v.cast::<PyString>() {
        let s = s.to_str()?.to_ascii_lowercase();
        return names.iter().position(|n| *n == s).map(|i| i as u8).ok_or_else(|| bad(key, format!("{s:?} is not one of {}", names.join(", "))));
    }
    int(key, v)
}

/// A zone side: 'B'/'A' (or any one ASCII character) or its byte value.
fn side(v: &Bound<'_, PyAny>) -> PyResult<u8> {
    if let Ok(s) = v.cast::<PyString>() {
        let s = s.to_str()?;
        return match s.as_bytes() {
            [b] => Ok(*b),
            _ => Err(bad("zones.side", format!("{s:?} is not one character such as 'B' or 'A'"))),
        };
    }
    int("zones.side", v)
}

/// Merges `mapping` and `kwargs` (kwargs win) into one dict.
fn fields<'py>(py: Python<'py>, mapping: Option<&Bound<'py, PyDict>>, kwargs: Option<&Bound<'py, PyDict>>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    if let Some(m) = mapping {
        d.update(m.as_mapping())?;
    }
    if let Some(k) = kwargs {
        d.update(k.as_mapping())?;
    }
    Ok(d)
}

fn signal_from(d: &Bound<'_, PyDict>) -> PyResult<SignalRecord> {
    let mut r = SignalRecord { ts_ns: shm::now_ns(), ..Default::default() };
    for (k, v) in d.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "ts_ns" => r.ts_ns = int(&key, &v)?,
            "ts_out" => r.ts_out = int(&key, &v)?,
            "instrument_id" => r.instrument_id = int(&key, &v)?,
            "action" => r.action = code(&key, &v, &["flat", "buy", "sell"])?,
            "flags" => r.flags = int(&key, &v)?,
            "veto" => r.veto = int(&key, &v)?,
            "entry" => r.entry = price(&key, &v)?,
            "stop" => r.stop = price(&key, &v)?,
            "targets" => {
                let ts: Vec<Bound<'_, PyAny>> = v.extract().map_err(|e| bad(&key, e))?;
                if ts.len() > 3 {
                    return Err(bad(&key, format!("{} targets, at most 3", ts.len())));
                }
                for (slot, t) in r.targets.iter_mut().zip(&ts) {
                    *slot = price(&key, t)?;
                }
            }
            "direction" => r.direction = v.extract().map_err(|e| bad(&key, e))?,
            "confidence" => r.confidence = v.extract().map_err(|e| bad(&key, e))?,
            "pillar_dir" => r.pillar_dir = floats(&key, &v)?,
            "pillar_conf" => r.pillar_conf = floats(&key, &v)?,
            "reason" => r.set_reason(&v.extract::<String>().map_err(|e| bad(&key, e))?),
            // Set by the writer; accepted so a consumer's dict can be re-published as is.
            "seq" | "crc32" => {}
            _ => return Err(PyValueError::new_err(format!("unknown signal field {key:?}; expected one of: {SIGNAL_KEYS}"))),
        }
    }
    Ok(r)
}

fn zone_from(v: &Bound<'_, PyAny>) -> PyResult<Zone> {
    let d = v.cast::<PyDict>().map_err(|_| bad("zones", "each zone must be a dict"))?;
    let mut z = Zone::default();
    for (k, v) in d.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "price" => z.price = price("zones.price", &v)?,
            "side" => z.side = side(&v)?,
            "kind" => z.kind = int("zones.kind", &v)?,
            "state" => z.state = int("zones.state", &v)?,
            "strength" => z.strength = v.extract::<f64>().map_err(|e| bad("zones.strength", e))? as f32,
            "volume" => z.volume = int("zones.volume", &v)?,
            _ => return Err(PyValueError::new_err(format!("unknown zone field {key:?}; expected one of: {ZONE_KEYS}"))),
        }
    }
    Ok(z)
}

fn state_into(s: &mut StateBlock, d: &Bound<'_, PyDict>) -> PyResult<()> {
    s.update_ts = shm::now_ns();
    for (k, v) in d.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "ts_ns" => s.update_ts = int(&key, &v)?,
            "ts_out" => s.ts_out = int(&key, &v)?,
            "last" => s.last = price(&key, &v)?,
            "bid" => s.bid = price(&key, &v)?,
            "ask" => s.ask = price(&key, &v)?,
            "volume" => s.volume = int(&key, &v)?,
            "market_ts" => s.market_ts = int(&key, &v)?,
            "instrument_id" => s.instrument_id = int(&key, &v)?,
            "source" => s.source = code(&key, &v, &["databento", "yahoo", "replay"])?,
            "feed_state" => s.feed_state = code(&key, &v, &["down", "live", "stale", "recovering"])?,
            "pillar_dir" => s.pillar_dir = floats(&key, &v)?,
            "pillar_conf" => s.pillar_conf = floats(&key, &v)?,
            "zones" => {
                let zs = v.cast::<PyList>().map_err(|_| bad(&key, "expected a list of zone dicts"))?;
                if zs.len() > shm::MAX_ZONES {
                    return Err(bad(&key, format!("{} zones, the block holds at most {}; send the strongest", zs.len(), shm::MAX_ZONES)));
                }
                s.zones = [Zone::default(); shm::MAX_ZONES];
                for (i, z) in zs.iter().enumerate() {
                    s.zones[i] = zone_from(&z)?;
                }
                s.zone_count = zs.len() as u16;
            }
            // Written by a reader's state(): accepted so its dict can be re-published.
            "update_seq" | "crc32" => {}
            _ => return Err(PyValueError::new_err(format!("unknown state field {key:?}; expected one of: {STATE_KEYS}"))),
        }
    }
    Ok(())
}

/// The writer of a shared-memory signal segment (`/dev/shm/<name>`). See `_native.pyi`.
#[pyclass(name = "ShmSignalWriter", module = "aurum._native")]
pub struct PyShmSignalWriter {
    inner: Option<CoreWriter>,
    name: String,
    /// The last state written: `update_state` merges into it, so callers send only changes.
    state: StateBlock,
}

impl PyShmSignalWriter {
    fn writer(&mut self) -> PyResult<&mut CoreWriter> {
        self.inner.as_mut().ok_or_else(|| PyRuntimeError::new_err(format!("shared-memory writer {:?} is closed", self.name)))
    }
}

#[pymethods]
impl PyShmSignalWriter {
    #[new]
    #[pyo3(signature = (name = shm::DEFAULT_NAME.to_string(), capacity = shm::DEFAULT_CAPACITY, mode = shm::DEFAULT_MODE, unlink_on_close = false, wake_on_publish = true))]
    fn new(name: String, capacity: u32, mode: u32, unlink_on_close: bool, wake_on_publish: bool) -> PyResult<Self> {
        let mut w = CoreWriter::create(&name, capacity, mode).map_err(|e| {
            let msg = format!("cannot create shared-memory segment {name:?}: {e}");
            match e.kind() {
                std::io::ErrorKind::InvalidInput => PyValueError::new_err(msg),
                // Someone else's file under that name: FileExistsError, so callers can tell it
                // from a transient failure (the daemon exits 2 on it: a restart cannot help).
                std::io::ErrorKind::AlreadyExists => pyo3::exceptions::PyFileExistsError::new_err(msg),
                _ => PyOSError::new_err(msg),
            }
        })?;
        w.set_unlink_on_drop(unlink_on_close);
        w.set_wake_on_publish(wake_on_publish);
        Ok(Self { inner: Some(w), name, state: StateBlock::default() })
    }

    /// Publishes one signal from a dict and/or keywords; returns its sequence number.
    #[pyo3(signature = (mapping = None, /, **kwargs))]
    fn publish(&mut self, py: Python<'_>, mapping: Option<&Bound<'_, PyDict>>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<u64> {
        let rec = signal_from(&fields(py, mapping, kwargs)?)?;
        let w = self.writer()?;
        let seq = w.publish(&rec);
        w.heartbeat(shm::now_ns());
        Ok(seq)
    }

    /// Updates the latest-state block: given fields change, the rest keep their last value.
    #[pyo3(signature = (mapping = None, /, **kwargs))]
    fn update_state(&mut self, py: Python<'_>, mapping: Option<&Bound<'_, PyDict>>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        let d = fields(py, mapping, kwargs)?;
        self.writer()?;
        // Parse into a copy so a bad field leaves the published state untouched.
        let mut s = self.state;
        state_into(&mut s, &d)?;
        let w = self.writer()?;
        w.update_state(&s);
        w.heartbeat(shm::now_ns());
        self.state = s;
        Ok(())
    }

    /// Wakes readers blocked in a futex wait on the segment, if anything was published since
    /// the last wake (only needed with `wake_on_publish=False`).
    fn wake(&mut self) -> PyResult<()> {
        self.writer()?.wake();
        Ok(())
    }

    /// Refreshes the heartbeat (wall-clock ns; default now). Call it at least every second.
    #[pyo3(signature = (now_ns = None))]
    fn heartbeat(&mut self, now_ns: Option<u64>) -> PyResult<()> {
        self.writer()?.heartbeat(now_ns.unwrap_or_else(shm::now_ns));
        Ok(())
    }

    /// Unmaps the segment and releases the writer lock (unlinking it if asked to).
    fn close(&mut self) {
        self.inner = None;
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __exit__(&mut self, _t: &Bound<'_, PyAny>, _v: &Bound<'_, PyAny>, _tb: &Bound<'_, PyAny>) {
        self.close();
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    #[getter]
    fn path(&self) -> String {
        shm::segment_path(&self.name).map(|p| p.display().to_string()).unwrap_or_default()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_none()
    }

    #[getter]
    fn capacity(&mut self) -> PyResult<u32> {
        Ok(self.writer()?.capacity())
    }

    /// Signals published so far (the next signal's sequence).
    #[getter]
    fn written(&mut self) -> PyResult<u64> {
        Ok(self.writer()?.written())
    }

    #[classattr]
    fn layout_hash() -> u64 {
        shm::LAYOUT_HASH
    }

    #[classattr]
    fn layout_desc() -> &'static str {
        shm::LAYOUT_DESC
    }

    #[classattr]
    fn version() -> u32 {
        shm::VERSION
    }
}
