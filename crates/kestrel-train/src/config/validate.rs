//! Checking a configuration before anything is built from it.

use super::{Augment, Balance, Task, TrainConfig};
use crate::error::{Result, TrainError};
use kestrel_data::DataSpec;
use kestrel_nn::{Arch, HiddenActivation};

impl TrainConfig {
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
            Task::Classify => {
                self.model
                    .parse()
                    .map_err(|e: kestrel_nn::models::zoo::UnknownArch| {
                        TrainError::BadInput(e.to_string())
                    })?
            }
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
            crate::tasks::multitask::weighting::LossWeighting::new(
                self.weighting,
                2,
                &self.task_weights,
                self.gradnorm_alpha,
            )?;
        }
        if !kestrel_nn::models::zoo::OUTPUT_STRIDES.contains(&self.output_stride) {
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
        if self.activation != HiddenActivation::default()
            && !(self.task == Task::Classify && arch.has_activation_choice())
        {
            return bad(
                "activation",
                &format!(
                    "{} with `model = {}` (`--activation {}` is for the classifier \
                     mobilenet-v2 only; {} keeps its own activation)",
                    HiddenActivation::default(),
                    self.model,
                    self.activation,
                    self.model
                ),
                self.activation.to_string(),
            );
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
                "none, weights, oversample or undersample with `augment = standard` (SMOTE images have no source file to augment; use `augment = dihedral` or `hflip` with smote)",
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
        if let Some(p) = self.freeze.iter().find(|p| p.trim_matches('.').is_empty()) {
            return bad(
                "freeze",
                "module names such as backbone or blocks.0",
                format!("`{p}`"),
            );
        }
        if let Some(e) = self.unfreeze_at {
            if self.freeze.is_empty() {
                return bad(
                    "unfreeze-at",
                    "--freeze as well (it ends the freeze)",
                    e.to_string(),
                );
            }
            if !(2..=self.epochs).contains(&e) {
                return bad(
                    "unfreeze-at",
                    &format!("an epoch from 2 to --epochs ({})", self.epochs),
                    e.to_string(),
                );
            }
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
