//! Model names and the classifiers kestrel can build and train.
//!
//! ResNets have no width multiplier: [`ClassifierSpec::init`] and [`ClassifierSpec::describe`]
//! ignore `width` for them, so a training configuration's width (0.5 by default) has no effect on
//! a ResNet; `kestrel info` rejects an explicit `--width` other than 1 for a ResNet.

use crate::info::{describe, InfoError, ModelInfo};
use crate::models::mobilenet_v1::{MobileNetV1, MobileNetV1Config};
use crate::models::mobilenet_v2::{MobileNetV2, MobileNetV2Config};
use crate::models::resnet::{ResNet, ResNetConfig};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A classifier architecture, by its command-line name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arch {
    /// `mobilenet-v1`.
    #[serde(rename = "mobilenet-v1")]
    MobileNetV1,
    /// `mobilenet-v2`.
    #[serde(rename = "mobilenet-v2")]
    MobileNetV2,
    /// `resnet18`.
    #[serde(rename = "resnet18")]
    ResNet18,
    /// `resnet34`.
    #[serde(rename = "resnet34")]
    ResNet34,
    /// `resnet50`.
    #[serde(rename = "resnet50")]
    ResNet50,
}

/// Every architecture name `--model` accepts.
pub const ARCH_NAMES: [&str; 5] = [
    "mobilenet-v1",
    "mobilenet-v2",
    "resnet18",
    "resnet34",
    "resnet50",
];

/// The largest width multiplier [`ClassifierSpec::describe`] accepts (as the training
/// configuration).
pub const MAX_WIDTH: f64 = 4.0;

/// An unknown `--model` name.
#[derive(Debug, thiserror::Error)]
#[error("unknown model `{0}`; expected one of: {names}", names = ARCH_NAMES.join(", "))]
pub struct UnknownArch(pub String);

impl FromStr for Arch {
    type Err = UnknownArch;
    fn from_str(s: &str) -> Result<Self, UnknownArch> {
        match s {
            "mobilenet-v1" | "mobilenet_v1" => Ok(Arch::MobileNetV1),
            "mobilenet-v2" | "mobilenet_v2" => Ok(Arch::MobileNetV2),
            "resnet18" => Ok(Arch::ResNet18),
            "resnet34" => Ok(Arch::ResNet34),
            "resnet50" => Ok(Arch::ResNet50),
            other => Err(UnknownArch(other.to_string())),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::MobileNetV1 => "mobilenet-v1",
            Arch::MobileNetV2 => "mobilenet-v2",
            Arch::ResNet18 => "resnet18",
            Arch::ResNet34 => "resnet34",
            Arch::ResNet50 => "resnet50",
        })
    }
}

impl Arch {
    /// Whether the architecture has a width multiplier α (the MobileNets; not the ResNets).
    pub fn has_width(self) -> bool {
        matches!(self, Arch::MobileNetV1 | Arch::MobileNetV2)
    }
}

/// What it takes to build a classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifierSpec {
    /// The architecture.
    pub arch: Arch,
    /// Width multiplier α (ignored by ResNets).
    pub width: f64,
    /// Number of classes.
    pub num_classes: usize,
}

/// Any kestrel classifier: images (N, 3, H, W) to logits (N, classes).
// Variants differ in size by a few hundred bytes of module metadata; Burn's `Module` derive does
// not support boxed fields, and a classifier is built once.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Classifier {
    /// MobileNet V1.
    MobileNetV1(MobileNetV1),
    /// MobileNetV2.
    MobileNetV2(MobileNetV2),
    /// ResNet-18, -34 or -50.
    ResNet(ResNet),
}

/// The configuration an [`Arch`] builds from, for one spec.
enum ArchConfig {
    MobileNetV1(MobileNetV1Config),
    MobileNetV2(MobileNetV2Config),
    ResNet(ResNetConfig),
}

/// The output strides a dilated backbone supports.
pub const OUTPUT_STRIDES: [usize; 3] = [8, 16, 32];

impl ClassifierSpec {
    fn config(&self) -> ArchConfig {
        self.config_at(32)
    }

    fn config_at(&self, output_stride: usize) -> ArchConfig {
        let n = self.num_classes;
        let os = output_stride;
        match self.arch {
            Arch::MobileNetV1 => {
                ArchConfig::MobileNetV1(MobileNetV1Config::new(n).with_width(self.width))
            }
            Arch::MobileNetV2 => ArchConfig::MobileNetV2(
                MobileNetV2Config::new(n)
                    .with_width(self.width)
                    .with_output_stride(os),
            ),
            Arch::ResNet18 => ArchConfig::ResNet(ResNetConfig::resnet18(n).with_output_stride(os)),
            Arch::ResNet34 => ArchConfig::ResNet(ResNetConfig::resnet34(n).with_output_stride(os)),
            Arch::ResNet50 => ArchConfig::ResNet(ResNetConfig::resnet50(n).with_output_stride(os)),
        }
    }

    /// [`ClassifierSpec::describe`] of the dilated backbone with output stride 8, 16 or 32
    /// (MobileNetV2 and the ResNets; MobileNet V1 only at 32).
    pub fn describe_at(
        &self,
        resolution: usize,
        output_stride: usize,
    ) -> Result<ModelInfo, InfoError> {
        let supported = if self.arch == Arch::MobileNetV1 {
            &OUTPUT_STRIDES[2..]
        } else {
            &OUTPUT_STRIDES[..]
        };
        if !supported.contains(&output_stride) {
            let list: Vec<String> = supported.iter().map(|s| s.to_string()).collect();
            return Err(InfoError::BadValue {
                field: "output-stride".into(),
                expected: format!("one of {} for {}", list.join(", "), self.arch),
                got: output_stride.to_string(),
            });
        }
        self.check()?;
        let name = self.arch.to_string();
        match self.config_at(output_stride) {
            ArchConfig::MobileNetV1(c) => describe(&name, &c, resolution),
            ArchConfig::MobileNetV2(c) => describe(&name, &c, resolution),
            ArchConfig::ResNet(c) => describe(&name, &c, resolution),
        }
    }

    /// Builds the network, freshly initialised, on `device`.
    pub fn init(&self, device: &Device) -> Classifier {
        match self.config() {
            ArchConfig::MobileNetV1(c) => Classifier::MobileNetV1(c.init(device)),
            ArchConfig::MobileNetV2(c) => Classifier::MobileNetV2(c.init(device)),
            ArchConfig::ResNet(c) => Classifier::ResNet(c.init(device)),
        }
    }

    /// The network's layers, parameters and multiply-adds on `resolution` × `resolution` RGB
    /// inputs, without building it (see [`crate::info`]). Errors name the bad setting: a width
    /// outside (0, [`MAX_WIDTH`]] (MobileNets), zero classes, an input too small for some layer,
    /// or counts beyond 64 bits.
    pub fn describe(&self, resolution: usize) -> Result<ModelInfo, InfoError> {
        self.describe_at(resolution, 32)
    }

    /// Checks the width and the class count.
    fn check(&self) -> Result<(), InfoError> {
        let bad = |field: &str, expected: &str, got: String| InfoError::BadValue {
            field: field.into(),
            expected: expected.into(),
            got,
        };
        if self.arch.has_width() && !(self.width > 0.0 && self.width <= MAX_WIDTH) {
            return Err(bad(
                "width",
                &format!("a multiplier in (0, {MAX_WIDTH}]"),
                self.width.to_string(),
            ));
        }
        if self.num_classes == 0 {
            return Err(bad("classes", "at least 1", "0".into()));
        }
        Ok(())
    }
}

impl Classifier {
    /// The number of classes (outputs of the last linear layer; Burn stores its weight as
    /// (in, out)).
    pub fn num_classes(&self) -> usize {
        let fc = match self {
            Classifier::MobileNetV1(m) => &m.classifier,
            Classifier::MobileNetV2(m) => &m.classifier,
            Classifier::ResNet(m) => &m.fc,
        };
        fc.weight.dims()[1]
    }

    /// Class logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Classifier::MobileNetV1(m) => m.forward(x),
            Classifier::MobileNetV2(m) => m.forward(x),
            Classifier::ResNet(m) => m.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::params::{for_each_tensor, is_buffer, trainable_params};

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        for name in ARCH_NAMES {
            assert_eq!(name.parse::<Arch>().unwrap().to_string(), name);
        }
        let e = "vgg16".parse::<Arch>().unwrap_err().to_string();
        assert!(e.contains("vgg16") && e.contains("mobilenet-v2"), "{e}");
        for name in ["mobilenet-v1", "resnet18", "resnet34", "resnet50"] {
            assert!(e.contains(name), "{e}");
        }
    }

    /// Trainable tensors of a built classifier: (module path inside the network, elements).
    fn tensors(model: &Classifier) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut collect = |path: &str, shape: &[usize]| {
            if !is_buffer(path) {
                out.push((path.to_string(), shape.iter().product()));
            }
        };
        match model {
            Classifier::MobileNetV1(m) => for_each_tensor(m, &mut collect),
            Classifier::MobileNetV2(m) => for_each_tensor(m, &mut collect),
            Classifier::ResNet(m) => for_each_tensor(m, &mut collect),
        }
        out
    }

    /// The description's rows account for every trainable tensor of the real Burn model, row by
    /// row (a row's parameters are the tensors under its module path), and the totals agree with
    /// `trainable_params`.
    #[test]
    fn descriptions_match_the_built_models_tensor_by_tensor() {
        let device = Device::flex();
        for name in ARCH_NAMES {
            let arch: Arch = name.parse().unwrap();
            let widths: &[f64] = if arch.has_width() {
                &[1.0, 0.35]
            } else {
                &[1.0]
            };
            for &width in widths {
                let spec = ClassifierSpec {
                    arch,
                    width,
                    num_classes: 10,
                };
                let model = spec.init(&device);
                let info = spec.describe(64).unwrap();
                assert_eq!(info.model, name);
                assert_eq!(
                    info.params,
                    trainable_params(&model) as u64,
                    "{name} α={width}"
                );
                let tensors = tensors(&model);
                let mut covered = 0;
                for row in &info.layers {
                    let prefix = format!("{}.", row.name);
                    let n: usize = tensors
                        .iter()
                        .filter(|(p, _)| p.starts_with(&prefix))
                        .map(|(_, n)| n)
                        .sum();
                    assert_eq!(row.params, n as u64, "{name} α={width} row {}", row.name);
                    covered += tensors
                        .iter()
                        .filter(|(p, _)| p.starts_with(&prefix))
                        .count();
                }
                assert_eq!(covered, tensors.len(), "{name}: tensors outside every row");
                // Totals are the sums of the rows.
                assert_eq!(info.macs, info.layers.iter().map(|l| l.macs).sum::<u64>());
            }
        }
    }

    #[test]
    fn classifiers_give_logits() {
        let device = Device::flex();
        for arch in [Arch::MobileNetV1, Arch::ResNet18] {
            let spec = ClassifierSpec {
                arch,
                width: 0.25,
                num_classes: 3,
            };
            let x = Tensor::<4>::zeros([2, 3, 32, 32], &device);
            let model = spec.init(&device);
            assert_eq!(model.num_classes(), 3);
            assert_eq!(model.forward(x).dims(), [2, 3]);
        }
    }

    #[test]
    fn bad_settings_are_errors_not_panics() {
        let spec = |arch, width, num_classes| ClassifierSpec {
            arch,
            width,
            num_classes,
        };
        for (s, field) in [
            (spec(Arch::MobileNetV1, 0.0, 10), "width"),
            (spec(Arch::MobileNetV2, f64::NAN, 10), "width"),
            (spec(Arch::MobileNetV1, -1.0, 10), "width"),
            (spec(Arch::MobileNetV1, 4.5, 10), "width"),
            (spec(Arch::ResNet18, 1.0, 0), "classes"),
        ] {
            let e = s.describe(224).unwrap_err();
            assert!(
                matches!(&e, InfoError::BadValue { field: f, .. } if f == field),
                "{e}"
            );
        }
        for name in ARCH_NAMES {
            let s = spec(name.parse().unwrap(), 1.0, 10);
            let e = s.describe(0).unwrap_err();
            assert!(matches!(e, InfoError::TooSmall { .. }), "{name}: {e}");
            // Padding lets even a 1-pixel input through every layer, as in PyTorch.
            assert_eq!(
                s.describe(1).unwrap().layers.last().unwrap().out,
                [10, 1, 1]
            );
            // Absurd sizes overflow cleanly or succeed, never panic.
            let _ = s.describe(usize::MAX);
            let _ = spec(s.arch, MAX_WIDTH, usize::MAX).describe(usize::MAX / 2);
        }
        // ResNets ignore the width.
        assert_eq!(
            spec(Arch::ResNet18, 0.5, 10).describe(64),
            spec(Arch::ResNet18, 1.0, 10).describe(64)
        );
    }
}
