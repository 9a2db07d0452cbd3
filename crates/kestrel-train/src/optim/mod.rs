//! Optimisers with PyTorch's update rules and defaults (SGD with momentum or Nesterov, Adam,
//! AdamW), parameter groups by module path, weight decay that skips BatchNorm parameters and
//! biases by default, the L1 penalty, and the learning-rate schedules (warm-up + cosine, step,
//! constant).
//!
//! In a training loop (`cfg: &TrainConfig`):
//!
//! ```ignore
//! let mut optim = optim::Optim::new(cfg, &model, steps_per_epoch)?;   // bad groups: BadInput
//! // each step:
//! let lrs = optim.lrs(step);                        // group → lr, for metrics.jsonl `lr`
//! let loss = optim.regularize(loss, &model);        // + l1 · Σ|w| when l1 > 0
//! let grads = GradientsParams::from_grads(loss.backward(), &model);
//! model = optim.step(step, model, grads);
//! // each epoch of an L1 run: optim.sparsity(&model); checkpoints: optim.module_optimizer()
//! ```

pub mod build;
pub mod groups;
pub mod regularize;
pub mod schedule;
pub mod settings;
#[cfg(test)]
mod torch_parity;

pub use build::Optim;
#[cfg(test)]
pub use schedule::LrSchedule;
pub use settings::{OptimKind, OptimSettings, ScheduleKind};
