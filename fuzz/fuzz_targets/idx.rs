//! The `idx` target: see `kestrel_fuzz::idx`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::idx(data));
