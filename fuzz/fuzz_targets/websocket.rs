//! The `websocket` fuzz target: see `harness::websocket`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::websocket(data));
