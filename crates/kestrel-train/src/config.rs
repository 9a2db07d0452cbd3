//! The fully resolved configuration of a training run, written to `config.toml`.

use crate::error::{Result, TrainError};
use crate::optim::{OptimKind, OptimSettings, ScheduleKind};
use crate::weighting::WeightingKind;
use kestrel_data::DataSpec;
use kestrel_nn::fcn::{SegmenterName, UnknownSegmenter};
use kestrel_nn::upsample::UpsamplerKind;
use kestrel_nn::Arch;
use serde::{Deserialize, Deserializer, Serialize};
use std::path::Path;
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

/// Default of [`TrainConfig::grad_log_every`]: a gradient-norm sample every 50 optimiser steps.
pub const GRAD_LOG_EVERY: usize = 50;

/// Default of [`TrainConfig::explode_above`]. A healthy run's per-parameter gradient norms sit
/// orders of magnitude lower: cross-entropy bounds the logit gradient per sample by √2, and
/// BatchNorm keeps the activations that multiply it near unit scale, so norms of 10⁻³–10² are
/// the rule (tiny MobileNetV2 classification and FCN runs here, sampled every step, peak near
/// 10²). A divergence grows the norms geometrically, so 10⁴ catches it within a step or two of
/// 10³ while leaving a factor 100 for large, legitimate gradients (wider layers, weighted
/// losses). An absurd learning rate on a BatchNorm network may instead inflate the weights,
/// which BatchNorm's scale invariance answers with smaller gradients: the loss then grows while
/// no norm explodes.
pub const EXPLODE_ABOVE: f64 = 1e4;

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
    /// None.
    None,
    /// A random element of the dihedral group of the square (flips and quarter turns) per image,
    /// applied to images decoded once before training.
    #[default]
    Flips,
    /// Decoded again every epoch on loader threads, then a random resized crop (60–100 % of the
    /// area), a horizontal flip, a rotation of up to ±15° and colour jitter (±20 %), each drawn
    /// from the sample's own seed; see `kestrel_data::standard_augment`.
    Standard,
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
            "none" => Augment::None,
            "flips" => Augment::Flips,
            "standard" => Augment::Standard,
            other => return Err(unknown("augment", other, &["none", "flips", "standard"])),
        })
    }
}

impl<'de> Deserialize<'de> for Augment {
    /// A name, or a boolean as configurations before `--augment` had names wrote it
    /// (`true` = flips, `false` = none).
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(Augment::Flips),
            Raw::Bool(false) => Ok(Augment::None),
            Raw::Name(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Default input side of `--task segment`.
pub const SEGMENT_RESOLUTION: usize = 64;
/// Default epochs of `--task segment`.
pub const SEGMENT_EPOCHS: usize = 12;

/// Every setting of a run. Defaults are the `kestrel train` defaults: a MobileNetV2 (α = 0.5) on
/// 48 px `shapes`, AdamW with a warm-up and cosine schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// `--data`: the data specification.
    pub data: String,
    /// `--task`.
    pub task: Task,
    /// `--model`.
    pub model: String,
    /// `--width`: width multiplier α.
    pub width: f64,
    /// `--resolution`: square input side in pixels.
    pub resolution: usize,
    /// `--epochs`.
    pub epochs: usize,
    /// `--batch-size`.
    pub batch_size: usize,
    /// `--lr`: peak learning rate.
    pub lr: f64,
    /// Weight decay (decoupled for AdamW).
    pub weight_decay: f64,
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Linear warm-up length, in epochs (fractional allowed).
    pub warmup_epochs: f64,
    /// `--augment`: training-image augmentation (the default, flips, keeps shape classes).
    pub augment: Augment,
    /// `--balance`: how to counter class imbalance in training.
    pub balance: Balance,
    /// `--interleave K`: reorder each epoch so that equal labels stand at least K positions
    /// apart (0 or 1: off).
    pub interleave: usize,
    /// `--skip-bad`: leave out unreadable items (reported) instead of failing on the first.
    pub skip_bad: bool,
    /// `--seed`: seeds the split, the initialisation, shuffling and dropout.
    pub seed: u64,
    /// A manifest from `kestrel split` that fixes train/val/test membership; when absent, the
    /// fractions below split the data per class with `seed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_manifest: Option<std::path::PathBuf>,
    /// Fraction of each class held out for validation.
    pub val_fraction: f64,
    /// Fraction of each class held out for the test split (read only by `kestrel eval`).
    pub test_fraction: f64,
    /// `--upsampler`: the upsampling layers of a segmentation model (ignored by classifiers).
    pub upsampler: UpsamplerKind,
    /// `--output-stride`: of a segmentation model's backbone, 32 (the FCN paper's), or 16 / 8
    /// with the later strides turned into dilation (DeepLab's dilated backbones).
    pub output_stride: usize,
    /// `--grad-log-every N`: per-parameter gradient norms go to `grad_norms.jsonl` (and are
    /// checked for vanishing, exploding and non-finite values) on optimiser step 0 and every N
    /// steps after; 0 turns the sampling off.
    pub grad_log_every: usize,
    /// A sampled per-parameter gradient norm above this stops the run as exploding (exit 1),
    /// unless `clip_grad_norm` is set (clipping then bounds the step); see [`EXPLODE_ABOVE`].
    pub explode_above: f64,
    /// `--clip-grad-norm X`: before every optimiser step, scale the gradients down so that their
    /// global L2 norm is at most X (`torch.nn.utils.clip_grad_norm_`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f64>,
    /// `--patience N`: stop after N epochs in a row without a new best `val_metric`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// `--val-metric NAME`: the validation metric that chooses the `best` checkpoint and drives
    /// early stopping (higher is better); one of [`Task::val_metrics`], by default the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_metric: Option<String>,
    /// `--schedule`: the learning-rate shape after warm-up (cosine, step, constant).
    pub schedule: ScheduleKind,
    /// Step schedule: epochs between decays (torchvision's recipe: 30).
    pub step_size: usize,
    /// Step schedule: the decay factor (torchvision's recipe: 0.1).
    pub gamma: f64,
    /// `--l1`: λ of the L1 penalty λ·Σ|w| added to the loss (over the weight-decay scope).
    pub l1: f64,
    /// Apply weight decay (and L1) to BatchNorm γ/β and biases too (default: weights only).
    pub decay_norm_and_bias: bool,
    /// Zero-initialise the last BatchNorm γ of every residual block (ResNets; torchvision's
    /// `zero_init_residual`).
    pub zero_init_residual: bool,
    /// The `[optim]` table: algorithm, momentum, Adam's betas and ε, parameter groups.
    pub optim: OptimSettings,
    /// `--weighting`: how a multitask run weights its task losses.
    pub weighting: WeightingKind,
    /// `--task-weights`: fixed weights of the (classify, segment) losses of a multitask run.
    pub task_weights: Vec<f64>,
    /// `--cascade`: the multitask classifier also reads the predicted class-area shares.
    pub cascade: bool,
    /// GradNorm's asymmetry α (`weighting = "gradnorm"`).
    pub gradnorm_alpha: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            data: "shapes".into(),
            task: Task::Classify,
            model: "mobilenet-v2".into(),
            width: 0.5,
            resolution: 48,
            epochs: 16,
            batch_size: 32,
            lr: 5e-3,
            weight_decay: 1e-4,
            optimizer: OptimizerKind::AdamW,
            warmup_epochs: 0.5,
            augment: Augment::Flips,
            balance: Balance::None,
            interleave: 0,
            skip_bad: false,
            seed: 0,
            split_manifest: None,
            val_fraction: 0.15,
            test_fraction: 0.15,
            upsampler: UpsamplerKind::Bilinear,
            output_stride: 32,
            grad_log_every: GRAD_LOG_EVERY,
            explode_above: EXPLODE_ABOVE,
            clip_grad_norm: None,
            patience: None,
            val_metric: None,
            schedule: ScheduleKind::Cosine,
            step_size: 30,
            gamma: 0.1,
            l1: 0.0,
            decay_norm_and_bias: false,
            zero_init_residual: false,
            optim: OptimSettings::default(),
            weighting: WeightingKind::Fixed,
            task_weights: vec![1.0, 1.0],
            cascade: false,
            gradnorm_alpha: crate::weighting::GRADNORM_ALPHA,
        }
    }
}

impl TrainConfig {
    /// Reads a TOML file; unknown keys are errors that name the key.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            TrainError::BadInput(format!("cannot read config {}: {e}", path.display()))
        })?;
        toml::from_str(&text)
            .map_err(|e| TrainError::BadInput(format!("bad config {}: {e}", path.display())))
    }

    /// The `kestrel train --task segment` defaults: FCN-8s on a MobileNetV2 (α = 0.5) with
    /// bilinear upsampling, on 64 px `shapes`.
    pub fn segment_default() -> Self {
        Self {
            task: Task::Segment,
            model: "fcn8s-mobilenet-v2".into(),
            resolution: SEGMENT_RESOLUTION,
            epochs: SEGMENT_EPOCHS,
            batch_size: 16,
            lr: 5e-3,
            ..Self::default()
        }
    }

    /// The `kestrel train --task multitask` defaults: the `segment` defaults (FCN-8s on a
    /// MobileNetV2, α = 0.5, 64 px) with a classification head, fixed weights 1 and 1.
    pub fn multitask_default() -> Self {
        Self {
            task: Task::Multitask,
            ..Self::segment_default()
        }
    }

    /// The segmentation model name of a `segment` or `multitask` run.
    pub fn segmenter_name(&self) -> Result<SegmenterName> {
        self.model
            .parse()
            .map_err(|e: UnknownSegmenter| TrainError::BadInput(e.to_string()))
    }

    /// The validation metric that chooses the `best` checkpoint: `val_metric`, or the task's
    /// default.
    pub fn val_metric_name(&self) -> &str {
        self.val_metric
            .as_deref()
            .unwrap_or(self.task.val_metrics()[0])
    }

    /// The optimisation algorithm: `[optim] kind` when set, else the top-level `optimizer`.
    pub fn optimizer_kind(&self) -> OptimKind {
        self.optim.kind.unwrap_or(match self.optimizer {
            OptimizerKind::AdamW => OptimKind::AdamW,
            OptimizerKind::Sgd => OptimKind::Sgd,
        })
    }

    /// Sets the algorithm (`--optimizer`): `[optim] kind`, and the closest legacy `optimizer`.
    pub fn set_optimizer_kind(&mut self, kind: OptimKind) {
        self.optim.kind = Some(kind);
        self.optimizer = if kind.is_sgd() {
            OptimizerKind::Sgd
        } else {
            OptimizerKind::AdamW
        };
    }

    /// The TOML text of this configuration.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a TrainConfig always serialises")
    }

    /// The train/val/test split of `ds`: the manifest's when one is set, else a stratified split
    /// (honouring a source's own test set).
    pub fn split(&self, ds: &dyn kestrel_data::Dataset) -> Result<kestrel_data::Split> {
        Ok(match &self.split_manifest {
            Some(path) => kestrel_data::manifest::Manifest::load_split(path, ds)?,
            None => kestrel_data::split::split_dataset(
                ds,
                self.val_fraction,
                self.test_fraction,
                self.seed,
            )?,
        })
    }

    /// Opens the data `spec` names, leaving out unreadable items when `skip_bad` is set and then
    /// (with `report`) listing the first few on stderr with their count.
    pub fn open_data(
        &self,
        spec: &DataSpec,
        report: bool,
    ) -> Result<Box<dyn kestrel_data::Dataset>> {
        let opened = kestrel_data::open_with(
            spec,
            kestrel_data::OpenOptions {
                skip_bad: self.skip_bad,
            },
        )?;
        if self.skip_bad && report {
            const SHOWN: usize = 5;
            for s in opened.skipped.iter().take(SHOWN) {
                eprintln!("skipped {}: {}", s.key, s.reason);
            }
            if opened.skipped.len() > SHOWN {
                eprintln!("... and {} more", opened.skipped.len() - SHOWN);
            }
            eprintln!(
                "--skip-bad: skipped {} unreadable item(s) of {}",
                opened.skipped.len(),
                opened.skipped.len() + opened.dataset.len()
            );
        }
        Ok(opened.dataset)
    }

    /// [`TrainConfig::split`] for training: bad input unless it gives at least one batch to
    /// train on and one image to validate on.
    pub fn training_split(&self, ds: &dyn kestrel_data::Dataset) -> Result<kestrel_data::Split> {
        let split = self.split(ds)?;
        if split.train.len() < self.batch_size || split.val.is_empty() {
            return Err(TrainError::BadInput(format!(
                "data `{}` gives {} training and {} validation images; expected at least one batch ({}) to train on and one image to validate on",
                self.data,
                split.train.len(),
                split.val.len(),
                self.batch_size
            )));
        }
        Ok(split)
    }

    /// Checks every value; the message names the field and what was expected.
    pub fn validate(&self) -> Result<(DataSpec, Arch)> {
        let bad = |field: &str, want: &str, got: String| {
            Err(TrainError::BadInput(format!(
                "bad value for `{field}`: expected {want}, got {got}"
            )))
        };
        let spec: DataSpec = self
            .data
            .parse()
            .map_err(|e: kestrel_data::DataError| TrainError::BadInput(e.to_string()))?;
        let arch: Arch = match self.task {
            Task::Classify => self
                .model
                .parse()
                .map_err(|e: kestrel_nn::zoo::UnknownArch| TrainError::BadInput(e.to_string()))?,
            Task::Segment | Task::Multitask => self.segmenter_name()?.backbone,
        };
        if self.task == Task::Multitask {
            if self.balance != Balance::None {
                return bad(
                    "balance",
                    "none with `task = multitask`",
                    format!("{:?}", self.balance).to_lowercase(),
                );
            }
            crate::weighting::LossWeighting::new(
                self.weighting,
                2,
                &self.task_weights,
                self.gradnorm_alpha,
            )?;
        }
        if !kestrel_nn::zoo::OUTPUT_STRIDES.contains(&self.output_stride) {
            return bad(
                "output_stride",
                "8, 16 or 32",
                self.output_stride.to_string(),
            );
        }
        if self.output_stride != 32 && self.task != Task::Segment {
            return bad(
                "output_stride",
                "32 (dilated backbones are for `task = segment`)",
                self.output_stride.to_string(),
            );
        }
        if matches!(self.task, Task::Segment | Task::Multitask) {
            if !matches!(self.balance, Balance::None | Balance::Weights) {
                return bad(
                    "balance",
                    "none or weights (per-pixel class weights) with `task = segment`",
                    format!("{:?}", self.balance).to_lowercase(),
                );
            }
            if self.augment == Augment::Standard {
                return bad(
                    "augment",
                    "none or flips with `task = segment` or `multitask` (flips move masks alike)",
                    "standard".into(),
                );
            }
        }
        if !(self.width.is_finite() && self.width > 0.0 && self.width <= 4.0) {
            return bad("width", "a multiplier in (0, 4]", self.width.to_string());
        }
        if !(32..=2048).contains(&self.resolution) {
            return bad(
                "resolution",
                "32..=2048 pixels",
                self.resolution.to_string(),
            );
        }
        if self.epochs == 0 {
            return bad("epochs", "at least 1", "0".into());
        }
        if self.batch_size < 2 {
            return bad(
                "batch-size",
                "at least 2 (BatchNorm needs two samples)",
                self.batch_size.to_string(),
            );
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", "a positive number", self.lr.to_string());
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "weight_decay",
                "a non-negative number",
                self.weight_decay.to_string(),
            );
        }
        if !(self.warmup_epochs.is_finite() && self.warmup_epochs >= 0.0) {
            return bad(
                "warmup_epochs",
                "a non-negative number",
                self.warmup_epochs.to_string(),
            );
        }
        if self.step_size == 0 {
            return bad("step_size", "at least 1 epoch", "0".into());
        }
        if !(self.gamma.is_finite() && self.gamma > 0.0 && self.gamma <= 1.0) {
            return bad("gamma", "a decay factor in (0, 1]", self.gamma.to_string());
        }
        if !(self.l1.is_finite() && self.l1 >= 0.0) {
            return bad("l1", "a non-negative number", self.l1.to_string());
        }
        self.optim.validate(self.optimizer_kind())?;
        if self.balance == Balance::Smote && self.augment == Augment::Standard {
            return bad(
                "balance",
                "none, weights, oversample or undersample with `augment = standard` (SMOTE images have no source file to augment; use `augment = flips` with smote)",
                "smote".into(),
            );
        }
        if let Some(c) = self.clip_grad_norm {
            if !(c.is_finite() && c > 0.0) {
                return bad("clip-grad-norm", "a finite number > 0", c.to_string());
            }
        }
        if self.explode_above.is_nan() || self.explode_above <= 0.0 {
            return bad(
                "explode_above",
                "a number > 0 (inf turns the alarm off)",
                self.explode_above.to_string(),
            );
        }
        if self.patience == Some(0) {
            return bad("patience", "at least 1 epoch", "0".into());
        }
        let allowed = self.task.val_metrics();
        if !allowed.contains(&self.val_metric_name()) {
            return bad(
                "val-metric",
                &format!(
                    "one of {} for `task = {}`",
                    allowed.join(", "),
                    self.task.name()
                ),
                format!("`{}`", self.val_metric_name()),
            );
        }
        Ok((spec, arch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trips_and_unknown_keys_are_named() {
        let cfg = TrainConfig::default();
        let back: TrainConfig = toml::from_str(&cfg.to_toml()).unwrap();
        assert_eq!(back, cfg);
        let e = toml::from_str::<TrainConfig>("epochz = 3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("epochz"), "{e}");
        // Missing keys take the defaults.
        let partial: TrainConfig = toml::from_str("epochs = 3").unwrap();
        assert_eq!(partial.epochs, 3);
        assert_eq!(partial.model, "mobilenet-v2");
        // The new keys round-trip, as names.
        let cfg = TrainConfig {
            augment: Augment::Standard,
            balance: Balance::Oversample,
            interleave: 3,
            skip_bad: true,
            ..TrainConfig::default()
        };
        let text = cfg.to_toml();
        assert!(text.contains("augment = \"standard\""), "{text}");
        assert!(text.contains("balance = \"oversample\""), "{text}");
        assert_eq!(toml::from_str::<TrainConfig>(&text).unwrap(), cfg);
    }

    #[test]
    fn augment_reads_names_and_the_old_booleans() {
        let read = |t: &str| toml::from_str::<TrainConfig>(t).map(|c| c.augment);
        assert_eq!(read("augment = true").unwrap(), Augment::Flips);
        assert_eq!(read("augment = false").unwrap(), Augment::None);
        assert_eq!(read("augment = \"standard\"").unwrap(), Augment::Standard);
        let e = read("augment = \"rotate\"").unwrap_err().to_string();
        assert!(e.contains("rotate") && e.contains("flips"), "{e}");
        let e = "smot".parse::<Balance>().unwrap_err().to_string();
        assert!(e.contains("`balance`") && e.contains("oversample"), "{e}");
        let cfg = TrainConfig {
            balance: Balance::Smote,
            augment: Augment::Standard,
            ..TrainConfig::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("balance") && e.contains("smote"), "{e}");
    }

    #[test]
    fn segment_runs_take_fcn_names_and_refuse_image_only_options() {
        let cfg = TrainConfig::segment_default();
        let (_, arch) = cfg.validate().unwrap();
        assert_eq!(arch, Arch::MobileNetV2);
        let back: TrainConfig = toml::from_str(&cfg.to_toml()).unwrap();
        assert_eq!(back, cfg);
        // A classifier name is not a segmentation model, and the reverse.
        let bad = TrainConfig {
            model: "mobilenet-v2".into(),
            ..cfg.clone()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("fcn8s-"), "{e}");
        let bad = TrainConfig {
            model: "fcn8s-mobilenet-v2".into(),
            ..TrainConfig::default()
        };
        assert!(bad.validate().is_err());
        for (balance, augment, field) in [
            (Balance::Oversample, Augment::Flips, "balance"),
            (Balance::None, Augment::Standard, "augment"),
        ] {
            let bad = TrainConfig {
                balance,
                augment,
                ..cfg.clone()
            };
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        // Configurations written before segmentation existed read with the default upsampler.
        let old: TrainConfig = toml::from_str("task = \"classify\"").unwrap();
        assert_eq!(old.upsampler, UpsamplerKind::Bilinear);
    }

    #[test]
    fn loop_settings_default_round_trip_and_are_checked() {
        let cfg = TrainConfig::default();
        assert_eq!(cfg.grad_log_every, 50);
        assert_eq!(cfg.val_metric_name(), "accuracy");
        assert_eq!(TrainConfig::segment_default().val_metric_name(), "miou");
        // Unset options are left out of config.toml, so older runs' files still compare equal.
        let text = cfg.to_toml();
        assert!(
            !text.contains("patience") && !text.contains("clip_grad_norm"),
            "{text}"
        );
        let set = TrainConfig {
            clip_grad_norm: Some(1.5),
            patience: Some(3),
            val_metric: Some("macro_f1".into()),
            grad_log_every: 7,
            ..TrainConfig::default()
        };
        assert_eq!(toml::from_str::<TrainConfig>(&set.to_toml()).unwrap(), set);
        set.validate().unwrap();
        for (bad, field) in [
            (
                TrainConfig {
                    val_metric: Some("miou".into()),
                    ..TrainConfig::default()
                },
                "accuracy, macro_f1",
            ),
            (
                TrainConfig {
                    clip_grad_norm: Some(0.0),
                    ..TrainConfig::default()
                },
                "clip-grad-norm",
            ),
            (
                TrainConfig {
                    patience: Some(0),
                    ..TrainConfig::default()
                },
                "patience",
            ),
            (
                TrainConfig {
                    explode_above: f64::NAN,
                    ..TrainConfig::default()
                },
                "explode_above",
            ),
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
    }

    #[test]
    fn optimiser_keys_default_round_trip_and_validate() {
        // A configuration written before these keys existed reads with the defaults.
        let old: TrainConfig =
            toml::from_str("optimizer = \"sgd\"\nweight_decay = 1e-4\nlr = 0.1\n").unwrap();
        assert_eq!(old.optimizer_kind(), OptimKind::Sgd);
        assert_eq!(old.schedule, ScheduleKind::Cosine);
        assert_eq!(
            (old.l1, old.decay_norm_and_bias, old.zero_init_residual),
            (0.0, false, false)
        );
        assert_eq!(old.optim, OptimSettings::default());
        let text = "schedule = \"step\"\nstep_size = 5\ngamma = 0.5\nl1 = 1e-5\nzero_init_residual = true\n\
                    [optim]\nkind = \"adam\"\n[optim.groups.head]\nmatch = \"classifier.\"\nlr_scale = 10.0\nweight_decay = 0.0\n";
        let cfg: TrainConfig = toml::from_str(text).unwrap();
        assert_eq!(cfg.optimizer_kind(), OptimKind::Adam);
        assert_eq!(
            (cfg.schedule, cfg.step_size, cfg.gamma),
            (ScheduleKind::Step, 5, 0.5)
        );
        assert!(cfg.validate().is_ok());
        let back: TrainConfig = toml::from_str(&cfg.to_toml()).unwrap();
        assert_eq!(back, cfg);
        let json: TrainConfig =
            serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(json, cfg);
        let mut set = TrainConfig::default();
        set.set_optimizer_kind(OptimKind::Nesterov);
        assert_eq!(
            (set.optimizer_kind(), set.optimizer),
            (OptimKind::Nesterov, OptimizerKind::Sgd)
        );
        for (field, bad) in [
            (
                "step_size",
                TrainConfig {
                    step_size: 0,
                    ..cfg.clone()
                },
            ),
            (
                "gamma",
                TrainConfig {
                    gamma: 1.5,
                    ..cfg.clone()
                },
            ),
            (
                "l1",
                TrainConfig {
                    l1: -1.0,
                    ..cfg.clone()
                },
            ),
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        let e = toml::from_str::<TrainConfig>("[optim.groups.head]\nmatch = \"fc.\"\nwd = 0.0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`head`") && e.contains("wd"), "{e}");
    }

    #[test]
    fn multitask_runs_take_fcn_names_and_check_their_weights() {
        let cfg = TrainConfig::multitask_default();
        assert_eq!(cfg.validate().unwrap().1, Arch::MobileNetV2);
        assert_eq!((cfg.resolution, cfg.epochs), (64, 12));
        let cfg = TrainConfig {
            weighting: WeightingKind::GradNorm,
            task_weights: vec![0.5, 2.0],
            cascade: true,
            ..cfg
        };
        let text = cfg.to_toml();
        assert!(text.contains("weighting = \"gradnorm\""), "{text}");
        assert!(text.contains("task = \"multitask\""), "{text}");
        assert_eq!(toml::from_str::<TrainConfig>(&text).unwrap(), cfg);
        let bad = TrainConfig {
            weighting: WeightingKind::Fixed,
            task_weights: vec![1.0],
            ..cfg.clone()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("task_weights"), "{e}");
        let bad = TrainConfig {
            balance: Balance::Weights,
            ..cfg
        };
        assert!(bad.validate().unwrap_err().to_string().contains("balance"));
    }

    #[test]
    fn validation_names_the_field() {
        let cfg = TrainConfig {
            model: "alexnet".into(),
            ..TrainConfig::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("alexnet") && e.contains("mobilenet-v2"), "{e}");
        let cfg = TrainConfig {
            batch_size: 1,
            ..TrainConfig::default()
        };
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("batch-size"));
    }
}
