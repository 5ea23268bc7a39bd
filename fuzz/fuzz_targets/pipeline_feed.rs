//! `cargo +nightly fuzz run -a pipeline_feed`: libFuzzer drives the script in
//! `native/tests/support/hostile.rs` (see `fuzz/README.md`). Any panic is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../native/tests/support/hostile.rs"]
mod hostile;
#[allow(dead_code)] // only its metadata header is used here
#[path = "../../native/tests/support/synthetic.rs"]
mod synthetic;

fuzz_target!(|data: &[u8]| {
    let _ = hostile::run(data);
});
