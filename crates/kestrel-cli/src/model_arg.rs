//! The `MODEL` / `--arch` and `--width` arguments shared by `info`, `bench`, `predict` and
//! `export`.

use crate::exit::CliError;
use kestrel_nn::models::fcn::{SegmenterName, SegmenterSpec, UnknownSegmenter};
use kestrel_nn::models::zoo::{Arch, ARCH_NAMES};
use kestrel_nn::upsample::UpsamplerKind;

/// Parses a classifier name and checks the width multiplier against it: only the MobileNets
/// have one (a ResNet accepts only 1). `flag` names the argument in the message.
pub fn arch_and_width(name: &str, width: Option<f64>, flag: &str) -> Result<(Arch, f64), CliError> {
    let arch: Arch = name.parse().map_err(|_| {
        CliError::BadInput(format!(
            "unknown model `{name}`{flag}; expected one of: {}",
            ARCH_NAMES.join(", ")
        ))
    })?;
    match width {
        Some(w) if !arch.has_width() && w != 1.0 => Err(CliError::BadInput(format!(
            "bad value for `--width`: {arch} has no width multiplier (expected 1, got {w})"
        ))),
        Some(w) => Ok((arch, w)),
        None => Ok((arch, 1.0)),
    }
}

/// Classes of an FCN model when `--classes` is not given: PASCAL VOC's 20 and background.
pub const FCN_CLASSES: usize = 21;

/// The segmentation model `name` (`fcn8s-mobilenet-v2`, …) with the `--width`, `--classes`,
/// `--output-stride` and `--upsampler` arguments, as `info` and `bench` take them; bad values name
/// the flag. The settings themselves are checked where the model is described or built.
pub fn segmenter_spec(
    name: &str,
    width: Option<f64>,
    classes: Option<usize>,
    output_stride: usize,
    upsampler: &str,
) -> Result<SegmenterSpec, CliError> {
    let name: SegmenterName = name
        .parse()
        .map_err(|e: UnknownSegmenter| CliError::BadInput(e.to_string()))?;
    let (_, width) = arch_and_width(&name.backbone.to_string(), width, "")?;
    let upsampler: UpsamplerKind = upsampler.parse().map_err(|_| {
        let names: Vec<&str> = UpsamplerKind::ALL.iter().map(|k| k.name()).collect();
        CliError::BadInput(format!(
            "bad value for `--upsampler`: expected one of {}, got `{upsampler}`",
            names.join(", ")
        ))
    })?;
    Ok(SegmenterSpec {
        name,
        width,
        num_classes: classes.unwrap_or(FCN_CLASSES),
        output_stride,
        upsampler,
    })
}
