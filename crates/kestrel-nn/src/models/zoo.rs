//! Model names and the classifiers kestrel can build and train.
//!
//! ResNets have no width multiplier: [`ClassifierSpec::init`] and [`ClassifierSpec::describe`]
//! ignore `width` for them, so a training configuration's width (0.5 by default) has no effect on
//! a ResNet; `kestrel info` rejects an explicit `--width` other than 1 for a ResNet.
//!
//! Only MobileNetV2 has a choice of activation ([`ClassifierSpec::activation`]): MobileNet V1
//! uses ReLU (its paper's Figure 3) and the ResNets ReLU, whatever the spec says; a spec that asks
//! them for anything but the default fails [`ClassifierSpec::describe`]'s check.

use crate::layers::conv_bn_act::{ConvBnAct, HiddenActivation};
use crate::layers::fold::MapConvBnAct;
use crate::models::mobilenet_v1::{MobileNetV1, MobileNetV1Config};
use crate::models::mobilenet_v2::{MobileNetV2, MobileNetV2Config};
use crate::models::resnet::{zero_init_resnet, ResNet, ResNetConfig};
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

/// The most classes [`ClassifierSpec::describe`] accepts: a class count read from a file (a
/// checkpoint, a weights file's classifier) must not build a network of any size it likes. Five
/// times ImageNet-21k's 21,841 classes; a ResNet-50 head of this size has 205 M parameters.
pub const MAX_CLASSES: usize = 100_000;

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

    /// Whether the architecture honours a [`HiddenActivation`] other than the default
    /// (MobileNetV2 only: MobileNet V1 and the ResNets use ReLU throughout).
    pub fn has_activation_choice(self) -> bool {
        self == Arch::MobileNetV2
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
    /// Activation of MobileNetV2's non-linear layers (only the default for other architectures;
    /// see [`Arch::has_activation_choice`]). Specs written before it existed read as ReLU6.
    #[serde(default)]
    pub activation: HiddenActivation,
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
pub(crate) enum ArchConfig {
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

    /// The configuration of the architecture with the backbone dilated to `output_stride`.
    pub(crate) fn config_at(&self, output_stride: usize) -> ArchConfig {
        let n = self.num_classes;
        let os = output_stride;
        match self.arch {
            Arch::MobileNetV1 => {
                ArchConfig::MobileNetV1(MobileNetV1Config::new(n).with_width(self.width))
            }
            Arch::MobileNetV2 => ArchConfig::MobileNetV2(
                MobileNetV2Config::new(n)
                    .with_width(self.width)
                    .with_output_stride(os)
                    .with_activation(self.activation),
            ),
            Arch::ResNet18 => ArchConfig::ResNet(ResNetConfig::resnet18(n).with_output_stride(os)),
            Arch::ResNet34 => ArchConfig::ResNet(ResNetConfig::resnet34(n).with_output_stride(os)),
            Arch::ResNet50 => ArchConfig::ResNet(ResNetConfig::resnet50(n).with_output_stride(os)),
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
}

impl Classifier {
    /// The network with every BatchNorm folded into its convolution: same eval-mode logits,
    /// fewer operations (see [`crate::layers::fold`]).
    pub fn fold_bn(self) -> Classifier {
        MapConvBnAct::fold_bn(self)
    }

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

/// [`zero_init_resnet`] for a ResNet classifier; MobileNets are unchanged (returns 0):
/// torchvision's inverted residuals have no such option.
pub fn zero_init_residual(model: &mut Classifier) -> usize {
    match model {
        Classifier::ResNet(r) => zero_init_resnet(r),
        Classifier::MobileNetV1(_) | Classifier::MobileNetV2(_) => 0,
    }
}

impl MapConvBnAct for Classifier {
    fn map_conv_bn_act(self, f: &mut dyn FnMut(ConvBnAct) -> ConvBnAct) -> Self {
        match self {
            Classifier::MobileNetV1(m) => Classifier::MobileNetV1(m.map_conv_bn_act(f)),
            Classifier::MobileNetV2(m) => Classifier::MobileNetV2(m.map_conv_bn_act(f)),
            Classifier::ResNet(m) => Classifier::ResNet(m.map_conv_bn_act(f)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn classifiers_give_logits() {
        let device = Device::flex();
        for arch in [Arch::MobileNetV1, Arch::ResNet18] {
            let spec = ClassifierSpec {
                arch,
                width: 0.25,
                num_classes: 3,
                activation: Default::default(),
            };
            let x = Tensor::<4>::zeros([2, 3, 32, 32], &device);
            let model = spec.init(&device);
            assert_eq!(model.num_classes(), 3);
            assert_eq!(model.forward(x).dims(), [2, 3]);
        }
    }
}
