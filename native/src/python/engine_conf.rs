//! Engine configuration from Python: a dict of sections (`{"iceberg": {...}, ...}`) plus
//! top-level keys. Unknown sections or keys are an error that names them, so a typo in a
//! config file never silently falls back to a default.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::engines::{EngineConfig, PressureState, RiskState};

/// Sets the listed fields of `$target` from dict `$d`; anything else is an error.
macro_rules! set_fields {
    ($d:expr, $section:expr, $target:expr, [$($f:ident),* $(,)?]) => {{
        for (k, v) in $d.iter() {
            let key: String = k.extract()?;
            match key.as_str() {
                $(stringify!($f) => {
                    $target.$f = v.extract().map_err(|e| {
                        // The value, and the type it must fit: "can't convert negative int to
                        // unsigned" alone did not say which value or what was expected.
                        let want = std::any::type_name_of_val(&$target.$f);
                        let got = v.repr().map(|r| r.to_string()).unwrap_or_default();
                        PyValueError::new_err(format!("engine config {}{} was {}, expected {} ({})", $section, key, got, kind_text(want), e))
                    })?;
                })*
                _ => {
                    let known: &[&str] = &[$(stringify!($f)),*];
                    return Err(PyValueError::new_err(format!(
                        "unknown engine config key {}{}; expected one of: {}", $section, key, known.join(", ")
                    )));
                }
            }
        }
    }};
}

/// What a Rust field type accepts, in config words.
fn kind_text(rust_type: &str) -> &'static str {
    match rust_type {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer",
        "i32" | "i64" => "an integer",
        "f64" | "f32" => "a number",
        "bool" => "true or false",
        _ => "another type",
    }
}

fn section<'py>(v: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, PyDict>> {
    v.cast::<PyDict>()
        .cloned()
        .map_err(|_| PyValueError::new_err(format!("engine config section {name:?} must be a table/dict")))
}

pub fn apply(cfg: &mut EngineConfig, d: &Bound<'_, PyDict>) -> PyResult<()> {
    let top = PyDict::new(d.py());
    for (k, v) in d.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "iceberg" => {
                let s = section(&v, &key)?;
                let c = &mut cfg.iceberg;
                set_fields!(s, "iceberg.", c, [enabled, synthetic_enabled, synthetic_max_delay_ns, synthetic_min_clip, synthetic_min_clips, zone_width, strength_lots]);
            }
            "absorption" => {
                let s = section(&v, &key)?;
                let c = &mut cfg.absorption;
                set_fields!(s, "absorption.", c, [enabled, window_ns, min_volume, rearm_ns, window_capacity]);
            }
            "sweep" => {
                let s = section(&v, &key)?;
                let c = &mut cfg.sweep;
                set_fields!(s, "sweep.", c, [enabled, min_levels, min_volume, group_ns, run_ns]);
            }
            "flow" => {
                let s = section(&v, &key)?;
                let c = &mut cfg.flow;
                set_fields!(s, "flow.", c, [enabled, tick, max_cells, imbalance_ratio, imbalance_min_volume, stacked_min, divergence_bars, session_gap_ns]);
            }
            "pressure" => {
                let s = section(&v, &key)?;
                let c = &mut cfg.pressure;
                set_fields!(s, "pressure.", c, [ofi_half_life_ns, depth_decay]);
            }
            "protect" => {
                let s = section(&v, &key)?;
                let c = &mut cfg.protect;
                set_fields!(s, "protect.", c, [spread_mult, max_spread, spread_alpha, vacuum_frac, depth_alpha, min_samples, stale_ns]);
            }
            _ => top.set_item(k, v)?,
        }
    }
    set_fields!(top, "", cfg, [enabled, depth_sample_ns, iceberg_capacity, zone_capacity, sweep_capacity, flow_capacity, footprint_capacity]);
    Ok(())
}

pub fn pressure_dict<'py>(py: Python<'py>, p: &PressureState) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("imbalance", p.imbalance)?;
    d.set_item("depth_imbalance", p.depth_imbalance)?;
    d.set_item("ofi_total", p.ofi_total)?;
    d.set_item("ofi_decayed", p.ofi_decayed)?;
    d.set_item("microprice", p.microprice)?;
    d.set_item("mid", p.mid)?;
    d.set_item("spread", p.spread)?;
    d.set_item("bid_depth", p.bid_depth)?;
    d.set_item("ask_depth", p.ask_depth)?;
    d.set_item("updates", p.updates)?;
    d.set_item("last_ts", p.last_ts)?;
    Ok(d)
}

pub fn risk_dict<'py>(py: Python<'py>, r: &RiskState) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("spread_blowout", r.spread_blowout)?;
    d.set_item("liquidity_vacuum", r.liquidity_vacuum)?;
    d.set_item("crossed", r.crossed)?;
    d.set_item("locked", r.locked)?;
    d.set_item("maybe_bad_book", r.maybe_bad_book)?;
    d.set_item("stale", r.stale)?;
    d.set_item("flags", r.flags)?;
    d.set_item("spread_blowouts", r.spread_blowouts)?;
    d.set_item("liquidity_vacuums", r.liquidity_vacuums)?;
    d.set_item("crossed_count", r.crossed_count)?;
    d.set_item("locked_count", r.locked_count)?;
    d.set_item("maybe_bad_book_count", r.maybe_bad_book_count)?;
    d.set_item("maybe_bad_book_records", r.maybe_bad_book_records)?;
    d.set_item("stale_count", r.stale_count)?;
    d.set_item("spread", r.spread)?;
    d.set_item("spread_ema", r.spread_ema)?;
    d.set_item("depth", r.depth)?;
    d.set_item("depth_ema", r.depth_ema)?;
    d.set_item("last_ts_recv", r.last_ts_recv)?;
    Ok(d)
}
