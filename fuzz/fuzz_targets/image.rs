//! The `image` target: see `kestrel_fuzz::image`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::image(data));
