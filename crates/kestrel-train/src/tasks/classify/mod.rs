//! Classification: the [`TaskLoop`] of a classifier (data, batches, cross-entropy, val accuracy
//! and macro-F1) on the shared driver of [`crate::driver`]; beside it its data ([`data`]),
//! sampling ([`balance`]), evaluation ([`eval`]) and prediction ([`predict`], [`imagenet`]).
//! Test is never touched.

pub(crate) mod balance;
pub(crate) mod data;
pub(crate) mod eval;
pub(crate) mod imagenet;
pub(crate) mod int8;
pub(crate) mod predict;
#[cfg(test)]
mod steps;

use crate::config::{Augment, Balance, Task, TrainConfig, NORMALIZE};
use crate::driver::checkpoint::Checkpoint;
use crate::driver::WeightsRecord;
use crate::driver::{ModelMeta, Progress, StepLoss, TaskLoop};
use crate::error::{Result, TrainError};
use crate::loss::CrossEntropy;
use balance::{epoch_rows, loss_weights};
use burn::tensor::Device;
use data::{batch_tensors, TensorSet, TensorSource};
use eval::{confusion_counts, val_metrics};
use kestrel_data::loader::{chunk_plan, plan_samples, BatchSource, Loader};
use kestrel_data::rng::Rng;
use kestrel_data::{standard_augment, Dataset, DecodeSource, Shard};
use kestrel_metrics::ConfusionMatrix;
use kestrel_nn::{Classifier, ClassifierSpec, ModelSpec};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The classification task: the training split (decoded once, or on every epoch for
/// `augment = standard`), (re-)sampled per epoch as `balance` says, cross-entropy (class-weighted
/// for `balance = weights`), validation accuracy and macro-F1.
pub struct ClassifyTask {
    cfg: TrainConfig,
    class_names: Vec<String>,
    model_spec: ClassifierSpec,
    /// Dataset index of each training row (when decoding on every epoch).
    train_index: Vec<usize>,
    /// The preloaded training images, unless decoding on every epoch.
    preloaded: bool,
    train_labels: Vec<usize>,
    source: Arc<dyn BatchSource>,
    val_set: TensorSet,
    steps_per_epoch: usize,
    /// Cross-entropy, class-weighted for `balance = weights`.
    loss: CrossEntropy,
    eval_device: Device,
    /// This process's part of every batch (data-parallel training).
    shard: Shard,
    loader: Option<Loader>,
    confusion: ConfusionMatrix,
}

impl ClassifyTask {
    /// Opens the data of `cfg` and prepares the splits; bad data or settings are bad input.
    pub fn new(cfg: &TrainConfig, progress: Progress) -> Result<Self> {
        let (spec, arch) = cfg.validate()?;
        let ds: Arc<dyn Dataset> = Arc::from(cfg.open_data(&spec, progress != Progress::Quiet)?);
        let class_names = ds.class_names();
        let split = cfg.training_split(ds.as_ref())?;

        // The training images: decoded once (augment none / flips) or on every epoch (standard).
        let mut train_set = None;
        let mut train_labels: Vec<usize> = {
            let all = ds.labels();
            split.train.iter().map(|&i| all[i]).collect()
        };
        if cfg.augment != Augment::Standard {
            let mut set = TensorSet::load(ds.as_ref(), &split.train, cfg.resolution, &NORMALIZE)?;
            if cfg.balance == Balance::Smote {
                let added = set.smote(&class_names, cfg.seed)?;
                if progress != Progress::Quiet {
                    eprintln!("--balance smote: added {added} synthetic training images");
                }
            }
            train_labels = set.labels.clone();
            train_set = Some(Arc::new(set));
        }
        // Checks --interleave (and the re-sampled size) before anything is written.
        let rows_per_epoch =
            epoch_rows(&train_labels, cfg.balance, cfg.interleave, cfg.seed, 1)?.len();
        if rows_per_epoch < cfg.batch_size {
            return Err(TrainError::BadInput(format!(
                "--balance {:?} leaves {rows_per_epoch} training images per epoch; expected at least one batch ({})",
                cfg.balance, cfg.batch_size
            )));
        }
        let source: Arc<dyn BatchSource> = match &train_set {
            Some(set) => Arc::new(TensorSource {
                set: set.clone(),
                ops: cfg.augment.ops(),
            }),
            None => Arc::new(DecodeSource::new(
                ds.clone(),
                cfg.resolution as u32,
                NORMALIZE,
                Some(standard_augment(cfg.resolution as u32)),
            )?),
        };
        let val_set = TensorSet::load(ds.as_ref(), &split.val, cfg.resolution, &NORMALIZE)?;
        let weights = match cfg.balance {
            // PyTorch's weighted mean: Σ w_y·loss / Σ w_y.
            Balance::Weights => Some(loss_weights(&train_labels, &class_names)?),
            _ => None,
        };
        Ok(Self {
            model_spec: ClassifierSpec {
                arch,
                width: cfg.width,
                num_classes: class_names.len(),
                activation: cfg.activation,
            },
            confusion: ConfusionMatrix::new(class_names.len())?,
            class_names,
            cfg: cfg.clone(),
            train_index: split.train,
            preloaded: train_set.is_some(),
            train_labels,
            source,
            val_set,
            steps_per_epoch: rows_per_epoch / cfg.batch_size,
            loss: CrossEntropy::new().with_weights(weights),
            eval_device: Device::flex(),
            shard: Shard::WHOLE,
            loader: None,
        })
    }
}

impl TaskLoop for ClassifyTask {
    type Model = Classifier;

    fn name(&self) -> &'static str {
        Task::Classify.name()
    }

    fn init_model(&self, device: &Device) -> Result<Classifier> {
        let mut model = self.model_spec.init(device);
        if self.cfg.zero_init_residual {
            kestrel_nn::models::zoo::zero_init_residual(&mut model);
        }
        Ok(model)
    }

    fn fit_weights(&self, model: Classifier, path: &Path) -> Result<(Classifier, WeightsRecord)> {
        crate::driver::weights::fit(model, path)
    }

    fn load_model(&self, ckpt: &Checkpoint, device: &Device) -> Result<Classifier> {
        ckpt.model(device)
    }

    fn model_meta(&self) -> ModelMeta {
        ModelMeta {
            spec: ModelSpec::Classifier(self.model_spec.clone()),
            class_names: self.class_names.clone(),
        }
    }

    fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    fn start_epoch(&mut self, epoch: usize) -> Result<()> {
        let cfg = &self.cfg;
        let rows = epoch_rows(
            &self.train_labels,
            cfg.balance,
            cfg.interleave,
            cfg.seed,
            epoch,
        )?;
        // Each sample's seed, drawn here in epoch order, fixes its augmentation whatever thread
        // loads it (for flips: the same draws as the first, single-threaded trainer).
        let mut seeds = Rng::stream(cfg.seed, 2_000_000 + epoch as u64);
        // Loader indices: rows of the preloaded set, or dataset indices when decoding.
        let index = |r: usize| {
            if self.preloaded {
                r
            } else {
                self.train_index[r]
            }
        };
        let samples = plan_samples(rows.iter().map(|&r| index(r)), &mut seeds);
        // Drop the last incomplete batch: a batch of one would break BatchNorm's statistics.
        // Each replica's part of every batch (data-parallel training; the whole batch alone).
        let plan = chunk_plan(&samples, cfg.batch_size, true)
            .into_iter()
            .map(|batch| self.shard.slice(&batch).to_vec())
            .collect();
        self.loader = Some(Loader::spawn(
            self.source.clone(),
            plan,
            crate::tasks::loader_options(),
        ));
        self.confusion = ConfusionMatrix::new(self.class_names.len())?;
        Ok(())
    }

    fn next_step(&mut self, model: &Classifier, device: &Device) -> Result<Option<StepLoss>> {
        let Some(batch) = self.loader.as_mut().and_then(|l| l.next()) else {
            return Ok(None);
        };
        let batch = batch?;
        let (x, y) = batch_tensors(&batch, self.cfg.resolution, device);
        let logits = model.forward(x);
        let pred = crate::tasks::predicted_classes(logits.clone())?;
        let loss = self.loss.forward(logits, y)?;
        self.confusion.update(&batch.labels, &pred, None)?;
        Ok(Some(StepLoss {
            loss,
            samples: batch.labels.len(),
        }))
    }

    fn train_accuracy(&self) -> (&'static str, f64) {
        ("acc", self.confusion.accuracy().unwrap_or(0.0))
    }

    fn shard_batches(&mut self, shard: Shard) -> Result<()> {
        self.shard = crate::tasks::batch_shard(self.cfg.batch_size, shard)?;
        Ok(())
    }

    fn validation_counts(&self, model: &Classifier, shard: Shard) -> Result<Option<Vec<f64>>> {
        let k = self.class_names.len();
        confusion_counts(model, &self.val_set, k, shard, &self.eval_device).map(Some)
    }

    fn metrics_from_counts(&self, counts: &[f64]) -> Result<BTreeMap<String, f64>> {
        val_metrics(counts, self.class_names.len())
    }

    fn val_text(&self, val: &BTreeMap<String, f64>) -> String {
        format!(
            "val acc {:.4}  macro-F1 {:.4}",
            val["accuracy"], val["macro_f1"]
        )
    }
}
