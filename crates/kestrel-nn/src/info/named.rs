//! Describing a model by its name and settings, as `kestrel info` and the Python package's
//! `kestrel.info` take them: a classifier (`resnet18`, `mobilenet-v2` with a width) or an FCN
//! (`fcn8s-mobilenet-v2` with classes, output stride and upsampler).

use crate::info::{InfoError, ModelInfo};
use crate::models::fcn::{SegmenterName, SegmenterSpec, UnknownSegmenter};
use crate::models::zoo::{Arch, ClassifierSpec, ARCH_NAMES};
use crate::upsample::UpsamplerKind;

/// Classes of an FCN model when none are given: PASCAL VOC's 20 and background.
pub const FCN_CLASSES: usize = 21;

/// Classes of a classifier when none are given: ImageNet's.
pub const CLASSIFIER_CLASSES: usize = 1000;

/// Why a named model cannot be described.
#[derive(Debug, thiserror::Error)]
pub enum NamedError {
    /// The name is not one kestrel knows (the message says what is expected).
    #[error("{0}")]
    Name(String),
    /// A setting does not suit the model (`setting` is its name: `width`, `upsampler`).
    #[error("bad value for `{setting}`: {detail}")]
    Setting {
        /// The setting.
        setting: &'static str,
        /// What is wrong and what was expected.
        detail: String,
    },
    /// The settings do not describe a valid network.
    #[error(transparent)]
    Info(#[from] InfoError),
}

/// Parses a classifier name and checks the width multiplier against it: only the MobileNets
/// have one (a ResNet accepts only 1).
pub fn arch_and_width(name: &str, width: Option<f64>) -> Result<(Arch, f64), NamedError> {
    let arch: Arch = name.parse().map_err(|_| {
        NamedError::Name(format!(
            "unknown model `{name}`; expected one of: {}",
            ARCH_NAMES.join(", ")
        ))
    })?;
    match width {
        Some(w) if !arch.has_width() && w != 1.0 => Err(NamedError::Setting {
            setting: "width",
            detail: format!("{arch} has no width multiplier (expected 1, got {w})"),
        }),
        Some(w) => Ok((arch, w)),
        None => Ok((arch, 1.0)),
    }
}

/// The segmentation model `name` (`fcn8s-mobilenet-v2`, …) with its width, classes (default
/// [`FCN_CLASSES`]), output stride and upsampler. The settings themselves are checked where the
/// model is described or built.
pub fn segmenter_spec(
    name: &str,
    width: Option<f64>,
    classes: Option<usize>,
    output_stride: usize,
    upsampler: &str,
) -> Result<SegmenterSpec, NamedError> {
    let name: SegmenterName = name
        .parse()
        .map_err(|e: UnknownSegmenter| NamedError::Name(e.to_string()))?;
    let (_, width) = arch_and_width(&name.backbone.to_string(), width)?;
    let upsampler: UpsamplerKind = upsampler.parse().map_err(|_| {
        let names: Vec<&str> = UpsamplerKind::ALL.iter().map(|k| k.name()).collect();
        NamedError::Setting {
            setting: "upsampler",
            detail: format!("expected one of {}, got `{upsampler}`", names.join(", ")),
        }
    })?;
    Ok(SegmenterSpec {
        name,
        width,
        num_classes: classes.unwrap_or(FCN_CLASSES),
        output_stride,
        upsampler,
    })
}

/// A model's description by name: names starting with `fcn` are segmenters, the rest
/// classifiers (default [`CLASSIFIER_CLASSES`] classes).
pub fn describe_named(
    model: &str,
    width: Option<f64>,
    resolution: usize,
    classes: Option<usize>,
    upsampler: &str,
    output_stride: usize,
) -> Result<ModelInfo, NamedError> {
    if model.starts_with("fcn") {
        let spec = segmenter_spec(model, width, classes, output_stride, upsampler)?;
        return Ok(spec.describe(resolution)?);
    }
    let (arch, width) = arch_and_width(model, width)?;
    let spec = ClassifierSpec {
        arch,
        width,
        num_classes: classes.unwrap_or(CLASSIFIER_CLASSES),
        // The activation changes no layer, parameter or multiply-add.
        activation: Default::default(),
    };
    Ok(spec.describe_at(resolution, output_stride)?)
}
