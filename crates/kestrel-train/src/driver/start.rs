//! Where a run starts: a fresh model and run folder, or the state saved in the `last` checkpoint
//! at the end of an epoch (`--resume`), checked against the configuration and the data.

use super::checkpoint::Checkpoint;
use super::run_dir::ParamCounts;
use super::weights::WeightsRecord;
use super::{resume, run_dir, TaskLoop};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::optim::groups::parameter_paths;
use crate::optim::Optim;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use kestrel_nn::layers::freeze::count_frozen;
use std::collections::BTreeMap;
use std::path::Path;

/// The loop's state at the start of an epoch.
pub(super) struct Start<M> {
    /// The model: freshly initialised, or as saved.
    pub model: M,
    /// The optimiser: algorithm and state, parameter groups and learning-rate schedule.
    pub optim: Optim,
    /// Epochs completed.
    pub done: usize,
    /// Optimiser steps taken.
    pub step: usize,
    /// The best epoch so far and its validation metrics.
    pub best: Option<(usize, BTreeMap<String, f64>)>,
    /// Epochs in a row without a new best.
    pub since_best: usize,
    /// Seconds spent training in earlier sessions.
    pub seconds: f64,
    /// `metrics.jsonl` so far.
    pub records: String,
    /// `steps.jsonl` so far.
    pub steps: String,
    /// `grad_norms.jsonl` so far.
    pub grad_log: String,
    /// The task's own state to restore.
    pub task_state: Option<serde_json::Value>,
    /// What `--weights` loaded.
    pub weights: Option<WeightsRecord>,
    /// Trainable and frozen parameters in the first epoch.
    pub params: ParamCounts,
    /// Whether training is over (the last epoch, or early stopping) though the run was not
    /// complete: it was killed before its summary was written, which (with the report) is all
    /// that is left to do.
    pub finished: bool,
}

/// The trainable and frozen parameters of `model` in the run's first epoch; a `--freeze` name
/// that matches no parameter is bad input listing the model's top-level modules.
fn param_counts<M: Module>(cfg: &TrainConfig, model: &M) -> Result<ParamCounts> {
    let c = count_frozen(model, &cfg.freeze_spec(1).unwrap_or_default());
    if let Some(p) = c.unmatched.first() {
        let mut tops: Vec<String> = Vec::new();
        for p in parameter_paths(model) {
            let top = p.name.split('.').next().unwrap_or_default().to_string();
            if !tops.contains(&top) {
                tops.push(top);
            }
        }
        return Err(TrainError::BadInput(format!(
            "bad value for `freeze`: `{p}` names no parameter of model `{}`; expected a module name such as {} (or a part inside one: blocks.0, layer1.1)",
            cfg.model,
            tops.join(", ")
        )));
    }
    Ok(ParamCounts {
        trainable: c.trainable,
        frozen: c.frozen,
    })
}

/// Draws every lazily initialised parameter of `model` now, in the module's order: the random
/// initialisation then depends on the seed alone, not on which code first reads each parameter
/// (the first forward pass of one process, or replica 0's broadcast of a data-parallel run).
fn materialise<M: Module>(model: &M) {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Touch);
}

/// A new run: a freshly initialised model, and (when `writes`: replica 0 of a data-parallel
/// run, or the only process) the run folder with its `config.toml`.
pub(super) fn fresh<T: TaskLoop>(
    task: &T,
    cfg: &TrainConfig,
    out: &Path,
    device: &Device,
    writes: bool,
) -> Result<Start<T::Model>> {
    let model = task.init_model(device)?;
    materialise(&model);
    let (model, weights) = match &cfg.weights {
        Some(path) => {
            let (model, w) = task.fit_weights(model, path)?;
            (model, Some(w))
        }
        None => (model, None),
    };
    let params = param_counts(cfg, &model)?;
    // Built before the run folder: a parameter group that matches nothing is bad input.
    let optim = Optim::new(cfg, &model, task.steps_per_epoch())?;
    if writes {
        run_dir::create(out)?;
        run_dir::write(&out.join(run_dir::CONFIG), cfg.to_toml().as_bytes())?;
    }
    Ok(Start {
        model,
        optim,
        done: 0,
        step: 0,
        best: None,
        since_best: 0,
        seconds: 0.0,
        records: String::new(),
        steps: String::new(),
        grad_log: String::new(),
        task_state: None,
        weights,
        params,
        finished: false,
    })
}

/// The run in `out` as its `last` checkpoint left it; a run that cannot continue with `cfg` (a
/// changed setting, nothing left to train, other data) is bad input saying why. Only when
/// `writes` does it tidy the folder and rewrite `config.toml`.
pub(super) fn resumed<T: TaskLoop>(
    task: &T,
    cfg: &TrainConfig,
    out: &Path,
    device: &Device,
    writes: bool,
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
    let stopped_early = cfg.patience.filter(|&p| state.epochs_since_best >= p);
    let finished = meta.epoch >= cfg.epochs || stopped_early.is_some();
    if finished && run_dir::is_complete(out, meta.epoch) {
        if stopped_early.is_some() && meta.epoch < cfg.epochs {
            return Err(TrainError::BadInput(format!(
                "--resume: the run in {} stopped early ({} epochs without a better val {}); expected --patience above {}",
                out.display(),
                state.epochs_since_best,
                cfg.val_metric_name(),
                state.epochs_since_best
            )));
        }
        return Err(TrainError::BadInput(format!(
            "--resume: the run in {} has already trained {} epoch(s); expected --epochs above {}",
            out.display(),
            meta.epoch,
            meta.epoch
        )));
    }
    if writes {
        run_dir::remove_stale_temporaries(out)?;
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
    let steps_per_epoch = task.steps_per_epoch();
    if meta.step != meta.epoch * steps_per_epoch {
        return Err(TrainError::BadInput(format!(
            "--resume: {} took {} steps in {} epoch(s), but the data now gives {steps_per_epoch} per epoch; expected the run's own data",
            path.display(),
            meta.step,
            meta.epoch
        )));
    }
    let steps = resume::kept_lines(&out.join(run_dir::STEPS), meta.epoch)?;
    let grad_log = resume::kept_lines(&out.join(run_dir::GRAD_NORMS), meta.epoch)?;
    if writes {
        run_dir::write(&out.join(run_dir::CONFIG), cfg.to_toml().as_bytes())?;
    }
    Ok(Start {
        optim,
        done: meta.epoch,
        step: meta.step,
        best: Some((state.best_epoch, state.best_val())),
        since_best: state.epochs_since_best,
        seconds: state.train_seconds,
        records,
        steps,
        grad_log,
        params: param_counts(cfg, &model)?,
        task_state: state.task_state,
        weights: state.weights,
        model,
        finished,
    })
}
