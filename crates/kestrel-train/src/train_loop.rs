//! The one training loop every task runs on. A task (classification, segmentation, …) supplies
//! its model, its batches' forward pass and loss, and its validation metrics through
//! [`TaskLoop`]; the driver [`run`] owns everything else: epochs, the learning-rate schedule, the
//! optimiser step, gradient health (sampled norms in `grad_norms.jsonl`, alarms, clipping), the
//! progress bar and epoch lines, `metrics.jsonl`, the `last` and `best` checkpoints, early
//! stopping, `--resume` and `summary.json`.
//!
//! Determinism: the data order of an epoch is a function of (seed, epoch) (the task's business),
//! and the device RNG (dropout) is re-seeded from (seed, epoch) at the start of every epoch, so a
//! run resumed from the `last` checkpoint of epoch e repeats exactly what the uninterrupted run
//! did in epochs e + 1, ….

use crate::checkpoint::{self, Checkpoint, CheckpointMeta, LoopState};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::grad_health::{
    check_grads, check_update, clip_grad_norm, grad_norms, param_norms, worst_param, GradAlarm,
    GradAlarmKind, GradThresholds, ParamGradNorm,
};
use crate::optim::Optim;
use crate::resume;
use crate::run_dir::{self, EpochRecord, Summary};
use crate::trainer::{progress_bar, NORMALIZE};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use kestrel_data::rng::Rng;
use kestrel_nn::fcn::SegmenterSpec;
use kestrel_nn::ClassifierSpec;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Instant;

/// File of the sampled per-parameter gradient norms, one JSON line per sample:
/// `{"epoch": e, "step": s, "layers": [{"name": "<param path>", "norm": x}, ...]}` (epoch 1-based,
/// step the 0-based optimiser step; a non-finite norm is written as `null`).
pub const GRAD_NORMS: &str = "grad_norms.jsonl";

/// How the loop reports progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A progress bar and per-epoch lines on stderr.
    Bar,
    /// Per-epoch lines on stderr only.
    Lines,
    /// Nothing.
    Quiet,
}

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
    /// The classifier (for a segmentation model: its backbone, informative only).
    pub model: ClassifierSpec,
    /// The segmentation model, when the task has one.
    pub segmenter: Option<SegmenterSpec>,
    /// Class names, in index order.
    pub class_names: Vec<String>,
    /// The multi-task model, when the task trains one.
    pub multitask: Option<kestrel_nn::multitask::MultiTaskSpec>,
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
    /// [`crate::Task::val_metrics`], higher is better.
    fn validate(&self, model: &Self::Model) -> Result<BTreeMap<String, f64>>;
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

/// One line of [`GRAD_NORMS`].
#[derive(Serialize)]
struct GradSample<'a> {
    epoch: usize,
    step: usize,
    layers: Vec<LayerNorm<'a>>,
}

#[derive(Serialize)]
struct LayerNorm<'a> {
    name: &'a str,
    norm: f64,
}

fn grad_sample_line(epoch: usize, step: usize, norms: &[ParamGradNorm]) -> String {
    let sample = GradSample {
        epoch,
        step,
        layers: norms
            .iter()
            .map(|n| LayerNorm {
                name: &n.path,
                norm: n.norm,
            })
            .collect(),
    };
    let mut line = serde_json::to_string(&sample).expect("serialisable");
    line.push('\n');
    line
}

/// "the last good checkpoint is …" for an error after `done` completed epochs.
fn last_good(out: &Path, done: usize) -> String {
    if done == 0 {
        "no epoch finished, so no checkpoint was written".into()
    } else {
        format!(
            "the last good checkpoint is {} (epoch {done}; {} is intact)",
            run_dir::last_checkpoint(out).display(),
            run_dir::best_checkpoint(out).display()
        )
    }
}

/// Where the loop starts: a fresh run, or the state saved at the end of an epoch.
struct Start<M> {
    model: M,
    optim: Optim,
    done: usize,
    step: usize,
    best: Option<(usize, BTreeMap<String, f64>)>,
    since_best: usize,
    seconds: f64,
    records: String,
    grad_log: String,
    task_state: Option<serde_json::Value>,
}

fn fresh<T: TaskLoop>(
    task: &T,
    cfg: &TrainConfig,
    out: &Path,
    device: &Device,
) -> Result<Start<T::Model>> {
    let model = task.init_model(device)?;
    // Built before the run folder: a parameter group that matches nothing is bad input.
    let optim = Optim::new(cfg, &model, task.steps_per_epoch())?;
    run_dir::create(out)?;
    run_dir::write(&out.join(run_dir::CONFIG), cfg.to_toml().as_bytes())?;
    Ok(Start {
        model,
        optim,
        done: 0,
        step: 0,
        best: None,
        since_best: 0,
        seconds: 0.0,
        records: String::new(),
        grad_log: String::new(),
        task_state: None,
    })
}

fn resumed<T: TaskLoop>(
    task: &T,
    cfg: &TrainConfig,
    out: &Path,
    device: &Device,
) -> Result<Start<T::Model>> {
    resume::check_config(cfg, out)?;
    let path = run_dir::last_checkpoint(out);
    let ckpt = Checkpoint::load(&path)?;
    let meta = &ckpt.meta;
    let state = meta.loop_state.clone().ok_or_else(|| {
        TrainError::BadInput(format!(
            "{}: this checkpoint was written before `--resume` existed (no loop state); start a new run",
            path.display()
        ))
    })?;
    if meta.epoch >= cfg.epochs {
        return Err(TrainError::BadInput(format!(
            "--resume: the run in {} has already trained {} epoch(s); expected --epochs above {}",
            out.display(),
            meta.epoch,
            meta.epoch
        )));
    }
    if let Some(p) = cfg.patience {
        if state.epochs_since_best >= p {
            return Err(TrainError::BadInput(format!(
                "--resume: the run in {} stopped early ({} epochs without a better val {}); expected --patience above {}",
                out.display(),
                state.epochs_since_best,
                cfg.val_metric_name(),
                state.epochs_since_best
            )));
        }
    }
    let model = task.load_model(&ckpt, device)?;
    let optim = Optim::new(cfg, &model, task.steps_per_epoch())?.restore(|o| ckpt.optimizer(o))?;
    let records = resume::kept_lines(&out.join(run_dir::METRICS), meta.epoch)?;
    let kept = records.lines().count();
    if kept != meta.epoch {
        return Err(TrainError::BadInput(format!(
            "--resume: {} holds {kept} line(s) of epochs up to {}; expected one per epoch",
            out.join(run_dir::METRICS).display(),
            meta.epoch
        )));
    }
    let grad_log = resume::kept_lines(&out.join(GRAD_NORMS), meta.epoch)?;
    run_dir::write(&out.join(run_dir::CONFIG), cfg.to_toml().as_bytes())?;
    Ok(Start {
        model,
        optim,
        done: meta.epoch,
        step: meta.step,
        best: Some((state.best_epoch, state.best_val())),
        since_best: state.epochs_since_best,
        seconds: state.train_seconds,
        records,
        grad_log,
        task_state: state.task_state,
    })
}

/// Trains `task` as `cfg` says, writing (or, with `opts.resume`, continuing) the run folder `out`.
/// `cfg` must have passed [`TrainConfig::validate`]. Errors: a non-finite loss, a non-finite or
/// (without clipping) exploding gradient norm stop the run with [`TrainError::Runtime`] naming
/// the layer, the epoch and step and the last good checkpoint; `last` and `best` are only ever
/// replaced, atomically, at the end of an epoch.
pub fn run<T: TaskLoop>(
    mut task: T,
    cfg: &TrainConfig,
    out: &Path,
    opts: &RunOptions,
) -> Result<Summary> {
    let started = Instant::now();
    let metric = cfg.val_metric_name().to_string();
    let device = Device::flex().autodiff();
    device.seed(cfg.seed);
    let Start {
        mut model,
        mut optim,
        done,
        mut step,
        mut best,
        mut since_best,
        seconds: earlier_seconds,
        mut records,
        mut grad_log,
        task_state,
    } = if opts.resume {
        resumed(&task, cfg, out, &device)?
    } else {
        fresh(&task, cfg, out, &device)?
    };
    if let Some(state) = &task_state {
        task.restore_state(state)?;
    }
    let model_meta = task.model_meta();
    let thresholds = GradThresholds {
        exploding_above: cfg.explode_above,
        ..GradThresholds::default()
    };

    let steps_per_epoch = task.steps_per_epoch();
    if step != done * steps_per_epoch {
        return Err(TrainError::BadInput(format!(
            "--resume: {} took {step} steps in {done} epoch(s), but the data now gives {steps_per_epoch} per epoch; expected the run's own data",
            run_dir::last_checkpoint(out).display()
        )));
    }
    let bar = progress_bar(cfg, steps_per_epoch, opts.progress);
    bar.set_position(step as u64);
    let say = |line: String| {
        if opts.progress != Progress::Quiet {
            bar.suspend(|| eprintln!("{line}"));
        }
    };
    let grad_log_path = out.join(GRAD_NORMS);
    // Ends the run with `message`, keeping the gradient samples taken so far.
    let stop = |message: String, grad_log: &str| -> TrainError {
        bar.finish_and_clear();
        if let Err(e) = run_dir::write(&grad_log_path, grad_log.as_bytes()) {
            return TrainError::Runtime(format!("{message} (and {e})"));
        }
        TrainError::Runtime(message)
    };
    let clip_hint = if cfg.clip_grad_norm.is_some() {
        "lower --lr"
    } else {
        "lower --lr or set --clip-grad-norm"
    };

    let mut epochs_run = done;
    let mut vanishing_reported = HashSet::new();
    for epoch in done + 1..=cfg.epochs {
        let epoch_start = Instant::now();
        device.seed(epoch_device_seed(cfg.seed, epoch));
        task.start_epoch(epoch)
            .inspect_err(|_| bar.finish_and_clear())?;
        let (mut loss_sum, mut seen) = (0.0f64, 0usize);
        let mut lr = optim.lrs(step);
        loop {
            let Some(StepLoss { loss, samples }) = task
                .next_step(&model, &device)
                .inspect_err(|_| bar.finish_and_clear())?
            else {
                break;
            };
            lr = optim.lrs(step);
            let loss_value = loss.clone().into_scalar::<f32>() as f64;
            if !loss_value.is_finite() {
                let culprit = match worst_param(&model) {
                    Some((name, norm)) if !norm.is_finite() => {
                        format!(" (parameter {name} is already non-finite)")
                    }
                    Some((name, norm)) => {
                        format!(" (largest parameter: {name}, L2 norm {norm:.3e})")
                    }
                    None => String::new(),
                };
                return Err(stop(
                    format!(
                        "non-finite training loss ({loss_value}) at epoch {epoch}, step {step}{culprit}; training stopped; {}; {clip_hint}",
                        last_good(out, epoch - 1)
                    ),
                    &grad_log,
                ));
            }
            // The L1 penalty joins the loss being minimised, not the reported one.
            let loss = optim.regularize(loss, &model);
            let main_lr = lr
                .get("default")
                .or_else(|| lr.values().next())
                .copied()
                .unwrap_or(cfg.lr);
            let mut grads = task
                .gradients(loss, &model, main_lr)
                .inspect_err(|_| bar.finish_and_clear())?;
            let sampled = cfg.grad_log_every > 0 && step % cfg.grad_log_every == 0;
            if sampled {
                let norms = grad_norms(&model, &grads);
                grad_log.push_str(&grad_sample_line(epoch, step, &norms));
                let alarms = check_grads(&norms, &thresholds);
                let fatal = alarms.iter().find(|a| match a.kind {
                    GradAlarmKind::NonFinite => true,
                    GradAlarmKind::Exploding => cfg.clip_grad_norm.is_none(),
                    GradAlarmKind::Vanishing | GradAlarmKind::ExplodingUpdate => false,
                });
                if let Some(a) = fatal {
                    return Err(stop(
                        format!(
                            "{a} at epoch {epoch}, step {step}; training stopped; {}; {clip_hint}",
                            last_good(out, epoch - 1)
                        ),
                        &grad_log,
                    ));
                }
                let layer_alarms = whole_layers_vanishing(&alarms, &norms);
                warn_vanishing(&layer_alarms, &mut vanishing_reported, epoch, step, &say);
            }
            if let Some(max_norm) = cfg.clip_grad_norm {
                let (clipped, total) = clip_grad_norm(&model, grads, max_norm)?;
                if !total.is_finite() {
                    let norms = grad_norms(&model, &clipped);
                    let alarm = check_grads(&norms, &thresholds)
                        .into_iter()
                        .find(|a| a.kind == GradAlarmKind::NonFinite);
                    let what = alarm.map_or_else(
                        || format!("non-finite global gradient norm {total}"),
                        |a| a.to_string(),
                    );
                    return Err(stop(
                        format!(
                            "{what} at epoch {epoch}, step {step}; training stopped; {}; lower --lr",
                            last_good(out, epoch - 1)
                        ),
                        &grad_log,
                    ));
                }
                grads = clipped;
            }
            let before = sampled.then(|| param_norms(&model));
            model = optim.step(step, model, grads);
            if let Some(before) = before {
                if let Some(a) = check_update(&before, &param_norms(&model), cfg.explode_above) {
                    return Err(stop(
                        format!(
                            "{a} at epoch {epoch}, step {step}; training stopped; {}; lower --lr",
                            last_good(out, epoch - 1)
                        ),
                        &grad_log,
                    ));
                }
            }
            step += 1;
            loss_sum += loss_value * samples as f64;
            seen += samples;
            let (label, accuracy) = task.train_accuracy();
            bar.set_message(format!(
                "epoch {epoch}/{}  loss {:.4}  {label} {accuracy:.3}  {:.1} img/s",
                cfg.epochs,
                loss_sum / seen as f64,
                seen as f64 / epoch_start.elapsed().as_secs_f64()
            ));
            bar.inc(1);
        }

        task.end_epoch();
        let eval_model = model.valid();
        let val = task
            .validate(&eval_model)
            .inspect_err(|_| bar.finish_and_clear())?;
        let value = *val.get(&metric).ok_or_else(|| {
            TrainError::Runtime(format!(
                "task `{}` reported no validation metric `{metric}` (it reported {:?})",
                task.name(),
                val.keys().collect::<Vec<_>>()
            ))
        })?;
        let train_loss = loss_sum / seen.max(1) as f64;
        let (label, train_accuracy) = task.train_accuracy();
        let record = EpochRecord {
            epoch,
            train_loss: task
                .epoch_losses()
                .unwrap_or_else(|| [(task.name().to_string(), train_loss)].into()),
            train_accuracy,
            val: val.clone(),
            lr,
            seconds: epoch_start.elapsed().as_secs_f64(),
            near_zero_share: (cfg.l1 > 0.0).then(|| optim.sparsity(&eval_model)),
            task_weights: task.task_weights(),
        };
        records.push_str(&serde_json::to_string(&record).expect("serialisable"));
        records.push('\n');
        // Logs first: a crash before the `last` checkpoint is replaced leaves lines that a
        // resume from the older checkpoint drops.
        run_dir::write(&out.join(run_dir::METRICS), records.as_bytes())?;
        run_dir::write(&grad_log_path, grad_log.as_bytes())?;

        let improved = best
            .as_ref()
            .is_none_or(|(_, b)| value > b[metric.as_str()]);
        if improved {
            best = Some((epoch, val.clone()));
            since_best = 0;
        } else {
            since_best += 1;
        }
        let (best_epoch, best_val) = best.as_ref().expect("set above");
        let mut meta = CheckpointMeta {
            epoch,
            step,
            config: cfg.clone(),
            model: model_meta.model.clone(),
            segmenter: model_meta.segmenter.clone(),
            class_names: model_meta.class_names.clone(),
            normalize: NORMALIZE,
            val_metric: value,
            loop_state: None,
        };
        let model_bytes = checkpoint::encode_model(&eval_model)?;
        let save =
            |path: &Path, meta: &CheckpointMeta, optim: Option<&burn::optim::ModuleOptimizer>| {
                match &model_meta.multitask {
                    Some(spec) => checkpoint::save_multitask(path, meta, spec, &model_bytes, optim),
                    None => checkpoint::save(path, meta, &model_bytes, optim),
                }
            };
        if improved {
            save(&run_dir::best_checkpoint(out), &meta, None)?;
        }
        meta.loop_state = Some(LoopState {
            best_epoch: *best_epoch,
            best_val_bits: LoopState::val_bits(best_val),
            epochs_since_best: since_best,
            train_seconds: earlier_seconds + started.elapsed().as_secs_f64(),
            task_state: task.state(),
        });
        save(
            &run_dir::last_checkpoint(out),
            &meta,
            Some(optim.module_optimizer()),
        )?;
        epochs_run = epoch;
        say(format!(
            "epoch {epoch}/{}  train loss {train_loss:.4}  {label} {train_accuracy:.3}  |  {}{}  |  {:.1} s",
            cfg.epochs,
            task.val_text(&val),
            if improved { "  (best)" } else { "" },
            record.seconds
        ));
        if opts.stop_after.is_some_and(|k| epoch >= k) && epoch < cfg.epochs {
            say(format!(
                "stopped after epoch {epoch} of {} (--stop-after); continue with --resume",
                cfg.epochs
            ));
            break;
        }
        if let Some(p) = cfg.patience {
            if since_best >= p && epoch < cfg.epochs {
                say(format!(
                    "early stopping: val {metric} has not improved for {p} epoch(s); best {:.4} at epoch {best_epoch}",
                    best_val[metric.as_str()]
                ));
                break;
            }
        }
    }
    bar.finish_and_clear();
    let (best_epoch, best_val) = best.expect("at least one epoch ran");
    let summary = Summary {
        task: task.name().into(),
        model: cfg.model.clone(),
        best_epoch,
        epochs_run,
        val: best_val,
        test_evaluated: false,
        train_seconds: earlier_seconds + started.elapsed().as_secs_f64(),
    };
    run_dir::write_json(&out.join(run_dir::SUMMARY), &summary)?;
    // The run is complete without its report: a failure here is a warning, and
    // `kestrel report --run DIR` writes it again.
    if let Err(e) = crate::report::write_run_report(out) {
        if opts.progress != Progress::Quiet {
            eprintln!(
                "warning: report.html not written ({e}); run `kestrel report --run {}`",
                out.display()
            );
        }
    }
    Ok(summary)
}

/// The module path a parameter belongs to (`blocks.4.project.bn` for
/// `blocks.4.project.bn.beta`).
fn layer_of(path: &str) -> &str {
    path.rsplit_once('.').map_or("", |(layer, _)| layer)
}

/// The vanishing alarms of layers whose every parameter vanishes. A single tensor with no
/// gradient inside a layer that learns is the normal case for BatchNorm shifts that feed only
/// convolutions and BatchNorms (they cancel it), so it is not a layer whose gradient vanishes.
fn whole_layers_vanishing(alarms: &[GradAlarm], norms: &[ParamGradNorm]) -> Vec<GradAlarm> {
    let vanishing: HashSet<&str> = alarms
        .iter()
        .filter(|a| a.kind == GradAlarmKind::Vanishing)
        .map(|a| a.path.as_str())
        .collect();
    let learning: HashSet<&str> = norms
        .iter()
        .filter(|n| !vanishing.contains(n.path.as_str()))
        .map(|n| layer_of(&n.path))
        .collect();
    alarms
        .iter()
        .filter(|a| a.kind == GradAlarmKind::Vanishing && !learning.contains(layer_of(&a.path)))
        .cloned()
        .collect()
}

/// Prints one warning line naming the parameters whose gradient vanishes for the first time in
/// this session (at most three named): some vanish by construction (a BatchNorm shift feeding
/// only convolutions and BatchNorms, which cancel it), and repeating them every sample would
/// bury the rest. `grad_norms.jsonl` keeps every norm.
fn warn_vanishing(
    alarms: &[GradAlarm],
    reported: &mut HashSet<String>,
    epoch: usize,
    step: usize,
    say: &impl Fn(String),
) {
    const SHOWN: usize = 3;
    let new: Vec<&GradAlarm> = alarms
        .iter()
        .filter(|a| a.kind == GradAlarmKind::Vanishing && reported.insert(a.path.clone()))
        .collect();
    if new.is_empty() {
        return;
    }
    let named: Vec<String> = new.iter().take(SHOWN).map(|a| a.to_string()).collect();
    let more = new.len().saturating_sub(SHOWN);
    say(format!(
        "warning: epoch {epoch}, step {step}: {}{}",
        named.join("; "),
        if more > 0 {
            format!("; and {more} more parameter(s) (see {GRAD_NORMS})")
        } else {
            String::new()
        }
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::TensorData;

    #[derive(Module, Debug)]
    struct Tiny {
        lin: Linear,
    }

    /// What the fake task does to its loss at one step.
    #[derive(Clone, Copy)]
    enum Blow {
        Scale(f32),
        NotANumber,
    }

    /// A regression of 4 fixed points on a 3 → 2 linear layer, 2 steps per epoch; validation
    /// returns `scripted[epoch - 1]` as accuracy (and its half as macro-F1) when scripted, else a
    /// score from the model's loss.
    struct Fake {
        epoch: usize,
        left: usize,
        blow_at: Option<(usize, usize, Blow)>,
        scripted: Vec<f64>,
    }

    impl Fake {
        fn new() -> Self {
            Self {
                epoch: 0,
                left: 0,
                blow_at: None,
                scripted: Vec::new(),
            }
        }
        fn mse(model: &Tiny, device: &Device) -> Tensor<1> {
            let x = Tensor::<2>::from_data(
                TensorData::new(
                    vec![
                        1.0f32, 0.0, -1.0, 0.5, 2.0, 1.0, -1.5, 0.5, 0.0, 1.0, 1.0, 1.0,
                    ],
                    [4, 3],
                ),
                device,
            );
            let y = Tensor::<2>::from_data(
                TensorData::new(vec![1.0f32, -1.0, 0.0, 2.0, 1.0, 1.0, -2.0, 0.5], [4, 2]),
                device,
            );
            (model.lin.forward(x) - y).powf_scalar(2.0).mean()
        }
    }

    impl TaskLoop for Fake {
        type Model = Tiny;
        fn name(&self) -> &'static str {
            "classify"
        }
        fn init_model(&self, device: &Device) -> Result<Tiny> {
            // Not drawn from the device RNG, which tests running in parallel share: the
            // bit-for-bit resume test must not depend on their order.
            Ok(Tiny {
                lin: LinearConfig::new(3, 2)
                    .with_initializer(burn::nn::Initializer::Constant { value: 0.1 })
                    .init(device),
            })
        }
        fn load_model(&self, ckpt: &Checkpoint, device: &Device) -> Result<Tiny> {
            ckpt.load_into(self.init_model(device)?)
        }
        fn model_meta(&self) -> ModelMeta {
            ModelMeta {
                model: ClassifierSpec {
                    arch: kestrel_nn::Arch::MobileNetV2,
                    width: 0.25,
                    num_classes: 2,
                },
                segmenter: None,
                multitask: None,
                class_names: vec!["a".into(), "b".into()],
            }
        }
        fn steps_per_epoch(&self) -> usize {
            2
        }
        fn start_epoch(&mut self, epoch: usize) -> Result<()> {
            (self.epoch, self.left) = (epoch, 2);
            Ok(())
        }
        fn next_step(&mut self, model: &Tiny, device: &Device) -> Result<Option<StepLoss>> {
            if self.left == 0 {
                return Ok(None);
            }
            let index = 2 - self.left;
            self.left -= 1;
            let loss = Self::mse(model, device);
            let loss = match self.blow_at {
                Some((e, i, Blow::Scale(f))) if (e, i) == (self.epoch, index) => loss.mul_scalar(f),
                Some((e, i, Blow::NotANumber)) if (e, i) == (self.epoch, index) => {
                    loss.mul_scalar(f32::NAN)
                }
                _ => loss,
            };
            Ok(Some(StepLoss { loss, samples: 4 }))
        }
        fn train_accuracy(&self) -> (&'static str, f64) {
            ("acc", 0.0)
        }
        fn validate(&self, model: &Tiny) -> Result<BTreeMap<String, f64>> {
            let score = match self.scripted.get(self.epoch - 1) {
                Some(&s) => s,
                None => {
                    let l = Self::mse(model, &Device::flex()).into_scalar::<f32>() as f64;
                    1.0 / (1.0 + l)
                }
            };
            Ok([
                ("accuracy".to_string(), score),
                ("macro_f1".to_string(), score / 2.0),
            ]
            .into())
        }
        fn val_text(&self, val: &BTreeMap<String, f64>) -> String {
            format!("val acc {:.4}", val["accuracy"])
        }
    }

    fn cfg(epochs: usize) -> TrainConfig {
        TrainConfig {
            epochs,
            lr: 0.05,
            grad_log_every: 1,
            // Warm-up over every step: the learning rate of a step does not depend on `epochs`.
            warmup_epochs: 10.0,
            ..TrainConfig::default()
        }
    }

    fn quiet(resume: bool) -> RunOptions {
        RunOptions {
            progress: Progress::Quiet,
            resume,
            stop_after: None,
        }
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Epoch 1 trains; at epoch 2, step 1 the loss (hence every gradient) is scaled by 1e9:
    /// the sampled norm of `lin.weight` (the first parameter) crosses 1e4 and the run stops,
    /// naming it, with `last` and `best` still those of epoch 1.
    #[test]
    fn an_exploding_gradient_after_an_epoch_stops_and_keeps_the_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let mut task = Fake::new();
        task.blow_at = Some((2, 1, Blow::Scale(1e9)));
        let e = run(task, &cfg(3), &out, &quiet(false)).unwrap_err();
        let TrainError::Runtime(msg) = e else {
            panic!("expected a runtime error, got {e:?}")
        };
        assert!(
            msg.contains("exploding gradient at lin.weight")
                && msg.contains("epoch 2, step 3")
                && msg.contains("last.ckpt (epoch 1"),
            "{msg}"
        );
        for path in [
            run_dir::last_checkpoint(&out),
            run_dir::best_checkpoint(&out),
        ] {
            let ckpt = Checkpoint::load(&path).unwrap();
            assert_eq!(ckpt.meta.epoch, 1);
            let model = ckpt.load_into(Fake::new().init_model(&Device::flex()).unwrap());
            assert!(model.is_ok(), "{}", path.display());
        }
        // Every step was sampled, the fatal one included; metrics.jsonl has epoch 1 only.
        let samples = lines(&out.join(GRAD_NORMS));
        let steps: Vec<u64> = samples
            .iter()
            .map(|s| s["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, [0, 1, 2, 3]);
        let names: Vec<&str> = samples[0]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["lin.weight", "lin.bias"]);
        assert!(samples[3]["layers"][0]["norm"].as_f64().unwrap() > 1e4);
        assert_eq!(lines(&out.join(run_dir::METRICS)).len(), 1);
    }

    #[test]
    fn a_non_finite_loss_before_any_checkpoint_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let mut task = Fake::new();
        task.blow_at = Some((1, 1, Blow::NotANumber));
        let msg = run(task, &cfg(2), &out, &quiet(false))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("non-finite training loss (NaN) at epoch 1, step 1")
                && msg.contains("largest parameter: lin.")
                && msg.contains("no epoch finished"),
            "{msg}"
        );
        assert!(!run_dir::last_checkpoint(&out).exists());
    }

    /// With clipping, the same 1e9 blow-up is clipped instead of stopping the run; the log keeps
    /// the pre-clip norm.
    #[test]
    fn clipping_replaces_the_exploding_stop() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let mut task = Fake::new();
        task.blow_at = Some((2, 1, Blow::Scale(1e9)));
        let c = TrainConfig {
            clip_grad_norm: Some(1.0),
            ..cfg(2)
        };
        let s = run(task, &c, &out, &quiet(false)).unwrap();
        assert_eq!(s.epochs_run, 2);
        let samples = lines(&out.join(GRAD_NORMS));
        assert!(samples[3]["layers"][0]["norm"].as_f64().unwrap() > 1e4);
    }

    /// Scripted val accuracy 0.5, 0.7, 0.6, 0.7 (a tie is no improvement), 0.9 with patience 2:
    /// best is epoch 2, and the run stops after epoch 4, never reaching 0.9.
    #[test]
    fn early_stopping_counts_epochs_without_a_strictly_better_metric() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let mut task = Fake::new();
        task.scripted = vec![0.5, 0.7, 0.6, 0.7, 0.9];
        let c = TrainConfig {
            patience: Some(2),
            ..cfg(5)
        };
        let s = run(task, &c, &out, &quiet(false)).unwrap();
        assert_eq!((s.best_epoch, s.epochs_run), (2, 4));
        assert_eq!(s.val["accuracy"], 0.7);
        assert_eq!(lines(&out.join(run_dir::METRICS)).len(), 4);
        let best = Checkpoint::load(&run_dir::best_checkpoint(&out)).unwrap();
        assert_eq!(best.meta.epoch, 2);
        let last = Checkpoint::load(&run_dir::last_checkpoint(&out)).unwrap();
        let state = last.meta.loop_state.unwrap();
        assert_eq!((state.best_epoch, state.epochs_since_best), (2, 2));
        // Resuming with the same patience has nothing to do; a larger one continues to 0.9.
        let mut task = Fake::new();
        task.scripted = vec![0.5, 0.7, 0.6, 0.7, 0.9];
        let e = run(task, &c, &out, &quiet(true)).unwrap_err().to_string();
        assert!(
            e.contains("stopped early") && e.contains("--patience"),
            "{e}"
        );
        let mut task = Fake::new();
        task.scripted = vec![0.5, 0.7, 0.6, 0.7, 0.9];
        let c = TrainConfig {
            patience: Some(3),
            ..c
        };
        let s = run(task, &c, &out, &quiet(true)).unwrap();
        assert_eq!((s.best_epoch, s.epochs_run), (5, 5));
    }

    /// `val_metric = macro_f1` chooses on the second metric: scripted so that it is the halved
    /// accuracy, the same epochs win; the summary reports both.
    #[test]
    fn the_val_metric_chooses_the_best_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let mut task = Fake::new();
        task.scripted = vec![0.4, 0.8, 0.6];
        let c = TrainConfig {
            val_metric: Some("macro_f1".into()),
            ..cfg(3)
        };
        let s = run(task, &c, &out, &quiet(false)).unwrap();
        assert_eq!(s.best_epoch, 2);
        assert_eq!(s.val["macro_f1"], 0.4);
        let best = Checkpoint::load(&run_dir::best_checkpoint(&out)).unwrap();
        assert_eq!(best.meta.val_metric, 0.4);
    }

    /// Three epochs straight, and one epoch then a resume to three, give the same bits in every
    /// metrics line except `seconds`, and the same gradient samples.
    #[test]
    fn a_resumed_run_repeats_the_straight_run_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        run(Fake::new(), &cfg(3), &a, &quiet(false)).unwrap();
        run(Fake::new(), &cfg(1), &b, &quiet(false)).unwrap();
        let s = run(Fake::new(), &cfg(3), &b, &quiet(true)).unwrap();
        assert_eq!(s.epochs_run, 3);
        let strip = |mut v: Vec<serde_json::Value>| {
            for l in &mut v {
                l.as_object_mut().unwrap().remove("seconds");
            }
            v
        };
        let (ma, mb) = (
            strip(lines(&a.join(run_dir::METRICS))),
            strip(lines(&b.join(run_dir::METRICS))),
        );
        assert_eq!(ma.len(), 3);
        assert_eq!(ma, mb);
        assert_eq!(
            std::fs::read_to_string(a.join(GRAD_NORMS)).unwrap(),
            std::fs::read_to_string(b.join(GRAD_NORMS)).unwrap()
        );
        // A setting other than epochs and patience may not change.
        let changed = TrainConfig { lr: 0.1, ..cfg(4) };
        let e = run(Fake::new(), &changed, &b, &quiet(true)).unwrap_err();
        assert!(
            matches!(&e, TrainError::BadInput(m) if m.contains("`lr`")),
            "{e}"
        );
        // Nothing left to train.
        let e = run(Fake::new(), &cfg(3), &b, &quiet(true)).unwrap_err();
        assert!(e.to_string().contains("--epochs above 3"), "{e}");
    }

    #[test]
    fn only_layers_whose_every_parameter_vanishes_are_reported() {
        let norm = |path: &str, norm: f64| ParamGradNorm {
            path: path.into(),
            norm,
            numel: 1,
        };
        let norms = [
            norm("b1.bn.gamma", 0.3),
            norm("b1.bn.beta", 1e-9),
            norm("b2.bn.gamma", 0.0),
            norm("b2.bn.beta", 1e-9),
            norm("b2.conv.weight", 0.5),
        ];
        let alarms = check_grads(&norms, &GradThresholds::default());
        assert_eq!(alarms.len(), 3);
        let kept: Vec<String> = whole_layers_vanishing(&alarms, &norms)
            .into_iter()
            .map(|a| a.path)
            .collect();
        assert_eq!(kept, ["b2.bn.gamma", "b2.bn.beta"]);
    }

    #[test]
    fn a_vanishing_gradient_is_reported_once() {
        let alarm = |path: &str| GradAlarm {
            path: path.into(),
            norm: 0.0,
            kind: GradAlarmKind::Vanishing,
            threshold: 1e-7,
        };
        let said = std::cell::RefCell::new(Vec::new());
        let say = |l: String| said.borrow_mut().push(l);
        let mut seen = HashSet::new();
        warn_vanishing(&[alarm("a"), alarm("b")], &mut seen, 1, 0, &say);
        warn_vanishing(&[alarm("a"), alarm("b")], &mut seen, 1, 5, &say);
        warn_vanishing(&[alarm("a"), alarm("c")], &mut seen, 2, 9, &say);
        let said = said.into_inner();
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(
            said[0].contains("at a:") && said[0].contains("at b:"),
            "{}",
            said[0]
        );
        assert!(
            said[1].contains("step 9") && said[1].contains("at c:") && !said[1].contains("at a:")
        );
    }

    #[test]
    fn epoch_seeds_differ_by_epoch_and_seed() {
        let s: Vec<u64> = (1..=3).map(|e| epoch_device_seed(0, e)).collect();
        assert!(s[0] != s[1] && s[1] != s[2]);
        assert_ne!(epoch_device_seed(1, 1), s[0]);
        assert_eq!(epoch_device_seed(0, 2), s[1]);
    }
}
