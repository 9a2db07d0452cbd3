//! `read_torch_legacy` on arbitrary bytes: errors are fine, panics, hangs and huge allocations are not.
#![no_main]
use kestrel_fuzz::import::torch_legacy::read_torch_legacy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sd) = read_torch_legacy(data) {
        for (_, t) in sd.iter() {
            assert_eq!(t.values.len(), t.shape.iter().product::<usize>());
        }
    }
});
