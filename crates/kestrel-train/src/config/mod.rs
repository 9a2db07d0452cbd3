//! The fully resolved configuration of a training run, written to `config.toml`.

mod choices;
mod data;
mod validate;

pub use choices::{Augment, Balance, OptimizerKind, Task};

use crate::error::{Result, TrainError};
use crate::optim::{OptimKind, OptimSettings, ScheduleKind};
use crate::tasks::multitask::weighting::WeightingKind;
use kestrel_data::Normalize;
use kestrel_nn::layers::freeze::FreezeSpec;
use kestrel_nn::models::fcn::{SegmenterName, UnknownSegmenter};
use kestrel_nn::upsample::UpsamplerKind;
use kestrel_nn::HiddenActivation;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Normalisation of every kestrel model input: the ImageNet statistics, as torchvision.
pub const NORMALIZE: Normalize = Normalize::IMAGENET;

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
    /// `--activation`: MobileNetV2's ReLU6 (the default) or plain ReLU; other models and tasks
    /// take only the default. Configurations written before it read as ReLU6.
    pub activation: HiddenActivation,
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
    /// `--augment`: training-image augmentation; `auto` (the default) is `dihedral` on `shapes`
    /// and `hflip` on real images (see [`Augment::for_data`]), resolved before the run starts.
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
    /// unless `clip_grad_norm` is set (clipping then bounds the step); the default is
    /// `EXPLODE_ABOVE` (1e4).
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
    /// `--weights FILE`: start from these weights (a torchvision state dict, `.pth` or
    /// `.safetensors`, or a kestrel checkpoint) instead of a random initialisation: the backbone
    /// must fit, heads that do not are re-initialised (see `kestrel_nn::import::fit_weights`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<std::path::PathBuf>,
    /// `--freeze`: module names (`backbone`, `stem`, `blocks.0`, `layer1`) whose parameters get
    /// no updates and whose BatchNorm layers stay in eval mode.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<String>,
    /// `--freeze-bn`: every BatchNorm layer keeps its γ, β and running statistics, for the whole
    /// run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub freeze_bn: bool,
    /// `--unfreeze-at EPOCH`: `freeze` holds until this epoch (1-based) starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfreeze_at: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            data: "shapes".into(),
            task: Task::Classify,
            model: "mobilenet-v2".into(),
            width: 0.5,
            activation: HiddenActivation::Relu6,
            resolution: 48,
            epochs: 16,
            batch_size: 32,
            lr: 5e-3,
            weight_decay: 1e-4,
            optimizer: OptimizerKind::AdamW,
            warmup_epochs: 0.5,
            augment: Augment::Auto,
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
            gradnorm_alpha: crate::tasks::multitask::weighting::GRADNORM_ALPHA,
            weights: None,
            freeze: Vec::new(),
            freeze_bn: false,
            unfreeze_at: None,
        }
    }
}

impl TrainConfig {
    /// What is frozen during epoch `epoch` (1-based): `freeze` until `unfreeze_at`, and every
    /// BatchNorm layer with `freeze_bn`; `None` when the run freezes nothing at any epoch.
    pub fn freeze_spec(&self, epoch: usize) -> Option<FreezeSpec> {
        if self.freeze.is_empty() && !self.freeze_bn {
            return None;
        }
        let thawed = self.unfreeze_at.is_some_and(|e| epoch >= e);
        Some(FreezeSpec {
            prefixes: if thawed {
                Vec::new()
            } else {
                self.freeze.clone()
            },
            batch_norm: self.freeze_bn,
        })
    }

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
}

#[cfg(test)]
mod tests;
