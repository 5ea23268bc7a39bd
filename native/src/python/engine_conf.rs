//! Engine configuration from Python: a dict of sections (`{"iceberg": {...}, ...}`) plus
//! top-level keys. Unknown sections or keys are an error that names them, so a typo in a
//! config file never silently falls back to a default.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::engines::EngineConfig;

/// Sets the listed fields of `$target` from dict `$d`; anything else is an error.
macro_rules! set_fields {
    ($d:expr, $section:expr, $target:expr, [$($f:ident),* $(,)?]) => {{
        for (k, v) in $d.iter() {
            let key: String = k.extract()?;
            match key.as_str() {
                $(stringify!($f) => {
                    $target.$f = v.extract().map_err(|e| {
                        PyValueError::new_err(format!("engine config {}{}: {}", $section, key, e))
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
                set_fields!(s, "iceberg.", c, [enabled]);
            }
            "absorption" => {
                let s = section(&v, &key)?;
                let c = &mut cfg.absorption;
                set_fields!(s, "absorption.", c, [enabled]);
            }
            "sweep" => {
                let s = section(&v, &key)?;
                let c = &mut cfg.sweep;
                set_fields!(s, "sweep.", c, [enabled]);
            }
            "flow" => {
                let s = section(&v, &key)?;
                let c = &mut cfg.flow;
                set_fields!(s, "flow.", c, [interval_ns]);
            }
            "pressure" => {
                let s = section(&v, &key)?;
                let _c = &mut cfg.pressure;
                set_fields!(s, "pressure.", _c, []);
            }
            "protect" => {
                let s = section(&v, &key)?;
                let _c = &mut cfg.protect;
                set_fields!(s, "protect.", _c, []);
            }
            _ => top.set_item(k, v)?,
        }
    }
    set_fields!(top, "", cfg, [enabled, depth_sample_ns, iceberg_capacity, zone_capacity, sweep_capacity, flow_capacity, footprint_capacity]);
    Ok(())
}
