//! The end of an epoch: validation, the `metrics.jsonl` line, the `best` and `last` checkpoints,
//! the epoch line, and whether to stop (`--stop-after`, early stopping); at the end of the run,
//! `summary.json` and the report.

use super::checkpoint::{self, CheckpointMeta, LoopState};
use super::progress::Log;
use super::run_dir::{self, EpochRecord, ParamCounts, ReplicaRecord, Summary, GRAD_NORMS};
use super::start::Start;
use super::weights::WeightsRecord;
use super::{ModelMeta, RunOptions, TaskLoop};
use crate::config::{TrainConfig, NORMALIZE};
use crate::distributed::{model_sync, Replicas};
use crate::error::{Result, TrainError};
use crate::optim::Optim;
use burn::module::Module;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// What the steps of one epoch gave.
pub(super) struct EpochStats {
    /// Σ loss × samples over the steps.
    pub loss_sum: f64,
    /// Samples seen (by every replica together).
    pub seen: usize,
    /// The epoch's training accuracy (over every replica's samples).
    pub train_accuracy: f64,
    /// The learning rate of each group at the last step.
    pub lr: BTreeMap<String, f64>,
    /// When the epoch started.
    pub started: Instant,
}

/// The run's bookkeeping across epochs.
pub(super) struct EpochEnd<'a> {
    cfg: &'a TrainConfig,
    out: &'a Path,
    opts: &'a RunOptions,
    log: &'a Log,
    metric: String,
    meta: ModelMeta,
    /// When this session started, and the seconds of earlier ones.
    started: Instant,
    earlier_seconds: f64,
    best: Option<(usize, BTreeMap<String, f64>)>,
    since_best: usize,
    records: String,
    steps: String,
    epochs_run: usize,
    weights: Option<WeightsRecord>,
    params: ParamCounts,
    replicas: &'a Replicas,
}

/// One line of `steps.jsonl`.
#[derive(serde::Serialize)]
struct StepLine<'a> {
    epoch: usize,
    step: usize,
    loss: f64,
    lr: &'a BTreeMap<String, f64>,
}

impl<'a> EpochEnd<'a> {
    /// The bookkeeping of a run starting from `start` (whose logs it takes over).
    pub fn new<M>(
        cfg: &'a TrainConfig,
        out: &'a Path,
        opts: &'a RunOptions,
        log: &'a Log,
        meta: ModelMeta,
        start: &mut Start<M>,
        replicas: &'a Replicas,
    ) -> Self {
        Self {
            cfg,
            out,
            opts,
            log,
            metric: cfg.val_metric_name().to_string(),
            meta,
            started: Instant::now(),
            earlier_seconds: start.seconds,
            best: start.best.take(),
            since_best: start.since_best,
            records: std::mem::take(&mut start.records),
            steps: std::mem::take(&mut start.steps),
            epochs_run: start.done,
            weights: start.weights.take(),
            params: start.params,
            replicas,
        }
    }

    /// Records optimiser step `step` of `epoch`: its training loss and learning rates.
    pub fn record_step(
        &mut self,
        epoch: usize,
        step: usize,
        loss: f64,
        lr: &BTreeMap<String, f64>,
    ) {
        let line = StepLine {
            epoch,
            step,
            loss,
            lr,
        };
        self.steps
            .push_str(&serde_json::to_string(&line).expect("serialisable"));
        self.steps.push('\n');
    }

    /// Validates `model` after epoch `epoch` (`step` steps in all), writes the logs and the
    /// checkpoints, prints the epoch line; true when the run stops here.
    #[allow(clippy::too_many_arguments)]
    pub fn finish<T: TaskLoop>(
        &mut self,
        task: &T,
        model: &T::Model,
        optim: &Optim,
        epoch: usize,
        step: usize,
        stats: EpochStats,
        grad_log: &str,
    ) -> Result<bool> {
        let (cfg, out, metric) = (self.cfg, self.out, self.metric.as_str());
        // Replica 0's BatchNorm statistics everywhere: the model its checkpoints hold.
        let eval_model = model_sync::from_leader(self.replicas, model.valid())?;
        let val = self
            .validate(task, &eval_model)
            .inspect_err(|_| self.log.clear())?;
        let value = *val.get(metric).ok_or_else(|| {
            TrainError::Runtime(format!(
                "task `{}` reported no validation metric `{metric}` (it reported {:?})",
                task.name(),
                val.keys().collect::<Vec<_>>()
            ))
        })?;
        let train_loss = stats.loss_sum / stats.seen.max(1) as f64;
        let (label, _) = task.train_accuracy();
        let train_accuracy = stats.train_accuracy;
        let record = EpochRecord {
            epoch,
            train_loss: task
                .epoch_losses()
                .unwrap_or_else(|| [(task.name().to_string(), train_loss)].into()),
            train_accuracy,
            val: val.clone(),
            lr: stats.lr,
            seconds: stats.started.elapsed().as_secs_f64(),
            near_zero_share: (cfg.l1 > 0.0).then(|| optim.sparsity(&eval_model)),
            task_weights: task.task_weights(),
        };
        self.records
            .push_str(&serde_json::to_string(&record).expect("serialisable"));
        self.records.push('\n');
        let writes = self.replicas.is_leader();
        // Logs first: a crash before the `last` checkpoint is replaced leaves lines that a
        // resume from the older checkpoint drops.
        if writes {
            run_dir::write(&out.join(run_dir::METRICS), self.records.as_bytes())?;
            run_dir::write(&out.join(run_dir::STEPS), self.steps.as_bytes())?;
            run_dir::write(&out.join(GRAD_NORMS), grad_log.as_bytes())?;
        }

        let improved = self.best.as_ref().is_none_or(|(_, b)| value > b[metric]);
        if improved {
            self.best = Some((epoch, val.clone()));
            self.since_best = 0;
        } else {
            self.since_best += 1;
        }
        if writes {
            self.save_checkpoints(task, &eval_model, optim, (epoch, step), value, improved)?;
        }
        self.epochs_run = epoch;
        self.log.say(format!(
            "epoch {epoch}/{}  train loss {train_loss:.4}  {label} {train_accuracy:.3}  |  {}{}  |  {:.1} s",
            cfg.epochs,
            task.val_text(&val),
            if improved { "  (best)" } else { "" },
            record.seconds
        ));
        // Replica 0 decides (every replica saw the same metrics), and all stop together.
        let stops = self.stops_after(epoch);
        if self.replicas.is_distributed() {
            return self.replicas.broadcast_bool(stops, "the decision to stop");
        }
        Ok(stops)
    }

    /// Writes the `last` checkpoint of `epoch` (`step` steps in all, validation metric `value`)
    /// and, when `improved`, the `best` one, both holding `eval_model`.
    fn save_checkpoints<T: TaskLoop>(
        &self,
        task: &T,
        eval_model: &T::Model,
        optim: &Optim,
        (epoch, step): (usize, usize),
        value: f64,
        improved: bool,
    ) -> Result<()> {
        let (best_epoch, best_val) = self.best.as_ref().expect("a best epoch after validation");
        let mut meta = CheckpointMeta {
            epoch,
            step,
            config: self.cfg.clone(),
            spec: self.meta.spec.clone(),
            class_names: self.meta.class_names.clone(),
            normalize: NORMALIZE,
            val_metric: value,
            loop_state: None,
        };
        let model_bytes = checkpoint::encode_model(eval_model)?;
        if improved {
            let best = run_dir::best_checkpoint(self.out);
            checkpoint::save(&best, &meta, &model_bytes, None)?;
        }
        meta.loop_state = Some(LoopState {
            best_epoch: *best_epoch,
            best_val_bits: LoopState::val_bits(best_val),
            epochs_since_best: self.since_best,
            train_seconds: self.seconds(),
            task_state: task.state(),
            weights: self.weights.clone(),
        });
        let last = run_dir::last_checkpoint(self.out);
        checkpoint::save(&last, &meta, &model_bytes, Some(optim.module_optimizer()))
    }

    /// The validation metrics of `model` (in evaluation mode, identical on every replica): each
    /// replica scores its part of the validation set and the parts' counts are summed, when the
    /// task can; otherwise every replica scores the whole set.
    fn validate<T: TaskLoop>(&self, task: &T, model: &T::Model) -> Result<BTreeMap<String, f64>> {
        let replicas = self.replicas;
        if replicas.is_distributed() {
            if let Some(mut counts) = task.validation_counts(model, replicas.shard())? {
                replicas.check_same(counts.len() as f64, "the number of validation counts")?;
                replicas
                    .world
                    .sum_f64(&mut counts, "the validation counts")?;
                return task.metrics_from_counts(&counts);
            }
        }
        task.validate(model)
    }

    /// Whether the run stops after `epoch`, before its last: `--stop-after`, or no better
    /// validation metric for `patience` epochs (said on stderr).
    fn stops_after(&self, epoch: usize) -> bool {
        let cfg = self.cfg;
        if epoch >= cfg.epochs {
            return false;
        }
        if self.opts.stop_after.is_some_and(|k| epoch >= k) {
            self.log.say(format!(
                "stopped after epoch {epoch} of {} (--stop-after); continue with --resume",
                cfg.epochs
            ));
            return true;
        }
        match (cfg.patience, &self.best) {
            (Some(p), Some((best_epoch, best_val))) if self.since_best >= p => {
                self.log.say(format!(
                    "early stopping: val {} has not improved for {p} epoch(s); best {:.4} at epoch {best_epoch}",
                    self.metric,
                    best_val[self.metric.as_str()]
                ));
                true
            }
            _ => false,
        }
    }

    /// Seconds spent training, all sessions.
    fn seconds(&self) -> f64 {
        self.earlier_seconds + self.started.elapsed().as_secs_f64()
    }

    /// Writes `summary.json` and (a failure there only warns) the report.
    pub fn summary(mut self, task: &str) -> Result<Summary> {
        self.log.clear();
        let (best_epoch, best_val) = self.best.take().expect("at least one epoch ran");
        let summary = Summary {
            task: task.into(),
            model: self.cfg.model.clone(),
            best_epoch,
            epochs_run: self.epochs_run,
            val: best_val,
            test_evaluated: false,
            train_seconds: self.seconds(),
            params: self.params,
            weights: self.weights.take(),
            replicas: self.replicas.is_distributed().then(|| ReplicaRecord {
                count: self.replicas.world.size(),
                sync_bn: self.replicas.sync_bn,
                communication_seconds: self.replicas.world.seconds(),
            }),
        };
        if !self.replicas.is_leader() {
            return Ok(summary);
        }
        run_dir::write_json(&self.out.join(run_dir::SUMMARY), &summary)?;
        // The run is complete without its report: a failure here is a warning, and
        // `kestrel report --run DIR` writes it again.
        if let Err(e) = crate::report::write_run_report(self.out) {
            if !self.log.quiet() {
                eprintln!(
                    "warning: report.html not written ({e}); run `kestrel report --run {}`",
                    self.out.display()
                );
            }
        }
        Ok(summary)
    }
}
