//! The `safetensors` target: see `kestrel_fuzz::safetensors`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::safetensors(data));
