//! Fuzz target: see `switchyard_h1_fuzz::chunked`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_h1_fuzz::chunked::check(data));
