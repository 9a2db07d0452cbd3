//! The `metrics_csv` target: see `kestrel_fuzz::metrics_csv`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::metrics_csv(data));
