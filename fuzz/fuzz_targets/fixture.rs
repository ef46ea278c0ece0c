//! The `fixture` fuzz target: see `harness::fixture`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::fixture(data));
