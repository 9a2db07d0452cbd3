//! The one training loop every task runs on. A task (classification, segmentation, …) supplies
//! its model, its batches' forward pass and loss, and its validation metrics through
//! [`TaskLoop`]; the driver [`run_replicated`] owns everything else: epochs, the learning-rate
//! schedule, the optimiser step, gradient health (sampled norms in `grad_norms.jsonl`, alarms,
//! clipping), the progress bar and epoch lines, `metrics.jsonl`, the `last` and `best`
//! checkpoints, early stopping, `--resume` and `summary.json`.
//!
//! Determinism: the data order of an epoch is a function of (seed, epoch) (the task's business),
//! and the device RNG (dropout) is re-seeded from (seed, epoch) at the start of every epoch, so a
//! run resumed from the `last` checkpoint of epoch e repeats exactly what the uninterrupted run
//! did in epochs e + 1, ….
//!
//! Data-parallel runs ([`run_replicated`], [`crate::distributed`]): every replica takes its part
//! of each batch, the step's loss and gradients are averaged over the replicas before the step
//! (so every check and decision sees the same numbers everywhere), validation is split over the
//! replicas and its counts summed, and replica 0 alone writes the run folder and speaks.
//!
//! `run_replicated` reads as the loop itself; its parts live beside it: [`start`] (a fresh run or
//! `--resume`), [`step_guard`] (the checks around every optimiser step), [`epoch_end`]
//! (validation, logs, checkpoints, stopping), [`progress`] (what the user sees), and the files
//! they write: [`checkpoint`], [`run_dir`], with [`resume`] and [`grad_health`].

pub(crate) mod checkpoint;
mod checkpoint_check;
mod epoch_end;
pub(crate) mod grad_health;
mod progress;
pub(crate) mod resume;
pub mod run_dir;
mod start;
mod step_guard;
#[cfg(test)]
mod tests;
pub(crate) mod warm;
pub(crate) mod weights;

use crate::config::TrainConfig;
use crate::distributed::collective::BatchNormSum;
use crate::distributed::{gradients, model_sync, Replicas};
use crate::error::Result;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use checkpoint::Checkpoint;
use epoch_end::{EpochEnd, EpochStats};
use kestrel_data::rng::Rng;
use kestrel_data::Shard;
use kestrel_nn::info::grouped;
use kestrel_nn::layers::freeze::set_frozen;
use kestrel_nn::ops::batch_norm_sync;
use kestrel_nn::ModelSpec;
use progress::Log;
use start::Start;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;
use step_guard::{main_lr, StepGuard};

pub use progress::Progress;
pub use run_dir::Summary;
pub use weights::WeightsRecord;

/// How to run: progress reporting and whether to continue an existing run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// Progress reporting.
    pub progress: Progress,
    /// Continue the run in the output folder from its `last` checkpoint.
    pub resume: bool,
    /// Stop after this epoch, as if interrupted: the schedule still spans every epoch of the
    /// configuration, and `--resume` continues where this stopped.
    pub stop_after: Option<usize>,
}

/// One training step's loss, from [`TaskLoop::next_step`].
pub struct StepLoss {
    /// The loss to minimise: a one-element tensor on the autodiff graph of the model.
    pub loss: Tensor<1>,
    /// Samples in the batch; the epoch's mean loss weights each step by it.
    pub samples: usize,
}

/// How a checkpoint describes the network of a task.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMeta {
    /// The network.
    pub spec: ModelSpec,
    /// Class names, in index order.
    pub class_names: Vec<String>,
}

/// The per-task part of a training run. The driver calls, in order: [`init_model`] or
/// [`load_model`] once; then per epoch [`start_epoch`], [`next_step`] until it returns `None`
/// (reading [`train_accuracy`] for the progress bar), and [`validate`] on the evaluation-mode
/// model. A task must draw any randomness from the run's seed and the epoch only (its own
/// [`Rng`] streams, or the device RNG, which the driver re-seeds before `start_epoch`).
///
/// [`init_model`]: TaskLoop::init_model
/// [`load_model`]: TaskLoop::load_model
/// [`start_epoch`]: TaskLoop::start_epoch
/// [`next_step`]: TaskLoop::next_step
/// [`train_accuracy`]: TaskLoop::train_accuracy
/// [`validate`]: TaskLoop::validate
pub trait TaskLoop {
    /// The network.
    type Model: Module;

    /// The task's name: the key of `train_loss` in `metrics.jsonl` and `task` in `summary.json`.
    fn name(&self) -> &'static str;
    /// A freshly initialised model on `device` (an autodiff device, seeded with the run's seed).
    fn init_model(&self, device: &Device) -> Result<Self::Model>;
    /// `model` (fresh from [`TaskLoop::init_model`]) seeded from the weights file `path`
    /// (`--weights`), usually through [`weights::fit`]; by default the task takes none.
    fn fit_weights(&self, model: Self::Model, path: &Path) -> Result<(Self::Model, WeightsRecord)> {
        let _ = model;
        Err(crate::TrainError::BadInput(format!(
            "--weights {}: task `{}` cannot start from a weights file",
            path.display(),
            self.name()
        )))
    }
    /// The model saved in `ckpt`, on `device`.
    fn load_model(&self, ckpt: &Checkpoint, device: &Device) -> Result<Self::Model>;
    /// What the checkpoints say about the model.
    fn model_meta(&self) -> ModelMeta;
    /// Optimiser steps per epoch (every epoch has the same number).
    fn steps_per_epoch(&self) -> usize;
    /// Prepares epoch `epoch` (1-based): its batch order, and resets the training statistics.
    fn start_epoch(&mut self, epoch: usize) -> Result<()>;
    /// The next batch's forward pass and loss on `model` (in training mode, on `device`), updating
    /// the training statistics; `None` once the epoch's batches are spent.
    fn next_step(&mut self, model: &Self::Model, device: &Device) -> Result<Option<StepLoss>>;
    /// The training accuracy of the epoch so far, with its label in progress lines (`acc`,
    /// `pixel acc`).
    fn train_accuracy(&self) -> (&'static str, f64);
    /// Validation metrics of `model` (in evaluation mode): every name of
    /// [`crate::Task::val_metrics`], higher is better. By default the metrics of the whole
    /// validation set's [`TaskLoop::validation_counts`]; a task without counts implements this.
    fn validate(&self, model: &Self::Model) -> Result<BTreeMap<String, f64>> {
        match self.validation_counts(model, Shard::WHOLE)? {
            Some(counts) => self.metrics_from_counts(&counts),
            None => Err(crate::TrainError::Runtime(format!(
                "task `{}` has no validation",
                self.name()
            ))),
        }
    }
    /// The validation part of an epoch line, e.g. `val acc 0.9310  macro-F1 0.9288`.
    fn val_text(&self, val: &BTreeMap<String, f64>) -> String;

    /// The gradients of `loss` (the step's loss, plus any penalty) for the optimiser, at the
    /// step's learning rate `lr`. By default plain backpropagation; a multi-task weighting that
    /// needs per-task gradients or learns its own parameters hooks in here.
    fn gradients(
        &mut self,
        loss: Tensor<1>,
        model: &Self::Model,
        lr: f64,
    ) -> Result<GradientsParams> {
        let _ = lr;
        Ok(GradientsParams::from_grads(loss.backward(), model))
    }
    /// The epoch's mean training loss per task, when the task has several (`None`: the driver's
    /// mean of the step losses, under [`TaskLoop::name`]).
    fn epoch_losses(&self) -> Option<BTreeMap<String, f64>> {
        None
    }
    /// The weight of each task's loss during the epoch, when the task has several.
    fn task_weights(&self) -> Option<BTreeMap<String, f64>> {
        None
    }
    /// Called after the epoch's last step, before validation.
    fn end_epoch(&mut self) {}
    /// From now on, take part `shard` of every batch (in data-parallel training, one replica's
    /// part; the epoch's order and batches are unchanged). By default a task cannot.
    fn shard_batches(&mut self, shard: Shard) -> Result<()> {
        let _ = shard;
        Err(crate::TrainError::BadInput(format!(
            "task `{}` cannot train on several processes yet; run it as one process",
            self.name()
        )))
    }
    /// Counts over part `shard` of the validation set that add up over the parts and from which
    /// [`TaskLoop::metrics_from_counts`] gives [`TaskLoop::validate`]'s metrics exactly (a
    /// confusion matrix, say); `None` (the default) when the task has none, and every replica
    /// then validates the whole set.
    fn validation_counts(&self, model: &Self::Model, shard: Shard) -> Result<Option<Vec<f64>>> {
        let _ = (model, shard);
        Ok(None)
    }
    /// The validation metrics from the counts of every part, summed.
    fn metrics_from_counts(&self, counts: &[f64]) -> Result<BTreeMap<String, f64>> {
        let _ = counts;
        Err(crate::TrainError::Runtime(format!(
            "task `{}` has no validation counts",
            self.name()
        )))
    }
    /// State of the task that `--resume` must restore (e.g. learned loss weights).
    fn state(&self) -> Option<serde_json::Value> {
        None
    }
    /// Restores what [`TaskLoop::state`] saved.
    fn restore_state(&mut self, state: &serde_json::Value) -> Result<()> {
        let _ = state;
        Ok(())
    }
}

/// Seed of the device RNG at the start of `epoch`: a function of (seed, epoch) alone, so that a
/// resumed run draws the same dropout masks as the uninterrupted one.
pub fn epoch_device_seed(seed: u64, epoch: usize) -> u64 {
    Rng::stream(seed, 4_000_000 + epoch as u64).next_u64()
}

/// Seed of the device RNG of replica `rank` at the start of `epoch`: replica 0's is
/// [`epoch_device_seed`], the others' are streams of their own (each replica draws its own
/// dropout masks).
fn replica_device_seed(seed: u64, epoch: usize, rank: usize) -> u64 {
    match rank {
        0 => epoch_device_seed(seed, epoch),
        r => Rng::stream(seed, 5_000_000 + (r as u64) * 1_000_000 + epoch as u64).next_u64(),
    }
}

/// One process's run, for the driver's tests.
#[cfg(test)]
pub(crate) fn run<T: TaskLoop>(
    task: T,
    cfg: &TrainConfig,
    out: &Path,
    opts: &RunOptions,
) -> Result<Summary> {
    run_replicated(task, cfg, out, opts, &Replicas::solo())
}

/// Trains `task` as `cfg` says, writing (or, with `opts.resume`, continuing) the run folder `out`.
/// `cfg` must have passed [`TrainConfig::validate`]. Errors: a non-finite loss, a non-finite or
/// (without clipping) exploding gradient norm stop the run with [`crate::TrainError::Runtime`]
/// naming the layer, the epoch and step and the last good checkpoint; `last` and `best` are only
/// ever replaced, atomically, at the end of an epoch.
///
/// With several `replicas`, this is one of them (every replica calls it with the same
/// configuration): the global batch is `cfg.batch_size`, split over the replicas.
pub fn run_replicated<T: TaskLoop>(
    mut task: T,
    cfg: &TrainConfig,
    out: &Path,
    opts: &RunOptions,
    replicas: &Replicas,
) -> Result<Summary> {
    let device = Device::flex().autodiff();
    device.seed(cfg.seed);
    let leader = replicas.is_leader();
    let distributed = replicas.is_distributed();
    if distributed {
        task.shard_batches(replicas.shard())?;
    }
    let opts = &RunOptions {
        progress: if leader {
            opts.progress
        } else {
            Progress::Quiet
        },
        ..*opts
    };
    let _sync_bn = replicas
        .sync_bn
        .then(|| batch_norm_sync::install(Rc::new(BatchNormSum(replicas.world.clone()))));
    let mut start = if opts.resume {
        start::resumed(&task, cfg, out, &device, leader)?
    } else {
        start::fresh(&task, cfg, out, &device, leader)?
    };
    // Every replica starts from replica 0's model (identical already when resumed).
    start.model = model_sync::from_leader(replicas, start.model)?;
    if let Some(state) = &start.task_state {
        task.restore_state(state)?;
    }
    let steps_per_epoch = task.steps_per_epoch();
    let log = Log::new(cfg, steps_per_epoch, opts.progress, start.step);
    if let Some(w) = start.weights.as_ref().filter(|_| !opts.resume) {
        log.say(w.describe());
    }
    if start.params.frozen > 0 {
        log.say(format!(
            "parameters: {} trainable, {} frozen",
            grouped(start.params.trainable as u64),
            grouped(start.params.frozen as u64)
        ));
    }
    // A run killed after its last epoch only needs its summary and report.
    let last_epoch = if start.finished {
        log.say("training was over; writing the summary and report that were missing".into());
        start.done
    } else {
        cfg.epochs
    };
    let grad_log = std::mem::take(&mut start.grad_log);
    let mut guard = StepGuard::new(cfg, out, &log, grad_log, leader);
    let meta = task.model_meta();
    let mut end = EpochEnd::new(cfg, out, opts, &log, meta, &mut start, replicas);
    let Start {
        mut model,
        mut optim,
        mut step,
        done,
        ..
    } = start;
    // The pool's other workers stay awake between the step's operations.
    let _warm = warm::WarmWorkers::start();
    for epoch in done + 1..=last_epoch {
        let started = Instant::now();
        if let Some(spec) = cfg.freeze_spec(epoch) {
            if cfg.unfreeze_at == Some(epoch) {
                log.say(format!(
                    "epoch {epoch}: unfreezing {}",
                    cfg.freeze.join(", ")
                ));
            }
            model = set_frozen(model, &spec);
        }
        device.seed(replica_device_seed(cfg.seed, epoch, replicas.rank()));
        task.start_epoch(epoch).inspect_err(|_| log.clear())?;
        // `seen` counts every replica's samples, `own_seen` this one's.
        let (mut loss_sum, mut seen, mut own_seen) = (0.0f64, 0usize, 0usize);
        let mut lr = optim.lrs(step);
        while let Some(StepLoss { loss, samples }) = task
            .next_step(&model, &device)
            .inspect_err(|_| log.clear())?
        {
            lr = optim.lrs(step);
            own_seen += samples;
            let (loss, loss_value, samples) = if distributed {
                replica_loss(replicas, loss, samples)?
            } else {
                let value = loss.clone().into_scalar::<f32>() as f64;
                (loss, value, samples)
            };
            let loss_value = guard.check_loss(loss_value, &model, epoch, step)?;
            // The L1 penalty joins the loss being minimised, not the reported one.
            let loss = optim.regularize(loss, &model);
            let grads = task
                .gradients(loss, &model, main_lr(&lr, cfg))
                .inspect_err(|_| log.clear())?;
            let grads = gradients::average(replicas, &model, grads)?;
            let (grads, before) = guard.gradients(&model, grads, epoch, step)?;
            model = optim.step(step, model, grads);
            guard.check_update(before, &model, epoch, step)?;
            end.record_step(epoch, step, loss_value, &lr);
            step += 1;
            loss_sum += loss_value * samples as f64;
            seen += samples;
            let (label, accuracy) = task.train_accuracy();
            log.bar.set_message(format!(
                "epoch {epoch}/{}  loss {:.4}  {label} {accuracy:.3}  {:.1} img/s",
                cfg.epochs,
                loss_sum / seen as f64,
                seen as f64 / started.elapsed().as_secs_f64()
            ));
            log.bar.inc(1);
        }
        task.end_epoch();
        let stats = EpochStats {
            loss_sum,
            seen,
            train_accuracy: replica_accuracy(replicas, task.train_accuracy().1, own_seen)?,
            lr,
            started,
        };
        if end.finish(&task, &model, &optim, epoch, step, stats, &guard.grad_log)? {
            break;
        }
    }
    end.summary(task.name())
}

/// A replica's step loss for data-parallel training: the loss to differentiate, scaled so that
/// the mean of the replicas' gradients is the whole batch's (`samples · replicas / batch`: 1
/// when the batch splits evenly); the whole batch's mean loss; and the whole batch's samples.
fn replica_loss(
    replicas: &Replicas,
    loss: Tensor<1>,
    samples: usize,
) -> Result<(Tensor<1>, f64, usize)> {
    let local = loss.clone().into_scalar::<f32>() as f64;
    let mut v = [local * samples as f64, samples as f64];
    replicas.world.sum_f64(&mut v, "the step's loss")?;
    let total = v[1];
    let scale = samples as f64 * replicas.world.size() as f64 / total;
    let loss = if scale == 1.0 {
        loss
    } else {
        loss.mul_scalar(scale)
    };
    Ok((loss, v[0] / total, total as usize))
}

/// The training accuracy over every replica's samples, from each replica's own `accuracy` over
/// its `seen` samples.
fn replica_accuracy(replicas: &Replicas, accuracy: f64, seen: usize) -> Result<f64> {
    if !replicas.is_distributed() {
        return Ok(accuracy);
    }
    let mut v = [accuracy * seen as f64, seen as f64];
    replicas.world.sum_f64(&mut v, "the training accuracy")?;
    Ok(v[0] / v[1].max(1.0))
}
