//! The multi-task task (`task = multitask`) of the training driver: one backbone with a
//! classification head and an FCN head ([`MultiTask`]), trained on data with both an image label
//! and a mask per image (`shapes`), the task losses weighted by [`LossWeighting`]. Validated every
//! epoch on both tasks; the best checkpoint by the mean of val accuracy and val mIoU
//! (`accuracy_miou_mean`) unless `--val-metric` says otherwise.
//!
//! The step itself lives in [`crate::tasks::multitask::step`], the scoring in
//! [`crate::tasks::multitask::eval`]; this file draws batches and holds the weighting's state.

pub(crate) mod eval;
pub(crate) mod step;
pub(crate) mod weighting;

use crate::config::TrainConfig;
use crate::config::NORMALIZE;
use crate::driver::checkpoint::{self, Checkpoint};
use crate::driver::WeightsRecord;
use crate::driver::{ModelMeta, Progress, StepLoss, TaskLoop};
use crate::error::{Result, TrainError};
use crate::tasks::multitask::eval::{combined_metric, evaluate_multitask, labels_of};
use crate::tasks::multitask::step::{backward_step, forward_step, Forward, TASKS};
use crate::tasks::multitask::weighting::LossWeighting;
use crate::tasks::segment::data::{seg_class_names, SegSet};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use kestrel_data::rng::Rng;
use kestrel_nn::models::multitask::{MultiTask, MultiTaskSpec};
use kestrel_nn::ModelSpec;
use std::collections::BTreeMap;
use std::path::Path;

/// The name of the combined validation metric that chooses a multi-task run's best checkpoint.
pub const COMBINED_METRIC: &str = "accuracy_miou_mean";

/// `(task name, value)` pairs of the two tasks as a map.
fn per_task(values: &[f64]) -> BTreeMap<String, f64> {
    TASKS
        .iter()
        .zip(values)
        .map(|(k, v)| (k.to_string(), *v))
        .collect()
}

/// The multi-task part of a run: data, the loss weighting, and the epoch's statistics.
pub struct MultiTaskTask {
    cfg: TrainConfig,
    spec: MultiTaskSpec,
    class_names: Vec<String>,
    seg_classes: usize,
    train_set: SegSet,
    train_labels: Vec<usize>,
    val_set: SegSet,
    val_labels: Vec<usize>,
    weighting: LossWeighting,
    eval_device: Device,
    order: Vec<usize>,
    next: usize,
    rng: Rng,
    loss_sums: [f64; 2],
    seen: usize,
    correct: usize,
    weights: Vec<f64>,
    pending: Option<Forward>,
}

impl MultiTaskTask {
    /// Opens the data of `cfg` and prepares the splits; bad data or settings are bad input.
    pub fn new(cfg: &TrainConfig, progress: Progress) -> Result<Self> {
        let (spec, _) = cfg.validate()?;
        let name = cfg.segmenter_name()?;
        let ds = cfg.open_data(&spec, progress != Progress::Quiet)?;
        let class_names = ds.class_names();
        if class_names.len() < 2 {
            return Err(TrainError::BadInput(format!(
                "data `{}` has {} image class(es); `--task multitask` needs at least 2 image classes and a mask per image (e.g. `shapes`)",
                cfg.data,
                class_names.len()
            )));
        }
        let seg_names = seg_class_names(&spec, ds.as_ref());
        let k = seg_names.len();
        let split = cfg.training_split(ds.as_ref())?;
        let train_set = SegSet::load(ds.as_ref(), &split.train, cfg.resolution, &NORMALIZE, k)?;
        let val_set = SegSet::load(ds.as_ref(), &split.val, cfg.resolution, &NORMALIZE, k)?;
        let weighting = LossWeighting::new(
            cfg.weighting,
            TASKS.len(),
            &cfg.task_weights,
            cfg.gradnorm_alpha,
        )?;
        Ok(Self {
            spec: MultiTaskSpec {
                backbone: name,
                width: cfg.width,
                num_classes: class_names.len(),
                seg_classes: k,
                upsampler: cfg.upsampler,
                cascade: cfg.cascade,
            },
            cfg: cfg.clone(),
            class_names,
            seg_classes: k,
            train_labels: labels_of(ds.as_ref(), &split.train),
            val_labels: labels_of(ds.as_ref(), &split.val),
            train_set,
            val_set,
            weights: weighting.weights(),
            weighting,
            eval_device: Device::flex(),
            order: Vec::new(),
            next: 0,
            rng: Rng::stream(cfg.seed, 4_000_000),
            loss_sums: [0.0; 2],
            seen: 0,
            correct: 0,
            pending: None,
        })
    }
}

impl TaskLoop for MultiTaskTask {
    type Model = MultiTask;

    fn name(&self) -> &'static str {
        "multitask"
    }

    fn init_model(&self, device: &Device) -> Result<MultiTask> {
        self.spec
            .init(device)
            .map_err(|e| TrainError::BadInput(format!("bad multitask model: {e}")))
    }

    fn fit_weights(&self, model: MultiTask, path: &Path) -> Result<(MultiTask, WeightsRecord)> {
        crate::driver::weights::fit(model, path)
    }

    fn load_model(&self, ckpt: &Checkpoint, device: &Device) -> Result<MultiTask> {
        ckpt.multitask_model(device)
    }

    fn model_meta(&self) -> ModelMeta {
        ModelMeta {
            spec: ModelSpec::Multitask(self.spec.clone()),
            class_names: self.class_names.clone(),
        }
    }

    fn steps_per_epoch(&self) -> usize {
        self.train_set.len() / self.cfg.batch_size
    }

    fn start_epoch(&mut self, epoch: usize) -> Result<()> {
        self.rng = Rng::stream(self.cfg.seed, 4_000_000 + epoch as u64);
        self.order = (0..self.train_set.len()).collect();
        self.rng.shuffle(&mut self.order);
        self.next = 0;
        self.loss_sums = [0.0; 2];
        self.seen = 0;
        self.correct = 0;
        self.weights = self.weighting.weights();
        Ok(())
    }

    fn next_step(&mut self, model: &MultiTask, device: &Device) -> Result<Option<StepLoss>> {
        let b = self.cfg.batch_size;
        // The last incomplete batch is dropped: a batch of one would break BatchNorm.
        if self.next + b > self.order.len() {
            return Ok(None);
        }
        let rows: Vec<usize> = self.order[self.next..self.next + b].to_vec();
        self.next += b;
        // One draw per image whatever the setting, so that the draws stay where they were.
        let n = self.cfg.augment.ops();
        let ops: Vec<usize> = rows
            .iter()
            .map(|_| self.rng.below(n.unwrap_or(8)))
            .collect();
        let ops = n.map(|_| &ops[..]);
        let (x, masks, _) = self.train_set.batch(&rows, ops, device);
        let batch_labels: Vec<usize> = rows.iter().map(|&r| self.train_labels[r]).collect();
        let y = Tensor::<1, Int>::from_data(
            TensorData::new(
                batch_labels.iter().map(|&l| l as i64).collect::<Vec<i64>>(),
                [rows.len()],
            ),
            device,
        );
        let forward = forward_step(model, &self.weighting, x, y, masks)?;
        for (sum, l) in self.loss_sums.iter_mut().zip(forward.stats.losses) {
            *sum += l * rows.len() as f64;
        }
        self.seen += rows.len();
        self.correct += forward
            .stats
            .class_pred
            .iter()
            .zip(&batch_labels)
            .filter(|(p, t)| p == t)
            .count();
        let loss = forward.total.clone();
        self.pending = Some(forward);
        Ok(Some(StepLoss {
            loss,
            samples: rows.len(),
        }))
    }

    fn gradients(
        &mut self,
        loss: Tensor<1>,
        model: &MultiTask,
        lr: f64,
    ) -> Result<GradientsParams> {
        let forward = self
            .pending
            .take()
            .ok_or_else(|| TrainError::Runtime("a backward pass without a forward one".into()))?;
        backward_step(model, &mut self.weighting, forward, loss, lr)
    }

    fn train_accuracy(&self) -> (&'static str, f64) {
        ("acc", self.correct as f64 / self.seen.max(1) as f64)
    }

    fn epoch_losses(&self) -> Option<BTreeMap<String, f64>> {
        let n = self.seen.max(1) as f64;
        Some(per_task(&self.loss_sums.map(|s| s / n)))
    }

    fn task_weights(&self) -> Option<BTreeMap<String, f64>> {
        Some(per_task(&self.weights))
    }

    fn end_epoch(&mut self) {
        // The weights logged: those at the epoch's end (GradNorm moves them every step; DWA's
        // change at the epoch's end applies to the next one).
        self.weights = self.weighting.weights();
        let n = self.seen.max(1) as f64;
        let means: Vec<f64> = self.loss_sums.iter().map(|s| s / n).collect();
        self.weighting.end_epoch(&means);
    }

    fn state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.weighting)
            .ok()
            .map(checkpoint::exact_json)
    }

    fn restore_state(&mut self, state: &serde_json::Value) -> Result<()> {
        self.weighting =
            serde_json::from_value(checkpoint::from_exact_json(state)).map_err(|e| {
                TrainError::BadInput(format!(
                    "--resume: the checkpoint's loss-weighting state does not read ({e})"
                ))
            })?;
        Ok(())
    }

    fn validate(&self, model: &MultiTask) -> Result<BTreeMap<String, f64>> {
        let scores = evaluate_multitask(
            model,
            &self.val_set,
            &self.val_labels,
            &self.class_names,
            self.seg_classes,
            &self.eval_device,
        )?;
        let mut val = scores.val_map();
        val.insert(COMBINED_METRIC.to_string(), combined_metric(&val));
        Ok(val)
    }

    fn val_text(&self, val: &BTreeMap<String, f64>) -> String {
        let get = |k: &str| val.get(k).copied().unwrap_or(f64::NAN);
        format!(
            "weights {:.3}/{:.3}  |  val acc {:.4}  macro-F1 {:.4}  mIoU {:.4}  pixel acc {:.4}",
            self.weights[0],
            self.weights[1],
            get("accuracy"),
            get("macro_f1"),
            get("miou"),
            get("pixel_accuracy")
        )
    }
}
