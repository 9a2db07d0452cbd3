//! Classification training: the [`TaskLoop`] of a classifier (data, batches, cross-entropy, val
//! accuracy and macro-F1) on the shared driver of [`crate::train_loop`], and [`train`], the entry of
//! every task. Test is never touched.

use crate::balance::{epoch_rows, loss_weights};
use crate::checkpoint::Checkpoint;
use crate::config::{Augment, Balance, Task, TrainConfig};
use crate::error::{Result, TrainError};
use crate::evaluate::evaluate;
use crate::loss::CrossEntropy;
use crate::run_dir::Summary;
use crate::tensor_set::{batch_tensors, TensorSet, TensorSource};
use crate::train_loop::{ModelMeta, RunOptions, StepLoss, TaskLoop};
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kestrel_data::loader::{chunk_plan, BatchSource, Loader, LoaderOptions, PlannedSample};
use kestrel_data::rng::Rng;
use kestrel_data::{standard_augment, Dataset, DecodeSource, Normalize};
use kestrel_metrics::ConfusionMatrix;
use kestrel_nn::{Classifier, ClassifierSpec};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Normalisation of every kestrel model input: the ImageNet statistics, as torchvision.
pub const NORMALIZE: Normalize = Normalize::IMAGENET;

pub use crate::train_loop::Progress;

/// The progress bar (hidden unless `progress` is [`Progress::Bar`]) of a run of
/// `steps_per_epoch` × epochs steps; the learning rates come from [`crate::optim::Optim`].
pub(crate) fn progress_bar(
    cfg: &TrainConfig,
    steps_per_epoch: usize,
    progress: Progress,
) -> ProgressBar {
    let total_steps = steps_per_epoch * cfg.epochs;
    let bar = match progress {
        Progress::Bar => {
            ProgressBar::with_draw_target(Some(total_steps as u64), ProgressDrawTarget::stderr())
        }
        _ => ProgressBar::hidden(),
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  ETA {eta}")
            .expect("valid template"),
    );
    bar
}

/// Threads of the training loader: up to 4, fewer on smaller machines.
fn loader_options() -> LoaderOptions {
    let workers = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .clamp(1, 4);
    LoaderOptions {
        workers,
        prefetch: 2 * workers,
    }
}

/// Trains a classifier (or, for `task = segment`, an FCN: see [`crate::seg_trainer`]) as `cfg` says,
/// writing the run folder `out`. Returns the summary.
pub fn train(cfg: &TrainConfig, out: &Path, progress: Progress) -> Result<Summary> {
    train_run(
        cfg,
        out,
        &RunOptions {
            progress,
            resume: false,
            stop_after: None,
        },
    )
}

/// [`train`] with every option: `opts.resume` continues the run in `out` from its `last`
/// checkpoint (see [`crate::resume`]).
pub fn train_run(cfg: &TrainConfig, out: &Path, opts: &RunOptions) -> Result<Summary> {
    cfg.validate()?;
    if opts.resume {
        // Before minutes of data loading.
        crate::resume::check_config(cfg, out)?;
    }
    match cfg.task {
        Task::Classify => {
            crate::train_loop::run(ClassifyTask::new(cfg, opts.progress)?, cfg, out, opts)
        }
        Task::Segment => crate::train_loop::run(
            crate::seg_trainer::SegmentTask::new(cfg, opts.progress)?,
            cfg,
            out,
            opts,
        ),
        Task::Multitask => crate::train_loop::run(
            crate::multitask_trainer::MultiTaskTask::new(cfg, opts.progress)?,
            cfg,
            out,
            opts,
        ),
    }
}

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
    loss_fn: CrossEntropyLoss,
    weighted_loss: Option<CrossEntropy>,
    eval_device: Device,
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
                flips: cfg.augment == Augment::Flips,
            }),
            None => Arc::new(DecodeSource::new(
                ds.clone(),
                cfg.resolution as u32,
                NORMALIZE,
                Some(standard_augment(cfg.resolution as u32)),
            )?),
        };
        let val_set = TensorSet::load(ds.as_ref(), &split.val, cfg.resolution, &NORMALIZE)?;
        let weighted_loss = match cfg.balance {
            // PyTorch's weighted mean: Σ w_y·loss / Σ w_y.
            Balance::Weights => Some(
                CrossEntropy::new().with_weights(Some(loss_weights(&train_labels, &class_names)?)),
            ),
            _ => None,
        };
        let device = Device::flex().autodiff();
        Ok(Self {
            model_spec: ClassifierSpec {
                arch,
                width: cfg.width,
                num_classes: class_names.len(),
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
            loss_fn: CrossEntropyLossConfig::new().init(&device),
            weighted_loss,
            eval_device: Device::flex(),
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
            kestrel_nn::init::zero_init_residual(&mut model);
        }
        Ok(model)
    }

    fn load_model(&self, ckpt: &Checkpoint, device: &Device) -> Result<Classifier> {
        ckpt.model(device)
    }

    fn model_meta(&self) -> ModelMeta {
        ModelMeta {
            model: self.model_spec.clone(),
            segmenter: None,
            multitask: None,
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
        let samples: Vec<PlannedSample> = rows
            .iter()
            .map(|&r| PlannedSample {
                index: if self.preloaded {
                    r
                } else {
                    self.train_index[r]
                },
                seed: seeds.next_u64(),
            })
            .collect();
        // Drop the last incomplete batch: a batch of one would break BatchNorm's statistics.
        let plan = chunk_plan(&samples, cfg.batch_size, true);
        self.loader = Some(Loader::spawn(self.source.clone(), plan, loader_options()));
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
        let pred: Vec<usize> = logits
            .clone()
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .map(|v| v.into_iter().map(|p| p as usize).collect())
            .map_err(|e| TrainError::Runtime(format!("reading predictions: {e:?}")))?;
        let loss = match &self.weighted_loss {
            Some(w) => w.forward(logits, y)?,
            None => self.loss_fn.forward(logits, y),
        };
        self.confusion.update(&batch.labels, &pred, None)?;
        Ok(Some(StepLoss {
            loss,
            samples: batch.labels.len(),
        }))
    }

    fn train_accuracy(&self) -> (&'static str, f64) {
        ("acc", self.confusion.accuracy().unwrap_or(0.0))
    }

    fn validate(&self, model: &Classifier) -> Result<BTreeMap<String, f64>> {
        let summary = evaluate(model, &self.val_set, &self.class_names, &self.eval_device)?;
        Ok([
            ("accuracy".to_string(), summary.accuracy),
            ("macro_f1".to_string(), summary.macro_f1),
        ]
        .into())
    }

    fn val_text(&self, val: &BTreeMap<String, f64>) -> String {
        format!(
            "val acc {:.4}  macro-F1 {:.4}",
            val["accuracy"], val["macro_f1"]
        )
    }
}
