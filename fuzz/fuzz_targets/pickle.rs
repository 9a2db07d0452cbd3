//! The `pickle` target: see `kestrel_fuzz::pickle`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::pickle(data));
