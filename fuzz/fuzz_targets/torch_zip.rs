//! The `torch_zip` target: see `kestrel_fuzz::torch_zip`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::torch_zip(data));
