//! The `checkpoint` target: see `kestrel_fuzz::checkpoint`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::checkpoint(data));
