//! `--arch NAME --weights FILE`: a classifier with imported PyTorch / safetensors weights.

use crate::exit::CliError;
use burn::tensor::Device;
use clap::Args;
use kestrel_nn::import::load_classifier_at;
use kestrel_nn::Classifier;
use std::path::{Path, PathBuf};

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

/// Where a command's model comes from: a training run, or pretrained weights (`predict` and
/// `export` share these flags). Each command requires one of `--run` and `--arch` with an
/// argument group of its own (`export` also takes `--plan`).
#[derive(Args, Debug)]
pub struct ModelSource {
    /// The run folder written by `kestrel train` (its best checkpoint is used).
    #[arg(long, conflicts_with_all = ["arch", "weights"])]
    run: Option<PathBuf>,
    /// Architecture of pretrained weights (with `--weights`): mobilenet-v2, resnet18, resnet34,
    /// resnet50. Images get torchvision's preprocessing (resize 256, centre crop 224, ImageNet
    /// mean/std); a 1000-class model gets the ImageNet class names.
    #[arg(long, requires = "weights")]
    arch: Option<String>,
    /// A torchvision state dict: `.pth` (zip or legacy format) or `.safetensors`. Read without
    /// running any code: only the pickle globals a state dict needs are accepted.
    #[arg(long, requires = "arch")]
    weights: Option<PathBuf>,
    /// Width multiplier of a MobileNetV2 `--arch` (torchvision's `width_mult`).
    #[arg(long, default_value_t = 1.0, requires = "arch")]
    width: f64,
}

/// A resolved [`ModelSource`].
pub enum Source<'a> {
    /// `--run DIR`.
    Run(&'a Path),
    /// `--arch NAME --weights FILE`, loaded.
    Pretrained {
        /// The architecture's name as given.
        arch: &'a str,
        /// `--width`.
        width: f64,
        /// The weights file.
        weights: &'a Path,
        /// The model with the weights in it.
        model: Box<Classifier>,
    },
}

impl ModelSource {
    /// The run folder, or the pretrained model loaded on `device`.
    pub fn resolve(&self, device: &Device) -> Result<Source<'_>, CliError> {
        match (&self.run, &self.arch, &self.weights) {
            (Some(run), _, _) => Ok(Source::Run(run)),
            (None, Some(arch), Some(weights)) => Ok(Source::Pretrained {
                arch,
                width: self.width,
                weights,
                model: Box::new(load(arch, self.width, weights, device)?),
            }),
            _ => Err(CliError::BadInput(
                "give `--run DIR`, or `--arch NAME --weights FILE`".into(),
            )),
        }
    }
}
