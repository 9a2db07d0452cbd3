//! The `plan` target: see `kestrel_fuzz::plan`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::plan(data));
