//! Aurum's native core. Plain Rust kernels (tested with `cargo test`); the PyO3 bindings
//! in `python/` are compiled only with the `python` feature.

pub mod bars;
pub mod book;
pub mod levels;
pub mod order_index;
pub mod decoder;
pub mod derive;
pub mod engines;
pub mod file;
pub mod instrument;
pub mod latency;
pub mod pipeline;
pub mod ring;
pub mod shm;

#[cfg(feature = "python")]
mod python;
