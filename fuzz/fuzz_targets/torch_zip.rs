//! `read_torch_zip` on arbitrary bytes: errors are fine, panics, hangs and huge allocations are not.
#![no_main]
use kestrel_fuzz::import::torch_zip::read_torch_zip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sd) = read_torch_zip(data) {
        for (_, t) in sd.iter() {
            assert_eq!(t.values.len(), t.shape.iter().product::<usize>());
        }
    }
});
