//! `--arch NAME --weights FILE`: a classifier with imported PyTorch / safetensors weights.

use crate::exit::CliError;
use burn::tensor::Device;
use kestrel_nn::import::load_classifier_at;
use kestrel_nn::zoo::{Arch, ARCH_NAMES};
use kestrel_nn::Classifier;
use std::path::Path;

/// Builds `arch` (MobileNetV2 at `width`) and loads `weights` into it. Every failure is bad input
/// (exit 2): an unknown architecture, an unreadable, truncated or unsafe file, or tensors that do
/// not fit.
pub fn load(
    arch: &str,
    width: f64,
    weights: &Path,
    device: &Device,
) -> Result<Classifier, CliError> {
    let arch: Arch = arch.parse().map_err(|_| {
        CliError::BadInput(format!(
            "unknown model `{arch}` for `--arch`; expected one of: {}",
            ARCH_NAMES.join(", ")
        ))
    })?;
    if !arch.has_width() && width != 1.0 {
        return Err(CliError::BadInput(format!(
            "bad value for `--width`: {arch} has no width multiplier (expected 1, got {width})"
        )));
    }
    load_classifier_at(arch, width, weights, device).map_err(|e| CliError::BadInput(e.to_string()))
}
