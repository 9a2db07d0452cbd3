//! The fuzz targets' bodies, one function per target (`fuzz_targets/<name>.rs` only calls it), so
//! that the smoke test (`tests/smoke.rs`) runs the same code over the seeds in `seeds/<name>/`.
//!
//! kestrel-nn's byte-level weight readers are compiled here without Burn (they do not use it),
//! included by path; the other targets call the crates they fuzz.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

/// The Burn-free part of `kestrel_nn::import`.
#[path = "../../crates/kestrel-nn/src/import"]
pub mod import {
    pub mod budget;
    pub mod dtype;
    pub mod format;
    pub mod pickle;
    pub mod read_error;
    pub mod safetensors;
    pub mod state_dict;
    pub mod tensor_view;
    pub mod torch_globals;
    pub mod torch_legacy;
    pub mod torch_zip;
    pub mod zip_archive;
}

/// A target's name and body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target: its name (the folder of its seeds and the name of its binary) and its body
/// (`checkpoint` with the `checkpoint` feature only: it builds Burn).
pub const TARGETS: &[Target] = &[
    ("pickle", pickle),
    ("torch_zip", torch_zip),
    ("torch_legacy", torch_legacy),
    ("safetensors", safetensors),
    ("plan", plan),
    ("idx", idx),
    ("metrics_csv", metrics_csv),
    #[cfg(feature = "checkpoint")]
    ("checkpoint", checkpoint),
    ("image", image),
];

static ZEROS: [u8; 4096] = [0; 4096];

/// The pickle machine on arbitrary bytes, with torch's persistent ids, then the state-dict
/// interpretation of whatever it built (storages read as zero-filled bytes of any length).
pub fn pickle(data: &[u8]) {
    use import::budget::Budget;
    use import::pickle::unpickle;
    use import::tensor_view::state_dict_from_pickle;
    use import::torch_globals::storage_from_pid;
    if let Ok((root, used)) = unpickle(data, &mut storage_from_pid) {
        assert!(used <= data.len());
        let mut bytes_of = |_: &_| Ok(&ZEROS[..]);
        let _ = state_dict_from_pickle(&root, &mut bytes_of, &mut Budget::for_file(data.len()));
    }
}

/// Checks that every tensor of a state dict holds as many values as its shape says.
fn check_state_dict(sd: &import::state_dict::StateDict) {
    for (_, t) in sd.iter() {
        assert_eq!(t.values.len(), t.shape.iter().product::<usize>());
    }
}

/// `read_torch_zip` on arbitrary bytes: errors are fine, panics, hangs and huge allocations are
/// not.
pub fn torch_zip(data: &[u8]) {
    if let Ok(sd) = import::torch_zip::read_torch_zip(data) {
        check_state_dict(&sd);
    }
}

/// `read_torch_legacy` on arbitrary bytes.
pub fn torch_legacy(data: &[u8]) {
    if let Ok(sd) = import::torch_legacy::read_torch_legacy(data) {
        check_state_dict(&sd);
    }
}

/// `read_safetensors` on arbitrary bytes.
pub fn safetensors(data: &[u8]) {
    if let Ok(sd) = import::safetensors::read_safetensors(data) {
        check_state_dict(&sd);
    }
}

/// At most this many floats in all of a plan's values together for the fuzz target to run it
/// (what a plan may declare is the plan reader's business; running a large one is only slow).
const RUN_FLOATS: usize = 1 << 18;

/// At most this many multiply-adds for the fuzz target to run a plan.
const RUN_MACS: u64 = 1 << 22;

/// `Plan::from_bytes` on the bytes as they are, and on the bytes with their checksum appended
/// (the seeds are plan files without theirs), so that mutations reach the graph's validation.
/// A plan that loads and is small is run once on a zero image: a plan the reader accepts must
/// run without a panic.
pub fn plan(data: &[u8]) {
    use kestrel_runtime::format::fnv1a;
    use kestrel_runtime::{Engine, EngineOptions, Plan};
    let path = Path::new("fuzz.plan");
    let _ = Plan::from_bytes(data, path);
    let mut summed = data.to_vec();
    summed.extend_from_slice(&fnv1a(data).to_le_bytes());
    let Ok(plan) = Plan::from_bytes(&summed, path) else {
        return;
    };
    let floats = plan
        .graph
        .values
        .iter()
        .try_fold(0usize, |acc, s| acc.checked_add(s.len()));
    if floats.is_none_or(|n| n > RUN_FLOATS) || plan.macs() > RUN_MACS {
        return;
    }
    let input = vec![0.0f32; plan.input_shape().len()];
    let options = EngineOptions {
        threads: 1,
        ..EngineOptions::default()
    };
    if let Ok(mut engine) = Engine::new(plan, options) {
        let _ = engine.run(&input, 1);
    }
}

/// The bytes gzipped, as a well-formed `.gz` file holding them.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("writing to a Vec");
    e.finish().expect("writing to a Vec")
}

/// `decode_idx` on the bytes as an image file and as a label file, raw and as a gzip file, and on
/// the bytes gzipped (so that mutations of the IDX content also reach the gzip path whole).
pub fn idx(data: &[u8]) {
    use kestrel_data::formats::idx::decode_idx;
    let path = Path::new("fuzz-idx3-ubyte");
    let zipped = gzip(data);
    for dims in [3, 1] {
        for gz in [false, true] {
            if let Ok(a) = decode_idx(data, gz, dims, path) {
                assert_eq!(a.dims.len(), dims);
                assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
            }
        }
        let _ = decode_idx(&zipped, true, dims, path);
    }
}

/// The `kestrel metrics` CSV reader, then the report (confusion matrix, curves) and its text.
pub fn metrics_csv(data: &[u8]) {
    use kestrel_metrics::{csv_input, Report};
    let Ok(predictions) = csv_input::parse(data, Path::new("fuzz.csv")) else {
        return;
    };
    assert!(predictions.n_classes() <= csv_input::MAX_CLASSES);
    if let Ok(report) = Report::from_predictions(&predictions, 0.5) {
        let _ = report.to_text();
    }
}

/// `Checkpoint::from_bytes` (sections, metadata and its checks), then the check of the model
/// record against the spec that comes before a network is built.
#[cfg(feature = "checkpoint")]
pub fn checkpoint(data: &[u8]) {
    use kestrel_train::Checkpoint;
    if let Ok(ckpt) = Checkpoint::from_bytes(data, Path::new("fuzz.ckpt")) {
        let _ = ckpt.check_record();
    }
}

/// This process's scratch file for the image target (the readers take a path).
fn scratch_image() -> PathBuf {
    std::env::temp_dir().join(format!("kestrel-fuzz-image-{}", std::process::id()))
}

/// kestrel-data's image readers (`image_dimensions`, `load_rgb`, `load_mask`) on the bytes, as
/// a file.
pub fn image(data: &[u8]) {
    use kestrel_data::image_io::{image_dimensions, load_mask, load_rgb, MAX_IMAGE_PIXELS};
    let path = scratch_image();
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let dims = image_dimensions(&path).ok();
    // The readers refuse images over MAX_IMAGE_PIXELS from their header, before decoding.
    if let Ok(img) = load_rgb(&path) {
        assert!(u64::from(img.width()) * u64::from(img.height()) <= MAX_IMAGE_PIXELS);
        assert_eq!(Some(img.dimensions()), dims);
    }
    if let Ok(mask) = load_mask(&path) {
        assert!(u64::from(mask.width()) * u64::from(mask.height()) <= MAX_IMAGE_PIXELS);
    }
}
