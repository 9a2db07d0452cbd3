//! The `torch_legacy` target: see `kestrel_fuzz::torch_legacy`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::torch_legacy(data));
