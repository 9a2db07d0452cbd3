//! Model names and the classifiers kestrel can build and train.

use crate::mobilenet_v2::{MobileNetV2, MobileNetV2Config};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A classifier architecture, by its command-line name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arch {
    /// `mobilenet-v2`.
    #[serde(rename = "mobilenet-v2")]
    MobileNetV2,
}

/// Every architecture name `--model` accepts.
pub const ARCH_NAMES: [&str; 1] = ["mobilenet-v2"];

/// An unknown `--model` name.
#[derive(Debug, thiserror::Error)]
#[error("unknown model `{0}`; expected one of: {names}", names = ARCH_NAMES.join(", "))]
pub struct UnknownArch(pub String);

impl FromStr for Arch {
    type Err = UnknownArch;
    fn from_str(s: &str) -> Result<Self, UnknownArch> {
        match s {
            "mobilenet-v2" | "mobilenet_v2" => Ok(Arch::MobileNetV2),
            other => Err(UnknownArch(other.to_string())),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::MobileNetV2 => "mobilenet-v2",
        })
    }
}

/// What it takes to build a classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifierSpec {
    /// The architecture.
    pub arch: Arch,
    /// Width multiplier α.
    pub width: f64,
    /// Number of classes.
    pub num_classes: usize,
}

/// Any kestrel classifier: images (N, 3, H, W) to logits (N, classes).
#[derive(Module, Debug)]
pub enum Classifier {
    /// MobileNetV2.
    MobileNetV2(MobileNetV2),
}

impl ClassifierSpec {
    /// Builds the network, freshly initialised, on `device`.
    pub fn init(&self, device: &Device) -> Classifier {
        match self.arch {
            Arch::MobileNetV2 => Classifier::MobileNetV2(
                MobileNetV2Config::new(self.num_classes)
                    .with_width(self.width)
                    .init(device),
            ),
        }
    }
}

impl Classifier {
    /// Class logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Classifier::MobileNetV2(m) => m.forward(x),
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
    }
}
