//! The named choices of a configuration: the task, the optimiser of old configurations,
//! `--balance` and `--augment`, as TOML values and flag values.

use crate::error::{Result, TrainError};
use serde::{Deserialize, Deserializer, Serialize};
use std::str::FromStr;

/// What the model learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Image classification.
    Classify,
    /// Semantic segmentation (per-pixel classes) with an FCN.
    Segment,
    /// Both at once: one backbone, a classification head and an FCN head.
    Multitask,
}

impl Task {
    /// The CLI name: `classify`, `segment` or `multitask`.
    pub fn name(self) -> &'static str {
        match self {
            Task::Classify => "classify",
            Task::Segment => "segment",
            Task::Multitask => "multitask",
        }
    }

    /// The validation metrics this task reports every epoch (the names `val_metric` may take);
    /// the first is the default that chooses the `best` checkpoint.
    pub fn val_metrics(self) -> &'static [&'static str] {
        match self {
            Task::Classify => &["accuracy", "macro_f1"],
            Task::Segment => &["miou", "pixel_accuracy"],
            Task::Multitask => &[
                "accuracy_miou_mean",
                "accuracy",
                "macro_f1",
                "miou",
                "pixel_accuracy",
            ],
        }
    }
}

/// The optimiser of configurations written before `[optim] kind` (which, when set, overrides it:
/// see [`TrainConfig::optimizer_kind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// AdamW (decoupled weight decay).
    AdamW,
    /// SGD with momentum 0.9 and coupled weight decay.
    Sgd,
}

/// `--balance`: how training counters class imbalance. Validation and test are never re-sampled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Balance {
    /// Train on the data as it is.
    #[default]
    None,
    /// Class-weighted cross-entropy, inverse-frequency weights `n / (K · n_c)` of the training
    /// split (PyTorch's weighted mean `Σ w_y · loss / Σ w_y`).
    Weights,
    /// Every epoch, re-draw (seeded) each smaller class with replacement up to the largest one.
    Oversample,
    /// Every epoch, draw (seeded) from each larger class as many items as the smallest one has.
    Undersample,
    /// Once, before training: SMOTE on the flattened, normalised training images (pixels), adding
    /// interpolated images of each smaller class up to the largest one (k = 5 neighbours, fewer
    /// for a class of 5 or fewer). Needs `augment` none or flips.
    Smote,
}

/// `--augment`: random transformations of the training images (never of validation or test).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Augment {
    /// The data's own default, resolved before training ([`Augment::for_data`]): `dihedral` for
    /// `shapes`, whose classes do not depend on orientation, `hflip` for real images (a shoe turned
    /// on its side is not a shoe; torchvision's reference recipes flip horizontally only).
    #[default]
    Auto,
    /// None.
    None,
    /// A random element of the dihedral group of the square (flips and quarter turns) per image,
    /// applied to images decoded once before training. Read from `flips`, its former name.
    Dihedral,
    /// A random horizontal flip (probability ½) per image, applied to images decoded once before
    /// training.
    Hflip,
    /// Decoded again every epoch on loader threads, then a random resized crop (60–100 % of the
    /// area), a horizontal flip, a rotation of up to ±15° and colour jitter (±20 %), each drawn
    /// from the sample's own seed; see `kestrel_data::standard_augment`.
    Standard,
}

impl Augment {
    /// [`Augment::Auto`] resolved for the data `spec`; any other value as it is.
    pub fn for_data(self, spec: &kestrel_data::DataSpec) -> Self {
        match (self, spec) {
            (Augment::Auto, kestrel_data::DataSpec::Shapes(_)) => Augment::Dihedral,
            (Augment::Auto, _) => Augment::Hflip,
            (other, _) => other,
        }
    }

    /// How many elements of the dihedral group of the square (numbered as
    /// `push_dihedral` reads them: bit 0 a horizontal flip, bit 1 a vertical one, bit 2 a
    /// transpose) a preloaded image is drawn from: the first 8 (`dihedral`) or the first 2
    /// (`hflip`: identity or horizontal flip); `None` when preloaded images are not transformed.
    pub fn ops(self) -> Option<usize> {
        match self {
            Augment::Dihedral => Some(8),
            Augment::Hflip => Some(2),
            Augment::Auto | Augment::None | Augment::Standard => None,
        }
    }
}

/// A flag value that is not one of the names of its enum.
fn unknown(flag: &str, got: &str, names: &[&str]) -> TrainError {
    TrainError::BadInput(format!(
        "bad value for `{flag}`: expected one of {}, got `{got}`",
        names.join(", ")
    ))
}

impl FromStr for Balance {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "none" => Balance::None,
            "weights" => Balance::Weights,
            "oversample" => Balance::Oversample,
            "undersample" => Balance::Undersample,
            "smote" => Balance::Smote,
            other => {
                return Err(unknown(
                    "balance",
                    other,
                    &["none", "weights", "oversample", "undersample", "smote"],
                ))
            }
        })
    }
}

impl FromStr for Augment {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => Augment::Auto,
            "none" => Augment::None,
            "dihedral" | "flips" => Augment::Dihedral,
            "hflip" => Augment::Hflip,
            "standard" => Augment::Standard,
            other => {
                return Err(unknown(
                    "augment",
                    other,
                    &["auto", "none", "dihedral (or flips)", "hflip", "standard"],
                ))
            }
        })
    }
}

impl<'de> Deserialize<'de> for Augment {
    /// A name, or a boolean as configurations before `--augment` had names wrote it
    /// (`true` = dihedral, `false` = none).
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(Augment::Dihedral),
            Raw::Bool(false) => Ok(Augment::None),
            Raw::Name(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}
