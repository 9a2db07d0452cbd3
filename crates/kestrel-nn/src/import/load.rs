//! Building a kestrel classifier from a torchvision weights file.

use super::apply::apply_state_dict;
use super::error::ImportError;
use super::read::read_state_dict;
use crate::layers::conv_bn_act::HiddenActivation;
use crate::models::zoo::{Arch, Classifier, ClassifierSpec};
use burn::tensor::Device;
use std::path::Path;

/// The state-dict key of the classifier weight, whose first dimension is the class count.
fn classifier_key(arch: Arch) -> Option<&'static str> {
    match arch {
        Arch::MobileNetV2 => Some("classifier.1.weight"),
        Arch::ResNet18 | Arch::ResNet34 | Arch::ResNet50 => Some("fc.weight"),
        Arch::MobileNetV1 => None,
    }
}

/// Loads torchvision weights (zip or legacy `.pth`, or `.safetensors`) for `arch` at width 1,
/// with as many classes as the file's classifier weight has rows. Errors name the file and say
/// what does not fit (see [`ImportError`]).
pub fn load_classifier(
    arch: Arch,
    path: &Path,
    device: &Device,
) -> Result<Classifier, ImportError> {
    load_classifier_at(arch, 1.0, path, device)
}

/// [`load_classifier`] for a MobileNetV2 of width multiplier `width` (torchvision's
/// `width_mult`; ResNets ignore it).
pub fn load_classifier_at(
    arch: Arch,
    width: f64,
    path: &Path,
    device: &Device,
) -> Result<Classifier, ImportError> {
    let key = classifier_key(arch).ok_or_else(|| ImportError::UnsupportedArch {
        arch: arch.to_string(),
        detail: "torchvision has no MobileNet V1; import weights for mobilenet-v2 or a resnet"
            .into(),
    })?;
    let sd = read_state_dict(path)?;
    let num_classes = sd
        .get(key)
        .filter(|t| t.shape.len() == 2 && t.shape[0] > 0)
        .map_or(1000, |t| t.shape[0]);
    let spec = ClassifierSpec {
        arch,
        width,
        num_classes,
        // torchvision's MobileNetV2 is ReLU6.
        activation: HiddenActivation::Relu6,
    };
    // Checks the width (a bad one would panic while building) and the class count the file
    // asks for (a huge one would exhaust memory), before anything is built.
    spec.describe(32)
        .map_err(|e| ImportError::UnsupportedArch {
            arch: format!("{}: {arch}", path.display()),
            detail: format!("{e} (the class count is the rows of `{key}`)"),
        })?;
    let model = spec.init(device);
    apply_state_dict(model, &sd).map_err(|e| match e {
        ImportError::Mismatch { mismatch, .. } => ImportError::Mismatch {
            path: Some(path.to_path_buf()),
            mismatch,
        },
        e => e,
    })
}
