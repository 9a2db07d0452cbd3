//! The step guard: the checks around every optimiser step. A non-finite loss, a non-finite
//! gradient, an exploding gradient (without clipping) or an exploding update stops the run with a
//! message naming the parameter, the epoch and step and the last good checkpoint; sampled
//! gradient norms go to `grad_norms.jsonl`; `--clip-grad-norm` clips by the global norm.

use super::grad_health::{
    check_grads, check_update, clip_grad_norm, grad_norms, param_norms, worst_param, GradAlarmKind,
    GradThresholds, ParamGradNorm,
};
use super::progress::{lasting_vanishing, warn_vanishing, whole_layers_vanishing, Log};
use super::run_dir::{self, GRAD_NORMS};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use burn::module::Module;
use burn::optim::GradientsParams;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// One line of `grad_norms.jsonl`.
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

/// The learning rate a task's own gradient hooks see: the default group's.
pub(super) fn main_lr(lrs: &BTreeMap<String, f64>, cfg: &TrainConfig) -> f64 {
    lrs.get("default")
        .or_else(|| lrs.values().next())
        .copied()
        .unwrap_or(cfg.lr)
}

/// Each parameter's path and value L2 norm, as [`param_norms`] gives them.
type ParamNorms = Vec<(String, f64)>;

/// The checks of one run, with the gradient samples taken so far.
pub(super) struct StepGuard<'a> {
    cfg: &'a TrainConfig,
    out: &'a Path,
    log: &'a Log,
    thresholds: GradThresholds,
    /// Parameters already warned about.
    vanishing_reported: HashSet<String>,
    /// Parameters whose whole layer's gradient vanished at the last sample.
    vanishing_before: HashSet<String>,
    /// `grad_norms.jsonl` so far.
    pub grad_log: String,
    /// Whether this process writes the run folder.
    writes: bool,
}

impl<'a> StepGuard<'a> {
    /// The guard of a run writing (when `writes`) to `out`, continuing `grad_log`.
    pub fn new(
        cfg: &'a TrainConfig,
        out: &'a Path,
        log: &'a Log,
        grad_log: String,
        writes: bool,
    ) -> Self {
        Self {
            writes,
            cfg,
            out,
            log,
            thresholds: GradThresholds {
                exploding_above: cfg.explode_above,
                ..GradThresholds::default()
            },
            vanishing_reported: HashSet::new(),
            vanishing_before: HashSet::new(),
            grad_log,
        }
    }

    /// Ends the run: "`what` at epoch `epoch`, step `step``detail`", the last good checkpoint and
    /// a hint of what to change, keeping the gradient samples taken so far.
    fn stop(
        &self,
        what: &str,
        (epoch, step): (usize, usize),
        detail: &str,
        hint: &str,
    ) -> TrainError {
        self.log.clear();
        let message = format!(
            "{what} at epoch {epoch}, step {step}{detail}; training stopped; {}; {hint}",
            last_good(self.out, epoch - 1)
        );
        if !self.writes {
            return TrainError::Runtime(message);
        }
        match run_dir::write(&self.out.join(GRAD_NORMS), self.grad_log.as_bytes()) {
            Ok(()) => TrainError::Runtime(message),
            Err(e) => TrainError::Runtime(format!("{message} (and {e})")),
        }
    }

    fn clip_hint(&self) -> &'static str {
        if self.cfg.clip_grad_norm.is_some() {
            "lower --lr"
        } else {
            "lower --lr or set --clip-grad-norm"
        }
    }

    /// The value of the step's training loss (for a data-parallel step, the mean over the
    /// replicas); a non-finite one stops the run, naming the largest (or an already
    /// non-finite) parameter of `model`.
    pub fn check_loss<M: Module>(
        &self,
        value: f64,
        model: &M,
        epoch: usize,
        step: usize,
    ) -> Result<f64> {
        if value.is_finite() {
            return Ok(value);
        }
        let culprit = match worst_param(model) {
            Some((name, norm)) if !norm.is_finite() => {
                format!(" (parameter {name} is already non-finite)")
            }
            Some((name, norm)) => format!(" (largest parameter: {name}, L2 norm {norm:.3e})"),
            None => String::new(),
        };
        Err(self.stop(
            &format!("non-finite training loss ({value})"),
            (epoch, step),
            &culprit,
            self.clip_hint(),
        ))
    }

    /// Samples (every `grad_log_every` steps) and checks the gradients of `model`, and clips them
    /// when asked. Returns the gradients to apply and, when sampled, the parameter norms before
    /// the update for [`StepGuard::check_update`].
    pub fn gradients<M: Module>(
        &mut self,
        model: &M,
        mut grads: GradientsParams,
        epoch: usize,
        step: usize,
    ) -> Result<(GradientsParams, Option<ParamNorms>)> {
        let cfg = self.cfg;
        let sampled = cfg.grad_log_every > 0 && step.is_multiple_of(cfg.grad_log_every);
        if sampled {
            let norms = grad_norms(model, &grads);
            self.grad_log
                .push_str(&grad_sample_line(epoch, step, &norms));
            let alarms = check_grads(&norms, &self.thresholds);
            let fatal = alarms.iter().find(|a| match a.kind {
                GradAlarmKind::NonFinite => true,
                GradAlarmKind::Exploding => cfg.clip_grad_norm.is_none(),
                GradAlarmKind::Vanishing | GradAlarmKind::ExplodingUpdate => false,
            });
            if let Some(a) = fatal {
                return Err(self.stop(&a.to_string(), (epoch, step), "", self.clip_hint()));
            }
            let layer_alarms = lasting_vanishing(
                whole_layers_vanishing(&alarms, &norms),
                &mut self.vanishing_before,
            );
            let say = |line: String| self.log.say(line);
            warn_vanishing(
                &layer_alarms,
                &mut self.vanishing_reported,
                epoch,
                step,
                &say,
            );
        }
        if let Some(max_norm) = cfg.clip_grad_norm {
            let (clipped, total) = clip_grad_norm(model, grads, max_norm)?;
            if !total.is_finite() {
                let norms = grad_norms(model, &clipped);
                let alarm = check_grads(&norms, &self.thresholds)
                    .into_iter()
                    .find(|a| a.kind == GradAlarmKind::NonFinite);
                let what = alarm.map_or_else(
                    || format!("non-finite global gradient norm {total}"),
                    |a| a.to_string(),
                );
                return Err(self.stop(&what, (epoch, step), "", "lower --lr"));
            }
            grads = clipped;
        }
        Ok((grads, sampled.then(|| param_norms(model))))
    }

    /// The parameters whose vanishing gradient was reported so far.
    #[cfg(test)]
    pub fn vanishing_reported(&self) -> &HashSet<String> {
        &self.vanishing_reported
    }

    /// Checks the update of a sampled step: `before` from [`StepGuard::gradients`], `model`
    /// after the optimiser step.
    pub fn check_update<M: Module>(
        &self,
        before: Option<ParamNorms>,
        model: &M,
        epoch: usize,
        step: usize,
    ) -> Result<()> {
        let Some(before) = before else {
            return Ok(());
        };
        match check_update(&before, &param_norms(model), self.cfg.explode_above) {
            Some(a) => Err(self.stop(&a.to_string(), (epoch, step), "", "lower --lr")),
            None => Ok(()),
        }
    }
}
