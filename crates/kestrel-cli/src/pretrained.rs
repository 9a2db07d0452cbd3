//! `--arch NAME --weights FILE`: a classifier with imported PyTorch / safetensors weights.

use crate::exit::CliError;
use burn::tensor::Device;
use kestrel_nn::import::load_classifier_at;
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
    let (arch, width) = crate::model_arg::arch_and_width(arch, Some(width), " for `--arch`")?;
    load_classifier_at(arch, width, weights, device).map_err(|e| CliError::BadInput(e.to_string()))
}
